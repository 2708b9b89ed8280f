"""A sentence-transformers folder for tests: the MiniLM corpus model plus two Dense modules.

Why: real sentence-embedding releases (e.g. 300M-parameter multilingual encoders) ship as a
transformer plus ``1_Pooling/``, ``2_Dense/model.safetensors``, ``3_Dense/model.safetensors``
and ``modules.json``, and both Dense modules name their weight ``linear.weight``: the case that
broke ``bigsmall run`` (one name, two files). No package carries such a model, so the test folder
is MiniLM's own (already a sentence-transformers folder: Transformer, Pooling, Normalize) with
two generated Dense layers (seeded; 384 -> 256 tanh, 256 -> 128 identity) put between pooling and
normalisation, in the file layout sentence-transformers itself writes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from .sources import minilm_dir
from .synthetic import write_safetensors

DENSE = (("2_Dense", 384, 256, "torch.nn.modules.activation.Tanh"),
         ("3_Dense", 256, 128, "torch.nn.modules.linear.Identity"))


def sentence_folder(dst: Path, seed: int = 0) -> Path:
    """Write the folder into ``dst`` (created) and return it."""
    src = minilm_dir()
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.name != "README.md":
            shutil.copyfile(f, dst / f.name)
    (dst / "1_Pooling").mkdir(exist_ok=True)
    shutil.copyfile(src / "1_Pooling" / "config.json", dst / "1_Pooling" / "config.json")
    rng = np.random.default_rng(seed)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    for folder, n_in, n_out, act in DENSE:
        (dst / folder).mkdir(exist_ok=True)
        (dst / folder / "config.json").write_text(json.dumps(
            {"in_features": n_in, "out_features": n_out, "bias": True, "activation_function": act}))
        w = rng.normal(0, 1 / np.sqrt(n_in), (n_out, n_in)).astype(np.float32)
        b = rng.normal(0, 0.02, n_out).astype(np.float32)
        write_safetensors(dst / folder / "model.safetensors", {
            "linear.weight": ("F32", (n_out, n_in), w.tobytes()),
            "linear.bias": ("F32", (n_out,), b.tobytes()),
        })
        modules.append({"idx": len(modules), "name": str(len(modules)), "path": folder,
                        "type": "sentence_transformers.models.Dense"})
    modules.append({"idx": len(modules), "name": str(len(modules)), "path": f"{len(modules)}_Normalize",
                    "type": "sentence_transformers.models.Normalize"})
    (dst / "modules.json").write_text(json.dumps(modules, indent=2))
    return dst
