"""Tests for kgzoo.metrics.ranking: hand-worked values, a loop reference, errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kgzoo.metrics.names import RANKING_METRICS
from kgzoo.metrics.ranking import TopKMetrics, indices_to_dense, topk_metrics


def _close(actual: torch.Tensor, expected, tol: float = 1e-6) -> None:
    expected = torch.as_tensor(expected, dtype=torch.float64)
    assert torch.allclose(actual.to(torch.float64), expected, atol=tol, rtol=0), (actual, expected)


# ---------------------------------------------------------------- reference (plain Python)
def reference_user(scores: list[float], relevant: set[int], k: int) -> dict[str, float]:
    """Obviously-correct per-user metrics; assumes finite scores are distinct."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])[:k]
    rel = [1 if i in relevant else 0 for i in order]
    n = len(relevant)
    if n == 0:
        return dict.fromkeys(RANKING_METRICS, 0.0)
    hits = sum(rel)
    dcg = sum(r / math.log2(i + 2) for i, r in enumerate(rel))
    idcg = sum(1 / math.log2(i + 2) for i in range(min(n, k)))
    mrr = 0.0
    for i, r in enumerate(rel):
        if r:
            mrr = 1 / (i + 1)
            break
    ap = 0.0
    for i, r in enumerate(rel):
        if r:
            ap += sum(rel[: i + 1]) / (i + 1)
    return {
        "recall": hits / n,
        "ndcg": dcg / idcg,
        "precision": hits / k,
        "hit": float(hits > 0),
        "mrr": mrr,
        "map": ap / min(n, k),
    }


# ---------------------------------------------------------------- hand-worked examples
def test_hand_worked_single_user():
    # ranking: items 0..4 in that order; relevant {0, 2, 4}
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]])
    target = torch.tensor([[True, False, True, False, True]])
    out = topk_metrics(scores, target, [1, 3, 5])
    _close(out["recall@1"], [1 / 3])
    _close(out["recall@3"], [2 / 3])
    _close(out["recall@5"], [1.0])
    _close(out["precision@3"], [2 / 3])
    _close(out["precision@5"], [3 / 5])
    _close(out["hit@1"], [1.0])
    _close(out["mrr@5"], [1.0])
    idcg3 = 1 + 1 / math.log2(3) + 1 / 2
    _close(out["ndcg@1"], [1.0])
    _close(out["ndcg@3"], [(1 + 1 / 2) / idcg3])
    _close(out["ndcg@5"], [(1 + 1 / 2 + 1 / math.log2(6)) / idcg3])
    _close(out["map@1"], [1.0])
    _close(out["map@3"], [(1 + 2 / 3) / 3])
    _close(out["map@5"], [(1 + 2 / 3 + 3 / 5) / 3])


def test_hand_worked_first_hit_late_and_miss():
    # user 0: ranking 3,1,0,2 ; relevant {0}: first hit at position 3
    # user 1: ranking 0,1,2,3 ; relevant {3}: no hit within top 2
    scores = torch.tensor([[0.5, 0.7, 0.1, 0.9], [4.0, 3.0, 2.0, 1.0]])
    target = torch.tensor([[1, 0, 0, 0], [0, 0, 0, 1]], dtype=torch.bool)
    out = topk_metrics(scores, target, [2, 3])
    _close(out["mrr@2"], [0.0, 0.0])
    _close(out["mrr@3"], [1 / 3, 0.0])
    _close(out["hit@3"], [1.0, 0.0])
    _close(out["ndcg@3"], [0.5, 0.0])  # (1/log2 4) / 1
    _close(out["map@3"], [1 / 3, 0.0])  # precision@3 = 1/3, divided by min(1, 3)
    _close(out["recall@3"], [1.0, 0.0])
    _close(out["precision@2"], [0.0, 0.0])


def test_masked_items_are_not_hits():
    # item 0 is masked (-inf) and not a target: it enters the top 3 but is no hit
    scores = torch.tensor([[-math.inf, 2.0, 1.0]])
    target = torch.tensor([[False, False, True]])
    out = topk_metrics(scores, target, [3])
    _close(out["hit@3"], [1.0])
    _close(out["mrr@3"], [0.5])
    _close(out["precision@3"], [1 / 3])
    # a masked *target* item is the caller's problem: it counts if it reaches the top K
    target2 = torch.tensor([[True, False, False]])
    out2 = topk_metrics(scores, target2, [2, 3])
    _close(out2["hit@2"], [0.0])
    _close(out2["mrr@3"], [1 / 3])


def test_user_without_target_gets_zero():
    scores = torch.tensor([[0.3, 0.2, 0.1]])
    out = topk_metrics(scores, torch.zeros(1, 3, dtype=torch.bool), [2])
    for v in out.values():
        _close(v, [0.0])


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_target_forms_agree():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(4, 7, generator=g)
    dense = torch.rand(4, 7, generator=g) < 0.4
    dense[0, 0] = True
    row, col = dense.nonzero(as_tuple=True)
    a = topk_metrics(scores, dense, [1, 3, 7])
    b = topk_metrics(scores, (row, col), [1, 3, 7])
    c = topk_metrics(scores, dense.to_sparse(), [1, 3, 7])
    d = topk_metrics(scores, dense.float().to_sparse_csr(), [1, 3, 7])
    e = topk_metrics(scores, dense.long(), [1, 3, 7])
    for key in a:
        for other in (b, c, d, e):
            assert torch.equal(a[key], other[key]), key


def test_indices_to_dense():
    row = torch.tensor([0, 2, 2, 2])
    col = torch.tensor([1, 0, 3, 3])
    dense = indices_to_dense(row, col, 3, 4)
    expected = torch.zeros(3, 4, dtype=torch.bool)
    expected[0, 1] = expected[2, 0] = expected[2, 3] = True
    assert dense.dtype == torch.bool and torch.equal(dense, expected)
    assert indices_to_dense(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 2, 2).sum() == 0


def test_metric_subset_and_key_names():
    out = topk_metrics(torch.rand(2, 5), torch.ones(2, 5, dtype=torch.bool), [2, 2, 4], metrics=("ndcg", "hit"))
    assert list(out) == ["ndcg@2", "hit@2", "ndcg@4", "hit@4"]
    assert out["ndcg@2"].shape == (2,)


def test_float64_scores_give_float64():
    out = topk_metrics(torch.rand(2, 5, dtype=torch.float64), torch.ones(2, 5, dtype=torch.bool), [2])
    assert out["recall@2"].dtype == torch.float64


# ---------------------------------------------------------------- property test vs reference
@st.composite
def ranking_case(draw):
    B = draw(st.integers(1, 6))
    I = draw(st.integers(1, 12))  # noqa: E741
    ks = draw(st.lists(st.integers(1, I), min_size=1, max_size=3))
    rows_scores, rows_rel = [], []
    for _ in range(B):
        perm = draw(st.permutations(list(range(I))))  # distinct finite scores
        masked = draw(st.lists(st.booleans(), min_size=I, max_size=I))
        rel = draw(st.lists(st.booleans(), min_size=I, max_size=I))
        rel = [r and not m for r, m in zip(rel, masked)]  # masked items are never targets
        rows_scores.append([(-math.inf if m else float(p)) for p, m in zip(perm, masked)])
        rows_rel.append(rel)
    return rows_scores, rows_rel, ks


@settings(max_examples=150, deadline=None)
@given(ranking_case())
def test_topk_matches_reference(case):
    rows_scores, rows_rel, ks = case
    scores = torch.tensor(rows_scores, dtype=torch.float32)
    target = torch.tensor(rows_rel, dtype=torch.bool)
    out = topk_metrics(scores, target, ks)
    row, col = target.nonzero(as_tuple=True)  # the index form, every pair given twice, shuffled
    order = torch.randperm(2 * row.numel(), generator=torch.Generator().manual_seed(len(rows_scores)))
    by_index = topk_metrics(scores, (row.repeat(2)[order], col.repeat(2)[order]), ks)
    for key in out:
        assert torch.equal(out[key], by_index[key]), key
    for b, (s, r) in enumerate(zip(rows_scores, rows_rel)):
        relevant = {i for i, x in enumerate(r) if x}
        for k in set(ks):
            ref = reference_user(s, relevant, k)
            for m in RANKING_METRICS:
                assert out[f"{m}@{k}"][b].item() == pytest.approx(ref[m], abs=1e-6), (m, k, s, r)


@settings(max_examples=60, deadline=None)
@given(ranking_case(), st.integers(1, 3))
def test_topk_metric_streaming_mean(case, n_batches):
    rows_scores, rows_rel, ks = case
    scores = torch.tensor(rows_scores, dtype=torch.float32)
    target = torch.tensor(rows_rel, dtype=torch.bool)
    metric = TopKMetrics(ks)
    for chunk_s, chunk_t in zip(scores.tensor_split(n_batches), target.tensor_split(n_batches)):
        metric.update(chunk_s, chunk_t)
    result = metric.compute()
    has = [any(r) for r in rows_rel]
    assert int(metric.count) == sum(has)
    assert int(metric.skipped_users) == len(has) - sum(has)
    for m in RANKING_METRICS:
        for k in set(ks):
            vals = [
                reference_user(s, {i for i, x in enumerate(r) if x}, k)[m]
                for s, r, h in zip(rows_scores, rows_rel, has)
                if h
            ]
            got = result[f"{m}@{k}"].item()
            if vals:
                assert got == pytest.approx(sum(vals) / len(vals), abs=1e-6)
            else:
                assert math.isnan(got)


# ---------------------------------------------------------------- TopKMetrics
def test_topk_metric_skips_and_resets():
    metric = TopKMetrics(ks=[1, 2], metrics=("recall", "mrr"))
    scores = torch.tensor([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])
    target = torch.tensor([[False, True, False], [False, False, False], [True, False, True]])
    metric.update(scores, target)
    metric.update(scores[:1], (torch.tensor([0]), torch.tensor([0])))
    res = metric.compute()
    assert list(res) == ["recall@1", "recall@2", "mrr@1", "mrr@2"]
    # evaluated users: [0,1,0]->recall@1 0, mrr@2 1/2 ; [1,0,1] -> recall@1 1/2, mrr 1 ; [1,0,0] -> 1, 1
    _close(res["recall@1"], (0 + 0.5 + 1) / 3)
    _close(res["recall@2"], (1 + 0.5 + 1) / 3)
    _close(res["mrr@1"], (0 + 1 + 1) / 3)
    _close(res["mrr@2"], (0.5 + 1 + 1) / 3)
    assert int(metric.count) == 3 and int(metric.skipped_users) == 1
    metric.reset()
    assert int(metric.count) == 0 and int(metric.skipped_users) == 0


# ---------------------------------------------------------------- errors
def test_errors():
    with pytest.raises(ValueError, match="unknown ranking metric"):
        TopKMetrics([10], metrics=("recall", "auc"))
    with pytest.raises(ValueError, match="K must be >= 1"):
        TopKMetrics([0])
    with pytest.raises(ValueError, match="K must be an int"):
        TopKMetrics([2.5])
    metric = TopKMetrics([3, 20])
    with pytest.raises(ValueError, match=r"K=20.*I=5"):
        metric.update(torch.rand(2, 5), torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"K=6.*I=5"):
        topk_metrics(torch.rand(2, 5), torch.ones(2, 5, dtype=torch.bool), [6])
    with pytest.raises(ValueError, match="unknown ranking metric"):
        topk_metrics(torch.rand(2, 5), torch.ones(2, 5, dtype=torch.bool), [2], metrics=("ndcg", "nope"))
    with pytest.raises(ValueError, match="NaN"):
        topk_metrics(torch.tensor([[0.1, math.nan]]), torch.ones(1, 2, dtype=torch.bool), [1])
    with pytest.raises(ValueError, match="NaN"):  # a NaN below a -inf row's top value, in the index form
        topk_metrics(torch.tensor([[3.0, 2.0, 1.0], [-math.inf, 0.5, math.nan]]),
                     (torch.tensor([0]), torch.tensor([1])), [1])
    with pytest.raises(ValueError, match="shape"):
        topk_metrics(torch.rand(2, 5), torch.ones(2, 4, dtype=torch.bool), [1])
    with pytest.raises(ValueError, match="2-D floating"):
        topk_metrics(torch.arange(5)[None], torch.ones(1, 5, dtype=torch.bool), [1])
    with pytest.raises(ValueError, match="col indices"):
        topk_metrics(torch.rand(2, 5), (torch.tensor([0]), torch.tensor([5])), [1])
    with pytest.raises(ValueError, match="row indices"):
        indices_to_dense(torch.tensor([2]), torch.tensor([0]), 2, 5)
    with pytest.raises(ValueError, match="equal length"):
        indices_to_dense(torch.tensor([0, 1]), torch.tensor([0]), 2, 5)


def test_streaming_sums_are_the_per_user_values_summed_in_key_order():
    """``TopKMetrics.update`` sums, per key (metrics x ks), exactly the per-user values of
    ``topk_metrics`` of the users with a target, as the per-key stacking it replaced did (bit for
    bit: the same float64 row sums), also with ties, masked rows and a subset of metrics."""
    g = torch.Generator().manual_seed(5)
    for ks, metrics in (([10, 20], RANKING_METRICS), ([1, 3, 3, 50], ("map", "recall", "hit")), ([7], ("precision",))):
        B, I = 70, 60  # noqa: E741
        scores = torch.randn(B, I, generator=g).round()  # many ties
        scores[torch.rand(B, I, generator=g) < 0.3] = -math.inf
        scores[:3] = -math.inf
        n = torch.randint(0, 9, (B,), generator=g)
        row = torch.repeat_interleave(torch.arange(B), n)
        col = torch.randint(0, I, (row.numel(),), generator=g)
        metric = TopKMetrics(ks, metrics)
        metric.update(scores, (row, col))
        per_user = topk_metrics(scores, (row, col), ks, metrics)
        valid = torch.bincount(row, minlength=B) > 0
        expected = (torch.stack([per_user[k].to(torch.float64) for k in metric.keys]) * valid).sum(dim=1)
        assert torch.equal(metric.sums, expected)
        assert list(per_user) == [f"{m}@{k}" for k in dict.fromkeys(ks) for m in metrics]


def test_scratch_flags_equal_isin_and_stay_clear():
    """Index-pair targets: the hits read from the metric's scratch flags equal ``torch.isin``'s (no
    scratch: above ``scratch_limit``), bit for bit, with duplicate pairs and batches of several
    sizes; the scratch is all ``False`` after every batch, also after a batch that raised."""
    g = torch.Generator().manual_seed(9)
    with_scratch, without = TopKMetrics([5, 10]), TopKMetrics([5, 10])
    without.scratch_limit = 0
    for B in (40, 17, 40, 3):
        I = 30  # noqa: E741
        scores = torch.randn(B, I, generator=g)
        scores[torch.rand(B, I, generator=g) < 0.2] = -math.inf
        row = torch.randint(0, B, (4 * B,), generator=g)
        col = torch.randint(0, I, (4 * B,), generator=g)
        row, col = torch.cat([row, row[:5]]), torch.cat([col, col[:5]])  # duplicate pairs count once
        with_scratch.update(scores, (row, col))
        without.update(scores, (row, col))
        assert not with_scratch._scratch.any()
    assert "_scratch" not in without.__dict__
    assert torch.equal(with_scratch.sums, without.sums) and int(with_scratch.count) == int(without.count)
    with pytest.raises(ValueError):
        with_scratch.update(torch.full((2, 30), math.nan), (torch.tensor([0]), torch.tensor([1])))
    assert not with_scratch._scratch.any()
