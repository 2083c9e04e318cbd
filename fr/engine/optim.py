"""SGD with the weight-decay grouping of the papers.

AdaFace (``train_val.py``, ``split_parameters``) puts every BatchNorm parameter in a group without weight
decay and everything else, the head's kernel included, in a group with ``wd = 5e-4``. insightface
(``train_v2.py``) decays every parameter of the backbone and of Partial FC. The default here,
``no_decay="norm_bias_prelu"``, extends AdaFace's rule to biases and PReLU slopes (the usual "no decay on
1-d parameters" practice); ``"bn"`` is AdaFace's code exactly and ``"none"`` is insightface's.

Parameters with ``requires_grad=False`` (e.g. insightface's frozen ``features.weight``) are left out.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..config import OptimCfg, check_choice

_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)

#: ``(module, parameter name) -> exempt from weight decay`` for each ``optim.no_decay`` rule; the rule names are
#: declared in ``fr.config.CHOICES`` (a test checks that every one is implemented here).
EXEMPT = {
    "norm_bias_prelu": lambda mod, name: isinstance(mod, (*_NORMS, nn.PReLU)) or name == "bias",
    "bn": lambda mod, name: isinstance(mod, nn.modules.batchnorm._BatchNorm),
    "none": lambda mod, name: False,
}


def _split(module: nn.Module, mode: str) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(decay, no_decay) parameters of ``module`` under rule ``mode``; each parameter once, in a fixed order."""
    check_choice("optim.no_decay", mode)
    exempt = EXEMPT[mode]
    decay, no_decay, seen = [], [], set()
    for mod in module.modules():
        for name, p in mod.named_parameters(recurse=False):
            if id(p) in seen or not p.requires_grad:
                continue
            seen.add(id(p))
            (no_decay if exempt(mod, name) else decay).append(p)
    return decay, no_decay


def param_groups(backbone: nn.Module, head: nn.Module, cfg: OptimCfg) -> list[dict]:
    """Three groups: backbone with decay, backbone/head parameters without decay, class centres.

    The class centres (``head.classifier.weight``) always form their own group (last, as insightface
    requires for Partial FC) with ``cfg.head_weight_decay`` (default ``cfg.weight_decay``); any learnable
    parameter of the margin rule is not decayed. Empty groups are dropped."""
    decay, no_decay = _split(backbone, cfg.no_decay)
    centres = head.classifier.weight
    rule_params = [p for p in head.parameters() if p is not centres and p.requires_grad]
    head_wd = cfg.weight_decay if cfg.head_weight_decay is None else cfg.head_weight_decay
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay, "name": "backbone"},
        {"params": no_decay + rule_params, "weight_decay": 0.0, "name": "no_decay"},
        {"params": [centres], "weight_decay": head_wd, "name": "centres"},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(backbone: nn.Module, head: nn.Module, cfg: OptimCfg, lr: float) -> torch.optim.Optimizer:
    """SGD(momentum, nesterov) over :func:`param_groups` at learning rate ``lr`` (the derived one)."""
    check_choice("optim.name", cfg.name)  # "sgd" only: the reproduced papers all use it
    return torch.optim.SGD(param_groups(backbone, head, cfg), lr=lr, momentum=cfg.momentum,
                           nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
