"""Every shared verification set loads through the safe reader and evaluates end to end (a fold-balanced
subset, a randomly initialised backbone from fr.backbones). Skips when the data root lacks the files."""
from __future__ import annotations

import pytest
import torch

from fr.data import find_bin

pytestmark = pytest.mark.data

EXPECTED = {"lfw": 6000, "cfp_fp": 7000, "cfp_ff": 7000}


def _path(name):
    try:
        return find_bin(name)
    except FileNotFoundError:
        pytest.skip(f"{name}.bin not found under the data root (set FR_DATA)")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_set_has_its_published_pair_count_and_balanced_labels(name):
    from fr.data.bins import read_bin_raw

    bins, issame = read_bin_raw(_path(name))
    assert len(issame) == EXPECTED[name] and len(bins) == 2 * EXPECTED[name]
    assert sum(issame) == EXPECTED[name] // 2


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_set_evaluates_end_to_end_with_protocol_and_fingerprint(name):
    from fr.backbones import create_backbone
    from fr.data import load_bin
    from fr.eval import evaluate_verification

    vset = load_bin(_path(name), n_pairs=200)
    torch.manual_seed(0)
    model = create_backbone("iresnet_tiny", input_size=32, embedding_size=64)
    res = evaluate_verification(model, vset, protocol="insightface", flip="sum", batch_size=200)
    assert res.n_pairs == 200 and res.protocol == "insightface/sqL2/10fold/flip-sum"
    assert len(res.sha256) == 64
    # untrained: far from a trained model (pixel-level similarity of same-identity photos lifts it above 50%)
    assert 0.3 <= res.accuracy <= 0.8, res.summary()
