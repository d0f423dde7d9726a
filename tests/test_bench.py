"""The benchmark grid runner and the leaderboard (kgzoo.bench)."""
from __future__ import annotations

import json
import math

import pytest

from kgzoo.bench import leaderboard as lb
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
    assert lb.LeaderboardTable("d", "f", "topk", "ndcg@10", "real", protocol={"split": "cold_item"}).title.startswith(
        "d (topk, cold_item split, KG real)")


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
    tables = lb.build_tables(read_rows(failed_file))
    assert len(tables) == 1 and [ln["model"] for ln in tables[0].lines] == ["pop"]
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


# ---------------------------------------------------------------------------- leaderboard from hand-made rows
def _row(model, seed, ndcg, fp="fpA", dataset="d1", abl="real", pfp="pA", task="topk", **extra):
    metrics = ({"test/ndcg@10": ndcg, "test/recall@10": ndcg / 2, "test/recall@20": ndcg, "test/ndcg@20": ndcg * 1.1}
               if task == "topk" else {"test/auc": ndcg, "test/acc": ndcg - 0.1, "test/f1": 0.5})
    return {"model": model, "dataset": dataset, "seed": seed, "kg_ablation": abl, "fingerprint": fp,
            "protocol_fingerprint": pfp, "task": task, "status": "ok", "metrics": metrics, "params": 100,
            "seconds_per_epoch": 1.5, "eval_seconds": 0.2, "peak_memory_mb": 300.0, "epochs": 3,
            "bench": {"command": "kgzoo bench --seeds 0 1 2", "max_epochs": 40}, **extra}


def test_leaderboard_mean_std_sorting_and_fingerprints():
    rows = [_row("bpr", s, v) for s, v in [(0, 0.30), (1, 0.32), (2, 0.34)]]
    rows += [_row("lightgcn", s, v) for s, v in [(0, 0.35), (1, 0.36), (2, 0.40)]]
    rows += [_row("pop", 0, 0.10, paper={"metrics": {"ndcg@10": 0.12}, "source": "x"})]
    rows += [_row("bpr", 0, 0.99, fp="fpB")]  # another protocol: its own table
    rows += [_row("lightgcn", 0, 0.0, status="failed")]  # failed rows are ignored
    rows += [_row("pop", 0, 0.11)]  # a rerun of the same cell replaces the earlier row
    tables = lb.build_tables(rows)
    assert [(t.dataset, t.fingerprint) for t in tables] == [("d1", "fpA"), ("d1", "fpB")]
    a, b = tables
    assert [ln["model"] for ln in a.lines] == ["lightgcn", "bpr", "pop"]
    s = a.lines[0]["metrics"]["ndcg@10"]
    assert s.n == 3 and s.mean == pytest.approx(0.37) and s.std == pytest.approx(0.026457513, rel=1e-6)
    assert a.lines[1]["metrics"]["ndcg@10"].std == pytest.approx(0.02)
    pop = a.lines[2]
    assert pop["metrics"]["ndcg@10"].mean == pytest.approx(0.11) and pop["metrics"]["ndcg@10"].std == 0
    assert pop["paper"] is None  # the latest row carries no paper section
    assert [ln["model"] for ln in b.lines] == ["bpr"] and b.lines[0]["metrics"]["ndcg@10"].mean == 0.99
    assert a.lines[0]["seeds"] == [0, 1, 2] and a.lines[0]["costs"]["params"].mean == 100
    # another sort metric
    assert [ln["model"] for ln in lb.build_tables(rows[:6], metric="recall@20")[0].lines] == ["lightgcn", "bpr"]


def test_leaderboard_paper_column_ctr_and_outputs(tmp_path):
    rows = [_row("kgcn", s, v, task="ctr", dataset="lastfm-kg", fp="c1",
                 paper={"metrics": {"auc": 0.794, "acc": 0.719}, "source": "KGCN, WWW 2019"})
            for s, v in [(0, 0.78), (1, 0.80)]]
    rows += [_row("mkr", 0, 0.79, task="ctr", dataset="lastfm-kg", fp="c1")]
    rows += [_row("bpr", 0, 0.3, abl=k, fp=f"fp-{k}") for k in ("noisy:0.5", "real", "none", "shuffled")]
    rows += [_row("bpr", 1, 0.2, abl="real", fp="fp-real")]
    out = lb.write_leaderboard(rows, tmp_path)
    ctr = next(t for t in out["tables"] if t.dataset == "lastfm-kg")
    assert ctr.metric == "auc" and [ln["model"] for ln in ctr.lines] == ["kgcn", "mkr"]
    assert ctr.lines[0]["paper"] == 0.794 and ctr.lines[1]["paper"] is None
    (rob,) = out["robustness"]
    assert rob.ablations == ["real", "shuffled", "none", "noisy:0.5"]
    assert rob.lines[0]["values"]["real"].mean == pytest.approx(0.25) and rob.lines[0]["values"]["real"].n == 2
    md = out["markdown"].read_text()
    assert "| kgcn | 0.7900 ± 0.0141 |" in md and "0.7940" in md
    assert "`kgzoo bench --seeds 0 1 2`" in md and "max_epochs=40" in md
    assert "KG robustness" in md and "| real | shuffled | none | noisy:0.5 |" in md
    assert len(out["csv"]) == 5 and all(p.stat().st_size > 0 for p in out["png"])
    assert len(out["png"]) == 6 and out["png"][0].read_bytes()[:4] == b"\x89PNG"
    header = out["csv"][0].read_text().splitlines()[0]
    assert "ndcg@10_mean,ndcg@10_std" in header or "auc_mean,auc_std" in header
    with pytest.raises(ValueError, match="without fingerprint"):
        lb.build_tables([{"model": "x", "dataset": "d", "seed": 0, "status": "ok"}])
    assert json.loads(json.dumps(rows[0]))  # rows are plain JSON


def test_ablation_table_from_variants_and_kg_ablations(tmp_path):
    """Variants never enter the leaderboard or robustness tables; the ablation table puts the
    settings of one model and protocol side by side with their difference from the full model."""
    rows = [_row("kgplm", s, 0.30 + s / 100) for s in (0, 1, 2)]
    rows += [_row("kgplm", s, 0.25, variant="use_text=false") for s in (0, 1)]
    rows += [_row("kgplm", 0, 0.31, variant="use_kg=false")]
    rows += [_row("kgplm", 0, 0.28, abl="shuffled", fp="fpS")]
    rows += [_row("bpr", 0, 0.33)]
    out = lb.write_leaderboard(rows, tmp_path, png=False)
    (main,) = [t for t in out["tables"] if t.fingerprint == "fpA"]
    kg = next(ln for ln in main.lines if ln["model"] == "kgplm")
    assert kg["metrics"]["ndcg@10"].n == 3 and kg["metrics"]["ndcg@10"].mean == pytest.approx(0.31)
    (ab,) = out["ablations"]
    assert ab.model == "kgplm" and [ln["setting"] for ln in ab.lines] == [
        "full", "use_kg=false", "kg=shuffled", "use_text=false"]
    assert [ln["delta"] for ln in ab.lines] == pytest.approx([0.0, 0.0, -0.03, -0.06])
    assert ab.lines[3]["metrics"]["ndcg@10"].n == 2
    md = out["markdown"].read_text()
    assert "source ablations and variants of kgplm" in md and "| use_text=false | 0.2500 ± 0.0000 | -0.0600 |" in md
    assert len(lb.build_robustness(rows)) == 1 and lb.build_robustness(rows)[0].ablations == ["real", "shuffled"]


def test_latest_row_is_the_latest_in_time_across_files():
    """Rows of several results files are merged: a rerun written earlier in the list but later in
    time still replaces the older row."""
    new = _row("kgplm", 0, 0.30, time="2026-11-29T16:00:00+0000")
    old = _row("kgplm", 0, 0.25, time="2026-11-29T14:00:00+0000")
    (row,) = lb.latest_ok_rows([new, old])
    assert row["metrics"]["test/ndcg@10"] == 0.30
