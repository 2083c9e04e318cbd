"""MV-AM-Softmax and MV-Arc-Softmax (fr/heads/mv_softmax.py)."""
from __future__ import annotations

import pytest
import torch

from fr.heads import create_rule, head_info
from oracles import DTYPES, check_rule, make_ctx, oracle_mv, rich_case


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["am", "arc"])
@pytest.mark.parametrize("easy_margin", [True, False])
@pytest.mark.parametrize("mode", ["adaptive", "fixed"])
def test_mv_softmax_oracle(dtype, kind, easy_margin, mode):
    rule = create_rule(f"mv_{kind}", easy_margin=easy_margin, mode=mode)
    case = rich_case(seed=31)
    check_rule(rule, oracle_mv(kind, easy_margin=easy_margin, mode=mode), *case, dtype=dtype)


def test_mv_softmax_defaults_and_hard_fraction():
    for name in ("mv_am", "mv_arc"):
        info = head_info(name)
        assert {k: info["defaults"][k] for k in ("s", "m", "t", "easy_margin", "mode")} == dict(
            s=32.0, m=0.35, t=0.2, easy_margin=True, mode="adaptive")
    cos = torch.tensor([[0.8, 0.7, 0.1, -0.2]], dtype=torch.float64)  # c_y - m = 0.45: one hard negative of 3
    out = create_rule("mv_am")(cos, make_ctx(torch.tensor([0])), torch.ones(1, dtype=torch.float64))
    assert out.stats["hard_neg_frac"] == pytest.approx(1 / 3)
    torch.testing.assert_close(out.logits, 32.0 * torch.tensor([[0.45, 1.2 * 0.7 + 0.2, 0.1, -0.2]],
                                                                dtype=torch.float64))
