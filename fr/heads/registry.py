"""The head registry: every margin rule is registered here under a name, with the metadata the book and the tests
read (paper, equation, formula, official code, deviations).

A head module registers its rules with :func:`register_head` at import time; :mod:`fr.heads` imports every head
module explicitly, so the registry is complete once ``fr.heads`` is imported.
"""
from __future__ import annotations

import inspect
from typing import Any

from ..registry import Registry

HEADS = Registry("head")


def register_head(name: str, *, paper: str, equation: str, tex: str, official: str = "none public",
                  default_init: str = "normal", reconstructed: bool = False, notes: tuple[str, ...] = (),
                  defaults: dict[str, Any] | None = None, summary: str = ""):
    """Register a :class:`~fr.heads.base.MarginRule` subclass under ``name`` (a class decorator).

    paper:    citation (authors, venue, year, arXiv id).
    equation: where the formula is in the paper ("Eq. 4").
    tex:      the formula, in LaTeX, for the generated book page.
    official: repository and file of the official code, or "none public".
    default_init: class-centre initialisation of the official code (see :func:`fr.heads.classifier.init_centres`).
    reconstructed: True where the paper's formulas are not available and the rule is our reading; the summary
              must then say "Reconstruction".
    notes:    known deviations of official code from the paper, and the readings taken.
    defaults: overrides of the class's own keyword defaults for this registered name.
    summary:  one line for the book's index.
    """
    return HEADS.register(name, defaults=defaults, paper=paper, equation=equation, tex=tex, official=official,
                          default_init=default_init, reconstructed=reconstructed, notes=tuple(notes),
                          summary=summary)


def list_heads(pattern: str = "*") -> list[str]:
    """Registered head names matching the shell-style ``pattern``, sorted."""
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
    """Everything registered about a head: name, class, defaults, the metadata of :func:`register_head` and the
    rule class's docstring."""
    entry = HEADS.get(name)
    return {"name": name, "class": entry.factory.__name__, "defaults": head_defaults(name), **entry.meta,
            "doc": inspect.getdoc(entry.factory) or ""}


__all__ = ["HEADS", "register_head", "list_heads", "head_defaults", "head_info"]
