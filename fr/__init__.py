"""fr: face-recognition margin losses, data, evaluation and training, for the replication book.

    import fr
    head = fr.create_head("adaface", num_classes=10_572, embedding_size=512)
    backbone = fr.create_backbone("iresnet50")
    cfg = fr.load_config("configs/cpu/celeba_small.yaml", {"head.params.m": 0.4})
    record = fr.run(cfg)                       # trains, or returns the run already recorded
"""
from __future__ import annotations

__version__ = "0.1.0"

from .heads import create_head, head_info, list_heads  # noqa: E402

_LAZY = {
    "create_backbone": ("fr.backbones", "create_backbone"),
    "list_backbones": ("fr.backbones", "list_backbones"),
    "load_official": ("fr.backbones", "load_official"),
    "load_config": ("fr.config", "load_config"),
    "run": ("fr.train", "run"),
    "load_runs": ("fr.results", "load_runs"),
}


def __getattr__(name: str):
    # heavier sub-packages load on first use, so `import fr` stays cheap
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'fr' has no attribute {name!r}")


__all__ = ["create_head", "list_heads", "head_info", "create_backbone", "list_backbones", "load_official",
           "load_config", "run", "load_runs", "__version__"]
