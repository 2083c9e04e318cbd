"""Oracles and identities for the registry, the classifier and the first heads (softmax, CosFace, ArcFace)."""
from __future__ import annotations

import math

import pytest
import torch

import fr
from fr.heads import create_rule
from oracle_utils import check_rule, random_case, softmax_ce, make_ctx

DTYPES = [torch.float64, torch.float32]


def oracle_softmax(s):
    def f(c, y, a):
        return softmax_ce(torch.stack([s * c[j] for j in range(c.shape[0])]), y)
    return f


def oracle_cosface(s, m):
    def f(c, y, a):
        return softmax_ce(torch.stack([s * (c[j] - m) if j == y else s * c[j] for j in range(c.shape[0])]), y)
    return f


def oracle_arcface(s, m, easy_margin=False):
    th, mm = math.cos(math.pi - m), math.sin(math.pi - m) * m

    def target(cy):
        if easy_margin:
            return torch.cos(torch.acos(cy) + m) if cy > 0 else cy
        return torch.cos(torch.acos(cy) + m) if cy > th else cy - mm

    def f(c, y, a):
        return softmax_ce(torch.stack([s * target(c[j]) if j == y else s * c[j] for j in range(c.shape[0])]), y)
    return f


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_softmax_oracle(dtype, seed):
    check_rule(create_rule("softmax", s=30.0), oracle_softmax(30.0), *random_case(seed=seed), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_cosface_oracle(dtype, seed):
    check_rule(create_rule("cosface"), oracle_cosface(64.0, 0.35), *random_case(seed=seed), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("easy", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_arcface_exact_oracle(dtype, easy, seed):
    # cosines spanning the th/mm fallback region (c_y < cos(pi - m) = -0.878)
    cos, labels, norms = random_case(seed=seed, lo=-0.999, hi=0.999)
    check_rule(create_rule("arcface", easy_margin=easy), oracle_arcface(64.0, 0.5, easy), cos, labels, norms,
               dtype=dtype)


def test_arcface_detached_forward_equals_exact_but_gradient_is_cosface():
    cos, labels, norms = random_case(seed=3, lo=-0.8, hi=0.8)  # away from the th/mm region
    exact, det, cosf = create_rule("arcface"), create_rule("arcface", grad_mode="detached"), create_rule("cosface")
    c1 = cos.clone().requires_grad_(True)
    c2 = cos.clone().requires_grad_(True)
    l_det = det(c2, make_ctx(labels), norms).loss
    torch.testing.assert_close(exact(c1, make_ctx(labels), norms).loss, l_det)
    # the detached gradient is that of the softmax evaluated at the margin logits
    g_det, = torch.autograd.grad(l_det, c2)
    logits = det(cos, make_ctx(labels), norms).logits
    p = torch.softmax(logits, 1)
    onehot = torch.nn.functional.one_hot(labels, cos.shape[1]).double()
    torch.testing.assert_close(g_det, 64.0 * (p - onehot) / cos.shape[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_identity_margins_zero_equal_softmax(dtype):
    cos, labels, norms = random_case(seed=4)
    ctx = make_ctx(labels)
    ref = create_rule("softmax")(cos.to(dtype), ctx, norms).loss
    for rule in (create_rule("cosface", m=0.0), create_rule("arcface", m=0.0),
                 create_rule("arcface", m=0.0, grad_mode="detached")):
        torch.testing.assert_close(rule(cos.to(dtype), ctx, norms).loss, ref)


def test_registry_errors_list_known_names_and_parameters():
    with pytest.raises(KeyError, match="known heads: .*arcface"):
        fr.create_head("arcfcae", num_classes=10)
    with pytest.raises(TypeError, match="known parameters: .*grad_mode"):
        fr.create_head("arcface", num_classes=10, margin=0.5)
    with pytest.raises(ValueError, match="grad_mode"):
        fr.create_head("arcface", num_classes=10, grad_mode="sloppy")


def test_head_rejects_bad_shapes_and_labels():
    head = fr.create_head("cosface", num_classes=5, embedding_size=4)
    with pytest.raises(ValueError, match="embedding size"):
        head(torch.randn(3, 6), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="out of range"):
        head(torch.randn(3, 4), torch.tensor([0, 1, 5]))
    with pytest.raises(ValueError, match="labels must have shape"):
        head(torch.randn(3, 4), torch.tensor([0, 1]))


def test_partial_fc_sampling_keeps_positives_and_remaps_labels():
    torch.manual_seed(0)
    head = fr.create_head("cosface", num_classes=100, embedding_size=8, sample_rate=0.3)
    head.train()
    labels = torch.tensor([3, 97, 50, 3, -1])
    out = head(torch.randn(5, 8), labels)
    index = head.classifier.last_index
    assert index.numel() == 30 and bool((index[1:] > index[:-1]).all())
    for i, y in enumerate(labels.tolist()):
        if y >= 0:
            assert int(index[out.labels[i]]) == y
        else:
            assert int(out.labels[i]) == -1
    head.eval()
    assert head(torch.randn(5, 8), labels).logits.shape == (5, 100)


def test_partial_fc_all_sampled_equals_full_classifier():
    torch.manual_seed(0)
    full = fr.create_head("arcface", num_classes=20, embedding_size=8)
    pfc = fr.create_head("arcface", num_classes=20, embedding_size=8, sample_rate=0.5)
    pfc.load_state_dict(full.state_dict())
    x = torch.randn(40, 8)
    labels = torch.arange(40) % 20  # every class present: sampling keeps them all
    torch.testing.assert_close(pfc(x, labels).loss, full(x, labels).loss)
