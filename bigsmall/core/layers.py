"""Transformer block detection from tensor names alone.

Why names: a model-specific table would break on the next architecture; every major family
numbers its blocks in the name (``encoder.layer.3.``, ``model.layers.17.``, ``transformer.h.5.``,
``blocks.2.``, CTranslate2's ``decoder.layer_1.``). A *stack* is the prefix before the block
number, so an encoder-decoder model has two stacks whose blocks stay apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_BLOCK = re.compile(r"(?:^|[./])(layers|layer|h|blocks|block)[._/](\d+)(?=[./]|$)")
_CT2 = re.compile(r"(?:^|[./])(layer)_(\d+)(?=[./]|$)")


def layer_key(name: str) -> tuple[str, int] | None:
    """(stack prefix, block number) of a tensor, or None for non-layer tensors.

    The outermost (first) match wins, so nested numbering such as ``blocks.0.layers.3`` groups
    by the outer block; for the usual names there is exactly one match.
    """
    m = None
    for pat in (_BLOCK, _CT2):
        for found in pat.finditer(name):
            if m is None or found.start() < m.start():
                m = found
    if m is None:
        return None
    prefix = name[: m.start()] + ("." if m.start() else "") + m.group(1)
    return prefix.lstrip("./"), int(m.group(2))


def assign_layers(names: Iterable[str]) -> tuple[dict[str, int], list[tuple[str, int]]]:
    """Global layer numbers: encoder stacks, then other stacks in order of first appearance, then
    decoder stacks; blocks ascending within each.

    Returns ({tensor name: layer number} for layer tensors, [(stack, block) per layer number]).
    """
    keys: dict[str, tuple[str, int]] = {}
    stacks: list[str] = []
    for n in names:
        k = layer_key(n)
        if k is None:
            continue
        keys[n] = k
        if k[0] not in stacks:
            stacks.append(k[0])
    def stack_rank(stack: str) -> tuple[int, int]:
        # an encoder runs before its decoder whatever order the names come in (HF files sort
        # names, which puts "decoder" first); other stacks keep their order of appearance
        low = stack.lower()
        return (0 if "encoder" in low else 2 if "decoder" in low else 1), stacks.index(stack)

    order = sorted(set(keys.values()), key=lambda k: (stack_rank(k[0]), k[1]))
    number = {k: i for i, k in enumerate(order)}
    return {n: number[k] for n, k in keys.items()}, order
