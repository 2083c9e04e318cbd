"""LH2Face, a reconstruction (fr/heads/lh2face.py): oracle, the norm statistic, the proxy-pair term."""
from __future__ import annotations

import pytest
import torch

from fr.heads import create_rule, head_info
from fr.heads.lh2face import proxy_pair_loss
from oracles import DTYPES, check_rule, make_ctx, oracle_lh2face, random_case


def _lh2_rule(mu, **kw):
    rule = create_rule("lh2face", **{"lambda_pp": 0.0, **kw})
    with torch.no_grad():
        rule.mean_norm.fill_(mu)
        rule.num_updates.fill_(1)
    return rule.eval()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("detach_kappa", [False, True])
def test_lh2face_oracle(dtype, detach_kappa):
    cos, labels, norms = random_case(seed=4, norm_range=(2.0, 30.0))
    rule = _lh2_rule(15.0, detach_kappa=detach_kappa)
    check_rule(rule, oracle_lh2face(15.0, detach_kappa=detach_kappa), cos, labels, norms, dtype=dtype)


def test_lh2face_margin_is_cosface_at_the_mean_norm():
    """A row whose norm equals mu sees CosFace(s = mu, m = 0.35) (without the proxy terms)."""
    cos, labels, _ = random_case(seed=5)
    norms = torch.full((cos.shape[0],), 25.0, dtype=torch.float64)
    rule = _lh2_rule(25.0, lambda_pps=0.0, lambda_pns=0.0)
    want = create_rule("cosface", s=25.0, m=0.35)(cos, make_ctx(labels), norms).loss
    torch.testing.assert_close(rule(cos, make_ctx(labels), norms).loss, want)


def test_lh2face_norm_statistic():
    cos, labels, norms = random_case(batch=6, seed=6)
    labels[0] = -1
    valid_mean = float(norms[1:].mean())
    rule = create_rule("lh2face", lambda_pp=0.0, t_alpha=0.5).double()
    out = rule.eval()(cos, make_ctx(labels), norms)  # never trained: the batch mean, nothing stored
    assert out.stats["mean_norm"] == pytest.approx(valid_mean) and int(rule.num_updates) == 0
    rule.train()(cos, make_ctx(labels), norms)  # the first training batch sets the EMA
    assert float(rule.mean_norm) == pytest.approx(valid_mean) and int(rule.num_updates) == 1
    rule(cos, make_ctx(labels), norms * 3)
    assert float(rule.mean_norm) == pytest.approx(0.5 * 3 * valid_mean + 0.5 * valid_mean)
    out = rule.eval()(cos, make_ctx(labels), norms * 100)
    assert out.stats["mean_norm"] == pytest.approx(2 * valid_mean) and out.stats["margin"] == pytest.approx(
        0.35 * 2 * valid_mean)
    batch = create_rule("lh2face", lambda_pp=0.0, norm_stat="batch").double().train()
    assert batch(cos, make_ctx(labels), norms).stats["mean_norm"] == pytest.approx(valid_mean)
    assert int(batch.num_updates) == 0
    with pytest.raises(ValueError, match="norm_stat"):
        create_rule("lh2face", norm_stat="median")


def test_lh2face_proxy_pair_term_with_centres():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 4, generator=g, dtype=torch.float64)
    wn = w / w.norm(dim=1, keepdim=True)
    naive = [max(float(wn[a] @ wn[b]) - 0.1, 0.0) for a in range(5) for b in range(5) if a != b]
    assert proxy_pair_loss(w, 0.1).item() == pytest.approx(sum(naive) / len(naive))
    assert proxy_pair_loss(w[:1]).item() == 0.0

    x = torch.nn.functional.normalize(torch.randn(6, 4, generator=g, dtype=torch.float64), dim=1)
    labels = torch.tensor([0, 2, 2, 4, 0, -1])
    centres = wn.clone().requires_grad_(True)
    cos = x @ centres.t()
    ctx = make_ctx(labels)
    ctx.centres = centres  # the hook a head would set
    rule = _lh2_rule(1.0, lambda_pp=2.0)
    out = rule(cos, ctx, torch.ones(6, dtype=torch.float64))
    want_pp = proxy_pair_loss(wn[[0, 2, 4]], 0.2)
    assert out.stats["loss_pp"] == pytest.approx(want_pp.item())
    base = _lh2_rule(1.0)(cos, make_ctx(labels), torch.ones(6, dtype=torch.float64)).loss
    torch.testing.assert_close(out.loss, base + 2.0 * want_pp)
    grad, = torch.autograd.grad(out.loss, centres)
    assert torch.isfinite(grad).all()


def test_lh2face_without_centres_warns_and_skips_the_pair_term():
    cos, labels, norms = random_case(seed=8)
    with pytest.warns(UserWarning, match="L_pp"):
        out = create_rule("lh2face").double()(cos, make_ctx(labels), norms)
    assert "loss_pp" not in out.stats


def test_lh2face_is_marked_as_a_reconstruction():
    info = head_info("lh2face")
    assert info["reconstructed"] and info["summary"].startswith("Reconstruction:")
    assert info["official"] == "none public"
