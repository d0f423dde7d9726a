"""Filtered link prediction on the real ml-100k-kg KG: the filter, the ranks, and TransE vs random."""
from __future__ import annotations

import math
from collections import defaultdict

import pytest
import torch

import kgzoo
from kgzoo.metrics.link import LinkPredictionMetrics, filtered_ranks
from kgzoo.data.link import KGLinkDataModule


@pytest.fixture(scope="module")
def link_dm(data_dir):
    base = kgzoo.create_datamodule("ml-100k-kg", batch_size=2048, eval_batch_size=200)
    ldm = KGLinkDataModule(base, max_valid_triples=400)
    ldm.setup()
    return ldm


def _reference_answers(link_dm):
    """Slow reference (plain Python dicts over all known triples): true tails of (h, r), true heads of (r, t)."""
    tails, heads = defaultdict(set), defaultdict(set)
    for part in (link_dm.train_triples, link_dm.valid_triples, link_dm.test_triples):
        for h, r, t in part.tolist():
            tails[h, r].add(t)
            heads[r, t].add(h)
    return tails, heads


def test_split_sizes_and_valid_subset(link_dm):
    sizes = link_dm.sizes()
    assert sum(sizes.values()) == link_dm.base.data.triples.shape[0]
    assert sizes["train"] > 0.9 * sum(sizes.values())
    n_valid_queries = sum(b["head"].numel() for b in link_dm.val_dataloader())
    n_test_queries = sum(b["head"].numel() for b in link_dm.test_dataloader())
    assert n_valid_queries == 400  # the seeded model-selection subset
    assert n_test_queries == sizes["test"]  # test ranks every test triple exactly once


def test_filter_is_exactly_the_known_answers(link_dm):
    """The vectorised filter of each evaluation batch equals a plain-Python reference, on a slice."""
    tails, heads = _reference_answers(link_dm)
    batch = next(iter(link_dm.test_dataloader()))
    h, r, t = batch["head"].tolist(), batch["relation"].tolist(), batch["tail"].tolist()
    for side in ("tail", "head"):
        row, col = batch[f"{side}_filter_row"].tolist(), batch[f"{side}_filter_col"].tolist()
        got = defaultdict(list)
        for q, e in zip(row, col):
            got[q].append(e)
        for q in range(len(h)):
            want = tails[h[q], r[q]] if side == "tail" else heads[r[q], t[q]]
            assert sorted(got[q]) == sorted(want), (side, q)
            assert (t[q] if side == "tail" else h[q]) in want  # the query's own answer is known


def test_filtered_rank_against_reference(link_dm):
    """Filtered ranks of the batch equal ranks among the candidates left after removing the
    other true tails (plain Python on a slice of 20 queries)."""
    tails, _ = _reference_answers(link_dm)
    batch = next(iter(link_dm.test_dataloader()))
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 50, (batch["head"].numel(), link_dm.n_entities), generator=g).float()  # many ties
    got = filtered_ranks(scores, batch["tail"], batch["tail_filter_row"], batch["tail_filter_col"])
    for q in range(20):
        h, r, t = int(batch["head"][q]), int(batch["relation"][q]), int(batch["tail"][q])
        other = tails[h, r] - {t}
        s = scores[q].tolist()
        cands = [x for e, x in enumerate(s) if e not in other]
        better = sum(x > s[t] for x in cands)
        equal = sum(x == s[t] for x in cands)
        assert got[q].item() == (better + 1 + better + equal) / 2


def test_transe_beats_random(link_dm):
    """One short epoch of TransE ranks held-out triples far better than random ranking."""
    torch.manual_seed(0)
    model = kgzoo.create_model("transe", link_dm.base, p_norm=2, lr=0.02)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    model.on_fit_start()
    for _ in range(1):
        for b in link_dm.train_dataloader():
            loss = model.loss(b)
            opt.zero_grad()
            loss.backward()
            opt.step()
            model.normalize_()
    metrics = LinkPredictionMetrics()
    model.eval()
    with torch.no_grad():
        for i, b in enumerate(link_dm.test_dataloader()):
            if i == 3:  # a slice of 600 test triples (1200 queries)
                break
            model._eval_step(b, metrics)
    res = {k: float(v) for k, v in metrics.compute().items()}
    E = link_dm.n_entities
    random_mrr = sum(1 / k for k in range(1, E + 1)) / E  # uniform ranks (upper bound: filtering shrinks E)
    assert math.isfinite(res["mrr"])
    assert res["mrr"] > 30 * random_mrr, res
    assert res["hits@10"] > 0.05 and res["hits@10"] > 100 * 10 / E, res
    assert res["mean_rank"] < E / 4, res


def test_run_experiment_transe_row(tmp_path, data_dir):
    from kgzoo.bench.experiment import run_experiment

    row = run_experiment("transe", "ml-100k-kg", max_epochs=1, out_dir=tmp_path, progress=False,
                         model_overrides={"p_norm": 2})
    assert row.task == "link" and row.main_metric == "mrr" and row.status == "ok"
    for k in ("test/mrr", "test/hits@1", "test/hits@3", "test/hits@10", "test/mean_rank"):
        assert math.isfinite(row.metrics[k]), k
    assert 0 < row.metrics["test/mrr"] <= 1
    assert "valid/mrr" in row.valid_metrics
    base = kgzoo.create_datamodule("ml-100k-kg")
    base.setup()
    assert row.fingerprint != base.fingerprint  # the triple split is part of the fingerprint
    assert row.cell_fingerprint == base.fingerprint  # the cell was planned under the interactions' one
    # the checkpoint rebuilds the model alone
    from kgzoo.models.kge import TransE

    net = TransE.load_from_checkpoint(tmp_path / row.checkpoint, weights_only=True)
    assert net.entity.weight.shape == (base.n_entities, 50) and net.task == "link"
