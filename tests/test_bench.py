"""The benchmark grid runner (kgzoo.bench; the leaderboard: tests/unit/test_leaderboard.py)."""
from __future__ import annotations

import math

import pytest

from kgzoo.bench import leaderboard as lb
from kgzoo.bench.rows import ResultRow
from kgzoo.bench.runner import (Cell, append_row, cell_fingerprint, done_keys, parse_variant, read_rows,
                                resolve_grid, results_path, run_grid)
from kgzoo.models.base import DivergedError
from kgzoo.train import run_experiment


# ---------------------------------------------------------------------------- grid resolution
def test_resolve_grid_patterns_and_order(data_dir):
    cells = resolve_grid(["pop", "b*"], ["ml-100k-*"], [0, 1], ["real", "noisy:0.50"])
    assert {c.model for c in cells} == {"pop", "bpr"}
    assert {c.kg_ablation for c in cells} == {"real", "noisy:0.5"}  # canonical names
    assert len(cells) == 2 * 2 * 2
    # models of one (dataset, ablation, seed) setting run together, in the order of the patterns
    assert [c.model for c in cells[:2]] == ["pop", "bpr"] and cells[0].seed == cells[1].seed == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"models": ["nosuchmodel*"]}, "model pattern 'nosuchmodel\\*' matches no registered model"),
    ({"datasets": ["nosuchdata"]}, "dataset pattern 'nosuchdata' matches no dataset"),
    ({"metric": "ndcg@7"}, "unknown metric 'ndcg@7'"),
    ({"metric": "auc"}, "unknown metric 'auc'"),
    ({"seeds": [-1]}, "seed -1"),
    ({"seeds": [0, 0]}, "duplicate seeds"),
    ({"kg_ablations": ["noisy:2"]}, "P must be a number in \\[0, 1\\]"),
    ({"kg_ablations": ["scrambled"]}, "unknown kind 'scrambled'"),
    ({"epochs": 0}, "epochs=0"),
    ({"variants": ["use_kg"]}, "'use_kg' is not key=value"),
    ({"variants": ["lr=1,lr=2"]}, "'lr' is given twice"),
    ({"variants": ["base", ""]}, "variant '' is given twice"),
    ({"variants": ["lr=[1]"]}, "must be a scalar"),
    ({"models": ["pop", "bpr"], "variants": ["embedding_dim=8"]}, "model 'pop' takes no hyper-parameter 'embedding_dim'"),
    ({"protocol": "splitt=cold_item"}, "^protocol 'splitt=cold_item' on ml-100k-kg: unknown protocol field 'splitt'"),
    ({"protocol": "split=coldstart"}, "protocol 'split=coldstart' on ml-100k-kg"),
])
def test_bad_input_is_refused_before_training(data_dir, monkeypatch, kwargs, message):
    called = []
    monkeypatch.setattr("kgzoo.train.run_experiment", lambda *a, **k: called.append(a))
    args = {"models": ["pop"], "datasets": ["ml-100k-kg"], "seeds": [0]} | kwargs
    with pytest.raises(ValueError, match=message):
        resolve_grid(**args)
    assert not called


def test_variants_are_canonical_and_an_axis_of_the_grid(data_dir):
    assert parse_variant("base") == ("base", {})
    name, over = parse_variant(" use_text=false , use_kg=no,lr=1e-2,fusion=mean")
    assert name == "fusion=mean,lr=1e-2,use_kg=no,use_text=false"  # sorted by key, values as typed
    assert over == {"fusion": "mean", "lr": 0.01, "use_kg": False, "use_text": False}
    cells = resolve_grid(["kgplm"], ["ml-100k-kg"], [0, 1], variants=["base", "use_text=false,use_kg=false"])
    assert [(c.variant, c.seed) for c in cells] == [("base", 0), ("base", 1), ("use_kg=false,use_text=false", 0),
                                                    ("use_kg=false,use_text=false", 1)]
    assert cells[2].overrides == {"use_kg": False, "use_text": False} and cells[0].overrides == {}
    assert "use_kg=false" in cells[2].label() and cells[0].variant == Cell("kgplm", "ml-100k-kg", 0).variant


def test_protocol_override_makes_its_own_fingerprint(data_dir):
    """``--protocol split=cold_item``: every cell runs the cold-start split, under its own fingerprint."""
    (cold,) = resolve_grid(["bpr"], ["ml-100k-kg"], [0], protocol=" split=cold_item")
    assert cold.protocol == "split=cold_item" and "protocol split=cold_item" in cold.label()
    fp_cold, _ = cell_fingerprint(cold)
    fp_default, _ = cell_fingerprint(Cell("bpr", "ml-100k-kg", 0))
    assert fp_cold != fp_default


def test_grid_variant_overrides_reach_the_model_and_resume_keys(data_dir, tmp_path):
    """A variant's overrides are passed to run_experiment and recorded; resume tells variants apart."""
    seen = []

    def fake(model, dataset, **k):
        seen.append(k["model_overrides"])
        return {"model": model, "dataset": dataset, "seed": k["seed"], "kg_ablation": k["kg_ablation"],
                "fingerprint": "f", "status": "ok", "metrics": {}}

    results = tmp_path / "v.jsonl"
    cells = resolve_grid(["bpr"], ["ml-100k-kg"], [0], variants=["base", "embedding_dim=8"])
    run_grid(cells, results, log=None, experiment=fake)
    assert seen == [None, {"embedding_dim": 8}]
    rows = read_rows(results)
    assert [(r["variant"], r["overrides"]) for r in rows] == [("base", {}), ("embedding_dim=8", {"embedding_dim": 8})]
    assert len(done_keys(rows)) == 2
    report = run_grid(cells, results, resume=True, log=None, experiment=fake)
    assert len(report.skipped) == 2 and len(seen) == 2
    # another epoch budget (a changed config) is another cell: resume reruns it
    report = run_grid(cells[:1], results, epochs=3, resume=True, log=None, experiment=fake)
    assert not report.skipped and len(seen) == 3
    assert rows[0]["config_sha"] != read_rows(results)[-1]["config_sha"]


# ---------------------------------------------------------------------------- results file
def test_results_file_append_fsync_and_torn_line(tmp_path):
    p = tmp_path / "r.jsonl"
    append_row(p, {"model": "a", "seed": 0})
    with open(p, "a") as f:
        f.write('{"model": "b", "se')  # a crash in the middle of a write
    assert [r["model"] for r in read_rows(p)] == ["a"]
    append_row(p, {"model": "c", "seed": 1})  # starts on a fresh line
    with pytest.raises(ValueError, match="r.jsonl:2: not a JSON line"):
        read_rows(p)
    assert results_path(tmp_path, "x") == tmp_path / "x.jsonl"
    assert results_path(tmp_path / "y.jsonl") == tmp_path / "y.jsonl"


# ---------------------------------------------------------------------------- the grid on real data
def test_grid_resume_after_crash_and_failed_cells(data_dir, tmp_path):
    """pop and bpr, 1 epoch each; the bpr cell crashes (the process 'dies' after pop's row is
    on disk). A rerun with resume runs only bpr. A NaN loss is recorded as failed, the grid goes on."""
    results = tmp_path / "results" / "grid.jsonl"
    cells = resolve_grid(["pop", "bpr"], ["ml-100k-kg"], [0], epochs=1)
    assert [c.model for c in cells] == ["pop", "bpr"]  # pop first, then the crashing bpr
    calls: list[str] = []

    class Killed(BaseException):  # not an Exception: like a SIGKILL, the grid cannot catch it
        pass

    def crashing(model, *a, **k):
        calls.append(model)
        if model == "bpr":
            raise Killed
        return run_experiment(model, *a, **k)

    with pytest.raises(Killed):
        run_grid(cells, results, epochs=1, out_dir=tmp_path / "runs", log=None, experiment=crashing)
    rows = read_rows(results)
    assert [(r["model"], r["status"]) for r in rows] == [("pop", "ok")]
    pop_row = rows[0]
    assert pop_row["fingerprint"] == cell_fingerprint(Cell("pop", "ml-100k-kg", 0))[0]
    assert pop_row["bench"]["max_epochs"] == 1 and pop_row["cell_seconds"] > 0
    assert math.isfinite(pop_row["metrics"]["test/ndcg@10"]) and pop_row["metrics"]["test/ndcg@10"] > 0

    calls.clear()
    report = run_grid(cells, results, epochs=1, resume=True, out_dir=tmp_path / "runs", log=None,
                      experiment=lambda m, *a, **k: (calls.append(m), run_experiment(m, *a, **k))[1])
    assert calls == ["bpr"]
    assert [c.model for c in report.skipped] == ["pop"] and not report.failed
    rows = read_rows(results)
    assert [(r["model"], r["status"]) for r in rows] == [("pop", "ok"), ("bpr", "ok")]
    assert len(done_keys(rows)) == 2

    # a cell that diverges is a failed row; the next cell still runs
    def diverging(model, *a, **k):
        if model == "bpr":
            raise DivergedError("bpr: training loss is nan at epoch 0, batch 3")
        return run_experiment(model, *a, **k)

    failed_file = tmp_path / "failed.jsonl"
    report = run_grid(list(reversed(cells)), failed_file, epochs=1, out_dir=tmp_path / "runs", log=None,
                      experiment=diverging)
    rows = read_rows(failed_file)
    assert [(r["model"], r["status"]) for r in rows] == [("bpr", "failed"), ("pop", "ok")]
    assert rows[0]["error"].startswith("DivergedError: bpr: training loss is nan")
    assert rows[0]["fingerprint"] == pop_row["fingerprint"]
    assert [c.model for c in report.failed] == ["bpr"]
    # the leaderboard of these rows ignores the failed one
    tables = lb.build([ResultRow.from_dict(r) for r in read_rows(failed_file)]).tables
    assert len(tables) == 1 and [ln.model for ln in tables[0].lines] == ["pop"]
    # a failed cell is not "done": resume retries it (and only it)
    calls.clear()
    run_grid(list(reversed(cells)), failed_file, epochs=1, resume=True, out_dir=tmp_path / "runs", log=None,
             experiment=lambda m, *a, **k: calls.append(m) or {**pop_row, "model": m})
    assert calls == ["bpr"]
    assert [(r["model"], r["status"]) for r in read_rows(failed_file)][-1] == ("bpr", "ok")


def test_only_rank_zero_writes(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    row = {"model": "pop", "status": "ok"}
    cell = Cell("pop", "ml-100k-kg", 0)
    fp = cell_fingerprint(cell)[0]
    report = run_grid([cell], tmp_path / "r.jsonl", epochs=1, log=None,
                      experiment=lambda *a, **k: {**row, "fingerprint": fp})
    assert len(report.rows) == 1 and not (tmp_path / "r.jsonl").exists()


def test_fingerprint_shared_by_seeds_separates_ablations(data_dir):
    a = cell_fingerprint(Cell("pop", "ml-100k-kg", 0))
    assert cell_fingerprint(Cell("bpr", "ml-100k-kg", 0)) == a  # the model is not part of it
    b = cell_fingerprint(Cell("pop", "ml-100k-kg", 1))
    c = cell_fingerprint(Cell("pop", "ml-100k-kg", 0, "shuffled"))
    assert b == a  # seeds vary training on one split: their rows share a table (mean and std)
    assert c[0] != a[0] and c[1] == a[1]  # same protocol, other KG
