"""Shared test setup: the real data in ../shared/data (or $KGZOO_DATA_DIR)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("KGZOO_DATA_DIR") or REPO.parent / "shared" / "data").resolve()
os.environ["KGZOO_DATA_DIR"] = str(DATA_DIR)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# datasets a developer imported (kgzoo data import) stay out of the tests: an empty user config
os.environ["KGZOO_USER_CONFIG"] = tempfile.mkdtemp(prefix="kgzoo-user-config-")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "SHA256SUMS").is_file():
        pytest.fail(f"shared data not found at {DATA_DIR}; set KGZOO_DATA_DIR")
    return DATA_DIR


@pytest.fixture(scope="session")
def text_home(tmp_path_factory):
    """One PLM text cache (``$KGZOO_HOME``) per test session, shared by the text tests."""
    path = tmp_path_factory.getbasetemp() / "kgzoo-text-home"
    old = os.environ.get("KGZOO_HOME")
    os.environ["KGZOO_HOME"] = str(path)
    yield path
    if old is None:
        os.environ.pop("KGZOO_HOME", None)
    else:
        os.environ["KGZOO_HOME"] = old


@pytest.fixture(scope="session")
def bench_runs(tmp_path_factory, data_dir):
    """``(run folder, {model: ResultRow})``: one epoch of bpr and lightgcn on ml-100k-kg, as
    ``kgzoo bench`` runs a cell (each row's ``checkpoint`` is relative to the run folder)."""
    from kgzoo.bench.experiment import run_experiment

    out = tmp_path_factory.mktemp("runs")
    return out, {m: run_experiment(m, "ml-100k-kg", max_epochs=1, out_dir=out, progress=False)
                 for m in ("bpr", "lightgcn")}
