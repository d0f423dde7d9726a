"""The benchmark grid: cells, the runner, one experiment per cell (kgzoo.bench; the leaderboard:
tests/unit/test_leaderboard.py)."""
from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path

import pytest
from lightning.pytorch.callbacks import Callback

from kgzoo.bench import leaderboard as lb
from kgzoo.bench.cells import (Cell, cell_datamodule, cell_fingerprint, cell_schedule, parse_variant,
                               resolve_grid)
from kgzoo.bench.experiment import assemble_row, cell_dir, code_hash, run_experiment
from kgzoo.bench.rows import ResultRow, read_rows
from kgzoo.bench.runner import done_keys, estimate_seconds, run_grid
from kgzoo.protocols import parse_protocol
from kgzoo.models.base import DivergedError
from kgzoo.version import git_revision


# ---------------------------------------------------------------------------- grid resolution
def test_resolve_grid_patterns_and_order(data_dir):
    # "ml-100k-k?", not "ml-100k-*": test_folders registers the folder ml-100k-kg as "ml-100k-kg-<hash>" in the
    # same process, which "*" matched too (16 cells, in a run of both files)
    cells = resolve_grid(["pop", "b*"], ["ml-100k-k?"], [0, 1], ["real", "noisy:0.50"])
    assert {c.model for c in cells} == {"pop", "bpr"}
    assert {c.kg_ablation for c in cells} == {"real", "noisy:0.5"}  # canonical names
    assert len(cells) == 2 * 2 * 2
    # models of one (dataset, ablation, seed) setting run together, in the order of the patterns
    assert [c.model for c in cells[:2]] == ["pop", "bpr"] and cells[0].seed == cells[1].seed == 0


def test_a_wildcards_models_that_cannot_run_are_left_out_and_listed(data_dir):
    # `kgzoo bench` (models "*" on ml-100k-kg) stopped at dkn, the first news model, with an error:
    # every model after it in the grid never ran
    left_out: list[str] = []
    cells = resolve_grid(["*"], ["ml-100k-kg"], [0], left_out=left_out)
    news = ["dkn", "kgplm-news", "news-plm-mean", "nrms", "nrms-plm"]
    assert not {c.model for c in cells} & set(news) and {"pop", "kgat", "transe"} <= {c.model for c in cells}
    assert [line.split(":")[0] for line in left_out] == [f"{m} on ml-100k-kg" for m in news]
    assert "runs the tasks impression, ctr; its data has task 'topk' and no impression log" in left_out[0]
    assert {c.model for c in resolve_grid(["*"], ["mind-sample"], [0])} >= set(news)  # they run where they can


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
    ({"models": ["bpr"], "variants": ["lr=abc"]}, "^variant 'lr=abc': model 'bpr': hyper-parameter 'lr' takes float"),
    ({"models": ["bpr"], "variants": ["embedding_dim=12.5"]}, "hyper-parameter 'embedding_dim' takes int, got 12.5"),
    ({"protocol": "splitt=cold_item"}, "^protocol 'splitt=cold_item' on ml-100k-kg: unknown protocol field 'splitt'"),
    ({"protocol": "split=coldstart"}, "protocol 'split=coldstart' on ml-100k-kg"),
    # a protocol's example is a protocol's (it gave the variants' use_kg=false)
    ({"protocol": "cold_item"}, r"'cold_item' is not key=value \(e\.g\. split=cold_item\)"),
    ({"models": ["pop", "dkn"]}, "^dkn on ml-100k-kg: DKN runs the tasks impression, ctr"),  # named: refused
    ({"models": ["nrms*"]}, "^no model of the grid runs on its datasets: nrms on ml-100k-kg"),
])
def test_bad_input_is_refused_before_training(data_dir, monkeypatch, kwargs, message):
    called = []
    monkeypatch.setattr("kgzoo.bench.experiment.run_experiment", lambda *a, **k: called.append(a))
    args = {"models": ["pop"], "datasets": ["ml-100k-kg"], "seeds": [0]} | kwargs
    with pytest.raises(ValueError, match=message):
        resolve_grid(**args)
    assert not called


def test_metric_names_come_from_the_task_table(data_dir):
    from kgzoo.bench.cells import cell_task, metric_names

    assert cell_task("transe", "ml-100k-kg").name == "link"  # the model class declares its task
    assert metric_names("transe", "ml-100k-kg") == ["mrr", "hits@1", "hits@3", "hits@10"]
    assert cell_task("kgcn", "lastfm-kg").name == "ctr" and metric_names("kgcn", "lastfm-kg")[0] == "auc"
    assert "ndcg@10" in metric_names("bpr", "ml-100k-kg")


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


def test_schedule_kinds(data_dir):
    quick = cell_schedule("bpr", "ml-100k-kg", None, True)
    full = cell_schedule("bpr", "ml-100k-kg", None, False)
    fixed = cell_schedule("bpr", "ml-100k-kg", 3, True, "recall@20")
    assert quick["kind"] == "quick" and full["kind"] == "converged" and quick["monitor"] == "valid/ndcg@10"
    assert fixed == {"kind": "fixed", "max_epochs": 3, "patience": full["patience"], "monitor": "valid/recall@20"}
    assert cell_schedule("transe", "ml-100k-kg", 1)["monitor"] == "valid/mrr"


def test_a_cell_datamodule_takes_the_config_data_then_the_overrides():
    """The one builder of a cell's DataModule (the planned fingerprint and the run both use it):
    the zoo config's ``data`` section (NRMS on dkn-news: batch 128, 30 clicked titles), then the
    run's overrides over it, and the seed for the sampler."""
    protocol = parse_protocol("dkn-news", "", "nrms")
    dm = cell_datamodule("nrms", "dkn-news", protocol)
    assert (dm.batch_size, dm.max_history) == (128, 30)
    dm = cell_datamodule("nrms", "dkn-news", protocol, seed=3, data_overrides={"batch_size": 7})
    assert (dm.batch_size, dm.max_history, dm.seed) == (7, 30, 3)


# ---------------------------------------------------------------------------- the runner with a fake experiment
def _fake(seen: list, resumes: list | None = None):
    """An experiment that trains nothing: the row of the cell as run_experiment would identify it
    (``resumes`` gets each call's ``resume``)."""
    resumes = [] if resumes is None else resumes

    def fake(model, dataset, **k):
        seen.append((model, k["model_overrides"]))
        resumes.append(k["resume"])
        fp, pfp = cell_fingerprint(Cell(model, dataset, k["seed"], k["kg_ablation"]))
        return assemble_row(model=model, dataset=dataset, seed=k["seed"], protocol=k["protocol"],
                            kg_ablation=k["kg_ablation"], overrides=k["model_overrides"] or {},
                            schedule=cell_schedule(model, dataset, k["max_epochs"], k["quick"], k["monitor"]),
                            devices=k["devices"], strategy=k["strategy"], num_nodes=k["num_nodes"],
                            accelerator=k["accelerator"], fingerprint=fp, protocol_fingerprint=pfp,
                            command=k["command"], variant=k["variant"], t_start=time.perf_counter(),
                            main_metric="ndcg@10",
                            metrics={"test/ndcg@10": 0.1}, epochs=1, seconds_per_epoch=2.0)

    return fake


def test_grid_variant_overrides_reach_the_model_and_resume_keys(data_dir, tmp_path, monkeypatch):
    """A variant's overrides are passed to run_experiment and recorded; --resume skips a cell only
    when its key (devices and strategy included), config sha and code hash all match."""
    seen: list = []
    resumes: list = []
    fake = _fake(seen, resumes)
    results = tmp_path / "v.jsonl"
    cells = resolve_grid(["bpr"], ["ml-100k-kg"], [0], variants=["base", "lr=1e-2"])
    run_grid(cells, results, log=None, experiment=fake)
    assert [o for _, o in seen] == [None, {"lr": 0.01}]
    rows = read_rows(results)
    assert [(r.variant, r.overrides) for r in rows] == [("base", {}), ("lr=1e-2", {"lr": 0.01})]  # as the grid spells it
    assert all(r.schema == 2 and r.code_hash == code_hash("bpr") and len(r.config_sha) == 16 for r in rows)
    assert all((r.git_commit, r.git_dirty) == git_revision() for r in rows)
    assert len(done_keys(rows)) == 2
    report = run_grid(cells, results, resume=True, log=None, experiment=fake)
    assert len(report.skipped) == 2 and len(seen) == 2
    # another epoch budget (a changed config) is another config sha: resume reruns it
    report = run_grid(cells[:1], results, epochs=3, resume=True, log=None, experiment=fake)
    assert not report.skipped and len(seen) == 3
    assert resumes == [False, False, True]  # a cell run under --resume goes on from its resume point, if any
    assert rows[0].config_sha != read_rows(results)[-1].config_sha
    # 2 devices under DDP is another cell than 1 device
    report = run_grid(cells[:1], results, devices=2, strategy="ddp", resume=True, log=None, experiment=fake)
    assert not report.skipped and len(seen) == 4 and read_rows(results)[-1].key() != rows[0].key()
    # changed model code: resume reruns the cell
    monkeypatch.setattr("kgzoo.bench.runner.code_hash", lambda model: "0" * 16)
    report = run_grid(cells[:1], results, resume=True, log=None, experiment=fake)
    assert not report.skipped and len(seen) == 5


def test_resume_never_takes_a_row_of_another_schedule_kind_or_monitored_metric(data_dir, tmp_path):
    """The config sha leaves the schedule's kind and monitor out: a ``--epochs 300`` row (bpr's
    converged cap is 300) made ``--full --resume`` skip the converged cell, and a row selected on
    ``--metric recall@20`` stood in for the cell selected on NDCG@10; both now run again."""
    seen: list = []
    fake = _fake(seen)
    cells = resolve_grid(["bpr"], ["ml-100k-kg"], [0])
    results = tmp_path / "kinds.jsonl"
    run_grid(cells, results, epochs=300, log=None, experiment=fake)  # fixed, at the converged cap
    report = run_grid(cells, results, quick=False, resume=True, log=None, experiment=fake)
    assert not report.skipped and [r.schedule["kind"] for r in read_rows(results)] == ["fixed", "converged"]
    assert run_grid(cells, results, quick=False, resume=True, log=None, experiment=fake).skipped == cells
    results = tmp_path / "metric.jsonl"
    run_grid(resolve_grid(["bpr"], ["ml-100k-kg"], [0], metric="recall@20"), results, quick=False,
             metric="recall@20", log=None, experiment=fake)
    report = run_grid(cells, results, quick=False, resume=True, log=None, experiment=fake)
    assert not report.skipped
    assert [r.schedule["monitor"] for r in read_rows(results)] == ["valid/recall@20", "valid/ndcg@10"]


def test_estimate_and_progress_lines(data_dir, tmp_path):
    seen: list = []
    lines: list[str] = []
    lived: list[str] = []

    class Live:
        def __init__(self, text):
            lived.append(text)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    cells = resolve_grid(["bpr"], ["ml-100k-kg"], [0, 1], epochs=3)
    run_grid(cells, tmp_path / "e.jsonl", epochs=3, log=lines.append, live=Live, experiment=_fake(seen))
    assert "up to 3 epochs, estimate ?" in lines[0]  # nothing measured yet
    assert "up to 3 epochs, estimate 6 s" in lines[2]  # 3 x the 2.0 s/epoch the first cell measured
    assert len(lived) == 2 and "estimate ?" in lived[0]
    history = read_rows(tmp_path / "e.jsonl")
    assert estimate_seconds("bpr", "ml-100k-kg", 10, history) == pytest.approx(20.0)
    assert estimate_seconds("pop", "ml-100k-kg", 10, history) is None


def test_the_estimate_of_a_converged_cell_follows_its_early_stopped_runs():
    """A converged cell said "up to 1000 epochs, estimate 6382 s" (KGAT on lastfm-social: the cap
    times its seconds per epoch) where its two earlier seeds stopped at 123 and 114 epochs: the
    estimate now follows the runs that early stopping ended under the same schedule, the cap's
    bound beside it; capped runs, other schedules (cap, kind, warm-up) and other datasets do not count."""
    from kgzoo.bench.runner import plan_text

    def done(epochs, stopped="early_stopping", cap=1000, dataset="lastfm-social", kind="converged"):
        return ResultRow(model="kgat", dataset=dataset, seed=0, status="ok", epochs=epochs, stopped_by=stopped,
                         fingerprint="f" * 64, seconds_per_epoch=6.382, time=f"2026-12-07T0{epochs % 10}:00:00",
                         schedule={"kind": kind, "max_epochs": cap, "patience": 10})

    sched = {"kind": "converged", "max_epochs": 1000, "patience": 10}
    warm = done(60)
    warm.schedule = {**warm.schedule, "min_epochs": 100}  # a run under another warm-up does not count
    history = [done(123), done(114), done(1000, "cap"), done(40, cap=300), done(20, dataset="ml-100k-kg"),
               done(9, kind="quick"), warm]
    assert plan_text("kgat", "lastfm-social", sched, history) == (
        "up to 1000 epochs, estimate 756 s (118 epochs as its 2 early-stopped runs here; at most 6,382 s)")
    assert plan_text("kgat", "lastfm-social", sched, history[2:3]) == (
        "up to 1000 epochs, at most 6,382 s (no early-stopped run of it here yet)")
    assert plan_text("kgat", "lastfm-social", {**sched, "kind": "quick"}, history[2:3]) == (
        "up to 1000 epochs, estimate 6382 s")
    assert plan_text("kgat", "lastfm-social", {**sched, "kind": "fixed"}, history) == "up to 1000 epochs, estimate 6382 s"
    assert plan_text("kgat", "yelp-social", sched, history) == "up to 1000 epochs, estimate ?"
    # a row of the model's current code beats a newer row of older code (KGIN on ml-1m-kg said 17,073 s from a
    # quick row of code 3.5x slower)
    old_code, current = done(50, kind="quick"), done(51, kind="quick")
    old_code.seconds_per_epoch, old_code.code_hash, old_code.time = 56.9, "0" * 16, "2026-12-08T00:00:00"
    current.seconds_per_epoch, current.code_hash = 13.4, code_hash("kgat")
    assert estimate_seconds("kgat", "lastfm-social", 300, [current, old_code]) == pytest.approx(300 * 13.4)
    assert estimate_seconds("kgat", "lastfm-social", 300, [old_code]) == pytest.approx(300 * 56.9)


def test_checkpoint_folder_is_unique_per_cell_and_code(tmp_path):
    base = dict(out_dir=tmp_path, model="bpr", dataset="ml-100k-kg", seed=0, kg_ablation="real", changed={},
                devices=1, strategy="auto", num_nodes=1, max_epochs=10, code="a" * 16)
    dirs = {cell_dir(**base)} | {cell_dir(**{**base, k: v}) for k, v in [
        ("devices", 2), ("strategy", "ddp"), ("num_nodes", 2), ("max_epochs", 20), ("code", "b" * 16),
        ("changed", {"embedding_dim": 8}), ("kg_ablation", "noisy:0.5"), ("seed", 1)]}
    assert len(dirs) == 9 and all(d.parent == tmp_path / "ml-100k-kg" / "bpr" for d in dirs)


def test_code_hash_follows_the_model_source(tmp_path):
    import importlib.util
    import sys

    h = code_hash("bpr")
    assert len(h) == 16 and h == code_hash("bpr") and h != code_hash("lightgcn")
    src = tmp_path / "my_model.py"
    src.write_text("from kgzoo.models.mf import BPRMF\nclass Mine(BPRMF):\n    pass\n")
    spec = importlib.util.spec_from_file_location("my_model_hash_test", src)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    first = code_hash(mod.Mine)
    src.write_text("from kgzoo.models.mf import BPRMF\nclass Mine(BPRMF):\n    x = 1\n")
    assert code_hash(mod.Mine) != first  # the user's file is part of the hash


# ---------------------------------------------------------------------------- the grid on real data
def test_grid_resume_after_crash_and_failed_cells(data_dir, tmp_path):
    """pop and bpr, 1 epoch each; the bpr cell crashes (the process 'dies' after pop's row is
    on disk). A rerun with resume runs only bpr. A NaN loss is recorded as failed, the grid goes on."""
    results = tmp_path / "results" / "grid.jsonl"
    runs = tmp_path / "runs"
    cells = resolve_grid(["pop", "bpr"], ["ml-100k-kg"], [0], epochs=1)
    assert [c.model for c in cells] == ["pop", "bpr"]  # pop first, then the crashing bpr
    calls: list[str] = []

    def crashing(model, *a, **k):
        calls.append(model)
        if model == "bpr":
            raise _Killed  # not an Exception: like a SIGKILL, the grid cannot catch it
        return run_experiment(model, *a, **k)

    with pytest.raises(_Killed):
        run_grid(cells, results, epochs=1, out_dir=runs, log=None, experiment=crashing)
    rows = read_rows(results)
    assert [(r.model, r.status) for r in rows] == [("pop", "ok")]
    pop_row = rows[0]
    assert pop_row.fingerprint == cell_fingerprint(Cell("pop", "ml-100k-kg", 0))[0]
    assert pop_row.schedule == cell_schedule("pop", "ml-100k-kg", 1, True) and pop_row.schedule["kind"] == "fixed"
    assert pop_row.epochs == 1 and pop_row.stopped_by == "closed_form"  # nothing to train
    assert not pop_row.is_published()  # a fixed schedule is not a converged one
    assert pop_row.cell_seconds > 0 and pop_row.code_hash == code_hash("pop") and pop_row.num_nodes == 1
    assert pop_row.config == "pop/default.yaml" or pop_row.config.startswith("pop/")
    assert math.isfinite(pop_row.metrics["test/ndcg@10"]) and pop_row.metrics["test/ndcg@10"] > 0
    assert "/" + str(tmp_path).strip("/") not in results.read_text()  # relative paths only

    calls.clear()
    report = run_grid(cells, results, epochs=1, resume=True, out_dir=runs, log=None,
                      experiment=lambda m, *a, **k: (calls.append(m), run_experiment(m, *a, **k))[1])
    assert calls == ["bpr"]
    assert [c.model for c in report.skipped] == ["pop"] and not report.failed
    rows = read_rows(results)
    assert [(r.model, r.status) for r in rows] == [("pop", "ok"), ("bpr", "ok")]
    assert len(done_keys(rows)) == 2
    bpr = rows[1]
    assert bpr.checkpoint and (runs / bpr.checkpoint).is_file()  # relative to the run folder
    assert "1dev-auto-1node-1ep-" + bpr.code_hash[:8] in bpr.checkpoint

    # a cell that diverges is a failed row; the next cell still runs
    def diverging(model, *a, **k):
        if model == "bpr":
            raise DivergedError("bpr: training loss is nan at epoch 0, batch 3")
        return run_experiment(model, *a, **k)

    failed_file = tmp_path / "failed.jsonl"
    report = run_grid(list(reversed(cells)), failed_file, epochs=1, out_dir=runs, log=None, experiment=diverging)
    rows = read_rows(failed_file)
    assert [(r.model, r.status) for r in rows] == [("bpr", "failed"), ("pop", "ok")]
    assert rows[0].error.startswith("DivergedError: bpr: training loss is nan")
    assert rows[0].fingerprint == pop_row.fingerprint and rows[0].code_hash == code_hash("bpr")
    assert rows[0].traceback and "kgzoo/" not in rows[0].traceback.split("test_bench.py")[0].split("File")[0]
    assert [c.model for c in report.failed] == ["bpr"]
    # the leaderboard of these rows ignores the failed one
    tables = lb.build(read_rows(failed_file)).tables
    assert len(tables) == 1 and [ln.model for ln in tables[0].lines] == ["pop"]
    # a failed cell is not "done": resume retries it (and only it)
    calls.clear()
    run_grid(list(reversed(cells)), failed_file, epochs=1, resume=True, out_dir=runs, log=None,
             experiment=lambda m, *a, **k: calls.append(m) or ResultRow.from_dict(
                 {**pop_row.to_dict(), "model": m, "code_hash": code_hash(m)}))
    assert calls == ["bpr"]
    assert [(r.model, r.status) for r in read_rows(failed_file)][-1] == ("bpr", "ok")


def test_only_rank_zero_writes(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    cell = Cell("pop", "ml-100k-kg", 0)
    report = run_grid([cell], tmp_path / "r.jsonl", epochs=1, log=None, experiment=_fake([]))
    assert len(report.rows) == 1 and not (tmp_path / "r.jsonl").exists()


def test_fingerprint_shared_by_seeds_separates_ablations(data_dir):
    a = cell_fingerprint(Cell("pop", "ml-100k-kg", 0))
    assert cell_fingerprint(Cell("bpr", "ml-100k-kg", 0)) == a  # the model is not part of it
    b = cell_fingerprint(Cell("pop", "ml-100k-kg", 1))
    c = cell_fingerprint(Cell("pop", "ml-100k-kg", 0, "shuffled"))
    assert b == a  # seeds vary training on one split: their rows share a table (mean and std)
    assert c[0] != a[0] and c[1] == a[1]  # same protocol, other KG


def test_stopped_by_early_stopping_cap_or_closed_form(data_dir, tmp_path):
    """BPR with a learning rate of 0 never improves after its first epoch: patience 1 stops it at
    epoch 1 (the restored best checkpoint must not hide that); a cap of 1 epoch is the cap; Pop,
    with nothing to train, is fitted in closed form whatever the schedule."""
    row = run_experiment("bpr", max_epochs=5, patience=1, model_overrides={"lr": 0.0}, out_dir=tmp_path, progress=False)
    assert row.epochs == 2 and row.best_epoch == 0 and row.stopped_by == "early_stopping"
    assert row.schedule["kind"] == "fixed" and row.schedule["patience"] == 1
    capped = run_experiment("bpr", max_epochs=1, out_dir=tmp_path, progress=False)
    assert capped.epochs == 1 and capped.stopped_by == "cap"
    pop = run_experiment("pop", max_epochs=3, out_dir=tmp_path, progress=False)  # one pass, not patience + 1
    assert pop.epochs == 1 and pop.stopped_by == "closed_form" and pop.schedule["max_epochs"] == 3
    # its fit is saved as any model's best checkpoint (Lightning saves only after an optimiser step),
    # so recommend/export/test take it: it reloads to the same test metrics
    import kgzoo
    from kgzoo.bench.experiment import bench_trainer

    assert pop.checkpoint is not None and pop.valid_metrics
    loaded = kgzoo.load_checkpoint(tmp_path / pop.checkpoint)
    trainer = bench_trainer(tmp_path / "test", "valid/ndcg@10", 1, 1, progress=False)[0]
    again = trainer.test(loaded.model, datamodule=loaded.datamodule, verbose=False)[0]
    assert {k: float(v) for k, v in again.items()} == pop.metrics


class _Killed(BaseException):  # as a kill: no Exception (one ends the run and removes its point)
    pass


class _KillAt(Callback):
    """Stands in for a kill of the process when epoch ``epoch`` starts."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise _Killed()


def test_a_killed_cell_resumes_to_the_row_of_the_uninterrupted_run(data_dir, tmp_path, monkeypatch):
    """``run_experiment(resume=True)`` (``kgzoo bench --resume``) goes on from the cell's resume
    point: GAT with its tuned dropout on ml-100k-kg, killed when its third epoch starts, resumed,
    gives the uninterrupted run's metrics, epochs and best epoch (dropout needs the generators
    restored); the point is gone once the run ends, and a point of another configuration, or in a
    copied folder, is not taken."""
    import kgzoo.bench.experiment as ex

    monkeypatch.setattr(ex, "RESUME_EVERY_SECONDS", 0.0)

    small = {"n_layers": 1, "embedding_dim": 16}
    t0 = time.perf_counter()
    whole = run_experiment("gat", max_epochs=4, out_dir=tmp_path / "a", progress=False, model_overrides=small)
    # its time is its own (the test pass restores the best checkpoint's fit seconds into the callbacks: not added)
    assert whole.train_seconds <= whole.cell_seconds <= time.perf_counter() - t0
    t1, c1 = time.perf_counter(), time.process_time()
    with pytest.raises(_Killed):
        run_experiment("gat", max_epochs=4, out_dir=tmp_path / "b", progress=False, model_overrides=small,
                       callbacks=lambda net: [_KillAt(2)])
    killed_wall, killed_cpu = time.perf_counter() - t1, time.process_time() - c1
    points = list((tmp_path / "b").rglob("last.ckpt"))
    assert len(points) == 1 and json.loads(points[0].with_suffix(".json").read_text())["epoch"] == 1
    other = {**small, "lr": 0.01}  # another configuration: another folder and key; never this point
    key = json.loads(points[0].with_suffix(".json").read_text())["key"]
    assert ex.resume_point(points[0].parent.parent, key) == points[0]
    assert ex.resume_point(points[0].parent.parent, "0" * 64) is None
    import shutil  # a copied folder: Lightning would drop the best checkpoint's score there, so no resume from it
    moved = tmp_path / "moved"
    shutil.copytree(points[0].parent.parent, moved)
    assert ex.resume_point(moved, key) is None
    cut = tmp_path / "cut"  # a point cut short (a full disk): unreadable, so no point
    shutil.copytree(points[0].parent.parent, cut)
    side = cut / "checkpoints" / "last.json"
    side.write_text(json.dumps({**json.loads(side.read_text()), "dir": str(side.parent.resolve())}))
    assert ex.resume_point(cut, key) == cut / "checkpoints" / "last.ckpt"
    data = (cut / "checkpoints" / "last.ckpt").read_bytes()
    (cut / "checkpoints" / "last.ckpt").write_bytes(data[: len(data) // 2])
    assert ex.resume_point(cut, key) is None
    t2, c2 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings(record=True) as seen:  # the folder holds the point and best checkpoint on purpose
        warnings.simplefilter("always")
        resumed = run_experiment("gat", max_epochs=4, out_dir=tmp_path / "b", progress=False,
                                 model_overrides=small, resume=True)
    assert not [w for w in seen if "exists and is not empty" in str(w.message)]
    assert resumed.metrics == whole.metrics and resumed.valid_metrics == whole.valid_metrics
    assert (resumed.epochs, resumed.best_epoch, resumed.stopped_by) == (whole.epochs, whole.best_epoch, whole.stopped_by)
    assert resumed.cell_seconds >= resumed.train_seconds  # both count the killed process's fit
    assert resumed.cell_seconds <= killed_wall + (time.perf_counter() - t2)
    # process CPU seconds too, the killed process's fit counted; a point that did not record them: unknown
    own_cpu = time.process_time() - c2  # the resumed call's own CPU seconds, and a little more
    assert 0 < whole.cell_cpu_seconds and own_cpu < resumed.cell_cpu_seconds <= killed_cpu + own_cpu
    assert not list((tmp_path / "b").rglob("last.ckpt")) and not list((tmp_path / "b").rglob("last.json"))
    assert run_experiment("gat", max_epochs=1, out_dir=tmp_path / "c", progress=False, model_overrides=other,
                          resume=True).epochs == 1  # nothing to resume: trains from scratch


def test_a_grid_stopped_by_sigterm_exits_143(data_dir, tmp_path):
    """``kgzoo bench`` sent SIGTERM mid-cell (a lane stopped) exits 143, as a shell reports a
    process killed by SIGTERM, leaving the cell's resume point: Lightning stops the fit by a
    ``SystemExit`` without a code, so the command exited 0 and a lane took the killed grid for a
    finished one."""
    import os
    import signal
    import subprocess
    import sys

    code = ("import sys, kgzoo.bench.experiment as e; e.RESUME_EVERY_SECONDS = 0; from kgzoo.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-c", code, "bench", "--models", "bpr", "--datasets", "ml-100k-kg",
                             "--epochs", "50", "--runs", str(runs), "--results", str(tmp_path / "r.jsonl")],
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(runs.rglob("last.json")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, f"kgzoo bench ended before its first resume point: {proc.stderr.read()}"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "stopped by SIGTERM" in stderr and list(runs.rglob("last.ckpt")) and not (tmp_path / "r.jsonl").exists()


def test_a_removed_resume_point_leaves_no_temporary_file(tmp_path):
    """A kill while the point was being written leaves ``last.ckpt.tmp`` (a whole checkpoint's
    size) or ``last.json.tmp``; the run that ends later removes them with the point."""
    import lightning as L

    from kgzoo.bench.experiment import ResumePoint

    point = ResumePoint(tmp_path / "checkpoints" / "last.ckpt", "k", every=0)
    point.path.parent.mkdir()
    for name in ("last.ckpt", "last.json", "last.ckpt.tmp", "last.json.tmp", "best.ckpt"):
        (point.path.parent / name).write_bytes(b"x")
    point.remove(L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False))
    assert sorted(f.name for f in point.path.parent.iterdir()) == ["best.ckpt"]


def test_a_resume_point_of_other_batches_is_not_taken(data_dir, tmp_path, monkeypatch, capsys):
    """A cell killed under one zoo-config ``data:`` section (batch size 1024) and run again under
    another (2048, ``data_overrides`` standing in for the edited config: the same cell folder, a
    new config sha) trains from scratch: the resume point's key covers the DataModule's identity
    (:func:`kgzoo.bench.experiment.resume_key`), not only the data fingerprint, which leaves the
    batch size out (the rerun took the point and mixed two batch sizes in one row)."""
    import kgzoo.bench.experiment as ex

    monkeypatch.setattr(ex, "RESUME_EVERY_SECONDS", 0.0)

    small = {"n_layers": 1, "embedding_dim": 16}
    with pytest.raises(_Killed):
        run_experiment("gat", max_epochs=3, out_dir=tmp_path, progress=False, model_overrides=small,
                       data_overrides={"batch_size": 1024}, callbacks=lambda net: [_KillAt(2)])
    assert len(list(tmp_path.rglob("last.ckpt"))) == 1
    capsys.readouterr()
    row = run_experiment("gat", max_epochs=3, out_dir=tmp_path, progress=False, model_overrides=small,
                         data_overrides={"batch_size": 2048}, resume=True)
    assert "resuming" not in capsys.readouterr().out and row.epochs == 3
    assert not list(tmp_path.rglob("last.ckpt"))


def test_a_cell_runs_in_one_process_at_a_time(data_dir, tmp_path):
    """Two processes on the same cell folder (the shared resume folder of ``kgzoo bench --resume``)
    would write each other's checkpoints: while one holds the cell, another run of it stops with
    an error naming the folder; the lock goes with its holder."""
    from kgzoo.bench.experiment import cell_lock

    run_dir = cell_dir(tmp_path, "pop", "ml-100k-kg", 0, "real", {}, 1, "auto", 1, 1, code_hash("pop"))
    with cell_lock(run_dir):
        with pytest.raises(RuntimeError, match="another process is running this cell"):
            run_experiment("pop", max_epochs=1, out_dir=tmp_path, progress=False)
    assert run_experiment("pop", max_epochs=1, out_dir=tmp_path, progress=False).status == "ok"  # released


def test_resume_runs_in_one_folder_per_results_file(tmp_path, monkeypatch):
    """``kgzoo bench --resume --results R`` without ``--runs`` runs in one folder per results file
    name, so the rerun (from another checkout too) finds its killed cells' resume points; without
    ``--resume``, a fresh folder."""
    from kgzoo.bench.cli import run_folder_for

    monkeypatch.setenv("KGZOO_HOME", str(tmp_path / "home"))
    a = run_folder_for(None, str(tmp_path / "res"), "converged", True)
    assert a == run_folder_for(None, str(tmp_path / "res" / "converged.jsonl"), "other", True)
    assert a == run_folder_for(None, str(tmp_path / "other-checkout"), "converged", True)  # a lane's next worktree
    assert a == tmp_path / "home" / "runs" / "resume" / "converged"
    assert a != run_folder_for(None, str(tmp_path / "res"), "converged-news", True)
    assert run_folder_for("mine", str(tmp_path / "res"), "converged", True) == Path("mine")
    assert run_folder_for(None, str(tmp_path / "res"), "converged", False).parent == tmp_path / "home" / "runs"


def test_lightning_quiet_filters_only_inside_the_block():
    import warnings

    from kgzoo.quiet import lightning_quiet

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with lightning_quiet():
            warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated", FutureWarning)
            warnings.warn("a warning of kgzoo's own", UserWarning)
            warnings.warn("You have overridden `transfer_batch_to_device` in `LightningModule` but have passed in a "
                          "`LightningDataModule`. It will use the implementation from `LightningModule` instance.")
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated", FutureWarning)
    assert [str(w.message) for w in caught] == ["a warning of kgzoo's own",
                                                "`isinstance(treespec, LeafSpec)` is deprecated"]


def _proc_stat(folder: Path) -> list[str]:
    """A process's ``/proc/<pid>/stat`` fields after its name (state, parent pid, ...); ``[]`` once gone."""
    try:
        return (folder / "stat").read_text().rsplit(")", 1)[-1].split()
    except (FileNotFoundError, ProcessLookupError):
        return []


@pytest.mark.slow  # three 2-process DDP grids (gloo) of BPR on ml-100k-kg: about 1 min
def test_a_ddp_cell_stopped_by_sigterm_resumes_to_the_uninterrupted_row(data_dir, tmp_path):
    """``kgzoo bench --devices 2 --strategy ddp`` sent SIGTERM (to the launching process) once its first
    resume point is written exits 143 leaving no rank behind; ``--resume`` says "resuming" once (each
    rank said it) and gives the row of the DDP run never stopped."""
    import os
    import signal
    import subprocess
    import sys

    # a file, not `python -c`: Lightning's DDP launcher runs the command's script again for rank 1
    wrapper = tmp_path / "kgzoo_every_epoch.py"
    wrapper.write_text("import sys, kgzoo.bench.experiment as e\ne.RESUME_EVERY_SECONDS = 0\n"
                       "from kgzoo.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def bench(name, *more):
        return [sys.executable, str(wrapper), "bench", "--models", "bpr", "--datasets", "ml-100k-kg", "--epochs", "40",
                "--devices", "2", "--strategy", "ddp", "--runs", str(tmp_path / name),
                "--results", str(tmp_path / f"{name}.jsonl"), *more]

    whole = subprocess.run(bench("whole"), env=env, capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]
    proc = subprocess.Popen(bench("cut"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children: list[int] = []
    try:
        deadline = time.monotonic() + 300
        while not list((tmp_path / "cut").rglob("last.json")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, f"the cell ended before its first resume point: {proc.stderr.read()[-3000:]}"
        children = [int(d.name) for d in Path("/proc").iterdir()
                    if d.name.isdigit() and _proc_stat(d)[1:2] == [str(proc.pid)]]
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert stderr.count("stopped by SIGTERM") == 1, stderr[-3000:]
    time.sleep(1)
    assert children and all(_proc_stat(Path(f"/proc/{c}"))[:1] in ([], ["Z"]) for c in children), \
        "a rank outlived the command"
    resumed = subprocess.run(bench("cut", "--resume"), env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count("resuming bpr / ml-100k-kg / seed 0 after epoch") == 1, resumed.stdout[-3000:]
    a, b = (json.loads((tmp_path / f"{n}.jsonl").read_text().splitlines()[-1]) for n in ("whole", "cut"))
    assert (a["devices"], a["strategy"]) == (b["devices"], b["strategy"]) == (2, "ddp")
    assert a["metrics"] == b["metrics"] and a["valid_metrics"] == b["valid_metrics"]
    assert (a["epochs"], a["best_epoch"], a["stopped_by"]) == (b["epochs"], b["best_epoch"], b["stopped_by"])


def test_a_cell_loads_its_config_once_and_the_row_records_that_one(data_dir, tmp_path, monkeypatch):
    """DESIGN.md: the ZooConfig is "loaded once per cell and passed down". run_experiment reads the
    config one time, and the schedule, the DataModule, the model and the row all take that one, so a
    config file rewritten while the cell trains (a study of another process writing its record)
    cannot give the row another config sha or tuning record than the run trained with."""
    from kgzoo.bench import experiment as ex
    from kgzoo.config import ZooConfig

    real, loads = ZooConfig.load.__func__, []

    def counted(cls, model, dataset=None, *args, **kwargs):
        loads.append((model, dataset))
        return real(cls, model, dataset, *args, **kwargs)

    monkeypatch.setattr(ZooConfig, "load", classmethod(counted))
    row = ex.run_experiment("pop", "ml-100k-kg", max_epochs=1, out_dir=tmp_path, progress=False)
    assert row.status == "ok" and loads == [("pop", "ml-100k-kg")]
