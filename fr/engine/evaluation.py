"""Verification during and after training: the sets, loaded once, and a model evaluated on them without
touching the training run's state (its mode is restored and the global RNG is left as it was)."""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn as nn

from ..config import EvalCfg
from ..data import VerificationSet, find_bin, load_bin
from ..eval import evaluate_verification


class VerificationSets:
    """The ``.bin`` verification sets :func:`fr.data.find_bin` finds, decoded once at ``size`` pixels, and
    their fold-balanced subsets of ``pairs`` pairs."""

    def __init__(self, size: int):
        self.size = size
        self._sets: dict[tuple[str, int | None], VerificationSet] = {}

    def get(self, name: str, pairs: int | None = None) -> VerificationSet:
        if (name, None) not in self._sets:
            self._sets[(name, None)] = load_bin(find_bin(name), size=self.size)
        if (name, pairs) not in self._sets:
            full = self._sets[(name, None)]
            self._sets[(name, pairs)] = full.subset(pairs) if pairs is not None and pairs < len(full.issame) else full
        return self._sets[(name, pairs)]


def suite_protocols(cfg: EvalCfg) -> tuple[str, ...]:
    """The protocols ``eval.suite`` names (``all``: every protocol of :mod:`fr.eval.suite`)."""
    from ..eval.suite import DEFAULT_PROTOCOLS

    return DEFAULT_PROTOCOLS if "all" in cfg.suite else tuple(cfg.suite)


def run_suite(model: nn.Module, cfg: EvalCfg, device: torch.device) -> dict[str, Any]:
    """``{protocol: result}`` of ``model`` on every protocol of ``eval.suite``, all read off one embedding
    pass (:func:`fr.eval.suite.evaluate_suite`), with ``eval``'s flip, batch size and verification protocol.
    The model's mode and the global RNG state are restored."""
    from ..eval.suite import evaluate_suite

    protocols = suite_protocols(cfg)
    was = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            res = evaluate_suite(model, protocols=protocols, device=device, batch_size=cfg.batch_size,
                                 flip=cfg.flip, verification_protocol=cfg.protocol)
    finally:
        model.train(was)
    return {name: res[name] for name in protocols}


def verify(model: nn.Module, sets: Mapping[str, VerificationSet], cfg: EvalCfg,
           device: torch.device) -> dict[str, Any]:
    """``{name: VerificationResult}`` of ``model`` in eval mode on each of ``sets``, with ``eval``'s protocol,
    flip and batch size. The model's mode and the global RNG state (CPU, and ``device``'s) are restored."""
    out: dict[str, Any] = {}
    was = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for name, vset in sets.items():
                out[name] = evaluate_verification(model, vset, protocol=cfg.protocol, flip=cfg.flip,
                                                  batch_size=cfg.batch_size, device=device)
    finally:
        model.train(was)
    return out
