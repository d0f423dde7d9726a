"""`kgzoo bench` in a fresh clone: rows, checkpoints and logs go to a run folder in the user cache, the
tracked tree stays untouched, the output is this run's table, without repeated library warnings."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kgzoo.bench.rows import read_rows

REPO = Path(__file__).resolve().parents[2]


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_bench_in_a_fresh_clone_leaves_git_status_clean(data_dir, tmp_path):
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True).returncode:
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{REPO}", str(clone)], check=True)
    assert _git("status", "--porcelain", cwd=clone) == ""
    home = tmp_path / "kgzoo-home"  # the user cache of this test: run folders go to home/runs
    # the clone's own kgzoo runs (the working directory comes first on sys.path): the committed HEAD
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "COLUMNS": "200",
           "PYTHONWARNINGS": "default", "OMP_NUM_THREADS": "1", "KGZOO_HOME": str(home)}
    p = subprocess.run([sys.executable, "-c", "import sys; from kgzoo.cli import main; sys.exit(main(sys.argv[1:]))",
                        "bench", "--models", "pop", "bpr", "--epochs", "1"],
                       cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    log = p.stdout + p.stderr
    assert p.returncode == 0, log
    assert _git("status", "--porcelain", "--ignored=no", cwd=clone) == ""  # nothing tracked or untracked changed
    (run,) = (home / "runs").iterdir()  # the run folder, in the user cache
    rows = read_rows(run / "bench.jsonl")
    assert [(r.model, r.status) for r in rows] == [("pop", "ok"), ("bpr", "ok")]
    assert (run / rows[1].checkpoint).is_file()
    # this run's table (with the committed reference of the same fingerprint), not the leaderboard
    assert "this run: 2 cell(s)" in log and "committed" in log and "LEADERBOARD" not in log
    assert "[1/2] pop / ml-100k-kg / seed 0 / kg real: up to 1 epochs, estimate" in log
    assert "LeafSpec" not in log
    assert sum("deprecat" in line.lower() for line in log.splitlines()) <= 1, log
