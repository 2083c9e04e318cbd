"""Loss heads: a registry of margin rules, each behind a full cosine classifier or Partial FC.

    >>> import fr
    >>> head = fr.create_head("arcface", num_classes=1000, embedding_size=512, m=0.45)
    >>> out = head(embeddings, labels)          # HeadOutput(loss, logits, stats, labels)

Every module in this package registers its rules on import; this file imports them all.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

from ..registry import Registry
from .base import Head, HeadOutput, MarginRule, ShardContext, arc_target, safe_acos, safe_sin
from .classifier import PartialFC, init_centres

HEADS = Registry("head")


def register_head(name: str, *, paper: str, equation: str, tex: str, official: str = "none public",
                  default_init: str = "normal", reconstructed: bool = False, notes: tuple[str, ...] = (),
                  defaults: dict[str, Any] | None = None, summary: str = ""):
    """Register a :class:`MarginRule` subclass under ``name``.

    paper:    citation (authors, venue, year, arXiv id).
    equation: where the formula is in the paper ("Eq. 4").
    tex:      the formula, in LaTeX, for the generated book page.
    official: repository and file of the official code, or "none public".
    reconstructed: True where the paper's formulas are not available and the rule is our reading.
    notes:    known deviations of official code from the paper, and the readings taken.
    defaults: overrides of the class's own keyword defaults for this registered name.
    """
    return HEADS.register(name, defaults=defaults, paper=paper, equation=equation, tex=tex, official=official,
                          default_init=default_init, reconstructed=reconstructed, notes=tuple(notes),
                          summary=summary)


def list_heads(pattern: str = "*") -> list[str]:
    return HEADS.names(pattern)


def head_defaults(name: str) -> dict[str, Any]:
    """The parameters and defaults of a registered head (class defaults, then the name's overrides)."""
    entry = HEADS.get(name)
    sig = inspect.signature(entry.factory.__init__)
    out = {p.name: p.default for p in list(sig.parameters.values())[1:]
           if p.default is not inspect.Parameter.empty and p.kind is not p.VAR_KEYWORD}
    out.update(entry.defaults)
    return out


def head_info(name: str) -> dict[str, Any]:
    entry = HEADS.get(name)
    return {"name": name, "class": entry.factory.__name__, "defaults": head_defaults(name), **entry.meta,
            "doc": inspect.getdoc(entry.factory) or ""}


def create_rule(name: str, **overrides: Any) -> MarginRule:
    entry = HEADS.get(name)
    params = head_defaults(name)
    unknown = sorted(set(overrides) - set(params))
    if unknown:
        raise TypeError(f"head {name!r} got unknown parameter(s) {unknown}; "
                        f"known parameters: {', '.join(sorted(params)) or '(none)'}")
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


def _import_all() -> None:
    for mod in pkgutil.iter_modules(__path__):
        if mod.name not in {"base", "classifier"}:
            importlib.import_module(f"{__name__}.{mod.name}")


_import_all()

__all__ = ["HEADS", "Head", "HeadOutput", "MarginRule", "ShardContext", "PartialFC",
           "create_head", "create_rule", "list_heads", "head_info", "head_defaults", "register_head",
           "arc_target", "safe_acos", "safe_sin", "init_centres"]
