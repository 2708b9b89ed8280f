"""The committed generated decode kernel is exactly what gen_decode.py renders."""

from bigsmall.codecs import gen_decode


def test_decode_kernel_is_regenerated() -> None:
    assert gen_decode.TARGET.read_text() == gen_decode.render(), (
        "bigsmall/codecs/_decode4.py is stale: run python -m bigsmall.codecs.gen_decode"
    )
