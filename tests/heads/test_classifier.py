"""Class centres (fr/heads/classifier.py): Partial FC sampling and its full-classifier limit."""
from __future__ import annotations

import torch

import fr


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
