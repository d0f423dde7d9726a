"""Pop, BPR-MF and LightGCN train on the real ml-100k-kg through run_experiment.

The quick checks use a larger learning rate than the configs (1e-2 instead of RecBole's
1e-3) so that a few epochs suffice for BPR and LightGCN to pass Pop; the slow test runs
the configs' own ``bench`` schedules.
"""
from __future__ import annotations

import math

import pytest

from kgzoo.bench.experiment import run_experiment

#: model -> (epochs, model overrides) of the quick runs
QUICK = {"pop": (1, {}), "bpr": (5, {"lr": 1e-2}), "lightgcn": (2, {"lr": 1e-2})}


@pytest.fixture(scope="module")
def quick_rows(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return {m: run_experiment(m, "ml-100k-kg", seed=0, max_epochs=e, model_overrides=o, out_dir=out, progress=False)
            for m, (e, o) in QUICK.items()}


@pytest.mark.parametrize("model", list(QUICK))
def test_trains_and_reports_finite_metrics(quick_rows, model):
    row = quick_rows[model]
    assert row.status == "ok" and row.model == model and row.dataset == "ml-100k-kg"
    assert row.epochs == QUICK[model][0]
    for key in ("test/ndcg@10", "test/ndcg@20", "test/recall@10", "test/recall@20"):
        assert math.isfinite(row.metrics[key]) and 0.0 < row.metrics[key] <= 1.0, key
    assert math.isfinite(row.valid_metrics["valid/ndcg@10"])
    assert row.seconds_per_epoch > 0 and row.peak_memory_mb > 0
    assert row.params == {"pop": 0, "bpr": (943 + 1682) * 64, "lightgcn": (943 + 1682) * 64}[model]
    assert row.fingerprint == quick_rows["pop"].fingerprint  # one protocol: one table


@pytest.mark.parametrize("model", ["bpr", "lightgcn"])
def test_learned_models_beat_pop(quick_rows, model):
    pop = quick_rows["pop"].valid_metrics["valid/ndcg@10"]
    assert quick_rows[model].valid_metrics["valid/ndcg@10"] > pop + 0.02
    assert quick_rows[model].metrics["test/ndcg@10"] > quick_rows["pop"].metrics["test/ndcg@10"]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["bpr", "lightgcn"])
def test_bench_schedule_beats_pop(data_dir, tmp_path, model):
    pop = run_experiment("pop", quick=True, out_dir=tmp_path, progress=False)
    row = run_experiment(model, quick=True, out_dir=tmp_path, progress=False)
    assert row.valid_metrics["valid/ndcg@10"] > pop.valid_metrics["valid/ndcg@10"]
