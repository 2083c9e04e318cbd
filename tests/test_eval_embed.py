"""Embedding extraction: flip fusion modes, batching, eval mode, input handling."""
from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("fr.data.transforms")
from fr.data.transforms import to_input  # noqa: E402
from fr.eval import FLIP_MODES, extract_embeddings  # noqa: E402


class Spec:
    size, color, mean, std = (12, 12), "RGB", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


class Tiny(nn.Module):
    """Conv + BN + dropout + linear over the flattened map (not mirror-invariant). Returns (raw emb, norm)."""
    input_spec = Spec()

    def __init__(self, dim=6, style="raw"):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                                  nn.AvgPool2d(3))
        self.fc = nn.Linear(4 * 4 * 4, dim)
        self.style = style
        self.seen_training = []

    def forward(self, x):
        self.seen_training.append(self.training)
        e = self.fc(self.body(x).flatten(1))
        n = e.norm(dim=1)
        if self.style == "tensor":
            return e
        if self.style == "adaface":           # AdaFace backbones return the normalised embedding and the norm
            return e / n[:, None], n[:, None]
        return e, n


def images(n=10, size=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


def raw(model, imgs):
    model.eval()
    with torch.no_grad():
        out = model(to_input(imgs, Spec()))
    return out[0] if isinstance(out, tuple) else out


def unit(x):
    return x / x.norm(dim=1, keepdim=True)


def test_none_and_sum_match_manual_computation():
    m, x = Tiny(), images()
    v1, v2 = raw(m, x), raw(m, x.flip(-1))
    e, n = extract_embeddings(m, x, flip="none")
    torch.testing.assert_close(e, unit(v1))
    torch.testing.assert_close(n, v1.norm(dim=1))
    e, n = extract_embeddings(m, x, flip="sum")
    torch.testing.assert_close(e, unit(v1 + v2))             # insightface: sum of raw embeddings, then normalise
    torch.testing.assert_close(n, (v1.norm(dim=1) + v2.norm(dim=1)) / 2)   # insightface's XNorm per image
    assert e.dtype == torch.float32 and torch.allclose(e.norm(dim=1), torch.ones(len(x)))
    assert not torch.allclose(e, unit(v1), atol=1e-3), "the model must not be mirror-invariant for this test"


def test_norm_weighted_equals_sum_for_raw_embeddings_but_not_for_adaface_style_outputs():
    x = images()
    s = extract_embeddings(Tiny(), x, flip="sum")[0]
    nw = extract_embeddings(Tiny(), x, flip="norm_weighted")[0]
    torch.testing.assert_close(nw, s, atol=1e-6, rtol=0)      # n * v/|v| = v: identical up to rounding
    # an AdaFace-style model returns unit vectors + norms: norm weighting rebuilds the raw sum ...
    ada_nw = extract_embeddings(Tiny(style="adaface"), x, flip="norm_weighted")[0]
    torch.testing.assert_close(ada_nw, s, atol=1e-6, rtol=0)
    # ... while "sum" of its outputs weights both views equally, which is a different vector
    ada_sum = extract_embeddings(Tiny(style="adaface"), x, flip="sum")[0]
    assert (ada_sum - s).abs().max() > 1e-4


def test_concat_layout():
    m, x = Tiny(), images()
    v1, v2 = raw(m, x), raw(m, x.flip(-1))
    e, _ = extract_embeddings(m, x, flip="concat")
    assert e.shape == (len(x), 12)
    torch.testing.assert_close(e, unit(torch.cat([v1, v2], 1)))


@pytest.mark.parametrize("flip", FLIP_MODES)
def test_batch_size_does_not_matter(flip):
    x = images(23)
    a = extract_embeddings(Tiny(), x, flip=flip, batch_size=4)
    b = extract_embeddings(Tiny(), x, flip=flip, batch_size=256)
    torch.testing.assert_close(a[0], b[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(a[1], b[1], atol=1e-5, rtol=1e-6)


def test_eval_mode_during_and_modes_restored_after():
    m = Tiny()
    m.train()
    m.body[1].eval()                      # a frozen BatchNorm inside a training model stays frozen
    x = images(5)
    a = extract_embeddings(m, x, flip="sum")[0]
    b = extract_embeddings(m, x, flip="sum")[0]
    torch.testing.assert_close(a, b, rtol=0, atol=0)     # dropout off, BN running stats used
    assert m.seen_training and not any(m.seen_training)
    assert m.training and m.fc.training and not m.body[1].training and m.body[3].training
    assert torch.is_grad_enabled()
    assert not a.is_inference()           # usable with autograd afterwards (e.g. against trainable centres)


def test_plain_tensor_model_numpy_input_and_resize():
    m = Tiny(style="tensor")
    x = images(6)
    e1, n1 = extract_embeddings(m, x.numpy(), Spec(), flip="none")
    torch.testing.assert_close(e1, unit(raw(m, x)))
    torch.testing.assert_close(n1, raw(m, x).norm(dim=1))
    big = torch.nn.functional.interpolate(x.float(), scale_factor=2, mode="nearest").to(torch.uint8)
    e2, _ = extract_embeddings(m, big, flip="none")     # 24 px images are resized to the spec's 12 px
    assert e2.shape == e1.shape and torch.isfinite(e2).all()


def test_errors_name_the_problem():
    m, x = Tiny(), images(4)
    with pytest.raises(ValueError, match="flip"):
        extract_embeddings(m, x, flip="mirror")
    with pytest.raises(ValueError, match="uint8"):
        extract_embeddings(m, x.float(), flip="none")
    with pytest.raises(TypeError, match="input_spec"):
        extract_embeddings(nn.Linear(3, 2), x)

    class Bad(Tiny):
        def forward(self, x):
            return torch.zeros(x.shape[0], 2, 2)

    with pytest.raises(ValueError, match=r"\(4, D\)"):
        extract_embeddings(Bad(), x, flip="none")


# --- opt-in inference rewrites --------------------------------------------------------------------------------

def _trained_like_backbone(channels_last=False):
    """iresnet_tiny with non-trivial BatchNorm statistics and affine parameters (a folded BN then changes the
    weights), in eval mode."""
    from fr.backbones import create_backbone

    torch.manual_seed(0)
    model = create_backbone("iresnet_tiny", input_size=16, embedding_size=32)
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    model.eval()
    return model.to(memory_format=torch.channels_last) if channels_last else model


@pytest.mark.parametrize("channels_last", [False, True])
def test_fold_batchnorm_keeps_the_function_and_the_original(channels_last):
    from fr.eval.embed import fold_batchnorm, inference_model

    model = _trained_like_backbone(channels_last)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_batchnorm(model)
    x = torch.randint(0, 256, (10, 3, 16, 16), dtype=torch.uint8)
    e0, n0 = extract_embeddings(model, x)
    e1, n1 = extract_embeddings(folded, x)
    assert torch.allclose(e0, e1, atol=1e-5) and torch.allclose(n0, n1, rtol=1e-5)
    bns = [m for m in folded.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    # iresnet_tiny has 19 BNs; 14 follow a conv/linear; each block's bn1 (before a padded conv) and bn2 stay
    assert len(bns) == 5 and folded.rewrites == ("fold_bn",) and folded.input_spec == model.input_spec
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())   # the original is untouched
    convs = [m.weight for m in folded.modules() if isinstance(m, nn.Conv2d)]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert all(w.is_contiguous(memory_format=fmt) for w in convs)
    assert inference_model(model) is model
    with pytest.raises(TypeError, match="fr backbone"):
        fold_batchnorm(Tiny())


def test_amp_is_opt_in_and_checked():
    model = _trained_like_backbone()
    x = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    e32, _ = extract_embeddings(model, x)
    e16, _ = extract_embeddings(model, x, amp="bf16")
    assert e16.dtype == torch.float32 and not torch.equal(e16, e32)
    assert (e16 * e32).sum(1).min() > 0.99                    # bf16 rounding, same embedding direction
    with pytest.raises(ValueError, match="amp must be one of"):
        extract_embeddings(model, x, amp="fp8")


@pytest.mark.slow
def test_compiled_inference_model_keeps_the_function():
    from fr.eval.embed import inference_model

    model = _trained_like_backbone(channels_last=True)
    x = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    e0, n0 = extract_embeddings(model, x)
    for fold in (False, True):
        m = inference_model(model, fold_bn=fold, compile=True)
        assert m.rewrites == (("fold_bn",) if fold else ()) + ("compile",)
        e1, n1 = extract_embeddings(m, x)
        assert torch.allclose(e0, e1, atol=1e-5) and torch.allclose(n0, n1, rtol=1e-5)
    with pytest.raises(TypeError, match="fr backbone"):
        inference_model(Tiny(), compile=True)
