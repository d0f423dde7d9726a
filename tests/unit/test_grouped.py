"""kgzoo.ops.grouped: rows times their relation's matrix, grouped (tiny in-memory tensors)."""
from __future__ import annotations

import pytest
import torch

from kgzoo.ops.grouped import grouped_matmul, relation_matmul


def test_grouped_matmul_on_sorted_rows_is_each_row_times_its_matrix():
    torch.manual_seed(0)
    e, proj = torch.randn(7, 3, dtype=torch.float64), torch.randn(4, 3, 2, dtype=torch.float64)
    r = torch.tensor([0, 0, 2, 2, 2, 3, 3])  # relation 1 has no rows
    expected = torch.bmm(e.unsqueeze(1), proj[r]).squeeze(1)
    torch.testing.assert_close(grouped_matmul(e, proj, torch.bincount(r, minlength=4).tolist()), expected)
    perm = torch.randperm(7)
    torch.testing.assert_close(relation_matmul(e[perm], proj, r[perm]), expected[perm])
    assert grouped_matmul(e[:0], proj, [0, 0, 0, 0]).shape == (0, 2)
    with pytest.raises(ValueError, match="counts"):
        grouped_matmul(e, proj, [2, 0, 3, 1])
    with pytest.raises(ValueError, match="counts"):
        grouped_matmul(e, proj, [2, 0, 5])


def test_grouped_matmul_with_and_without_autograd():
    """Under autograd the groups' products are concatenated (differentiable); without it they
    are written into one output (``out=``): the same rows, also for a transposed ``proj``."""
    torch.manual_seed(1)
    e, proj = torch.randn(9, 3, requires_grad=True), torch.randn(3, 3, 3, requires_grad=True)
    counts = [4, 0, 5]
    expected = torch.bmm(e.unsqueeze(1), proj[torch.tensor([0] * 4 + [2] * 5)]).squeeze(1)
    got = grouped_matmul(e, proj, counts)
    assert got.requires_grad
    torch.testing.assert_close(got, expected)
    with torch.no_grad():
        torch.testing.assert_close(grouped_matmul(e, proj, counts), expected)
        t = proj.transpose(1, 2)
        torch.testing.assert_close(grouped_matmul(e, t, counts), torch.cat([e[:4] @ t[0], e[4:] @ t[2]]))
        assert grouped_matmul(e[:0], proj, [0, 0, 0]).shape == (0, 3)
