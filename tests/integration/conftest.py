"""Fixtures shared by the integration tests."""
from __future__ import annotations

import pytest

from kgzoo.bench.experiment import run_experiment


@pytest.fixture(scope="session")
def bench_runs(tmp_path_factory, data_dir):
    """``(run folder, {model: ResultRow})``: one epoch of bpr and lightgcn on ml-100k-kg, as
    ``kgzoo bench`` runs a cell (each row's ``checkpoint`` is relative to the run folder)."""
    out = tmp_path_factory.mktemp("runs")
    return out, {m: run_experiment(m, "ml-100k-kg", max_epochs=1, out_dir=out, progress=False)
                 for m in ("bpr", "lightgcn")}
