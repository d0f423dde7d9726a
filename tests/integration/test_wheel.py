"""The wheel ships every zoo config as package data (``kgzoo/zoo_configs/``), mapped from the
repository's top-level ``zoo_configs/`` by the build configuration (pyproject.toml, setup.py).
``.ci/run`` also installs that wheel into a fresh virtual environment and benchmarks with it."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO

#: what a build of the wheel reads from the repository (the rest is tests, docs, results)
BUILD_INPUTS = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "kgzoo", "zoo_configs", "benchmarks/results")


@pytest.mark.slow
def test_wheel_holds_every_zoo_config(tmp_path):
    src = tmp_path / "src"  # a copy: the build writes build/ and *.egg-info beside its sources
    src.mkdir()
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "tuning"))
        else:
            shutil.copy2(REPO / name, src / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           str(src), "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    wheel, = (tmp_path / "dist").glob("kgzoo-*.whl")
    members = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"kgzoo/zoo_configs/{p.relative_to(REPO / 'zoo_configs').as_posix()}"
               for p in (REPO / "zoo_configs").rglob("*.yaml")}
    assert len(configs) > 20 and configs <= members, sorted(configs - members)
    # the configs are data of kgzoo, not a top-level package of their own
    assert not any(m.startswith("zoo_configs/") for m in members)
    assert "kgzoo/paths.py" in members and "kgzoo/pretrained/manifest.json" in members
    # the published rows ship read-only as kgzoo/published (the trial rows of tuning/ do not)
    rows = {f"kgzoo/published/{p.name}" for p in (REPO / "benchmarks" / "results").glob("*.jsonl")}
    assert "kgzoo/published/converged.jsonl" in rows and rows <= members, sorted(rows - members)
    assert not any(m.startswith("kgzoo/published/tuning") for m in members)
