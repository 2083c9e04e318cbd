"""Softmax and CosFace (fr/heads/cosface.py) against their oracles."""
from __future__ import annotations

import pytest

from fr.heads import create_rule
from oracles import DTYPES, check_rule, oracle_cosface, oracle_softmax, random_case


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_softmax_oracle(dtype, seed):
    check_rule(create_rule("softmax", s=30.0), oracle_softmax(30.0), *random_case(seed=seed), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_cosface_oracle(dtype, seed):
    check_rule(create_rule("cosface"), oracle_cosface(64.0, 0.35), *random_case(seed=seed), dtype=dtype)
