"""Provenance of a number: every result row records the git commit of the checkout that ran it
(and whether that checkout had uncommitted changes under kgzoo/ or zoo_configs/), ``None`` outside
a git checkout; old rows without the fields still load; the leaderboard shows the commits."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kgzoo.bench import leaderboard as lb
from kgzoo.bench import render
from kgzoo.bench.rows import ResultRow, dump_row
from kgzoo.console import console
from kgzoo.version import checkout_revision, git_revision

REPO = Path(__file__).resolve().parents[2]


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_checkout_revision_commit_and_dirty_tree(tmp_path):
    root = tmp_path / "repo"
    (root / "kgzoo").mkdir(parents=True)
    assert checkout_revision(root) == (None, None)  # no .git beside the package: an installed wheel
    git(root, "init", "-q")
    assert checkout_revision.__wrapped__(root) == (None, None)  # a repository without a commit yet
    (root / "kgzoo" / "m.py").write_text("x = 1\n")
    (root / "zoo_configs").mkdir()
    (root / "zoo_configs" / "a.yaml").write_text("a: 1\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "one")
    head = git(root, "rev-parse", "HEAD")
    assert checkout_revision.__wrapped__(root) == (head, False)
    (root / "notes.txt").write_text("outside kgzoo/: not a change of the code\n")
    assert checkout_revision.__wrapped__(root) == (head, False)
    (root / "zoo_configs" / "a.yaml").write_text("a: 2\ntuned: {lr: 0.01}\n")  # kgzoo tune's write: config_sha's
    assert checkout_revision.__wrapped__(root) == (head, False)
    (root / "kgzoo" / "m.py").write_text("x = 2\n")  # changed code counts
    assert checkout_revision.__wrapped__(root) == (head, True)
    git(root, "checkout", "-q", "--", "kgzoo")
    (root / "kgzoo" / "new.py").write_text("y = 2\n")  # untracked code counts
    assert checkout_revision.__wrapped__(root) == (head, True)


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="the tests run from a copy without git")
def test_git_revision_of_this_checkout_once_per_process(monkeypatch):
    commit, dirty = git_revision()
    assert commit == git(REPO, "rev-parse", "HEAD") and isinstance(dirty, bool)
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    assert git_revision() == (commit, dirty) and not calls  # cached: no subprocess per row


def _row(**kw) -> ResultRow:
    fields = dict(model="bpr", dataset="d1", seed=0, fingerprint="fp", task="topk", command="kgzoo bench",
                  schedule={"kind": "converged", "max_epochs": 100, "patience": 10, "monitor": "valid/ndcg@10"},
                  stopped_by="early_stopping", epochs=20, best_epoch=9, metrics={"test/ndcg@10": 0.3},
                  main_metric="ndcg@10", time="2026-12-06T10:00")
    return ResultRow(**{**fields, **kw})


def test_rows_carry_the_commit_and_old_rows_load_without_it():
    sha = "a" * 40
    r = _row(git_commit=sha, git_dirty=True)
    back = ResultRow.from_dict(json.loads(dump_row(r)))
    assert (back.git_commit, back.git_dirty) == (sha, True)
    old = {k: v for k, v in r.to_dict().items() if k not in ("git_commit", "git_dirty")}
    assert (ResultRow.from_dict(old).git_commit, ResultRow.from_dict(old).git_dirty) == (None, None)
    with pytest.raises(ValueError, match="git_commit 'abc' must be 40 hex digits"):
        _row(git_commit="abc")
    with pytest.raises(ValueError, match="git_dirty 'yes' must be true, false or null"):
        _row(git_dirty="yes")


def test_rows_carry_the_torch_thread_count_and_the_run_table_names_another():
    """A row records the torch thread count its cell ran under (float sums split over another
    number of threads add in another order: CKE on ml-100k-kg under 2 threads left the 1-thread
    validation curve at epoch 36, session 16's rerun check); rows without it load with ``None``;
    a rerun beside a committed row of another count says so."""
    import torch
    from rich.console import Console

    from kgzoo.bench.experiment import assemble_row
    from kgzoo.bench.cells import cell_schedule
    from kgzoo.protocols import default_protocol

    r = _row(torch_threads=2)
    assert ResultRow.from_dict(json.loads(dump_row(r))).torch_threads == 2
    old = {k: v for k, v in r.to_dict().items() if k != "torch_threads"}
    assert ResultRow.from_dict(old).torch_threads is None
    for bad in (0, 1.5, True, "2"):
        with pytest.raises(ValueError, match=f"torch_threads {bad!r} must be a positive integer or null"):
            _row(torch_threads=bad)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        made = assemble_row(model="pop", dataset="ml-100k-kg", seed=0, protocol=default_protocol("ml-100k-kg"),
                            kg_ablation="real", overrides={}, schedule=cell_schedule("pop", "ml-100k-kg", quick=True),
                            devices=1, strategy="auto", num_nodes=1, accelerator="cpu", fingerprint="fp",
                            protocol_fingerprint="pfp", t_start=0.0, status="ok")
    finally:
        torch.set_num_threads(before)
    assert made.torch_threads == 1
    con = Console(record=True, width=250)
    committed = [_row(seed=0, torch_threads=1), _row(seed=1), _row(seed=2, torch_threads=1)]
    con.print(render.rich_run_table([_row(seed=0, torch_threads=2), _row(seed=1, torch_threads=2),
                                     _row(seed=2, torch_threads=1)], committed))
    text = con.export_text()
    assert "seed 0 0.3000, other threads)" in text  # 1 thread then, 2 now
    assert "seed 1 0.3000)" in text and "seed 2 0.3000)" in text  # unknown then; the same count


def test_the_leaderboard_lists_the_distinct_short_commits_of_a_table():
    a, b = "1234567" + "0" * 33, "abcdef0" + "1" * 33
    rows = [_row(seed=0, git_commit=a, git_dirty=False), _row(seed=1, git_commit=a, git_dirty=False),
            _row(seed=2, git_commit=b, git_dirty=True), _row(model="pop", seed=0)]
    board = lb.build(rows)
    (table,) = board.tables
    assert table.commits == ["1234567", "abcdef0+dirty", "unrecorded"]
    md = render.to_markdown(board)
    assert "fingerprint `fp`; code: `1234567`, `abcdef0+dirty`, unrecorded\n" in md
    # a table of rows from before commits were recorded says nothing about them
    assert "fingerprint `fp`\n" in render.to_markdown(lb.build([_row(seed=s) for s in range(3)]))


def test_the_csv_and_rich_views_carry_the_commits(tmp_path):
    import csv
    import io

    a = "1234567" + "0" * 33
    board = lb.build([_row(seed=0, git_commit=a, git_dirty=False), _row(model="pop", seed=0)])
    (table,) = board.tables
    with open(render.write_csv(table, tmp_path / "t.csv"), newline="") as f:
        lines = {r["model"]: r for r in csv.DictReader(f)}
    assert lines["bpr"]["commits"] == "1234567" and lines["pop"]["commits"] == "unrecorded"
    out = io.StringIO()
    con = console(file=out)
    for t in render.rich_tables(board):
        con.print(t)
    assert "code: 1234567, unrecorded" in out.getvalue()


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="the tests run from a copy without git")
def test_the_commit_is_taken_when_the_code_is_imported_not_when_a_row_is_written():
    """A commit made while a grid runs is not the code the grid runs: the revision is read when
    kgzoo.bench.experiment (and with it every model) is imported, in a fresh process."""
    import os
    import sys

    code = ("import kgzoo.version as v; assert v.checkout_revision.cache_info().currsize == 0; "
            "import kgzoo.bench.experiment; print(v.checkout_revision.cache_info().currsize)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0 and out.stdout.strip() == "1", out.stderr[-2000:]
