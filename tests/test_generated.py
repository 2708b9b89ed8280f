"""The committed generated decode kernel is exactly what gen_decode.py renders."""

from bigsmall.codecs import gen_decode


def test_decode_kernel_is_regenerated() -> None:
    assert gen_decode.TARGET.read_text() == gen_decode.render(), (
        "bigsmall/codecs/_decode4.py is stale: run python -m bigsmall.codecs.gen_decode"
    )


def test_encoder_lane_steps_are_regenerated() -> None:
    from bigsmall.codecs import gen_encode

    for name in gen_encode.TARGETS:
        assert (gen_encode.HERE / name).read_text() == gen_encode.generate(name), (
            f"bigsmall/codecs/{name} is stale: run python -m bigsmall.codecs.gen_encode"
        )


def test_encoder_generator_replaces_only_its_block() -> None:
    from bigsmall.codecs import gen_encode

    text = "a\n    # >>> gen_encode: x\n    old\n    # <<< x\nb\n"
    assert gen_encode.render(text, "x", ["new", "if y:", "    z"]) == (
        "a\n    # >>> gen_encode: x\n    new\n    if y:\n        z\n    # <<< x\nb\n")
