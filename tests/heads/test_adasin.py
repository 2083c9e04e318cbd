"""AdaSin, a reconstruction (fr/heads/adasin.py): oracles in eval and training mode, the CurricularFace limit,
statistics."""
from __future__ import annotations

import pytest
import torch

from fr.heads import create_rule, head_info
from oracles import DTYPES, check_rule, ema_t, make_ctx, oracle_adasin, random_case, rich_case


def test_adasin_is_registered_as_a_reconstruction():
    info = head_info("adasin")
    assert info["reconstructed"] and info["summary"].startswith("Reconstruction:")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pos_mode", ["none", "scale", "add"])
@pytest.mark.parametrize("difficulty", ["half_angle", "sine"])
def test_adasin_oracle_eval(dtype, pos_mode, difficulty):
    t = 0.3125
    rule = create_rule("adasin", pos_mode=pos_mode, difficulty=difficulty).to(dtype).eval()
    rule.t.fill_(t)
    case = rich_case(seed=41)
    check_rule(rule, oracle_adasin(t, difficulty=difficulty, pos_mode=pos_mode), *case, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("t0", [0.6, -0.2])
def test_adasin_oracle_training(dtype, t0):
    case = rich_case(seed=42)
    t_new = ema_t(t0, case[0], case[1])
    rule = create_rule("adasin", h=0.3).to(dtype).train()
    rule.t.fill_(t0)
    check_rule(rule, oracle_adasin(t_new, h=0.3), *case, dtype=dtype)


def test_adasin_with_h0_and_pos_mode_none_is_curricularface():
    cos, labels, norms = rich_case(seed=43)
    ada, cur = create_rule("adasin", h=0.0, pos_mode="none").eval(), create_rule("curricularface").eval()
    ada.t.fill_(0.4), cur.t.fill_(0.4)
    torch.testing.assert_close(ada(cos, make_ctx(labels), norms).loss, cur(cos, make_ctx(labels), norms).loss,
                               rtol=1e-12, atol=1e-12)


def test_adasin_stats():
    cos, labels, norms = random_case(seed=44, lo=-0.99, hi=0.99)
    out = create_rule("adasin").eval()(cos, make_ctx(labels), norms)
    for key in ("t", "hard_neg_frac", "hard_sample_frac", "mean_difficulty", "mean_phi", "mean_margin"):
        assert key in out.stats
    c_y = cos.gather(1, labels[:, None]).squeeze(1)
    assert out.stats["mean_difficulty"] == pytest.approx(float(torch.sqrt((1 - c_y) / 2).mean()))
    assert out.stats["mean_margin"] >= 0.5
