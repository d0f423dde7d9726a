"""lookup_with_l2 (KGCN's whole-table L2 with one dense gradient) against autograd's plain form."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kgzoo.models.layers.losses import lookup_with_l2


@pytest.mark.parametrize("padding_idx", [None, 5])
def test_lookup_with_l2_matches_embedding_plus_the_square(padding_idx):
    g = torch.Generator().manual_seed(0)
    w0 = torch.randn(6, 3, generator=g, dtype=torch.float64)
    if padding_idx is not None:
        w0[padding_idx] = 0  # nn.Embedding keeps the padding row at 0
    index = torch.tensor([0, 2, 2, 5, 1, 5, 0])
    up = torch.randn(7, 3, generator=g, dtype=torch.float64)
    a = w0.clone().requires_grad_()
    rows, half_sq = lookup_with_l2(a, index, padding_idx)
    (0.7 * half_sq + (rows * up).sum()).backward()
    b = w0.clone().requires_grad_()
    ref_rows = F.embedding(index, b, padding_idx)
    (0.7 * b.pow(2).sum() / 2 + (ref_rows * up).sum()).backward()
    assert torch.equal(rows, ref_rows)
    assert half_sq.item() == pytest.approx(w0.pow(2).sum().item() / 2, rel=1e-12)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-12)
    if padding_idx is not None:
        assert not a.grad[padding_idx].any()  # looked up twice, never moved


def test_lookup_with_l2_rejects_other_shapes():
    with pytest.raises(ValueError, match=r"weight must be \[N, d\] and index \[n\]"):
        lookup_with_l2(torch.zeros(4, 2), torch.zeros(2, 2, dtype=torch.long))


def test_a_negative_padding_idx_counts_from_the_end_as_nn_embeddings():
    """``F.embedding(padding_idx=-1)`` holds the last row still; ``-1`` is also the Function's own
    "no padding row", so the helper took it for none and moved the row (its lookups' gradient)."""
    w0 = torch.randn(6, 3, dtype=torch.float64)
    w0[-1] = 0
    index = torch.tensor([0, 5, 5, 2])
    a = w0.clone().requires_grad_()
    rows, half_sq = lookup_with_l2(a, index, -1)
    (rows.sum() + half_sq).backward()
    b = w0.clone().requires_grad_()
    (F.embedding(index, b, padding_idx=-1).sum() + b.pow(2).sum() / 2).backward()
    torch.testing.assert_close(a.grad, b.grad)
    assert not a.grad[5].any()
    with pytest.raises(ValueError, match="padding_idx 6 must be within"):
        lookup_with_l2(w0, index, 6)
