"""The head (fr/heads/base.py): input checks, and training end to end through the whole head, feature norms included."""
from __future__ import annotations

import pytest
import torch

import fr


def test_head_rejects_bad_shapes_and_labels():
    head = fr.create_head("cosface", num_classes=5, embedding_size=4)
    with pytest.raises(ValueError, match="embedding size"):
        head(torch.randn(3, 6), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="out of range"):
        head(torch.randn(3, 4), torch.tensor([0, 1, 5]))
    with pytest.raises(ValueError, match="labels must have shape"):
        head(torch.randn(3, 4), torch.tensor([0, 1]))


@pytest.mark.parametrize("name", ["adaface", "smaface", "magface", "lh2face"])
def test_heads_train_end_to_end_on_a_separable_toy(name):
    """A few steps of SGD on embeddings and centres lower the loss (a sanity check that the gradients point the
    right way through the whole head, norms included)."""
    torch.manual_seed(0)
    head = fr.create_head(name, num_classes=4, embedding_size=8, **({"lambda_pp": 0.0} if name == "lh2face" else {}))
    head.train()
    labels = torch.arange(16) % 4
    emb = (torch.randn(16, 8) * 4 + 20 * torch.eye(4, 8)[labels]).requires_grad_(True)
    opt = torch.optim.SGD([emb, *head.parameters()], lr=0.01)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        out = head(emb, labels)
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < losses[0], f"{name}: {losses[0]:.3f} -> {losses[-1]:.3f}"
