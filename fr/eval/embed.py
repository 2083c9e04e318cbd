"""Batched embedding extraction with flip test-time augmentation.

:func:`extract_embeddings` turns uint8 RGB images into l2-normalised float32 embeddings: batches go to the model's
device as uint8, become the model's input through :func:`fr.data.transforms.to_input` (size, colour order,
mean/std from the model's ``InputSpec``), and run under ``torch.inference_mode`` with the model in eval mode (the
train/eval flag of every sub-module is restored afterwards).

The model may return ``(emb, norm)`` (the :mod:`fr.backbones` contract: raw embedding and its l2 norm) or a plain
embedding tensor, whose norm is then computed here. Flip fusion, with ``v1, v2`` the model's embeddings of an
image and of its mirror, and ``n1, n2`` their norms:

``"none"``           ``normalize(v1)``.
``"sum"``            ``normalize(v1 + v2)``: insightface's "Accuracy-Flip" (``eval/verification.py`` adds the
                     raw embeddings of image and mirror before ``sklearn.preprocessing.normalize``) and the fusion
                     of its IJB script (``img_feats[:, :d] + img_feats[:, d:]``).
``"norm_weighted"``  ``normalize(n1 * v1/|v1| + n2 * v2/|v2|)``: AdaFace ``fuse_features_with_norm``, which
                     multiplies each *normalised* feature by its norm before summing.
``"concat"``         ``normalize([v1, v2])``: the 2D-dimensional layout insightface's IJB script stores
                     (cosines then weight the two views by their norms).

Is "norm_weighted" different from "sum"? **Not for a model that returns raw embeddings** (our backbones, and
insightface's): there ``n * v/|v| = v``, so the two give the same vector, up to float rounding (the tests check
this). AdaFace's weighting only matters because AdaFace's backbone returns the embedding already normalised,
together with its norm; "sum" of such outputs would be a sum of unit vectors (each view weighted equally) while
"norm_weighted" rebuilds the raw sum. Here "norm_weighted" uses the norm the model *returns* when it returns one,
so it reproduces AdaFace on an AdaFace-style model and coincides with "sum" on a raw-embedding model.

The returned ``norms`` are the per-image feature norms: ``n1`` without flip, ``(n1 + n2) / 2`` with flip — the
quantity insightface averages into "XNorm" (the mean norm of all raw embeddings, original and mirrored). AdaFace
returns ``|fused|`` instead, about twice as large; it is not what we report.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

FLIP_MODES = ("none", "sum", "norm_weighted", "concat")


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _split_output(out, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(embedding, norm) from a model output: a tensor, or a tuple/list whose first item is the embedding and
    whose second item (if any) is its norm."""
    norm = None
    if isinstance(out, (tuple, list)):
        if not out:
            raise ValueError("the model returned an empty tuple; expected (emb, norm) or a tensor")
        emb = out[0]
        if len(out) > 1 and isinstance(out[1], torch.Tensor):
            norm = out[1]
    else:
        emb = out
    if not isinstance(emb, torch.Tensor) or emb.dim() != 2 or emb.shape[0] != batch:
        shape = tuple(emb.shape) if isinstance(emb, torch.Tensor) else type(emb).__name__
        raise ValueError(f"the model must return a ({batch}, D) embedding (or (emb, norm)), got {shape}")
    emb = emb.float()
    if norm is None:
        norm = emb.norm(dim=1)
    else:
        norm = norm.float().reshape(-1)
        if norm.numel() != batch:
            raise ValueError(f"the model's norm output has {norm.numel()} values for a batch of {batch}")
    return emb, norm


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)


def _fuse(v1, n1, v2, n2, flip: str) -> torch.Tensor:
    if flip == "sum":
        return v1 + v2
    if flip == "norm_weighted":
        return n1[:, None] * _normalize(v1) + n2[:, None] * _normalize(v2)
    return torch.cat([v1, v2], dim=1)  # concat


AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def extract_embeddings(model: nn.Module, images_uint8, spec=None, *, flip: str = "sum", batch_size: int = 256,
                       device=None, amp: str = "none", progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Embed ``images_uint8`` (uint8 RGB ``(N, 3, H, W)``, tensor or array) with ``model``.

    spec:       the model's input contract (``size``, ``color``, ``mean``, ``std``); defaults to
                ``model.input_spec``. Images of another size are resized by ``to_input``.
    flip:       "none" | "sum" | "norm_weighted" | "concat" (module docstring). With flip, each forward pass
                holds ``2 * batch_size`` images (original and mirror together).
    device:     where the model runs; defaults to the device of its parameters. The model is not moved.
    amp:        "none" (float32), or "bf16"/"fp16" autocast for the forward pass (opt-in: it changes the
                embeddings; on a CPU without native bf16, such as AVX2-only x86, bf16 is several times slower).
    Returns ``(emb, norms)``: float32 CPU tensors, ``emb`` (N, D) (or (N, 2D) for "concat") with unit rows, and
    ``norms`` (N,) the per-image feature norm (mean of the two views with flip).
    """
    from fr.data.transforms import hflip, to_input

    if flip not in FLIP_MODES:
        raise ValueError(f"flip must be one of {FLIP_MODES}, got {flip!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {tuple(AMP_DTYPES)}, got {amp!r}")
    if spec is None:
        spec = getattr(model, "input_spec", None)
        if spec is None:
            raise TypeError(f"{type(model).__name__} has no .input_spec; pass spec= (an fr.backbones.InputSpec)")
    images = torch.from_numpy(np.ascontiguousarray(images_uint8)) if isinstance(images_uint8, np.ndarray) \
        else images_uint8
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4 \
            or images.shape[1] != 3:
        desc = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a uint8 (N, 3, H, W) RGB tensor or array, got {desc}")
    n = images.shape[0]
    if n == 0:
        raise ValueError("no images to embed")
    device = _model_device(model) if device is None else torch.device(device)

    modes = {m: m.training for m in model.modules()}
    model.eval()
    embs, norms = [], []
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, total=(n + batch_size - 1) // batch_size, desc="embed", unit="batch")
    try:
        with torch.inference_mode(), torch.autocast(device.type, dtype=AMP_DTYPES[amp] or torch.bfloat16,
                                                     enabled=AMP_DTYPES[amp] is not None):
            for s in starts:
                x = to_input(images[s:s + batch_size].to(device, non_blocking=True), spec)
                b = x.shape[0]
                if flip == "none":
                    v, nv = _split_output(model(x), b)
                    fused, nrm = v, nv
                else:
                    v, nv = _split_output(model(torch.cat([x, hflip(x)], dim=0)), 2 * b)
                    fused = _fuse(v[:b], nv[:b], v[b:], nv[b:], flip)
                    nrm = (nv[:b] + nv[b:]) / 2
                embs.append(_normalize(fused).cpu())
                norms.append(nrm.cpu())
    finally:
        for m, training in modes.items():
            m.training = training
    emb = torch.cat(embs)
    if not torch.isfinite(emb).all():
        bad = int((~torch.isfinite(emb).all(dim=1)).nonzero()[0, 0])
        raise FloatingPointError(f"non-finite embedding for image {bad} (of {n}); check the model and its input")
    return emb, torch.cat(norms)


# --- opt-in inference rewrites ---------------------------------------------------------------------------
# Each gives the same function up to float rounding, which is why none is on by default: a recorded run
# re-evaluated with one of them can move a pair across a threshold or swap two near-tied gallery scores. On
# celeba_v2-9cf0c29e, compile (about 1.5x fewer CPU-seconds per image) kept every pair's decision, every TAR and
# every rank, but moved the AUCs and the all-pairs thresholds in their 7th-8th digit.

class _EmbedFn(nn.Module):
    """``module.embed`` as a module's forward (the part of an fr backbone that torch.fx can trace)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.embed(x)


class InferenceModel(nn.Module):
    """An fr backbone rewritten for inference (:func:`inference_model`): ``forward(x) -> (emb, norm)`` and
    ``input_spec`` as the original's; ``rewrites`` names what was done."""

    def __init__(self, embed: nn.Module, input_spec, rewrites: tuple[str, ...]):
        super().__init__()
        self.embed_fn, self.input_spec, self.rewrites = embed, input_spec, rewrites

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embed_fn(x)
        return emb, emb.norm(dim=1)


def fold_batchnorm(model: nn.Module) -> InferenceModel:
    """A copy of the fr backbone ``model`` (eval mode) with every BatchNorm that directly follows a conv or
    linear layer folded into that layer's weights and bias (``torch.fx.experimental.optimization.fuse``:
    ``w' = w * gamma / sqrt(var + eps)``, ``b' = (b - mean) * gamma / sqrt(var + eps) + beta``).

    In an IResNet that is the stem's BN, ``bn2``/``bn3`` of every block, the shortcut BNs and the final
    ``features`` BN1d: 19 of the 28 in ``iresnet_small``. A BN *before* a padded conv (each block's ``bn1``)
    cannot be folded exactly (the zero padding would become ``-beta/gamma``-shifted), nor ``bn2`` before the
    flatten; those stay. The original is not modified; its memory format is kept."""
    from torch.fx.experimental.optimization import fuse

    if not callable(getattr(model, "embed", None)) or not hasattr(model, "input_spec"):
        raise TypeError(f"fold_batchnorm needs an fr backbone (.embed and .input_spec); got {type(model).__name__}")
    import copy

    channels_last = any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last)
                        and not p.is_contiguous() for p in model.parameters())
    inner = _EmbedFn(copy.deepcopy(model)).eval()
    try:
        fused = fuse(inner)
    except Exception as e:  # torch.fx cannot trace data-dependent Python control flow
        raise TypeError(f"fold_batchnorm: torch.fx cannot trace {type(model).__name__}.embed: {e}") from None
    if channels_last:
        fused = fused.to(memory_format=torch.channels_last)
    return InferenceModel(fused.eval(), model.input_spec, ("fold_bn",))


def inference_model(model: nn.Module, *, fold_bn: bool = False, compile: bool = False) -> nn.Module:
    """``model`` as :func:`extract_embeddings` should run it: unchanged by default; with ``fold_bn`` through
    :func:`fold_batchnorm`; with ``compile`` its ``embed`` through ``torch.compile`` (inductor; the first batch
    of each new shape pays the compilation). Both change float rounding (see above), so both are opt-in."""
    if not (fold_bn or compile):
        return model
    if fold_bn:
        folded = fold_batchnorm(model)
        embed, done = folded.embed_fn, folded.rewrites
    else:
        if not callable(getattr(model, "embed", None)) or not hasattr(model, "input_spec"):
            raise TypeError(f"compile needs an fr backbone (.embed and .input_spec); got {type(model).__name__}")
        embed, done = _EmbedFn(model).eval(), ()
    if compile:
        embed, done = torch.compile(embed, dynamic=False), (*done, "compile")
    return InferenceModel(embed, model.input_spec, done)
