"""benchmarks/scripts/valid_curve.py: the longest wait without a new best (the evidence for a
dataset's warm-up, DatasetSpec.min_epochs)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "scripts" / "valid_curve.py"


@pytest.fixture(scope="module")
def valid_curve():
    spec = importlib.util.spec_from_file_location("valid_curve", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_longest_wait_counts_epochs_since_the_last_new_best(valid_curve):
    # CKE on lastfm-social, shortened: best at epoch 1, a plateau, a climb from epoch 6
    assert valid_curve.longest_wait([0.0, 0.065, 0.059, 0.058, 0.062, 0.064, 0.069, 0.074]) == (4, 2)
    assert valid_curve.longest_wait([0.1, 0.2, 0.3]) == (0, 0)  # a new best every epoch
    assert valid_curve.longest_wait([0.3, 0.2, 0.2]) == (2, 1)  # an equal value is no new best
    assert valid_curve.longest_wait([]) == (0, 0)
