"""Tests for kgzoo.metrics.ctr: gAUC against a per-user loop, AUC/ACC/F1, errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kgzoo.metrics.ctr import CTRMetrics, group_auc, per_group_auc


# ---------------------------------------------------------------- reference (plain Python)
def reference_auc(scores: list[float], labels: list[int]) -> float:
    """P(random positive outscores random negative), ties count 1/2; NaN if one class."""
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    if not pos or not neg:
        return math.nan
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def reference_gauc(scores: list[float], labels: list[int], users: list[int]) -> float:
    num = den = 0.0
    for u in sorted(set(users)):
        s = [x for x, v in zip(scores, users) if v == u]
        y = [x for x, v in zip(labels, users) if v == u]
        auc = reference_auc(s, y)
        if not math.isnan(auc):
            num += len(s) * auc
            den += len(s)
    return num / den if den else math.nan


# ---------------------------------------------------------------- hand-worked
def test_gauc_hand_worked():
    # user 7: classic example, AUC 0.75 over 4 impressions
    # user 3: a tie between its positive and negative, AUC 0.5 over 2 impressions
    # user 9: all positive, skipped
    scores = torch.tensor([0.1, 0.4, 0.35, 0.8, 0.5, 0.5, 0.2, 0.9])
    labels = torch.tensor([0, 0, 1, 1, 0, 1, 1, 1])
    users = torch.tensor([7, 7, 7, 7, 3, 3, 9, 9])
    groups, auc, cnt = per_group_auc(scores, labels, users)
    assert groups.tolist() == [3, 7, 9]
    assert cnt.tolist() == [2, 4, 2]
    assert auc[0].item() == pytest.approx(0.5) and auc[1].item() == pytest.approx(0.75)
    assert math.isnan(auc[2].item())
    assert group_auc(scores, labels, users).item() == pytest.approx((4 * 0.75 + 2 * 0.5) / 6)


def test_gauc_no_valid_user_is_nan():
    assert math.isnan(group_auc(torch.tensor([0.1, 0.2]), torch.tensor([1, 1]), torch.tensor([0, 1])).item())


def test_ctr_metrics_hand_worked():
    logits = torch.tensor([2.0, -1.0, 0.5, -3.0, 1.0, -0.5])
    labels = torch.tensor([1, 0, 0, 0, 1, 1])
    users = torch.tensor([0, 0, 0, 1, 1, 1])
    m = CTRMetrics()
    m.update(logits[:4], labels[:4], users[:4])
    m.update(logits[4:], labels[4:], users[4:])
    res = m.compute()
    # predictions (p > 0.5): 1,0,1,0,1,0 ; labels 1,0,0,0,1,1 -> TP 2, FP 1, FN 1, TN 2
    assert res["acc"].item() == pytest.approx(4 / 6)
    assert res["f1"].item() == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    # positives {2.0, 1.0, -0.5} vs negatives {-1.0, 0.5, -3.0}: wins 3 + 3 + 2 = 8 of 9
    assert res["auc"].item() == pytest.approx(8 / 9)
    # user 0: pos {2.0} vs neg {-1, 0.5}: 1 ; user 1: pos {1, -0.5} vs neg {-3}: 1
    assert res["gauc"].item() == pytest.approx(1.0)
    assert set(res) == {"auc", "acc", "f1", "gauc"}


def test_large_logits_do_not_saturate():
    # float32 sigmoid maps both to 1.0 (a tie, AUC 0.5); float64 keeps them apart
    m = CTRMetrics()
    m.update(torch.tensor([20.0, 30.0]), torch.tensor([0, 1]), torch.tensor([0, 0]))
    res = m.compute()
    assert res["auc"].item() == pytest.approx(1.0)
    assert res["gauc"].item() == pytest.approx(1.0)


# ---------------------------------------------------------------- property tests
@st.composite
def ctr_case(draw):
    n = draw(st.integers(1, 40))
    scores = draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n))  # small ints: many ties
    labels = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    users = draw(st.lists(st.sampled_from([0, 1, 2, 5, 11, 10**9]), min_size=n, max_size=n))
    return [float(s) / 2 for s in scores], labels, users


@settings(max_examples=200, deadline=None)
@given(ctr_case())
def test_gauc_matches_per_user_loop(case):
    scores, labels, users = case
    got = group_auc(torch.tensor(scores), torch.tensor(labels), torch.tensor(users)).item()
    ref = reference_gauc(scores, labels, users)
    if math.isnan(ref):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(ref, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(ctr_case())
def test_per_group_auc_matches_loop(case):
    scores, labels, users = case
    groups, auc, cnt = per_group_auc(torch.tensor(scores), torch.tensor(labels), torch.tensor(users))
    assert groups.tolist() == sorted(set(users))
    for g, a, c in zip(groups.tolist(), auc.tolist(), cnt.tolist()):
        s = [x for x, u in zip(scores, users) if u == g]
        y = [x for x, u in zip(labels, users) if u == g]
        assert c == len(s)
        ref = reference_auc(s, y)
        assert (math.isnan(a) and math.isnan(ref)) or a == pytest.approx(ref, abs=1e-12)


@pytest.mark.filterwarnings("ignore:No (positive|negative) samples in targets")
@settings(max_examples=60, deadline=None)
@given(ctr_case())
def test_ctr_auc_acc_match_reference(case):
    scores, labels, users = case
    m = CTRMetrics()
    m.update(torch.tensor(scores), torch.tensor(labels), torch.tensor(users))
    res = m.compute()
    pred = [1 if 1 / (1 + math.exp(-s)) > 0.5 else 0 for s in scores]
    acc = sum(p == y for p, y in zip(pred, labels)) / len(labels)
    assert res["acc"].item() == pytest.approx(acc)
    ref_auc = reference_auc(scores, labels)
    if not math.isnan(ref_auc):
        assert res["auc"].item() == pytest.approx(ref_auc, abs=1e-6)


# ---------------------------------------------------------------- errors
def test_errors():
    m = CTRMetrics()
    with pytest.raises(ValueError, match="0 or 1"):
        m.update(torch.tensor([0.1, 0.2]), torch.tensor([0, 2]), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="same length"):
        m.update(torch.tensor([0.1, 0.2]), torch.tensor([0]), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="1-D"):
        m.update(torch.tensor([[0.1]]), torch.tensor([[0]]), torch.tensor([[0]]))
    with pytest.raises(ValueError, match="users must be an integer"):
        m.update(torch.tensor([0.1]), torch.tensor([0]), torch.tensor([0.0]))
    with pytest.raises(ValueError, match="NaN"):
        group_auc(torch.tensor([math.nan]), torch.tensor([0]), torch.tensor([0]))
    with pytest.raises(ValueError, match="threshold"):
        CTRMetrics(threshold=1.5)
