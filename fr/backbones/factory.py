"""The backbone registry: ``create_backbone(name, **kw)``, ``list_backbones()``, ``backbone_info(name)``."""
from __future__ import annotations

import inspect
from typing import Any, Callable

from torch import nn

from ..registry import Registry
from .spec import InputSpec

BACKBONES = Registry("backbone")


def register_backbone(name: str, *, paper: str, official: str, spec: InputSpec, summary: str,
                      notes: tuple[str, ...] = (), source: str = "") -> Callable:
    """Register a factory (a function of keyword parameters returning a :class:`FaceBackbone`).

    paper:    citation of the architecture.
    official: repository and file of the reference implementation whose parameter names we keep.
    spec:     the input the *released* checkpoints expect (the default crop size may differ for CPU variants).
    source:   the ``load_official`` source whose checkpoints load into this name (empty if none).
    notes:    deviations and readings taken.
    """
    return BACKBONES.register(name, paper=paper, official=official, spec=spec, summary=summary,
                              notes=tuple(notes), source=source)


def list_backbones(pattern: str = "*") -> list[str]:
    """Registered backbone names matching a glob ``pattern``."""
    return BACKBONES.names(pattern)


def backbone_defaults(name: str) -> dict[str, Any]:
    """The parameters of backbone ``name`` and their defaults (required ones map to ``inspect.Parameter.empty``)."""
    sig = inspect.signature(BACKBONES.get(name).factory)
    return {p.name: p.default for p in sig.parameters.values()}


def backbone_info(name: str) -> dict[str, Any]:
    entry = BACKBONES.get(name)
    return {"name": name, "defaults": backbone_defaults(name), **entry.meta,
            "doc": inspect.getdoc(entry.factory) or ""}


def create_backbone(name: str, **kw: Any) -> nn.Module:
    """Build backbone ``name``; keyword arguments override its defaults.

    >>> model = create_backbone("iresnet50")                   # insightface IResNet-50, 112 px RGB
    >>> emb, norm = model(x)                                   # (B, 512) raw embedding, (B,) its l2 norm
    >>> model = create_backbone("iresnet_small", input_size=56)

    Unknown names raise ``KeyError`` listing the registered ones; unknown parameters raise
    ``TypeError`` listing the accepted ones.
    """
    entry = BACKBONES.get(name)
    BACKBONES.check_params(name, kw)
    sig = inspect.signature(entry.factory)
    missing = [p.name for p in sig.parameters.values()
               if p.default is inspect.Parameter.empty and p.name not in kw]
    if missing:
        raise TypeError(f"backbone {name!r} needs parameter(s) {missing}")
    model = entry.factory(**kw)
    model.arch = name
    return model
