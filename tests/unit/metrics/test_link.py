"""Tests for kgzoo.metrics.link: filtered realistic ranks, build_filter, metrics, errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kgzoo.metrics.link import LinkPredictionMetrics, build_filter, filtered_ranks, link_metrics


# ---------------------------------------------------------------- reference (plain Python)
def reference_rank(scores: list[float], true: int, excluded: set[int]) -> float:
    s_true = scores[true]
    cands = [s for e, s in enumerate(scores) if e == true or e not in excluded]
    optimistic = 1 + sum(s > s_true for s in cands)
    pessimistic = sum(s >= s_true for s in cands)
    return (optimistic + pessimistic) / 2


# ---------------------------------------------------------------- hand-worked
def test_filtered_ranks_hand_worked():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.5, 0.3], [0.0, 0.0, 0.0, 0.0, 0.0]])
    true = torch.tensor([2, 4])
    original = scores.clone()
    # raw: query 0 -> 1 better (e1), 1 tie (e3): optimistic 2, pessimistic 3 -> 2.5
    #      query 1 -> all tied: optimistic 1, pessimistic 5 -> 3
    assert filtered_ranks(scores, true).tolist() == [2.5, 3.0]
    # filter e1 and the true e2 itself for query 0 (the true one is kept), e0,e1 for query 1
    row = torch.tensor([0, 0, 1, 1])
    col = torch.tensor([1, 2, 0, 1])
    assert filtered_ranks(scores, true, row, col).tolist() == [1.5, 2.0]
    assert torch.equal(scores, original)  # inputs untouched


def test_link_metrics_hand_worked():
    ranks = torch.tensor([1.0, 2.5, 4.0, 12.0])
    out = link_metrics(ranks)
    assert list(out) == ["mrr", "hits@1", "hits@3", "hits@10", "mean_rank"]
    assert out["mrr"].item() == pytest.approx((1 + 1 / 2.5 + 1 / 4 + 1 / 12) / 4)
    assert out["hits@1"].item() == pytest.approx(0.25)
    assert out["hits@3"].item() == pytest.approx(0.5)
    assert out["hits@10"].item() == pytest.approx(0.75)
    assert out["mean_rank"].item() == pytest.approx(19.5 / 4)


def test_build_filter_hand_worked():
    known = torch.tensor([[0, 0, 1], [0, 0, 2], [0, 1, 3], [1, 0, 2], [0, 0, 4]])
    queries = torch.tensor([[0, 0, 1], [1, 0, 9], [2, 0, 0], [0, 1, 3]])
    row, col = build_filter(known, queries, side="tail")
    pairs = sorted(zip(row.tolist(), col.tolist()))
    assert pairs == [(0, 1), (0, 2), (0, 4), (1, 2), (3, 3)]
    row, col = build_filter(known, torch.tensor([[5, 0, 2], [7, 1, 3]]), side="head")
    assert sorted(zip(row.tolist(), col.tolist())) == [(0, 0), (0, 1), (1, 0)]


def test_build_filter_empty():
    row, col = build_filter(torch.zeros(0, 3, dtype=torch.long), torch.tensor([[0, 0, 1]]))
    assert row.numel() == 0 and col.numel() == 0


# ---------------------------------------------------------------- property tests
@st.composite
def link_case(draw):
    B = draw(st.integers(1, 5))
    E = draw(st.integers(1, 8))
    scores = draw(st.lists(st.lists(st.integers(-2, 2), min_size=E, max_size=E), min_size=B, max_size=B))
    true = draw(st.lists(st.integers(0, E - 1), min_size=B, max_size=B))
    pairs = draw(st.lists(st.tuples(st.integers(0, B - 1), st.integers(0, E - 1)), max_size=20))
    return [[float(x) for x in r] for r in scores], true, pairs


@settings(max_examples=200, deadline=None)
@given(link_case())
def test_filtered_ranks_match_reference(case):
    scores, true, pairs = case
    row = torch.tensor([p[0] for p in pairs], dtype=torch.long)
    col = torch.tensor([p[1] for p in pairs], dtype=torch.long)
    got = filtered_ranks(torch.tensor(scores), torch.tensor(true), row, col)
    for b in range(len(true)):
        excluded = {c for r, c in pairs if r == b}
        assert got[b].item() == reference_rank(scores[b], true[b], excluded)


@st.composite
def triples_case(draw):
    n_ent, n_rel = draw(st.integers(1, 6)), draw(st.integers(1, 3))
    triple = st.tuples(st.integers(0, n_ent - 1), st.integers(0, n_rel - 1), st.integers(0, n_ent - 1))
    known = draw(st.lists(triple, max_size=30))
    queries = draw(st.lists(triple, min_size=1, max_size=8))
    return known, queries


@settings(max_examples=200, deadline=None)
@given(triples_case(), st.sampled_from(["tail", "head"]))
def test_build_filter_matches_reference(case, side):
    known, queries = case
    row, col = build_filter(torch.tensor(known, dtype=torch.long).reshape(-1, 3), torch.tensor(queries), side=side)
    got = sorted(zip(row.tolist(), col.tolist()))
    expected = []
    for q, (h, r, t) in enumerate(queries):
        for kh, kr, kt in known:
            if side == "tail" and (kh, kr) == (h, r):
                expected.append((q, kt))
            if side == "head" and (kt, kr) == (t, r):
                expected.append((q, kh))
    assert got == sorted(expected)  # multiset: duplicates in known are kept
    assert row.tolist() == sorted(row.tolist())  # grouped by query


@settings(max_examples=50, deadline=None)
@given(link_case(), st.integers(1, 3))
def test_link_metric_streaming(case, n_batches):
    scores, true, _ = case
    s, t = torch.tensor(scores), torch.tensor(true)
    m = LinkPredictionMetrics(ks=(1, 2))
    for cs, ct in zip(s.tensor_split(n_batches), t.tensor_split(n_batches)):
        m.update(cs, ct)
    res = m.compute()
    ref = link_metrics(filtered_ranks(s, t), ks=(1, 2))
    assert list(res) == list(ref) == ["mrr", "hits@1", "hits@2", "mean_rank"]
    for key in ref:
        assert res[key].item() == pytest.approx(ref[key].item(), abs=1e-12)


# ---------------------------------------------------------------- errors
def test_errors():
    s = torch.rand(2, 4)
    with pytest.raises(ValueError, match="true"):
        filtered_ranks(s, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="true"):
        filtered_ranks(s, torch.tensor([0]))
    with pytest.raises(ValueError, match="both"):
        filtered_ranks(s, torch.tensor([0, 1]), torch.tensor([0]))
    with pytest.raises(ValueError, match="filter_col"):
        filtered_ranks(s, torch.tensor([0, 1]), torch.tensor([0]), torch.tensor([4]))
    with pytest.raises(ValueError, match="NaN"):
        filtered_ranks(torch.tensor([[math.nan, 0.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="side"):
        build_filter(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long), side="relation")
    with pytest.raises(ValueError, match=r"\[\*, 3\]"):
        build_filter(torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=">= 1"):
        link_metrics(torch.tensor([0.5]))
    with pytest.raises(ValueError, match="cut-offs"):
        LinkPredictionMetrics(ks=(0,))
