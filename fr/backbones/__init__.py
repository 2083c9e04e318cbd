"""Face-recognition backbones behind one contract.

    >>> from fr.backbones import create_backbone, list_backbones, load_official
    >>> model = create_backbone("iresnet50")            # insightface arcface_torch IResNet-50
    >>> emb, norm = model(x)                            # raw (B, 512) embedding and its l2 norm (B,)
    >>> model.input_spec                                # InputSpec(size=(112, 112), color='RGB', ...)
    >>> model, spec = load_official("backbone.pth", "iresnet50")

Every backbone: ``forward(x) -> (emb, norm)`` with ``x`` a normalised float batch (B, 3, H, W) in the
colour order of ``input_spec``; ``emb`` un-normalised; ``norm = emb.norm(dim=1)``.

Registered families: ``iresnet18/34/50/100/200`` (insightface, loads its checkpoints), ``iresnet``
(any blocks/widths), ``iresnet_small`` and ``iresnet_tiny`` (CPU-sized, 64 px), and
``ir18/34/50/101_adaface`` (AdaFace's IR nets, BGR input; a different network from ``iresnet*``).
"""
from __future__ import annotations

from . import iresnet, irse  # noqa: F401  (register the backbones)
from .base import FaceBackbone
from .factory import BACKBONES, backbone_defaults, backbone_info, create_backbone, list_backbones, register_backbone
from .flops import count_macs, train_flops_per_image
from .iresnet import IBasicBlock, IResNet
from .irse import IRBlock, IRNet
from .official import OfficialModel, check_state_dict, clean_state_dict, load_official
from .spec import ADAFACE_SPEC, INSIGHTFACE_SPEC, InputSpec

__all__ = [
    "ADAFACE_SPEC", "BACKBONES", "FaceBackbone", "IBasicBlock", "INSIGHTFACE_SPEC", "IRBlock", "IRNet",
    "IResNet", "InputSpec", "OfficialModel", "backbone_defaults", "backbone_info", "check_state_dict",
    "clean_state_dict", "count_macs", "create_backbone", "list_backbones", "load_official",
    "register_backbone", "train_flops_per_image",
]
