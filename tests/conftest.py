"""Shared test setup: the real data in ../shared/data (or $KGZOO_DATA_DIR)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("KGZOO_DATA_DIR") or REPO.parent / "shared" / "data").resolve()
os.environ["KGZOO_DATA_DIR"] = str(DATA_DIR)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "SHA256SUMS").is_file():
        pytest.fail(f"shared data not found at {DATA_DIR}; set KGZOO_DATA_DIR")
    return DATA_DIR
