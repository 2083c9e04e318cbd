"""Loss heads: a registry of margin rules, each behind a full cosine classifier or Partial FC.

    >>> import fr
    >>> head = fr.create_head("arcface", num_classes=1000, embedding_size=512, m=0.45)
    >>> out = head(embeddings, labels)          # HeadOutput(loss, logits, stats, labels)

The registry lives in :mod:`fr.heads.registry`; every head module registers its rules there when it is
imported, and this file imports each head module by name (a new head file is added to the list below).
"""
from __future__ import annotations

from typing import Any

from ..registry import check_known
from .base import Head, HeadOutput, MarginRule, ShardContext, arc_target, safe_acos, safe_sin
from .classifier import PartialFC, init_centres
from .registry import HEADS, head_defaults, head_info, list_heads, register_head

# Every head module, by name; importing one registers its heads. A new head file is added here.
from . import (adaface, adasin, arcface, combined, cosface, curricularface, elasticface,  # noqa: F401
               harmonic, lh2face, magface, mv_softmax, sface, smaface, sphereface)


def create_rule(name: str, **overrides: Any) -> MarginRule:
    """The margin rule of head ``name`` alone (no class centres), with paper defaults overridden by
    ``overrides``; unknown parameter names fail, listing the known ones."""
    entry = HEADS.get(name)
    params = head_defaults(name)
    check_known(overrides, sorted(params), owner=f"head {name!r}")
    params.update(overrides)
    return entry.factory(**params)


def create_head(name: str, *, num_classes: int, embedding_size: int = 512, sample_rate: float = 1.0,
                init: str | None = None, **overrides: Any) -> Head:
    """Build head ``name`` with paper defaults, overridden by ``overrides``.

    ``sample_rate < 1`` (or several ranks) gives Partial FC; ``init`` picks the class-centre
    initialisation (default: the official code's)."""
    rule = create_rule(name, **overrides)
    init = init or HEADS.get(name).meta["default_init"]
    return Head(rule, PartialFC(num_classes, embedding_size, sample_rate=sample_rate, init=init), name=name)


__all__ = ["HEADS", "Head", "HeadOutput", "MarginRule", "ShardContext", "PartialFC",
           "create_head", "create_rule", "list_heads", "head_info", "head_defaults", "register_head",
           "arc_target", "safe_acos", "safe_sin", "init_centres"]
