"""Tests for kgzoo.metrics.impression: hand-worked impressions, a plain-loop reference of MIND's
evaluation, padding, DDP-style merging, errors."""

from __future__ import annotations

import math

import pytest
import torch

from kgzoo.metrics.impression import ImpressionMetrics, impression_metrics
from kgzoo.tasks import TASKS


# ---------------------------------------------------------------- reference (plain Python, one impression)
def ref_auc(scores: list[float], labels: list[int]) -> float:
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def ref_order(scores: list[float]) -> list[int]:
    # descending score, the earlier candidate first among ties
    return sorted(range(len(scores)), key=lambda j: (-scores[j], j))


def ref_mrr(scores: list[float], labels: list[int]) -> float:
    ranked = [labels[j] for j in ref_order(scores)]
    return sum(y / (r + 1) for r, y in enumerate(ranked)) / sum(labels)


def ref_dcg(labels_in_order: list[int], k: int) -> float:
    return sum((2 ** y - 1) / math.log2(r + 2) for r, y in enumerate(labels_in_order[:k]))


def ref_ndcg(scores: list[float], labels: list[int], k: int) -> float:
    return ref_dcg([labels[j] for j in ref_order(scores)], k) / ref_dcg(sorted(labels, reverse=True), k)


def ref_mean(impressions: list[tuple[list[float], list[int]]]) -> dict[str, float]:
    """MIND's evaluation as a loop: each impression scored, then the means over impressions."""
    auc = [ref_auc(s, y) for s, y in impressions if 0 < sum(y) < len(y)]
    clicked = [(s, y) for s, y in impressions if sum(y) > 0]
    out = {"auc": sum(auc) / len(auc), "mrr": sum(ref_mrr(s, y) for s, y in clicked) / len(clicked)}
    for k in (5, 10):
        out[f"ndcg@{k}"] = sum(ref_ndcg(s, y, k) for s, y in clicked) / len(clicked)
    return out


def pad(impressions: list[tuple[list[float], list[int]]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    C = max(len(s) for s, _ in impressions)
    scores = torch.full((len(impressions), C), 123.0)  # padding holds a large score: it must not count
    labels = torch.ones(len(impressions), C, dtype=torch.long)
    mask = torch.zeros(len(impressions), C, dtype=torch.bool)
    for i, (s, y) in enumerate(impressions):
        scores[i, :len(s)] = torch.tensor(s)
        labels[i, :len(y)] = torch.tensor(y)
        mask[i, :len(s)] = True
    return scores, labels, mask


# ---------------------------------------------------------------- hand-worked
def test_one_impression_hand_worked():
    # candidates scored 0.9, 0.8, 0.3, 0.1; clicks on the 2nd and 3rd: ranks 2 and 3
    m = impression_metrics(torch.tensor([[0.9, 0.8, 0.3, 0.1]]), torch.tensor([[0, 1, 1, 0]]),
                           torch.ones(1, 4, dtype=torch.bool))
    # AUC: pairs (pos, neg): 0.8>0.1, 0.8<0.9, 0.3>0.1, 0.3<0.9 -> 2 of 4
    assert m["auc"].item() == pytest.approx(0.5)
    # MRR: (1/2 + 1/3) / 2
    assert m["mrr"].item() == pytest.approx((1 / 2 + 1 / 3) / 2)
    # nDCG@5: (1/log2 3 + 1/log2 4) / (1/log2 2 + 1/log2 3)
    assert m["ndcg@5"].item() == pytest.approx((1 / math.log2(3) + 0.5) / (1 + 1 / math.log2(3)))


def test_perfect_and_worst_ranking():
    mask = torch.ones(2, 3, dtype=torch.bool)
    m = impression_metrics(torch.tensor([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]]), torch.tensor([[1, 0, 0], [0, 0, 1]]), mask)
    assert m["auc"].tolist() == [1.0, 0.0]
    assert m["mrr"].tolist() == pytest.approx([1.0, 1 / 3])
    assert m["ndcg@10"].tolist() == pytest.approx([1.0, 0.5])  # 1/log2(4) / 1


def test_ties_break_by_candidate_order_and_count_half_in_auc():
    m = impression_metrics(torch.tensor([[1.0, 1.0, 1.0]]), torch.tensor([[0, 1, 0]]), torch.ones(1, 3, dtype=torch.bool))
    assert m["auc"].item() == 0.5
    assert m["mrr"].item() == pytest.approx(1 / 2)  # the click sits 2nd among equal scores


def test_impressions_without_click_or_without_non_click_are_counted_not_averaged():
    scores, labels, mask = pad([([0.5, 0.2], [0, 0]), ([0.5, 0.2], [1, 1]), ([0.1, 0.7, 0.3], [1, 0, 0])])
    m = impression_metrics(scores, labels, mask)
    assert math.isnan(m["mrr"][0]) and math.isnan(m["auc"][0]) and math.isnan(m["auc"][1])
    assert m["mrr"][1].item() == pytest.approx((1 + 1 / 2) / 2)  # every click counts: ranks 1 and 2
    metric = ImpressionMetrics()
    metric.update(scores, labels, mask)
    out = metric.compute()
    assert out["auc"].item() == 0.0  # only the third impression has both classes; its click ranks last
    assert out["mrr"].item() == pytest.approx((0.75 + 1 / 3) / 2)
    assert (metric.auc_count.item(), metric.ranked_count.item(), metric.unscored.item()) == (1, 2, 1)


# ---------------------------------------------------------------- against the loop
def random_impressions(n: int, seed: int) -> list[tuple[list[float], list[int]]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        c = int(torch.randint(2, 30, (1,), generator=g))
        s = torch.randn(c, generator=g).tolist()
        y = (torch.rand(c, generator=g) < 0.2).long()
        y[int(torch.randint(c, (1,), generator=g))] = 1  # every impression has a click, as MIND's
        out.append((s, y.tolist()))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_plain_loop_reference(seed):
    imps = random_impressions(40, seed)
    metric = ImpressionMetrics()
    for s in range(0, 40, 7):  # uneven batches, each padded to its own width
        metric.update(*pad(imps[s:s + 7]))
    got = metric.compute()
    want = ref_mean(imps)
    assert got.keys() == want.keys()
    for k in want:
        assert got[k].item() == pytest.approx(want[k], abs=1e-12), k


def test_rounded_scores_with_ties_match_the_reference():
    imps = [([round(x, 0) for x in s], y) for s, y in random_impressions(30, 5)]
    metric = ImpressionMetrics()
    metric.update(*pad(imps))
    got, want = metric.compute(), ref_mean(imps)
    for k in want:
        assert got[k].item() == pytest.approx(want[k], abs=1e-12), k


def test_states_of_two_ranks_add_up_to_one_process():
    imps = random_impressions(21, 9)
    whole = ImpressionMetrics()
    whole.update(*pad(imps))
    a, b = ImpressionMetrics(), ImpressionMetrics()
    a.update(*pad(imps[0::2]))
    b.update(*pad(imps[1::2]))
    a.merge_state(b)
    for k, v in whole.compute().items():
        assert a.compute()[k].item() == pytest.approx(v.item(), abs=1e-12)


def test_task_table_entry():
    t = TASKS["impression"]
    assert t.metric_names((10, 20)) == ["auc", "mrr", "ndcg@5", "ndcg@10"] and t.main_metric() == "auc"
    assert t.data == "impressions" and isinstance(t.make_metrics((10,)), ImpressionMetrics)
    assert t.leaderboard_columns == ("auc", "mrr", "ndcg@5", "ndcg@10")


@pytest.mark.parametrize("args, msg", [
    ((torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 2, dtype=torch.bool)), "one shape"),
    ((torch.zeros(2, 3), torch.full((2, 3), 2), torch.ones(2, 3, dtype=torch.bool)), "0 or 1"),
    ((torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.bool)), "floating"),
    ((torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3)), "BoolTensor"),
    ((torch.full((2, 3), float("nan")), torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.bool)), "NaN"),
])
def test_bad_input(args, msg):
    with pytest.raises(ValueError, match=msg):
        impression_metrics(*args)
