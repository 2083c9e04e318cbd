"""Load released checkpoints of insightface ``arcface_torch`` and AdaFace into our backbones.

>>> model, spec = load_official("ms1mv3_arcface_r50_fp16/backbone.pth", "iresnet50")
>>> model, spec = load_official("adaface_ir50_ms1mv2.ckpt", "ir50_adaface", source="adaface")

What the files contain (insightface#2268, AdaFace README):

* ``arcface_torch``: ``backbone.pth`` is the backbone's plain ``state_dict`` (the classifier of Partial FC
  is not shipped). Keys may carry a ``module.`` (DDP) or ``backbone.`` prefix when a user saved a
  wrapper; both are stripped.
* ``adaface``: a PyTorch Lightning ``.ckpt`` whose ``state_dict`` holds ``model.*`` (the backbone) and
  ``head.kernel`` (the class centres). Only ``model.*`` is kept. The file pickles more than tensors, so it
  needs ``weights_only=False`` — only do that for files you trust.

Loading is strict: a missing or unexpected key, or a shape mismatch, raises an error that lists them and,
when the keys reveal another depth, names the backbone the checkpoint fits. ``num_batches_tracked``
buffers, absent from some older exports, are the only keys allowed to be missing (they do not affect
inference).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from .factory import BACKBONES, backbone_defaults, create_backbone
from .spec import InputSpec

SOURCES: dict[str, dict[str, Any]] = {
    "arcface_torch": {"strip": ("module.", "backbone."), "keep": None, "fc": "fc.weight"},
    "adaface": {"strip": ("module.",), "keep": "model.", "fc": "output_layer.3.weight"},
}


class OfficialModel(NamedTuple):
    model: nn.Module
    spec: InputSpec


def _read(path_or_state_dict: Any, weights_only: bool) -> tuple[dict[str, torch.Tensor], str]:
    if isinstance(path_or_state_dict, Mapping):
        obj, where = path_or_state_dict, "the given state_dict"
    else:
        path = Path(path_or_state_dict)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        where = str(path)
        try:
            obj = torch.load(path, map_location="cpu", weights_only=weights_only)
        except Exception as exc:  # unpickling errors come in several types
            hint = (" It pickles more than tensors (e.g. a Lightning .ckpt); pass weights_only=False if you "
                    "trust the file." if weights_only else "")
            raise ValueError(f"cannot read checkpoint {path}: {exc}.{hint}") from exc
    for key in ("state_dict", "model_state_dict"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{where} is not a state_dict (a mapping of names to tensors)")
    return dict(obj), where


def clean_state_dict(state: Mapping[str, torch.Tensor], source: str = "arcface_torch") -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes (``module.``, ``backbone.``; for AdaFace keep only ``model.*`` and strip it)."""
    if source not in SOURCES:
        raise ValueError(f"unknown checkpoint source {source!r}; known: {', '.join(SOURCES)}")
    rule = SOURCES[source]
    keep = rule["keep"]
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    has_keep = keep is not None and any(k.startswith(keep) for k in state)
    out = {}
    for k, value in state.items():
        if has_keep:
            if not k.startswith(keep):
                continue  # e.g. AdaFace's head.kernel: the class centres, not the backbone
            k = k[len(keep):]
        changed = True
        while changed:
            changed = False
            for prefix in rule["strip"]:
                if k.startswith(prefix):
                    k, changed = k[len(prefix):], True
        out[k] = value
    return out


def _depth_hint(state: Mapping[str, torch.Tensor], source: str) -> str:
    """Name the registered backbones whose block counts match the checkpoint's keys."""
    if source == "arcface_torch":
        from .iresnet import IRESNET_LAYERS
        counts = []
        for stage in range(1, 5):
            idx = {int(m.group(1)) for k in state if (m := re.match(rf"layer{stage}\.(\d+)\.", k))}
            counts.append(max(idx) + 1 if idx else 0)
        fits = [f"iresnet{d}" for d, layers in IRESNET_LAYERS.items() if tuple(counts) == layers]
        found = f"blocks per stage {counts}"
    else:
        from .irse import IR_LAYERS
        idx = {int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.", k))}
        n = max(idx) + 1 if idx else 0
        fits = [f"ir{d}_adaface" for d, layers in IR_LAYERS.items() if sum(layers) == n]
        found = f"{n} IR blocks"
    return f" The checkpoint has {found}" + (f"; it fits {', '.join(fits)}." if fits else ".")


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], *, name: str = "model",
                     where: str = "checkpoint", source: str | None = None) -> None:
    """Raise a ``KeyError`` listing missing/unexpected keys and shape mismatches (missing
    ``num_batches_tracked`` is tolerated)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if not (missing or unexpected or shapes):
        return

    def show(items: list[str]) -> str:
        return ", ".join(items[:8]) + (f", ... ({len(items)} in all)" if len(items) > 8 else "")

    parts = [f"{where} does not fit backbone {name!r}:"]
    if missing:
        parts.append(f"missing keys [{show(missing)}]")
    if unexpected:
        parts.append(f"unexpected keys [{show(unexpected)}]")
    if shapes:
        parts.append(f"shape mismatches [{show(shapes)}]")
    msg = " ".join(parts)
    if source is not None:
        msg += _depth_hint(state, source)
    raise KeyError(msg)


def load_official(path_or_state_dict: Any, name: str, source: str = "arcface_torch", *,
                  weights_only: bool = True, **kw: Any) -> OfficialModel:
    """Build backbone ``name`` and load an official checkpoint into it strictly.

    path_or_state_dict: a file (``backbone.pth``, AdaFace ``.ckpt``) or an already loaded mapping.
    source: ``"arcface_torch"`` (insightface) or ``"adaface"``.
    kw: passed to :func:`create_backbone`; ``embedding_size`` defaults to the checkpoint's.
    Returns ``OfficialModel(model, spec)`` with the model in eval mode; ``spec`` is the model's
    :class:`InputSpec` (colour order and normalisation the checkpoint was trained with).
    """
    if source not in SOURCES:
        raise ValueError(f"unknown checkpoint source {source!r}; known: {', '.join(SOURCES)}")
    entry = BACKBONES.get(name)
    if entry.meta.get("source") != source:
        fits = [n for n in BACKBONES.names() if BACKBONES.get(n).meta.get("source") == source]
        raise ValueError(f"backbone {name!r} does not load {source!r} checkpoints; "
                         f"backbones that do: {', '.join(fits)}")
    raw, where = _read(path_or_state_dict, weights_only)
    state = clean_state_dict(raw, source)
    fc = SOURCES[source]["fc"]
    if "embedding_size" not in kw and fc in state and "embedding_size" in backbone_defaults(name):
        kw["embedding_size"] = int(state[fc].shape[0])
    model = create_backbone(name, **kw)
    check_state_dict(model, state, name=name, where=where, source=source)
    model.load_state_dict(state, strict=True)
    model.eval()
    return OfficialModel(model, model.input_spec)
