"""The fast attention paths against their textbook formulations, on tiny in-memory graphs.

GATLayer on an AttentionGraph (sparse matmul over [N heads, N heads], SDDMM backward) against
PyG's GATConv forward on the plain edge_index (gather, softmax, scatter); SparsePattern.matmul
against a dense matrix; kgat_attention (relation groups, sampled product) against KGAT eq. 4-5
edge by edge. Same values and gradients up to float round-off, same dropout draws.
"""
from __future__ import annotations

import pytest
import torch

from kgzoo.models.layers.propagation import (AttentionGraph, GATLayer, RelationGroups, SparsePattern,
                                             kgat_attention)


def _graph(n: int = 12, m: int = 60, n_types: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(n, (2, m), generator=g)
    edge_index[:, :3] = torch.tensor([[1, 1, 5], [1, 2, 5]])  # existing self-loops and a duplicate edge
    edge_index[:, 3] = edge_index[:, 4] = torch.tensor([2, 7])
    edge_index[1][edge_index[1] == n - 1] = 0  # node n-1 has no incoming edge (its loop's mean fill is 0)
    return edge_index, torch.randint(n_types, (m,), generator=g)


def test_sparse_pattern_matmul_matches_dense_in_values_and_features():
    torch.manual_seed(0)
    rows, cols = torch.tensor([0, 2, 2, 1, 0, 2]), torch.tensor([1, 0, 3, 3, 1, 0])  # duplicates sum
    values = torch.randn(6, dtype=torch.float64, requires_grad=True)
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    out = SparsePattern(rows, cols, 3, 4).matmul(values, x)
    dense = torch.zeros(3, 4, dtype=torch.float64).index_put((rows, cols), values, accumulate=True)
    torch.testing.assert_close(out, dense @ x)
    assert torch.autograd.gradcheck(lambda v, f: SparsePattern(rows, cols, 3, 4).matmul(v, f), (values, x))
    with pytest.raises(ValueError, match="do not fit"):
        SparsePattern(rows, cols, 3, 4).matmul(values[:5], x)


@pytest.mark.parametrize("relation_aware", [False, True])
@pytest.mark.parametrize("heads", [1, 2])
def test_gat_layer_on_attention_graph_matches_gatconv(relation_aware, heads):
    torch.manual_seed(0)
    n, dim, n_types = 12, 8, 4
    edge_index, edge_type = _graph(n, n_types=n_types)
    layer = GATLayer(dim, heads, dropout=0.3, edge_dim=5 if relation_aware else None).double()
    table = torch.randn(n_types, 5, dtype=torch.float64, requires_grad=True) if relation_aware else None
    graph = AttentionGraph(edge_index, n, edge_type if relation_aware else None, n_types)
    x1 = torch.randn(n, dim, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    for training in (False, True):
        layer.train(training)
        torch.manual_seed(1)
        ref = layer(x1, edge_index, table[edge_type] if relation_aware else None)  # GATConv's own forward
        torch.manual_seed(1)
        fast = layer(x2, graph, table)
        torch.testing.assert_close(fast, ref)  # training: dropout drew the same mask
        grad = torch.randn_like(ref)
        params = [x1, *layer.parameters()] + ([table] if relation_aware else [])
        ref_g = torch.autograd.grad(ref, params, grad)
        fast_g = torch.autograd.grad(fast, [x2, *layer.parameters()] + ([table] if relation_aware else []), grad)
        for a, b in zip(fast_g, ref_g):
            torch.testing.assert_close(a, b)


def test_attention_graph_checks_its_input():
    edge_index, edge_type = _graph()
    with pytest.raises(ValueError, match="outside"):
        AttentionGraph(edge_index, 5)
    with pytest.raises(ValueError, match="edge_type"):
        AttentionGraph(edge_index, 12, edge_type, n_types=2)
    layer = GATLayer(8, 2, edge_dim=5)
    with pytest.raises(ValueError, match="edge features"):
        layer(torch.randn(12, 8), AttentionGraph(edge_index, 12), torch.randn(4, 5))


def _kgat_attention_per_edge(x, edge_index, edge_type, rel_proj, rel_emb):
    """KGAT eq. 4-5 edge by edge (gathered [M, d, k] matrices), softmax over each head's edges."""
    w = rel_proj[edge_type]
    wh = torch.bmm(x[edge_index[0]].unsqueeze(1), w).squeeze(1)
    wt = torch.bmm(x[edge_index[1]].unsqueeze(1), w).squeeze(1)
    logits = (wt * torch.tanh(wh + rel_emb[edge_type])).sum(-1)
    heads = edge_index[0]
    exp = (logits - logits.max()).exp()
    return exp / torch.zeros(int(heads.max()) + 1, dtype=x.dtype).index_add(0, heads, exp)[heads]


def test_kgat_attention_matches_the_per_edge_equation_in_values_and_gradients():
    torch.manual_seed(0)
    n, d, k, n_rel = 12, 6, 5, 4
    edge_index, edge_type = _graph(n, n_types=n_rel)
    edge_type[edge_type == 2] = 1  # a relation without edges
    x = torch.randn(n, d, dtype=torch.float64, requires_grad=True)
    proj = torch.randn(n_rel, d, k, dtype=torch.float64, requires_grad=True)
    rel = torch.randn(n_rel, k, dtype=torch.float64, requires_grad=True)
    ref = _kgat_attention_per_edge(x, edge_index, edge_type, proj, rel)
    groups = RelationGroups(edge_index, edge_type, n, n_rel)
    for graph, types in ((edge_index, edge_type), (groups, None)):
        att = kgat_attention(x, graph, types, proj, rel, n)
        torch.testing.assert_close(att, ref)
        grad = torch.randn_like(ref)
        fast_g = torch.autograd.grad(att, (x, proj, rel), grad)
        ref_g = torch.autograd.grad(ref, (x, proj, rel), grad, retain_graph=True)
        for a, b in zip(fast_g, ref_g):
            torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="edge_type"):
        RelationGroups(edge_index, edge_type, n, 2)
    with pytest.raises(ValueError, match="do not fit"):
        kgat_attention(x, groups, None, proj[:3], rel[:3], n)


def test_sparse_pattern_sampled_is_the_dense_product_on_the_entries():
    torch.manual_seed(0)
    rows, cols = torch.tensor([0, 2, 2, 1, 0, 2]), torch.tensor([1, 0, 3, 3, 1, 0])
    a = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    pattern = SparsePattern(rows, cols, 3, 4)
    torch.testing.assert_close(pattern.sampled(a, b), (a @ b.T)[rows, cols])
    assert torch.autograd.gradcheck(pattern.sampled, (a, b))
    with pytest.raises(ValueError, match="do not fit"):
        pattern.sampled(a, b[:3])
