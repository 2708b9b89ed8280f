"""sentence-transformers folders in a container: the whole pipeline, not only the transformer.

A sentence-transformers model is a folder: the transformer (weights, config, tokenizer) at the
root or in ``0_Transformer/``, and ``modules.json`` listing what follows it: ``1_Pooling/``
(a config), ``2_Dense/model.safetensors`` (a ``linear.weight`` and ``linear.bias``), another
Dense, ``Normalize``. The embedding is what that whole chain gives; the transformer's mean-pooled
last hidden state is not it as soon as there is a Dense module.

How the pipeline is built: the modules after the transformer are small, so their files are
restored bit-exactly into a temporary folder (their configs, their safetensors) with a
``modules.json`` listing only them, and sentence-transformers loads that folder as it would the
original: its own classes, its own order. The transformer comes from bigsmall, loaded fully or
streamed (:class:`~bigsmall.torch.executor.StreamingModel`); its token embeddings go through the
post-modules. :func:`sentence_transformer` gives the complete ``SentenceTransformer`` object, the
transformer loaded by :func:`bigsmall.from_pretrained` through the hook.

Without sentence-transformers installed, callers run the transformer alone and say so in one line
(:data:`MISSING_NOTE`).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import FormatError, MissingDependencyError
from .skeleton import SIDE_FILE_MAX, sentence_modules, transformer_dir

MISSING_NOTE = ("note: a sentence-transformers folder, but sentence-transformers is not installed: "
                "running the transformer alone (mean of its last hidden state), not the pipeline of "
                "modules.json (pip install sentence-transformers)")


def has_sentence_transformers() -> bool:
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


def _st() -> Any:
    try:
        import sentence_transformers
    except ImportError:
        raise MissingDependencyError("this needs sentence-transformers: pip install sentence-transformers") from None
    return sentence_transformers


def _is_transformer(module: dict[str, Any]) -> bool:
    return str(module.get("type", "")).rsplit(".", 1)[-1] == "Transformer"


def _restore_member(bs: Any, index: int, into: Path) -> None:
    """One member file of the container, bit-exact (its sha256 receipt is checked by the reader
    for a blob; a safetensors file is written from receipt-checked tensors)."""
    f = bs.container.files[index]
    dst = into / f.path
    dst.parent.mkdir(parents=True, exist_ok=True)
    if f.kind == "blob":
        dst.write_bytes(bs.file_bytes(f))
        return
    with open(dst, "wb") as fh:
        for piece in bs.iter_file_chunks(index):
            fh.write(piece)


def write_modules(bs: Any, into: Path, with_transformer: bool) -> list[dict[str, Any]]:
    """Restore the sentence-transformers modules of ``bs`` into ``into``; returns the modules written.

    ``with_transformer``: also the transformer's config and tokenizer files and ``modules.json``
    as stored (its weights are the caller's business: a symlink to the ``.bs`` for the hook);
    else a ``modules.json`` of the modules after the transformer only, renumbered from 0.
    Only the post-modules' folders are restored in full; each member is bounded by the
    side-file limit unless it is a safetensors file of a post-module (a Dense layer's weights).
    """
    mods = sentence_modules(bs)
    if mods is None:
        raise FormatError(f"{bs.path}: no modules.json: not a sentence-transformers folder")
    tdir = transformer_dir(bs)
    post = [m for m in mods if not _is_transformer(m)]
    dirs = {str(m.get("path", "")).strip("/") for m in post} - {""}
    for i, f in enumerate(bs.container.files):
        folder = f.path.rpartition("/")[0]
        in_post = any(f.path.startswith(d + "/") for d in dirs)
        side = f.kind == "blob" and f.size <= SIDE_FILE_MAX and folder == tdir
        if in_post or (with_transformer and side):
            _restore_member(bs, i, into)
    if with_transformer:
        written = mods
    else:
        written = [{**m, "idx": k} for k, m in enumerate(post)]
    (into / "modules.json").write_text(json.dumps(written))
    return written


def post_modules(bs: Any, device: str = "cpu") -> Any:
    """The modules after the transformer (pooling, dense, normalize) as a ``SentenceTransformer``
    (an ``nn.Sequential``): ``post({"token_embeddings": h, "attention_mask": m})["sentence_embedding"]``.
    None when ``modules.json`` lists nothing after the transformer."""
    st = _st()
    with tempfile.TemporaryDirectory(prefix="bigsmall-st-") as d:
        if not write_modules(bs, Path(d), with_transformer=False):
            return None
        return st.SentenceTransformer(d, device=device).eval()


def sentence_transformer(src: str | os.PathLike[str], device: str = "cpu") -> Any:
    """The whole ``SentenceTransformer`` of a container made from a sentence-transformers folder,
    every weight bit-exact: the post-modules restored from the container, the transformer loaded
    by :func:`bigsmall.from_pretrained` (the hook routes sentence-transformers' own
    ``AutoModel.from_pretrained`` of the folder to it)."""
    from ..io.reader import BsFile
    from .hook import hooked

    st = _st()
    src = Path(src).resolve()
    with tempfile.TemporaryDirectory(prefix="bigsmall-st-") as d:
        root = Path(d)
        with BsFile(src) as bs:
            write_modules(bs, root, with_transformer=True)
            tdir = root / transformer_dir(bs)
        tdir.mkdir(parents=True, exist_ok=True)
        (tdir / "model.bs").symlink_to(src)
        with hooked():
            return st.SentenceTransformer(str(root), device=device).eval()


def pipeline_for_run(bs: Any, device: str, announce: Callable[[str], None] | None) -> Any:
    """What ``bigsmall run`` puts after the transformer: the post-modules of a
    sentence-transformers folder, or None (not such a folder, nothing after the transformer, or
    sentence-transformers missing: then :data:`MISSING_NOTE` goes to ``announce``, or stderr)."""
    mods = sentence_modules(bs)
    if not mods or all(_is_transformer(m) for m in mods):
        return None
    if not has_sentence_transformers():
        (announce or (lambda line: print(line, file=sys.stderr)))(MISSING_NOTE)
        return None
    return post_modules(bs, device)

