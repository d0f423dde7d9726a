"""kgzoo.bench.leaderboard (aggregation, a pure function of rows) and kgzoo.bench.render (the folder).

``tests/data/leaderboard_before.json`` holds the numbers of the leaderboard before the redesign
(issue 18) for every committed row: ``tests/data/README.md`` gives the command that made it.
"""
from __future__ import annotations

import builtins
import io
import json
import math
import re
from pathlib import Path

import pytest

from kgzoo.bench import leaderboard as lb
from kgzoo.bench import render
from kgzoo.bench.rows import ResultRow, read_rows

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
BEFORE = REPO / "tests" / "data" / "leaderboard_before.json"
#: rows written before this date are the ones ``leaderboard_before.json`` was made from (the
#: redesign landed on 2026-12-06; every row after it is new and not in the snapshot)
REDESIGN = "2026-12-06"
TOPK = {"task": "topk", "split": "random", "ratios": [0.8, 0.1, 0.1], "seed": 0, "threshold": None, "k_core": 0}


def row(model: str, seed: int, value: float, fp: str = "fpA", dataset: str = "d1", kg: str = "real",
        task: str = "topk", kind: str = "converged", epochs: int = 30, cap: int = 100, time: str = "2026-12-01T10:00",
        protocol: dict | None = None, pfp: str = "pA", **extra) -> ResultRow:
    """A successful row: test main metric ``value`` (the other metrics derived from it)."""
    if task == "topk":
        metrics = {"test/ndcg@10": value, "test/recall@10": value / 2, "test/recall@20": value,
                   "test/ndcg@20": value * 1.1}
    elif task == "ctr":
        metrics = {"test/auc": value, "test/acc": value - 0.1, "test/f1": 0.5}
    elif task == "impression":
        metrics = {"test/auc": value, "test/mrr": value / 2, "test/ndcg@5": value / 2, "test/ndcg@10": value / 1.5}
    else:
        metrics = {"test/mrr": value, "test/hits@1": value / 2, "test/hits@3": value, "test/hits@10": value * 2}
    stopped = "cap" if epochs >= cap else "early_stopping"
    fields = dict(model=model, dataset=dataset, seed=seed, task=task, kg_ablation=kg, fingerprint=fp,
                  protocol_fingerprint=pfp, protocol=dict(protocol or {**TOPK, "task": "ctr" if task == "ctr" else "topk"}),
                  schedule={"kind": kind, "max_epochs": cap, "patience": 10, "monitor": "valid/x"}, epochs=epochs,
                  best_epoch=epochs - 11 if stopped == "early_stopping" else epochs - 1, stopped_by=stopped,
                  metrics=metrics, params=100, seconds_per_epoch=1.5, eval_seconds=0.2, peak_memory_mb=300.0,
                  command="kgzoo bench --seeds 0 1 2", time=time)
    fields.update(extra)
    return ResultRow(**fields)


def committed_rows() -> list[ResultRow]:
    files = sorted(RESULTS.glob("*.jsonl"))
    assert files, f"no committed rows under {RESULTS}"
    return [r for f in files for r in read_rows(f)]  # read_rows: ResultRow.from_dict of each line


# ---------------------------------------------------------------------------- the committed rows
def _shown(board: lb.Leaderboard) -> dict[tuple, list[dict]]:
    """Every number the leaderboard shows, keyed like leaderboard_before.json:
    ``dataset|fingerprint|model|variant|kg_ablation`` -> list of ``{"test/<m>": [mean, std, n]}``
    (one per place it is shown), plus the lines averaged over several fingerprints."""
    out: dict[str, list[dict]] = {}
    multi = []
    for t in board.tables:
        for ln in t.lines:
            values = {f"test/{m}": [s.mean, s.std, s.n] for m, s in ln.metrics.items()}
            if len(ln.fingerprints) == 1:
                key = "|".join([t.dataset, ln.fingerprints[0], ln.model, ln.variant, ln.kg_ablation])
                out.setdefault(key, []).append({"section": t.section, **values})
            else:
                multi.append((t, ln))
    for a in board.ablations:
        for ln in a.lines:
            key = "|".join([a.dataset, ln["fingerprint"], a.model, ln["variant"], ln["kg_ablation"]])
            out.setdefault(key, []).append(
                {"section": "ablation", **{f"test/{m}": [s.mean, s.std, s.n] for m, s in ln["metrics"].items()}})
    return out, multi


def _same(a: list, b: list) -> bool:
    return a[2] == b[2] and math.isclose(a[0], b[0], rel_tol=1e-12, abs_tol=1e-15) and math.isclose(
        a[1], b[1], rel_tol=1e-9, abs_tol=1e-12)


def test_rebuilt_leaderboard_shows_the_same_numbers_for_every_committed_row():
    """Every (dataset, fingerprint, model, variant, kg_ablation) of the committed rows comes out
    with the mean, std and seed count the old leaderboard showed, for every metric; the only
    new numbers are the link-prediction seed averages and two rows the old leaderboard hid."""
    before = json.loads(BEFORE.read_text())["cells"]
    board = lb.build([r for r in committed_rows() if r.time < REDESIGN])  # the rows the snapshot saw
    shown, multi = _shown(board)
    averaged = {"|".join([t.dataset, fp, ln.model, ln.variant, ln.kg_ablation]) for t, ln in multi for fp in ln.fingerprints}
    missing = sorted(set(before) - set(shown) - averaged)
    assert not missing, f"cells of the committed rows that the leaderboard lost: {missing}"
    new_numbers = []
    for key, places in shown.items():
        for place in places:
            metrics = {k: v for k, v in place.items() if k != "section"}
            old = before.get(key, {})
            if not (set(metrics) == set(old) and all(_same(metrics[m], old[m]) for m in metrics)):
                new_numbers.append((key.split("|")[0], key.split("|")[1][:8], key.split("|")[2], place["section"]))
    for key, old in before.items():  # each old cell is shown somewhere with its numbers
        assert key in averaged or any(all(_same(p.get(m, [None, None, None]), v) for m, v in old.items()) for p in shown[key]), key
    # The old leaderboard kept one row per cell whatever the schedule, so the quick bench reruns of
    # TransE and TransR (ml-100k-kg, seed 0) hid the 12- and 3-epoch runs of link_prediction.jsonl;
    # a smoke run no longer replaces a published row: those two appear, in the published section.
    assert sorted(new_numbers) == [("ml-100k-kg", "f45fcf97", "transe", "published"),
                                   ("ml-100k-kg", "f45fcf97", "transr", "published")]
    # link prediction: one table per dataset and protocol, averaged over the seeds' fingerprints
    link = [(t, ln) for t, ln in multi if t.task == "link"]
    assert len(link) == len(multi) == 4  # transe and transr on ml-100k-kg and ml-1m-kg (smoke)
    for t, ln in link:
        per_seed = [before["|".join([t.dataset, fp, ln.model, "base", "real"])] for fp in ln.fingerprints]
        for m, s in ln.metrics.items():
            vals = [c[f"test/{m}"][0] for c in per_seed]
            assert all(c[f"test/{m}"][2] == 1 for c in per_seed)  # before: one single-seed table per seed
            assert s.n == 3 and math.isclose(s.mean, sum(vals) / 3, rel_tol=1e-12)
    assert len([t for t in board.tables if t.task == "link" and t.section == lb.SMOKE]) == 2


def test_book_crossing_ripplenet_protocols_are_two_tables():
    """The two current RippleNet lines (AUC 0.6398, tuned and converged, and 0.6862, the paper's
    fixed 10 epochs) come from two protocols (require_train_positive off / on): two tables titled
    by their labels, not one."""
    board = lb.build(committed_rows())
    tables = [t for t in board.section(lb.PUBLISHED) if t.dataset == "book-crossing-kg"
              and any(ln.model == "ripplenet" for ln in t.lines)]
    assert len(tables) == 2 and len({t.protocol_label for t in tables}) == 2
    auc = {("require_train_positive" in t.protocol_label): round(next(
        ln for ln in t.lines if ln.model == "ripplenet").metrics["auc"].mean, 4) for t in tables}
    assert auc == {False: 0.6398, True: 0.6862}
    assert all(len(t.fingerprints) == 1 for t in tables) and tables[0].fingerprints != tables[1].fingerprints


# ---------------------------------------------------------------------------- aggregation rules
def test_mean_std_sorting_failed_rows_and_reruns():
    rows = [row("bpr", s, v) for s, v in [(0, 0.30), (1, 0.32), (2, 0.34)]]
    rows += [row("lightgcn", s, v) for s, v in [(0, 0.35), (1, 0.36), (2, 0.40)]]
    rows += [row("pop", 0, 0.10, paper={"metrics": {"ndcg@10": 0.12}, "source": "x"}, time="2026-12-01T09:00")]
    rows += [row("lightgcn", 0, 0.0, status="failed")]  # failed rows are ignored
    rows += [row("pop", 0, 0.11, time="2026-12-01T11:00")]  # a later rerun of the cell replaces the row
    (t,) = lb.build(rows).tables
    assert [ln.model for ln in t.lines] == ["lightgcn", "bpr", "pop"] and [ln.rank for ln in t.lines] == [1, 2, 3]
    s = t.lines[0].metrics["ndcg@10"]
    assert s.n == 3 and s.mean == pytest.approx(0.37) and s.std == pytest.approx(0.026457513, rel=1e-6)
    assert t.lines[1].metrics["ndcg@10"].std == pytest.approx(0.02)
    pop = t.lines[2]
    assert pop.metrics["ndcg@10"].mean == pytest.approx(0.11) and pop.metrics["ndcg@10"].std == 0
    assert pop.paper is None  # the latest row carries no paper block
    assert t.lines[0].seeds == [0, 1, 2] and t.lines[0].costs["params"].mean == 100
    assert t.lines[0].best_epoch.mean == 19 and t.lines[0].stopped_by == {"early_stopping": 3}
    assert t.metric_columns == ["ndcg@10", "recall@10", "recall@20", "ndcg@20"]
    # another sort metric
    assert [ln.model for ln in lb.build(rows[:6], metric="recall@20").tables[0].lines] == ["lightgcn", "bpr"]
    # the latest in time wins, whatever the order given (rows of several files merged)
    new, old = row("kgplm", 0, 0.30, time="2026-11-29T16:00"), row("kgplm", 0, 0.25, time="2026-11-29T14:00")
    (only,) = lb.latest_ok_rows([new, old])
    assert only.metrics["test/ndcg@10"] == 0.30


def test_a_model_whose_cells_failed_is_named_below_its_table():
    """A model whose every cell of a table failed (RippleNet without a KG) has no line; the table
    says so below it, with its seeds and error, instead of leaving it out silently. A failure that a
    later successful rerun replaced, and one of another table's key, are not named."""
    rows = [row("bpr", s, 0.3 + s / 100, kg="none") for s in range(3)]
    rows += [row("ripplenet", s, 0.0, kg="none", status="failed", error="ValueError: RippleNet needs a KG\ntrace",
                 time=f"2026-12-01T10:0{s}") for s in range(3)]
    rows += [row("kgat", 0, 0.0, kg="none", status="failed", error="RuntimeError: out of memory"),
             row("kgat", 0, 0.25, kg="none", time="2026-12-01T12:00")]  # rerun with success
    rows += [row("cke", 0, 0.0, kg="shuffled", status="failed", error="boom")]  # no table of its own
    (t,) = lb.build(rows).tables
    assert t.kg_ablation == "none" and [ln.model for ln in t.lines] == ["bpr", "kgat"]
    assert t.failed == {"ripplenet": ([0, 1, 2], "ValueError: RippleNet needs a KG")}
    text = render.failed_text(t)
    assert "ripplenet (seeds 0, 1, 2): ValueError: RippleNet needs a KG" in text and "kgat" not in text
    assert text in render.notes_below(t, t.lines) and "trace" not in text
    assert "Failed here" in render.to_markdown(lb.build(rows))


def test_a_metric_over_fewer_seeds_than_the_line_says_so():
    """A seed whose row lacks a metric (or holds NaN) is left out of that metric's mean; the cell
    says over how many of the line's seeds it is, instead of passing for all three."""
    rows = [row("bpr", s, 0.3 + s / 100) for s in range(3)]
    rows[2].metrics.pop("test/recall@20")
    rows[1].metrics["test/ndcg@20"] = float("nan")
    (t,) = lb.build(rows).tables
    (ln,) = t.lines
    assert render.metric_cell(ln, "recall@20").endswith("(2 of 3 seeds)")
    assert render.metric_cell(ln, "ndcg@20").endswith("(2 of 3 seeds)")
    assert render.metric_cell(ln, "ndcg@10") == ln.metrics["ndcg@10"].fmt() and render.metric_cell(ln, "x") == "-"
    assert "(2 of 3 seeds)" in render.to_markdown(lb.build(rows))


def test_the_latest_row_is_the_latest_instant_whatever_the_offset():
    """Rows carry their machine's UTC offset (``time.strftime("%z")``): a row written at 05:30-0500
    (10:30 UTC) is newer than one written at 10:00+0000, though its text sorts first. The text order
    kept the older row of the cell, and took the older fingerprint for the current one."""
    old = row("bpr", 0, 0.25, time="2026-12-07T10:00:00+0000")
    new = row("bpr", 0, 0.30, time="2026-12-07T05:30:00-0500")
    (only,) = lb.latest_ok_rows([old, new])
    assert only.metrics["test/ndcg@10"] == 0.30
    (only,) = lb.latest_ok_rows([new, old])
    assert only.metrics["test/ndcg@10"] == 0.30
    # the newest row's fingerprint is current; the other goes to the archive
    board = lb.build([row("bpr", 0, 0.25, fp="old", time="2026-12-07T10:00:00+0000"),
                      row("pop", 0, 0.10, fp="new", time="2026-12-07T05:30:00-0500")])
    assert [(t.section, t.fingerprints, t.newest) for t in board.tables] == [
        ("published", ["new"], "2026-12-07T05:30:00-0500"), ("archive", ["old"], "2026-12-07T10:00:00+0000")]
    # a time without an offset is read as UTC (rows written before kgzoo recorded one; these tests' rows)
    (only,) = lb.latest_ok_rows([row("bpr", 0, 0.30, time="2026-12-07T10:30"),
                                 row("bpr", 0, 0.25, time="2026-12-07T10:00:00+0000")])
    assert only.metrics["test/ndcg@10"] == 0.30


def test_a_table_whose_newest_row_has_no_time_still_writes(tmp_path):
    """``Table.newest`` is text (the archive's file name takes its date): a row whose ``time`` is
    null (ResultRow accepts it: no time, :data:`~kgzoo.bench.rows.NO_TIME`) made it ``None``, and
    writing the leaderboard failed on ``None[:10]`` where the text order had given ``""``."""
    rows = [row("bpr", 0, 0.30, fp="old", time=None), row("bpr", 0, 0.31, fp="new", time="2026-12-07T10:00:00+0000")]
    assert [(t.section, t.newest) for t in lb.build(rows).tables] == [
        ("published", "2026-12-07T10:00:00+0000"), ("archive", "")]
    render.write_leaderboard(rows, tmp_path, png=False)
    assert len(list((tmp_path / "tables").glob("d1_*_archive-*.csv"))) == 1


def test_ddp_rows_are_their_own_line():
    """A 2-process DDP run shares the fingerprint of the 1-device run but is another cell."""
    rows = [row("bpr", 0, 0.30), row("bpr", 0, 0.32, devices=2, strategy="ddp", time="2026-12-02")]
    (t,) = lb.build(rows).tables
    assert sorted((ln.name, ln.metrics["ndcg@10"].n) for ln in t.lines) == [("bpr", 1), ("bpr (2 devices, ddp)", 1)]
    rows += [row("bpr", 0, 0.2, kg="none", fp="fpN"), row("bpr", 0, 0.1, variant="x=1")]
    board = lb.build(rows)
    (rob,), (ab,) = board.robustness, board.ablations
    assert [(ln["model"], ln["values"]["real"].n) for ln in rob.lines] == [("bpr (2 devices, ddp)", 1), ("bpr", 1)]
    assert sorted(ln["setting"] for ln in ab.lines) == ["full", "full (2 devices, ddp)", "kg=none", "x=1"]


def test_superseded_fingerprints_go_to_the_archive():
    """The current fingerprint of a dataset and protocol is the newest row's; older ones are archived."""
    rows = [row("bpr", s, 0.30, fp="old", time=f"2026-11-0{s + 1}") for s in (0, 1, 2)]
    rows += [row("bpr", 0, 0.33, fp="new", time="2026-12-01"), row("pop", 0, 0.1, fp="new", time="2026-12-02")]
    rows += [row("bpr", 0, 0.5, fp="cold", protocol={**TOPK, "split": "cold_item", "candidates": "stage_cold_items"},
                 time="2026-10-01")]
    board = lb.build(rows)
    assert [(t.section, t.fingerprints, t.protocol_label) for t in board.tables] == [
        ("published", ["cold"], "cold items 8:1:1, ranking each stage's cold items"),
        ("published", ["new"], "random 8:1:1 per user, full ranking, seen masked"),
        ("archive", ["old"], "random 8:1:1 per user, full ranking, seen masked")]
    assert board.section(lb.ARCHIVE)[0].lines[0].metrics["ndcg@10"].n == 3
    md = render.to_markdown(board)
    assert md.index("## Archive") > md.index("## Published") and md.index("`old`") > md.index("## Archive")
    assert "### d1 · random 8:1:1 per user, full ranking, seen masked\n\nfingerprint `new`\n" in md


def test_capped_rows_are_flagged_and_never_ranked():
    rows = [row("bpr", s, 0.30) for s in (0, 1)]
    rows += [row("kgat", 0, 0.40, epochs=100), row("kgat", 1, 0.42, epochs=50)]  # seed 0 hit its cap
    rows += [row("gcn", 0, 0.35, kind="fixed", epochs=10, cap=10)]  # a fixed schedule is not converged
    (t,) = lb.build(rows).tables
    by = {ln.model: ln for ln in t.lines}
    assert by["bpr"].rank == 1 and by["kgat"].rank is None and by["gcn"].rank is None
    assert by["kgat"].capped and by["kgat"].stopped_by == {"cap": 1, "early_stopping": 1} and not by["bpr"].capped
    assert [ln.model for ln in t.lines] == ["bpr", "kgat", "gcn"]  # ranked first, then the rest by metric
    md = render.to_markdown(lb.build(rows))
    assert "| - | kgat † | 0.4100 ± 0.0141 |" in md and "| 1 | bpr | 0.3000 ± 0.0000 |" in md
    assert render.CAP_NOTE in md and "| cap ×1, early stop ×1 |" in md
    assert "- sorted by test ndcg@10; ranked lines first;" in md  # kgat (0.41) follows bpr (0.30)
    assert render.sort_text(lb.build(rows[:2]).tables[0]) == "sorted by test ndcg@10"


def test_a_line_whose_seeds_ran_different_configs_is_marked_and_not_ranked(tmp_path):
    """A cell's key has no config sha: after a re-tune (a new ``tuned:`` record, a new config sha) a
    ``--resume`` grid cut off after seed 0 left seed 0 of the new values beside seeds 1 and 2 of the
    old, averaged as one line and ranked. The seeds of a published line must have run one
    configuration (issue 16: mean and std over seeds of one config); such a line is marked ※, says
    which configs below the table and in the CSV, and is not ranked. Rows without a config sha
    (written before it was recorded) do not count as another config."""
    tuned = {"trials": 10, "budget": {"trials": 10}}
    rows = [row("bpr", s, 0.30, config_sha="aaaa", tuning=tuned) for s in (1, 2)]
    rows += [row("bpr", 0, 0.33, config_sha="bbbb", tuning=tuned)]  # re-tuned: same trial count, new values
    rows += [row("cke", s, 0.28, config_sha="cccc", tuning=tuned) for s in (0, 1)] + [row("cke", 2, 0.29, tuning=tuned)]
    board = lb.build(rows)
    (t,) = board.tables
    by = {ln.model: ln for ln in t.lines}
    assert by["bpr"].configs == ["aaaa", "bbbb"] and by["bpr"].mixed and by["bpr"].rank is None
    assert by["cke"].configs == ["cccc"] and not by["cke"].mixed and by["cke"].rank == 1
    assert by["bpr"].tuned == "tuned (10 trials)"  # the tuned column alone does not tell
    md = render.to_markdown(board)
    assert "| - | bpr ※ |" in md and "| 1 | cke |" in md
    assert "※ its seeds ran different configurations (`config_sha`): bpr: aaaa (seeds 1, 2), bbbb (seed 0)" in md
    import csv as csv_module
    got = {r["model"]: r["configs"] for r in csv_module.DictReader(render.write_csv(t, tmp_path / "t.csv").open())}
    assert got == {"bpr": "aaaa bbbb", "cke": ""}


def test_a_line_whose_seeds_selected_on_different_metrics_is_mixed_and_not_ranked():
    """The config sha leaves the monitored metric out: a ``kgzoo bench --full --metric recall@20``
    rerun of seed 0 replaced that seed's row (same cell key) beside seeds 1 and 2 selected on
    NDCG@10; the line was ranked as one configuration's mean and std."""
    rows = [row("bpr", s, 0.30, config_sha="aaaa", schedule={"kind": "converged", "max_epochs": 100, "patience": 10,
                                                               "monitor": "valid/ndcg@10"}) for s in (1, 2)]
    rows += [row("bpr", 0, 0.33, config_sha="aaaa", schedule={"kind": "converged", "max_epochs": 100, "patience": 10,
                                                               "monitor": "valid/recall@20"})]
    rows += [row("cke", s, 0.28, config_sha="cccc") for s in range(3)]
    board = lb.build(rows)
    by = {ln.model: ln for ln in board.tables[0].lines}
    assert by["bpr"].mixed and by["bpr"].rank is None and by["cke"].rank == 1
    assert by["bpr"].configs == ["aaaa on ndcg@10", "aaaa on recall@20"] and by["cke"].configs == ["cccc"]
    assert ("bpr: aaaa on ndcg@10 (seeds 1, 2), aaaa on recall@20 (seed 0)"
            in render.mixed_text(board.tables[0].lines))


def test_the_front_page_says_a_grid_models_mixed_line_is_not_ranked_not_unconverged():
    """The front page shows ranked lines only and names the grid's models left out. A line whose
    every run converged but whose seeds ran different configurations (※) was named "Not converged
    yet", which its runs (early stop x3) contradict; it is named for what keeps it out."""
    grid = {"d1": (TOPK, ("pop", "bpr", "kgat", "cke"))}
    rows = [row("pop", s, 0.10, config_sha="pppp") for s in range(3)]
    rows += [row("bpr", s, 0.30, config_sha="bbbb" if s else "aaaa") for s in range(3)]  # converged, mixed
    rows += [row("kgat", 0, 0.20, epochs=100, config_sha="kkkk")]  # stopped at its cap
    rows += [row("cke", s, 0.25, epochs=100, config_sha="cccc" if s else "dddd") for s in range(2)]  # both
    front, full = render.to_markdown(lb.build(rows, grids=grid)).split("## Published tables")
    assert "Not converged yet (their lines are in the full table): kgat, cke." in front
    assert "Not ranked, their seeds ran different configurations (※; their lines are in the full table): bpr." in front
    assert "Not converged yet" not in full and "Not ranked, their seeds" not in full


def test_quick_rows_only_in_the_smoke_section():
    rows = [row("bpr", 0, 0.30), row("bpr", 0, 0.20, kind="quick", time="2026-12-02"),
            row("pop", 0, 0.10, kind="quick")]
    board = lb.build(rows)
    (pub,), (smoke,) = board.section(lb.PUBLISHED), board.section(lb.SMOKE)
    assert [ln.model for ln in pub.lines] == ["bpr"] and pub.lines[0].metrics["ndcg@10"].mean == 0.30
    assert [ln.model for ln in smoke.lines] == ["bpr", "pop"] and all(ln.rank is None for ln in smoke.lines)
    assert board.n_cells == 3  # the later quick rerun did not replace the published row


def test_a_published_table_names_the_grid_models_it_does_not_have_yet():
    """amazon-hin's table had 9 lines while GAT, KGAT and KGIN waited for their studies, and
    nothing said so: a reader could take it for the whole grid. The grid's models without a line
    in the grid's table (a capped line is a line: it is flagged) are named below it, on the front
    page and in the full table; not below another protocol's table, another KG's, the smoke one
    or the link-prediction one of the same protocol."""
    grid = {"d1": (TOPK, ("pop", "bpr", "gat", "kgat", "kgin"))}
    rows = ([row("bpr", s, 0.30) for s in range(3)] + [row("kgat", 0, 0.2, epochs=100)]
            + [row("gat", 0, 0.1, kind="quick"), row("bpr", 0, 0.3, kg="shuffled")]
            + [row("bpr", 0, 0.3, protocol={**TOPK, "split": "cold_item"}, fp="fpC")]
            + [row("transe", 0, 0.1, task="link", fp="fpL")])
    board = lb.build(rows, grids=grid)
    pending = {(t.section, t.kg_ablation, t.task, t.protocol.get("split")): t.pending for t in board.tables}
    assert pending == {(lb.PUBLISHED, "real", "topk", "random"): ["pop", "gat", "kgin"],
                       (lb.PUBLISHED, "shuffled", "topk", "random"): [], (lb.PUBLISHED, "real", "topk", "cold_item"): [],
                       (lb.PUBLISHED, "real", "link", "random"): [], (lb.SMOKE, "real", "topk", "random"): []}
    front, full = render.to_markdown(board).split("## Published tables")
    for part in (front, full):
        assert part.count("Not in this table yet: pop, gat, kgin. It holds the runs so far") == 1
    # the front page shows the ranked lines only: kgat's capped line is not there, and is named (it was neither)
    assert "Not converged yet (their lines are in the full table): kgat." in front
    assert "Not converged yet" not in full
    assert all(t.pending == [] for t in lb.build(rows).tables)  # no grid given: nothing said
    # the rich view says it too (its caption said nothing of the missing models)
    caption, = [rt.caption for rt in render.rich_tables(board) if "Not in this table yet" in rt.caption]
    assert "Not in this table yet: pop, gat, kgin." in caption
    # with --show-variants, a model's variant line is not its line: kgin [x=1] alone left kgin unnamed
    shown = lb.build(rows + [row("kgin", 0, 0.2, variant="x=1")], grids=grid, show_variants=True)
    assert [t.pending for t in shown.tables if t.section == lb.PUBLISHED and t.kg_ablation == "real"
            and t.task == "topk" and t.protocol["split"] == "random"] == [["pop", "gat", "kgin"]]
    grids = render.dataset_grids(["ml-100k-kg", "mind-sample", "mind-kg", "my-folder"])
    assert sorted(grids) == ["mind-sample", "ml-100k-kg"] and grids["mind-sample"][0]["task"] == "impression"
    assert "plmrec" in grids["ml-100k-kg"][1] and grids["ml-100k-kg"][0]["split"] == "random"


def test_every_grid_model_is_registered_and_runs_on_its_dataset():
    """A catalogue grid names registered models whose task on the dataset is its table's."""
    from kgzoo.bench.cells import cell_task
    from kgzoo.data.datasets import list_datasets

    grids = render.dataset_grids(list_datasets())
    assert {"ml-100k-kg", "ml-1m-kg", "amazon-hin", "alibaba-ifashion-kg", "lastfm-social", "yelp-social",
            "lastfm-kg", "book-crossing-kg", "dkn-news", "mind-sample"} <= set(grids)
    for dataset, (protocol, models) in grids.items():
        assert len(set(models)) == len(models), dataset
        for m in models:
            assert cell_task(m, dataset).name == protocol["task"], (m, dataset)


def test_link_prediction_is_one_table_averaged_over_seeds():
    """The triple split is seeded by the run: one fingerprint per seed, one table for all."""
    rows = [row("transe", s, 0.1 + s / 10, fp=f"link{s}", task="link", pfp=f"p{s}") for s in (0, 1, 2)]
    rows += [row("transe", 0, 0.9, fp="link-old", task="link", time="2026-01-01")]  # superseded for seed 0
    board = lb.build(rows)
    (t,), (arch,) = board.section(lb.PUBLISHED), board.section(lb.ARCHIVE)
    assert t.fingerprints == ["link0", "link1", "link2"] and t.metric == "mrr"
    s = t.lines[0].metrics["mrr"]
    assert s.n == 3 and s.mean == pytest.approx(0.2) and arch.fingerprints == ["link-old"]
    assert "fingerprints (one per seed" in render.to_markdown(board)
    # a task whose split is not seeded by the run never mixes fingerprints in a table
    topk = lb.build([row("bpr", s, 0.3, fp=f"f{s}", time=f"2026-12-0{s + 1}") for s in (0, 1)])
    assert [t.fingerprints for t in topk.tables] == [["f1"], ["f0"]]


def test_impression_rows_make_a_per_impression_table():
    """News models on MIND's impression protocol: sorted by AUC, MIND's four metrics as columns."""
    imp = {"task": "impression", "split": "temporal", "ratios": [0.8, 0.1, 0.1], "seed": 0, "threshold": None,
           "k_core": 0}
    rows = [row(m, s, v + s / 100, task="impression", dataset="mind-sample", fp="i1", protocol=imp)
            for m, v in (("pop", 0.5), ("nrms", 0.6), ("dkn", 0.55)) for s in (0, 1, 2)]
    (t,) = lb.build(rows).section(lb.PUBLISHED)
    assert t.task == "impression" and t.metric == "auc"
    assert t.metric_columns == ["auc", "mrr", "ndcg@5", "ndcg@10"]
    assert [ln.model for ln in t.lines] == ["nrms", "dkn", "pop"]
    assert t.lines[0].metrics["auc"].mean == pytest.approx(0.61) and t.lines[0].metrics["auc"].n == 3
    assert t.protocol_label.startswith("impressions by day")
    assert "| nrms |" in render.to_markdown(lb.build(rows)).replace("**", "")


def test_variants_beside_baselines_only_when_asked_and_ablation_tables():
    rows = [row("kgplm", s, 0.30 + s / 100) for s in (0, 1, 2)]
    rows += [row("kgplm", s, 0.25, variant="use_text=false") for s in (0, 1)]
    rows += [row("kgplm", 0, 0.315, variant="fusion=dot")]
    rows += [row("kgplm", 0, 0.28, kg="shuffled", fp="fpS")]
    rows += [row("bpr", 0, 0.33)]
    board = lb.build(rows)
    main = next(t for t in board.tables if t.kg_ablation == "real")
    assert [ln.name for ln in main.lines] == ["bpr", "kgplm"]
    shown = lb.build(rows, show_variants=True)
    names = [ln.name for ln in next(t for t in shown.tables if t.kg_ablation == "real").lines]
    assert names == ["bpr", "kgplm [fusion=dot]", "kgplm", "kgplm [use_text=false]"]
    (ab,) = board.ablations
    assert ab.model == "kgplm" and [ln["setting"] for ln in ab.lines] == [
        "full", "fusion=dot", "kg=shuffled", "use_text=false"]
    assert [ln["delta"] for ln in ab.lines] == pytest.approx([0.0, 0.005, -0.03, -0.06])
    (rob,) = board.robustness
    assert rob.ablations == ["real", "shuffled"] and [ln["model"] for ln in rob.lines] == ["bpr", "kgplm"]
    assert rob.lines[1]["values"]["real"].mean == pytest.approx(0.31) and rob.lines[0]["values"]["shuffled"] is None
    md = render.to_markdown(board)
    assert "variants and source ablations of kgplm" in md and "| use_text=false | 0.2500 ± 0.0000 | -0.0600 ± 0.0058 |" in md


def test_ctr_paper_column_and_robustness_order():
    rows = [row("kgcn", s, v, task="ctr", dataset="lastfm-kg", fp="c1",
                paper={"metrics": {"auc": 0.794, "acc": 0.719}, "source": "KGCN, WWW 2019"})
            for s, v in [(0, 0.78), (1, 0.80)]]
    rows += [row("mkr", 0, 0.79, task="ctr", dataset="lastfm-kg", fp="c1")]
    rows += [row("bpr", 0, 0.3, kg=k, fp=f"fp-{k}") for k in ("noisy:0.5", "real", "none", "shuffled")]
    board = lb.build(rows)
    ctr = next(t for t in board.tables if t.dataset == "lastfm-kg")
    assert ctr.metric == "auc" and [ln.model for ln in ctr.lines] == ["kgcn", "mkr"]
    assert ctr.lines[0].paper == 0.794 and ctr.lines[0].paper_source == "KGCN, WWW 2019" and ctr.lines[1].paper is None
    assert ctr.protocol_label.startswith("ctr, random 8:1:1 of rows")
    (rob,) = board.robustness
    assert rob.ablations == ["real", "shuffled", "none", "noisy:0.5"]


def test_build_is_pure(monkeypatch):
    """No file is opened, the rows are left as they were, and the same rows give the same board."""
    rows = [row("bpr", s, 0.3 + s / 100) for s in (0, 1)] + [row("x", 0, 0.2, kind="quick", dataset="mind-kg")]
    before = [r.to_dict() for r in rows]

    def no_io(*a, **k):
        raise AssertionError(f"build opened a file: {a!r}")

    monkeypatch.setattr(builtins, "open", no_io)
    monkeypatch.setattr(io, "open", no_io)
    monkeypatch.setattr(Path, "open", no_io)
    a, b = lb.build(rows, caveats={"mind-kg": "re-split"}), lb.build(list(reversed(rows)), caveats={"mind-kg": "re-split"})
    monkeypatch.undo()
    assert [r.to_dict() for r in rows] == before
    assert render.to_markdown(a) == render.to_markdown(b)
    assert next(t for t in a.tables if t.dataset == "mind-kg").caveat == "re-split"
    with pytest.raises(TypeError, match="row 0: expected a ResultRow, got dict"):
        lb.build([rows[0].to_dict()])


# ---------------------------------------------------------------------------- the folder
def test_write_leaderboard_clears_stale_files_and_names_files_by_protocol(tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("mine")  # not the leaderboard's: left alone
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "keep.txt").write_text("not a csv")
    rows = [row("bpr", s, 0.3) for s in (0, 1)] + [row("bpr", 0, 0.2, kg="shuffled", fp="fpS")]
    rows += [row("kgcn", 0, 0.7, task="ctr", dataset="mind-kg", fp="c", protocol={**TOPK, "task": "ctr",
                                                                                   "require_train_positive": True})]
    out = render.write_leaderboard(rows, tmp_path)
    names = sorted(p.relative_to(tmp_path).as_posix() for p in out["csv"] + out["png"])
    assert names == [
        "figures/d1_random-8-1-1-per-user-full-ranking-seen-masked.png",
        "figures/d1_random-8-1-1-per-user-full-ranking-seen-masked_kg-shuffled.png",
        "figures/mind-kg_ctr-random-8-1-1-of-rows-auc-f1-on-labelled-pairs-require-train-positive.png",
        "figures/robustness_d1_random-8-1-1-per-user-full-ranking-seen-masked.png",
        "tables/d1_random-8-1-1-per-user-full-ranking-seen-masked.csv",
        "tables/d1_random-8-1-1-per-user-full-ranking-seen-masked_kg-shuffled.csv",
        "tables/mind-kg_ctr-random-8-1-1-of-rows-auc-f1-on-labelled-pairs-require-train-positive.csv"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in out["png"])
    md = out["markdown"].read_text()
    assert "](figures/d1_random-8-1-1-per-user-full-ranking-seen-masked.png)" in md
    assert "> **Caveat (mind-kg):** re-split" in md  # from the catalogue's DatasetSpec.caveat
    header, first = (tmp_path / "tables" / "d1_random-8-1-1-per-user-full-ranking-seen-masked.csv").read_text().splitlines()[:2]
    assert header.startswith("dataset,task,protocol,kg_ablation,section,fingerprints,rank,model,variant,capped,"
                              "ndcg@10_mean,ndcg@10_std")
    assert first.startswith("d1,topk,\"random 8:1:1 per user, full ranking, seen masked\",real,published,fpA,1,bpr,")
    # rebuilt from fewer rows: the files of vanished tables go, nothing else does
    out2 = render.write_leaderboard(rows[:2], tmp_path, png=False)
    assert sorted(p.name for p in out2["stale"]) == sorted(
        [p.name for p in out["png"]] + [p.name for p in out["csv"][1:]])
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        "LEADERBOARD.md", "notes.txt", "tables/d1_random-8-1-1-per-user-full-ranking-seen-masked.csv",
        "tables/keep.txt"]
    assert not (tmp_path / "figures").exists() and other.read_text() == "mine"


def test_table_stems_are_unique_when_labels_collide():
    """Two protocols that share a label (two split seeds under one label) keep two files."""
    rows = [row("bpr", 0, 0.3, fp="a", protocol={**TOPK, "seed": 0}), row("bpr", 0, 0.3, fp="b", protocol={**TOPK, "seed": 1})]
    board = lb.build(rows)
    assert len(board.section(lb.PUBLISHED)) == 2  # the protocol dicts differ: never one table
    assert sorted(render.table_stems(board).values()) == [
        "d1_random-8-1-1-per-user-full-ranking-seen-masked", "d1_random-8-1-1-per-user-full-ranking-seen-masked-2"]


def test_rich_views_and_the_run_table():
    from rich.console import Console

    committed = [row("bpr", s, 0.30 + s / 100) for s in (0, 1, 2)]
    committed += [row("bpr", 0, 0.9, kind="quick"), row("bpr", 0, 0.5, fp="fpB"), row("bpr", 0, 0.8, variant="x=1")]
    mine = row("bpr", 0, 0.35, time="2026-12-06", cell_seconds=12.0, epochs=100)
    run = [mine, row("newmodel", 0, 0.2), row("pop", 0, 0.0, status="failed", error="ValueError: boom", metrics={})]
    stat, same = render.reference_value(mine, committed)  # same fingerprint, variant and schedule class
    assert same and stat.n == 3 and stat.mean == pytest.approx(0.31)
    quick = row("bpr", 0, 0.7, kind="quick")
    assert render.reference_value(quick, committed)[0].mean == 0.9  # a smoke run beside smoke rows
    other = render.reference_value(quick, committed[:3])  # none of its class: the other one, said so
    assert other[0].mean == pytest.approx(0.31) and other[1] is False
    assert render.reference_value(row("newmodel", 0, 0.2), committed) is None
    con = Console(record=True, width=250)
    con.print(render.rich_run_table(run, committed))
    text = con.export_text()
    # beside the mean, the committed row of the same seed; the diff is to it (a reproduced seed reads +0.0000)
    assert "this run: 3 cell(s)" in text and "0.3500" in text and "0.3100 (3 seeds; seed 0 0.3000)" in text
    assert "+0.0500" in text and "+0.0400" not in text
    assert "100 (99, cap)" in text and "failed: ValueError: boom" in text and "12.0" in text
    con.print(render.rich_run_table([row("bpr", 1, 0.31), row("bpr", 7, 0.32)], committed, title="reruns"))
    text = con.export_text()
    assert re.search(r"0\.3100 \(3 seeds; seed 1 0\.3100\) │ +=", text)  # seed 1 reproduced bit for bit
    assert "0.3100 (3 seeds)" in text and "+0.0100" in text  # seed 7 has no committed row: the mean
    con.print(render.rich_run_table([quick], committed[:3], title="mine"))
    assert "0.3100 (3 seeds, other schedule)" in con.export_text()
    # committed rows of another config (untuned quick rows, a converged line beside a 5-epoch run) say so:
    # kgzoo bench printed LightGCN's tuned smoke run +0.0834 beside untuned rows as if it reproduced them
    tuned = [row("bpr", s, 0.30 + s / 100, config_sha="c0ffee") for s in (0, 1, 2)]
    con.print(render.rich_run_table([row("bpr", 0, 0.36, config_sha="beef"), row("bpr", 1, 0.31, config_sha="c0ffee")],
                                    tuned, title="configs"))
    text = con.export_text()
    assert "0.3100 (3 seeds, other config; seed 0 0.3000)" in text and "0.3100 (3 seeds; seed 1 0.3100)" in text
    board = lb.build(committed[:3] + [row("x", 0, 0.1, kind="quick")])
    assert len(render.rich_tables(board)) == 1 and len(render.rich_tables(board, sections=(lb.PUBLISHED, lb.SMOKE))) == 2
    con.print(*render.rich_tables(board))
    assert "d1 · random 8:1:1 per user" in con.export_text()


def test_the_run_table_tells_a_reproduced_row_from_a_near_one_and_names_a_code_change():
    """A rerun of a published seed (the leaderboard's own command, --results of one's own): ``=``
    only where every test metric equals the committed row bit for bit; ``+0.0000`` where the main
    metric agrees to 4 decimals and another metric does not; ``other code`` where the committed
    row ran another code hash. Session 16's rerun of KGPLM's ml-100k-kg seed 0 read -0.0325 with
    nothing to say that the model's source had changed since the row, and BPR's bit-for-bit rerun
    read +0.0000, as a rerun 4e-5 away would."""
    from rich.console import Console

    committed = [row("bpr", s, 0.30 + s / 100, code_hash="aaaa") for s in (0, 1, 2)]
    near = row("bpr", 1, 0.31, code_hash="aaaa")
    near.metrics["test/recall@20"] += 4e-5  # equal main metric, another metric off in the 5th decimal
    run = [row("bpr", 0, 0.30, code_hash="aaaa"), near, row("bpr", 2, 0.29, code_hash="bbbb")]
    con = Console(record=True, width=250)
    con.print(render.rich_run_table(run, committed))
    lines = {ln.split("│")[5].strip(): ln for ln in con.export_text().splitlines() if ln.startswith("│ bpr")}
    cells = {seed: [c.strip() for c in ln.split("│")] for seed, ln in lines.items()}
    assert cells["0"][10] == "0.3100 (3 seeds; seed 0 0.3000)" and cells["0"][11] == "="
    assert cells["1"][10] == "0.3100 (3 seeds; seed 1 0.3100)" and cells["1"][11] == "+0.0000"
    assert cells["2"][10] == "0.3100 (3 seeds; seed 2 0.3200, other code)" and cells["2"][11] == "-0.0300"
    # a row without a code hash (schema 1) is not called another code's
    con.print(render.rich_run_table([row("bpr", 0, 0.30, code_hash="aaaa")], [row("bpr", 0, 0.30)]))
    assert "other code" not in con.export_text().splitlines()[-6]


def test_dataset_caveats_from_the_catalogue():
    caveats = render.dataset_caveats(["mind-kg", "ml-100k-kg", "my-own-data"])
    assert list(caveats) == ["mind-kg"] and "NOT comparable" in caveats["mind-kg"]


def test_tuned_and_reference_columns_and_the_front_page_per_domain():
    tuned = {"trials": 10, "budget": {"trials": 10, "max_epochs": 300, "patience": 10}, "chosen": {"lr": 1e-3},
             "best_valid": {"ndcg@10": 0.24}, "study": "s", "date": "2026-12-06"}
    ref = {"metrics": {"ndcg@10": 0.2928}, "source": "RecBole 1.2.1 BPR", "setting": "8:1:1"}
    rows = ([row("bpr", s, 0.30 + s / 100, dataset="ml-100k-kg", tuning=tuned, reference=ref) for s in range(3)]
            + [row("gat", s, 0.20, dataset="ml-100k-kg") for s in range(2)]
            + [row("gat", 2, 0.21, dataset="ml-100k-kg", tuning=tuned)]
            + [row("pop", s, 0.14, dataset="ml-100k-kg", epochs=1, cap=1, stopped_by="closed_form") for s in range(3)]
            + [row("bpr", s, 0.05, dataset="amazon-hin", fp="fpB", pfp="pB") for s in range(3)]
            + [row("bpr", 0, 0.9, dataset="amazon-hin", fp="fpB", pfp="pB", kind="quick")])
    board = lb.build(rows)
    (t,) = [t for t in board.section(lb.PUBLISHED) if t.dataset == "ml-100k-kg"]
    by = {ln.model: ln for ln in t.lines}
    assert by["bpr"].tuned == "tuned (10 trials)" and by["gat"].tuned == "mixed" and by["pop"].tuned == "nothing to tune"
    assert by["bpr"].reference == 0.2928 and by["bpr"].reference_source == "RecBole 1.2.1 BPR" and by["gat"].reference is None
    assert by["pop"].rank is not None and not by["pop"].capped  # closed form: a converged baseline
    assert lb.tuned_text([row("bpr", 0, 0.3, dataset="ml-1m-kg", tuning={**tuned, "dataset": "ml-100k-kg"})]) \
        == "tuned on ml-100k-kg (10 trials)"
    with_default = {**tuned, "default": {"state": "COMPLETE", "value": 0.22, "trial": 0, "chosen": True}}
    assert lb.tuned_text([row("kgcn", s, 0.3, tuning=with_default) for s in range(2)]) == "tuned (10 trials + defaults)"
    assert lb.tuned_text([row("kgcn", 0, 0.3, tuning={**with_default, "trials": 1})]) == "tuned (1 trial + defaults)"
    cells = dict(zip(render.table_columns(t), render.line_cells(t, by["bpr"])))
    assert cells["tuned"] == "tuned (10 trials)" and cells["reference"] == "0.2928"
    front = render.front_tables(board)
    assert [(d, t.dataset) for d, t in front] == [("e-commerce", "amazon-hin"), ("video", "ml-100k-kg")]
    md = render.to_markdown(board)
    head = md.split("## Published tables")[0]
    assert "### video: " in head and "### e-commerce: " in head and "`reference`: bpr: RecBole 1.2.1 BPR" in head
    assert "0.9000" not in head  # quick rows never reach the front page


def test_robustness_cells_of_capped_runs_are_marked():
    """A KG-robustness cell whose runs include one stopped at its cap is marked † (the trial of
    issue 16 found 3-epoch KGAT and GAT rows ranked beside converged ones there, unmarked)."""
    rows = [row("bpr", 0, 0.30, kg=k, fp=f"fp-{k}") for k in ("real", "shuffled")]
    rows += [row("kgat", 0, 0.15, kg=k, fp=f"fp-{k}", epochs=3, cap=3) for k in ("real", "shuffled")]
    (rob,) = lb.build(rows).robustness
    _, body = render.robustness_cells(rob)
    cells = {r[0]: r[1:] for r in body}
    assert all(c.endswith(" †") for c in cells["kgat"]) and not any("†" in c for c in cells["bpr"])
    assert "not converged" in render.to_markdown(lb.build(rows))


def test_one_seed_lines_are_marked_with_the_reason_of_a_large_set():
    """A published line with one seed shows no std; it is marked ‡ and explained below its table:
    on a large set of the fair-baselines tables (the catalogue's ``one_seed_minutes``: ml-1m-kg,
    alibaba-ifashion-kg) with the reason and the run's time where the run took longer than that
    (process CPU seconds where the row has them, else wall: ``ResultRow.run_seconds``),
    as a cell not yet complete where it did not (with its time, so a fast run is not passed off as
    a slow one) and elsewhere (issue 16, part 3). Smoke tables (one seed by design) mark nothing."""
    frm = {"trials": 10, "budget": {"trials": 10, "max_epochs": 300, "patience": 10}, "chosen": {"lr": 1e-3},
           "dataset": "ml-100k-kg", "default": {"state": "COMPLETE", "value": 0.2, "trial": 0, "chosen": False}}
    rows = ([row("bpr", s, 0.30 + s / 100, dataset="ml-1m-kg", tuning=frm) for s in range(3)]
            + [row("kgat", 0, 0.28, dataset="ml-1m-kg", tuning=frm, cell_seconds=3 * 3600.0)]
            # its wall time inflated by other work beside it: the process CPU seconds decide
            + [row("kgin", 0, 0.27, dataset="ml-1m-kg", tuning=frm, cell_seconds=3 * 3600.0,
                   cell_cpu_seconds=21 * 60.0)]
            + [row("lightgcn", s, 0.25, dataset="ml-1m-kg", tuning=frm) for s in range(3)]
            + [row("bpr", s, 0.20 + s / 100, dataset="ml-100k-kg", fp="fpB", pfp="pB") for s in range(3)]
            + [row("kgin", 0, 0.19, dataset="ml-100k-kg", fp="fpB", pfp="pB", cell_seconds=3 * 3600.0)]
            + [row("gat", 0, 0.15, dataset="ml-100k-kg", fp="fpB", pfp="pB", epochs=3, cap=3)]  # capped: † only
            + [row("bpr", 0, 0.9, dataset="ml-1m-kg", kind="quick")])
    assert render.dataset_one_seed_minutes(["ml-1m-kg", "alibaba-ifashion-kg", "ml-100k-kg", "mine"]) == {
        "alibaba-ifashion-kg": 40, "ml-1m-kg": 40}
    minutes = render.dataset_one_seed_minutes(["ml-1m-kg"])
    board = lb.build(rows, one_seed_minutes=minutes)
    tables = {(t.dataset, t.section): t for t in board.tables}
    big, small, smoke = tables["ml-1m-kg", lb.PUBLISHED], tables["ml-100k-kg", lb.PUBLISHED], tables["ml-1m-kg", lb.SMOKE]
    assert (big.one_seed_minutes, small.one_seed_minutes) == (40, 0.0)
    cells = {ln.model: dict(zip(render.table_columns(big), render.line_cells(big, ln))) for ln in big.lines}
    assert cells["kgat"]["model"] == "kgat ‡" and cells["kgat"]["seeds"] == "1" and "±" not in cells["kgat"]["ndcg@10"]
    assert cells["kgin"]["model"] == "kgin ‡"
    assert cells["bpr"]["model"] == "bpr" and "±" in cells["bpr"]["ndcg@10"]
    assert cells["kgat"]["tuned"] == cells["bpr"]["tuned"] == "tuned on ml-100k-kg (10 trials + defaults)"
    slow = ("‡ one seed: a converged run of this model takes over 40 min on 2 cores (issue 16, part 3); "
            "no std (the run: kgat: 180 min).")
    fast = ("‡ one seed so far (no std): not yet the 3 seeds of a published cell "
            "(kgin: its run took 21 min, within the 40 min that allow one seed).")
    assert render.one_seed_note(big, big.lines) == [slow, fast]
    # on a dataset without a limit, however long the run: not yet complete, no minutes
    assert render.one_seed_note(small, small.lines) == [
        "‡ one seed so far (no std): not yet the 3 seeds of a published cell (kgin)."]
    assert render.line_cells(small, next(ln for ln in small.lines if ln.model == "gat"))[1] == "gat †"
    assert render.one_seed_note(smoke, smoke.lines) == [] and "‡" not in render.line_cells(smoke, smoke.lines[0])[1]
    # the console's tables say what ‡ means, as the Markdown does (their captions lacked it)
    captions = {rt.title: rt.caption for rt in render.rich_tables(board)}
    assert sum(slow in c and fast in c for c in captions.values()) == 1
    assert sum("‡ one seed so far (no std)" in c for c in captions.values()) == 2
    md = render.to_markdown(board)
    assert [t.dataset for _, t in render.front_tables(board)] == ["ml-1m-kg"]
    assert md.count(slow) == md.count(fast) == 2  # its table and the front page (video)
    assert lb.build(rows).tables[0].one_seed_minutes == 0.0  # the limits come from the caller (build reads nothing)


def test_epoch_counts_print_as_whole_numbers_where_they_are():
    """A one-seed line said "best epoch 111.0"; a mean over seeds keeps its decimal."""
    from kgzoo.bench.leaderboard import Stat
    from kgzoo.bench.render import _count

    assert _count(Stat.of([111])) == "111" and _count(Stat.of([70, 81, 78])) == "76.3"
    assert _count(Stat.of([40, 42])) == "41" and _count(None) == "-"


def test_the_front_page_shows_a_datasets_caveat_and_warm_up():
    """The front page held the table without the dataset's caveat, which the full table below it
    shows: a reader comparing lastfm-social's numbers must see its warm-up there too."""
    rows = [row("bpr", s, 0.16 + s / 100, dataset="lastfm-social") for s in range(3)]
    board = lb.build(rows, caveats=render.dataset_caveats(["lastfm-social"]))
    head = render.to_markdown(board).split("## Published tables")[0]
    assert "### music: lastfm-social" in head and "> **Caveat (lastfm-social):**" in head
    assert "early stopping armed from epoch 100" in head


def test_a_lines_note_is_marked_and_said_below_its_table(tmp_path):
    """A model's zoo config may say what a reader of its line must know on a dataset (RippleNet
    below Pop on lastfm-social with ml-100k-kg's learning rate): the line is marked § and the note
    is given below the front page's and the full table, and in the console caption; other
    datasets' lines of the model are not marked. A broken note names its file and field."""
    from kgzoo.config import ZooConfig

    notes = render.line_notes([("ripplenet", "lastfm-social"), ("ripplenet", "ml-100k-kg"), ("mine", "d1")])
    assert list(notes) == [("ripplenet", "lastfm-social")] and "valid_curve.py" in notes[("ripplenet", "lastfm-social")]
    rows = ([row("ripplenet", s, 0.06, dataset="lastfm-social") for s in range(3)]
            + [row("ripplenet", s, 0.24, dataset="ml-100k-kg") for s in range(3)])
    board = lb.build(rows, line_notes=notes)
    text = render.to_markdown(board)
    front, full = text.split("## Published tables")[0], text.split("## Published tables")[1]
    for part in (front, full):
        assert "| ripplenet § |" in part and part.count("§ ripplenet: below Pop here") == 1
        assert part.count("ripplenet §") == 1  # ml-100k-kg's line has no note
    captions = [t.caption for t in render.rich_tables(board)]
    assert sum("§ ripplenet: below Pop" in (c or "") for c in captions) == 1
    (tmp_path / "ripplenet").mkdir()
    (tmp_path / "ripplenet" / "lastfm-social.yaml").write_text("note: {lastfm-social: 3}\n")
    with pytest.raises(ValueError, match=r"lastfm-social.yaml: note.lastfm-social must be a non-empty string"):
        ZooConfig.load("ripplenet", "lastfm-social", extra_dirs=[tmp_path]).note_for("lastfm-social")


def test_robustness_and_ablation_tables_never_mix_schedules():
    """The committed ablation table of KGPLM on lastfm-social set its tuned converged run (0.1765)
    as `full` beside untuned quick runs capped at 30 epochs and printed use_social=false -0.0092;
    against the quick full model (0.1628) the same run is +0.0044. Each schedule class has its
    own tables; a converged full model with no converged variant makes none."""
    rows = [row("kgplm", s, 0.30, time="2026-12-07T10:00") for s in (0, 1, 2)]  # tuned, converged: newest
    rows += [row("kgplm", s, 0.25, kind="quick", epochs=30, cap=30) for s in (0, 1, 2)]
    rows += [row("kgplm", s, 0.26, kind="quick", epochs=30, cap=30, variant="use_kg=false") for s in (0, 1, 2)]
    rows += [row("kgplm", s, 0.24, kind="quick", kg="shuffled", fp="fpS") for s in (0, 1)]
    rows += [row("bpr", 0, 0.20), row("bpr", 0, 0.19, kg="shuffled", fp="fpS")]  # converged both: its own table
    board = lb.build(rows)
    (ab,) = board.ablations
    assert ab.schedule == lb.QUICK and "quick schedule" in ab.title
    by = {ln["setting"]: ln for ln in ab.lines}
    assert by["full"]["metrics"]["ndcg@10"].mean == pytest.approx(0.25)
    assert by["use_kg=false"]["delta"] == pytest.approx(0.01) and by["kg=shuffled"]["delta"] == pytest.approx(-0.01)
    header, body = render.ablation_cells(ab)
    cells = {r[0]: dict(zip(header, r)) for r in body}
    assert set(cells) == {"full †", "use_kg=false †", "kg=shuffled"} and cells["full †"]["tuned"] == "untuned"
    assert cells["full †"]["cap"] == "30" and cells["kg=shuffled"]["cap"] == "100"
    assert sorted((t.schedule, [ln["model"] for ln in t.lines]) for t in board.robustness) == [
        (lb.CONVERGED, ["kgplm", "bpr"]), (lb.QUICK, ["kgplm"])]
    quick = next(t for t in board.robustness if t.schedule == lb.QUICK)
    assert quick.lines[0]["values"]["real"].mean == pytest.approx(0.25) and "quick schedule" in quick.title
    md = render.to_markdown(board)
    assert "| use_kg=false † | 0.2600 ± 0.0000 | +0.0100 ± 0.0000 |" in md
    assert "| kgplm | 0.2500 ± 0.0000 † | 0.2400 ± 0.0000 |" in md and "| kgplm | 0.3000 ± 0.0000 | - |" in md


def test_paper_and_reference_sources_are_said_once_below_the_table(tmp_path):
    """Below ml-100k-kg the `reference` note repeated "RecBole 1.2.1 X with its default
    hyper-parameters, trained to convergence on the same ml-100k-kg files ..." once per model, and
    no table said where its `paper` numbers came from (nor did the CSV): the shared sentence is
    said once with the models named, the paper's source and setting are given too."""
    def ref(name):
        return {"metrics": {"ndcg@10": 0.29}, "setting": "8:1:1 per user",
                "source": f"RecBole 1.2.1 {name} with its default hyper-parameters, trained on the same files"}
    paper = {"metrics": {"ndcg@10": 0.4}, "source": "Wang et al., KGCN, WWW 2019, table 2 (KGCN-sum)",
             "setting": "CTR, random 6:2:2"}
    rows = [row(m, s, 0.3, reference=ref(name)) for m, name in (("bpr", "BPR"), ("lightgcn", "LightGCN"),
                                                               ("cke", "CKE")) for s in (0, 1)]
    rows += [row("kgcn", s, 0.2, paper=paper, reference={"metrics": {"ndcg@10": 0.1}, "source": "elsewhere"})
             for s in (0, 1)]
    board = lb.build(rows)
    (t,) = board.tables
    notes = render.source_notes(t.lines)
    assert notes == [
        "`paper`: kgcn: Wang et al., KGCN, WWW 2019, table 2 (KGCN-sum) (setting: CTR, random 6:2:2)",
        "`reference`: bpr, cke, lightgcn: RecBole 1.2.1 BPR / CKE / LightGCN (the line's model) with its default "
        "hyper-parameters, trained on the same files (setting: 8:1:1 per user); kgcn: elsewhere"]
    md = render.to_markdown(board)
    assert md.count("with its default hyper-parameters") == 2  # front page and full table, once each
    path = render.write_csv(t, tmp_path / "t.csv")
    import csv as csv_module
    by = {r["model"]: r for r in csv_module.DictReader(path.open())}
    assert by["kgcn"]["paper_source"].startswith("Wang et al.") and by["kgcn"]["paper_setting"] == "CTR, random 6:2:2"
    assert by["bpr"]["reference_setting"] == "8:1:1 per user"


def test_smoke_and_archive_headings_columns_and_timings_are_told_apart(tmp_path):
    """A smoke or archive table had the very heading of the published one ("### ml-100k-kg ·
    random 8:1:1 ..."); `cap`, `eval s`, `peak MB` were explained nowhere; s/epoch printed 24.08
    for GCN on ml-100k-kg, a mean of seeds at 15.16, 30.97 and 26.11 s."""
    rows = [row("gcn", s, 0.30, seconds_per_epoch=v) for s, v in enumerate((15.16, 30.97, 26.11))]
    rows += [row("gcn", 0, 0.10, kind="quick", seconds_per_epoch=2.0)]
    rows += [row("gcn", 0, 0.20, fp="old", time="2026-11-01T00:00")]
    board = lb.build(rows)
    md = render.to_markdown(board)
    title = "d1 · random 8:1:1 per user, full ranking, seen masked"
    assert [x for x in md.splitlines() if x.startswith(f"### {title}")] == [
        f"### {title}", f"### {title} [smoke]", f"### {title} [archive, rows until 2026-11-01]"]
    assert "`cap`, the schedule's epoch limit" in md and "`peak MB`" in md and "`eval s`" in md
    assert "`gauc` is the per-user AUC" in md and "sigmoid(score) > 0.5" in md
    assert "wall-clock on the machine of each row (cpu): the seeds of one published line differ by up to 2.0x" in md
    assert "; lines of at least 0.1 s per epoch)" in md  # the floor: Pop's 2-11 ms seeds on dkn-news differ 6.1x
    pub = board.section(lb.PUBLISHED)[0]
    cells = dict(zip(render.table_columns(pub), render.line_cells(pub, pub.lines[0])))
    assert cells["s/epoch"] == "24 (15-31)" and cells["eval s"] == "0.2"
    assert render.significant(1.39) == "1.4" and render.significant(0.5) == "0.5" and render.significant(1234.5) == "1,234"
    assert render.significant(0.0072) == "<0.01" and render.significant(0.0) == "0"
    assert render._seconds(lb.Stat.of([0.0069, 0.0076])) == "<0.01"
    path = render.write_csv(pub, tmp_path / "t.csv")
    import csv as csv_module
    (line,) = csv_module.DictReader(path.open())
    assert float(line["seconds_per_epoch_min"]) == 15.16 and float(line["seconds_per_epoch_max"]) == 30.97


def test_the_csv_carries_the_notes_of_the_markdown(tmp_path):
    """The CSV of a table lacked what the Markdown says below it: which lines have one seed and
    why (‡), a line's § note, the dataset's caveat, the grid's models not run yet."""
    rows = ([row("bpr", s, 0.30, dataset="ml-1m-kg") for s in range(3)]
            + [row("kgat", 0, 0.28, dataset="ml-1m-kg", cell_seconds=52 * 60.0)]
            # wall time inflated by other work beside it: the CPU seconds decide, as in the Markdown
            + [row("kgin", 0, 0.27, dataset="ml-1m-kg", cell_seconds=3 * 3600.0, cell_cpu_seconds=21 * 60.0)])
    board = lb.build(rows, one_seed_minutes={"ml-1m-kg": 40}, caveats={"ml-1m-kg": "the source's split"},
                     line_notes={("kgin", "ml-1m-kg"): "below Pop"},
                     grids={"ml-1m-kg": (TOPK, ("bpr", "kgat", "kgin", "cke"))})
    (t,) = board.tables
    import csv as csv_module
    by = {r["model"]: r for r in csv_module.DictReader(render.write_csv(t, tmp_path / "t.csv").open())}
    assert (by["kgat"]["one_seed"], by["kgin"]["one_seed"], by["bpr"]["one_seed"]) == (
        "slow (52 min > 40 min)", "so far", "")
    assert by["kgin"]["note"] == "below Pop" and by["bpr"]["note"] == ""
    assert {r["caveat"] for r in by.values()} == {"the source's split"} and {r["pending"] for r in by.values()} == {"cke"}
    assert list(by["bpr"])[-1] == "commits" and by["bpr"]["schedule"] == "converged"


def test_commands_that_differ_only_in_their_models_are_said_once():
    """amazon-hin's `command:` gave the same 130-character command ten times, once per model."""
    tail = "--datasets amazon-hin --seeds 0 1 2 --full --results benchmarks/results --name converged --resume"
    commands = [f"kgzoo bench --models {m} {tail}" for m in ("pop", "bpr", "pop news-plm-mean")]
    commands += ["kgzoo bench --models kgplm --variants use_kg=false", "kgzoo bench"]
    assert render.command_text(commands) == (
        f"`kgzoo bench --models MODELS {tail}` for MODELS = `pop`, `bpr`, `pop news-plm-mean`; "
        "`kgzoo bench --models kgplm --variants use_kg=false`; `kgzoo bench`")
    assert render.command_text([]) == "(not recorded)"
    rows = [row(m, 0, 0.3, command=f"kgzoo bench --models {m} {tail}") for m in ("bpr", "cke")]
    assert render.to_markdown(lb.build(rows)).count(tail) == 1


def test_a_fixed_schedule_line_says_why_it_is_not_ranked():
    """mind-kg's Pop (`kgzoo bench --epochs 10`, a fixed schedule) read "early stop ×1" and had no
    rank, under a note saying that lines whose runs early stopping ended are ranked: it is marked °
    and the footnote says what a fixed schedule is; a capped fixed line keeps its † alone."""
    rows = [row("pop", 0, 0.027, kind="fixed", epochs=2, cap=10), row("bpr", 0, 0.027, kind="fixed", epochs=10, cap=10)]
    rows += [row("cke", s, 0.03) for s in range(2)]
    board = lb.build(rows)
    (t,) = board.tables
    names = {ln.model: render.line_cells(t, ln)[:2] for ln in t.lines}
    assert names == {"cke": ["1", "cke"], "pop": ["-", "pop °"], "bpr": ["-", "bpr †"]}
    md = render.to_markdown(board)
    assert md.count("° a fixed schedule (`kgzoo bench --epochs N`)") == 1 and "| early stop ×1 |" in md
    assert "did not stop at its cap are ranked" in md


def test_a_lines_note_stays_in_the_grid_table_it_speaks_of():
    """PLMRec's note on ml-100k-kg ("below Pop on the warm random split") marked its line in the
    cold-item table too, where it comes first: a zoo config's note is kept in the dataset's grid
    table (its protocol, the real KG), in every section, and not in the tables of other protocols
    or KG ablations; a dataset without a grid keeps it everywhere."""
    cold = {**TOPK, "split": "cold_item"}
    rows = [row("plmrec", s, 0.13) for s in range(2)] + [row("plmrec", 0, 0.1, kind="quick")]
    rows += [row("plmrec", 0, 0.32, fp="cold", protocol=cold), row("plmrec", 0, 0.2, kg="shuffled", fp="fpS")]
    rows += [row("plmrec", 0, 0.2, dataset="d2", fp="cold2", protocol=cold)]
    notes = {("plmrec", "d1"): "below Pop", ("plmrec", "d2"): "mine"}
    board = lb.build(rows, line_notes=notes, grids={"d1": (TOPK, ("plmrec",))})
    noted = sorted((t.dataset, t.section, t.protocol["split"], t.kg_ablation, t.lines[0].note) for t in board.tables)
    assert noted == [("d1", lb.PUBLISHED, "cold_item", "real", ""), ("d1", lb.PUBLISHED, "random", "real", "below Pop"),
                     ("d1", lb.PUBLISHED, "random", "shuffled", ""), ("d1", lb.SMOKE, "random", "real", "below Pop"),
                     ("d2", lb.PUBLISHED, "cold_item", "real", "mine")]


def test_a_line_tuned_with_a_smaller_budget_is_marked(tmp_path):
    """A published line tuned with fewer trials than its table's largest budget (a user's model
    with 3 trials beside 10-trial baselines, an untuned baseline beside tuned ones) is marked ≠ with
    its trials below the table, in the console caption and the CSV's ``under_budget``: ranked or not,
    it is not an equal comparison (issue 16, part 1). A closed-form line (nothing to tune) and the
    smoke tables are never marked."""
    import csv

    def tuned(trials: int) -> dict:
        return {"trials": trials, "budget": {"trials": trials, "max_epochs": 300, "patience": 10},
                "chosen": {"lr": 1e-3}}

    rows = ([row("bpr", s, 0.30, tuning=tuned(10)) for s in range(3)]
            + [row("mine", s, 0.31, tuning=tuned(3)) for s in range(3)]
            + [row("kgcn", s, 0.20) for s in range(3)]
            + [row("pop", s, 0.10, stopped_by="closed_form", epochs=1, cap=1) for s in range(3)]
            + [row("bpr", 0, 0.9, kind="quick"), row("mine", 0, 0.9, kind="quick", tuning=tuned(3))])
    board = lb.build(rows)
    tables = {t.section: t for t in board.tables}
    t, smoke = tables[lb.PUBLISHED], tables[lb.SMOKE]
    lines = {ln.model: ln for ln in t.lines}
    assert (lines["bpr"].trials, lines["mine"].trials, lines["kgcn"].trials, lines["pop"].trials) == (10, 3, 0, None)
    assert t.budget == 10 and [m for m in lines if t.under_budget(lines[m])] == ["mine", "kgcn"]
    names = {ln.model: render.line_cells(t, ln)[1] for ln in t.lines}
    assert names == {"mine": "mine ≠", "bpr": "bpr", "kgcn": "kgcn ≠", "pop": "pop"}
    note = ("≠ tuned with fewer trials than this table's largest budget (10 trials): mine: 3, kgcn: untuned; "
            "not an equal tuning budget, so its rank against the others is not a fair comparison.")
    assert render.budget_text(t, t.lines) == note and render.budget_text(t, [lines["bpr"]]) == ""
    assert not any("≠" in render.line_cells(smoke, ln)[1] for ln in smoke.lines)
    md = render.to_markdown(board)
    assert md.count(note) == 2  # its table and the front page
    assert any(note in rt.caption for rt in render.rich_tables(board))
    path = render.write_csv(t, tmp_path / "t.csv")
    got = {r["model"]: r["under_budget"] for r in csv.DictReader(path.open(encoding="utf-8"))}
    assert got == {"mine": "3 < 10", "bpr": "", "kgcn": "0 < 10", "pop": ""}


def test_a_line_tuned_on_trials_shorter_than_its_runs_is_marked(tmp_path):
    """A user's model tuned with 10 trials of 3 epochs each (the README's short try) and then run to
    convergence read "tuned (10 trials + defaults)", ranked beside baselines whose trials ran the
    300-epoch schedule, unmarked: its rows' ``tuning.budget`` says the trials' cap, and a line whose
    trials ran a shorter cap or patience than its runs is marked ≠ with both schedules. Values tuned
    on another dataset (``tuned: {from: ...}``, their own label) are not judged by this dataset's cap."""
    import csv

    def tuned(cap: int, patience: int = 10, **more) -> dict:
        return {"trials": 10, "budget": {"trials": 10, "max_epochs": cap, "patience": patience},
                "chosen": {"lr": 1e-3}, "default": {"state": "COMPLETE"}, **more}

    rows = ([row("bpr", s, 0.30, cap=300, tuning=tuned(300)) for s in range(3)]
            + [row("mine", s, 0.31, cap=300, tuning=tuned(3)) for s in range(3)]
            + [row("kgat", s, 0.29, cap=300, tuning=tuned(300, patience=5)) for s in range(3)]
            + [row("kgin", s, 0.28, cap=1000, tuning=tuned(300, dataset="d0")) for s in range(3)])
    (t,) = lb.build(rows).tables
    lines = {ln.model: ln for ln in t.lines}
    assert lines["mine"].tuned == "tuned (10 trials + defaults)" and lines["mine"].rank is not None
    assert [m for m in lines if t.under_budget(lines[m])] == ["mine", "kgat"]
    assert lines["mine"].tuned_short == "trials up to 3 epochs, runs up to 300"
    assert lines["kgat"].tuned_short == "trials up to 300 epochs, runs up to 300, patience 5 < 10"
    assert render.line_cells(t, lines["mine"])[1] == "mine ≠" and render.line_cells(t, lines["bpr"])[1] == "bpr"
    assert render.budget_text(t, t.lines) == (
        "≠ tuned on trials of a shorter schedule than its runs: mine: trials up to 3 epochs, runs up to 300, "
        "kgat: trials up to 300 epochs, runs up to 300, patience 5 < 10; not an equal tuning budget, so its rank "
        "against the others is not a fair comparison.")
    path = render.write_csv(t, tmp_path / "t.csv")
    got = {r["model"]: r["under_budget"] for r in csv.DictReader(path.open(encoding="utf-8"))}
    assert got["mine"] == "trials up to 3 epochs, runs up to 300" and got["bpr"] == got["kgin"] == ""
    # fewer trials and a shorter schedule: both said
    rows += [row("cke", s, 0.27, cap=300, tuning={**tuned(3), "trials": 2}) for s in range(3)]
    (t,) = lb.build(rows).tables
    assert render.budget_text(t, t.lines).startswith(
        "≠ tuned with fewer trials than this table's largest budget (10 trials): cke: 2; "
        "tuned on trials of a shorter schedule than its runs: ")
    cke = next(ln for ln in t.lines if ln.model == "cke")
    assert render.under_budget_text(t, cke) == "2 < 10; trials up to 3 epochs, runs up to 300"


def test_a_row_with_nothing_to_train_written_before_closed_form_has_nothing_to_tune():
    """Pop's rows written before ``stopped_by: closed_form`` existed (mind-kg's fixed-schedule Pop
    reads "early stop ×1", the quick ones "cap") have no trainable parameter (``params == 0``):
    beside tuned lines it was "untuned" and marked ≠, as if a budget had been withheld from it."""
    frm = {"trials": 10, "budget": {"trials": 10}, "chosen": {"lr": 1e-3}}
    rows = [row("bpr", s, 0.30, tuning=frm) for s in range(3)] + [row("pop", s, 0.10, params=0) for s in range(3)]
    (t,) = lb.build(rows).tables
    pop = next(ln for ln in t.lines if ln.model == "pop")
    assert pop.tuned == "nothing to tune" and pop.trials is None and not t.under_budget(pop)
    assert render.line_cells(t, pop)[1] == "pop" and render.budget_text(t, t.lines) == ""
    # a failed-to-measure row (params unknown) is not taken for one with nothing to train
    assert lb.tuned_text([row("bpr", 0, 0.3, params=None)]) == "untuned"


def test_the_budget_note_of_a_line_with_tuned_and_untuned_runs_says_mixed():
    """A line whose seed 0 ran before ``kgzoo tune`` wrote its config and seeds 1-2 after it reads
    "mixed" in its `tuned` column; the ≠ note called it "untuned", which its column contradicts."""
    frm = {"trials": 10, "budget": {"trials": 10}, "chosen": {"lr": 1e-3}}
    rows = [row("bpr", s, 0.30, tuning=frm) for s in range(3)]
    rows += [row("kgat", 0, 0.2)] + [row("kgat", s, 0.2, tuning=frm) for s in (1, 2)]
    rows += [row("cke", s, 0.2) for s in range(3)]
    (t,) = lb.build(rows).tables
    assert {ln.model: ln.tuned for ln in t.lines}["kgat"] == "mixed"
    assert render.budget_text(t, t.lines).startswith(
        "≠ tuned with fewer trials than this table's largest budget (10 trials): "
        "cke: untuned, kgat: 0 (mixed: the fewest of its runs);")


def test_a_run_near_the_one_seed_limit_is_not_said_to_equal_it():
    """A one-seed run of 40.3 min on a set with a 40-min limit read "slow (40 min > 40 min)" and
    "takes over 40 min ... (the run: kgat: 40 min)"; one of 39.6 min "its run took 40 min, within
    the 40 min": the minutes print with the digits that tell them from the limit."""
    rows = [row("kgat", 0, 0.2, dataset="ml-1m-kg", cell_cpu_seconds=40.3 * 60),
            row("kgin", 0, 0.1, dataset="ml-1m-kg", cell_cpu_seconds=39.6 * 60)]
    (t,) = lb.build(rows, one_seed_minutes={"ml-1m-kg": 40}).tables
    lines = {ln.model: ln for ln in t.lines}
    assert render.one_seed_reason(t, lines["kgat"]) == "slow (40.3 min > 40 min)"
    assert render.one_seed_reason(t, lines["kgin"]) == "so far"
    note = " ".join(render.one_seed_note(t, t.lines))
    assert "(the run: kgat: 40.3 min)" in note and "kgin: its run took 39.6 min, within the 40 min" in note
    assert render.minutes_text(52.4, 40) == "52" and render.minutes_text(40.04, 40) == "40.04"


def test_an_ablations_delta_carries_its_standard_error_over_seeds():
    """``Δ vs full`` is given with the standard error of the difference of the two means over
    seeds (``sqrt(s1²/n1 + s2²/n2)``), so a difference within seed noise reads as such (KGPLM's
    converged ablation on ml-100k-kg: +0.0014 ± 0.0047 without its text); with one seed on a side
    there is none."""
    full = [row("kgplm", s, v) for s, v in enumerate((0.30, 0.31, 0.29))]
    text = [row("kgplm", s, v, variant="use_text=false", overrides={"use_text": False})
            for s, v in enumerate((0.305, 0.296, 0.301))]
    one = [row("kgplm", 0, 0.25, variant="use_kg=false", overrides={"use_kg": False})]
    (a,) = lb.build(full + text + one).ablations
    lines = {ln["setting"]: ln for ln in a.lines}
    f, t = lines["full"]["metrics"]["ndcg@10"], lines["use_text=false"]["metrics"]["ndcg@10"]
    se = math.sqrt(f.std ** 2 / 3 + t.std ** 2 / 3)
    assert lines["use_text=false"]["delta_se"] == pytest.approx(se) and se > 0
    assert lines["use_kg=false"]["delta_se"] is None and lb.delta_se(f, None) is None
    cells = {r[0]: r[2] for r in render.ablation_cells(a)[1]}
    assert cells["use_text=false"] == f"{t.mean - f.mean:+.4f} ± {se:.4f}"
    assert cells["use_kg=false"] == f"{0.25 - f.mean:+.4f}" and cells["full"] == "-"


def test_a_closed_form_line_is_never_capped():
    """Pop's quick rows written before ``closed_form`` existed read ``stopped_by: cap`` after their
    one pass (``params == 0``): fitted, not cut short, so no † (the smoke tables marked them); a
    trained model stopped at its cap still is."""
    rows = [row("pop", s, 0.14, kind="quick", stopped_by="cap", epochs=1, cap=1, params=0) for s in range(3)]
    rows += [row("bpr", s, 0.29, kind="quick", stopped_by="cap", epochs=30, cap=30, params=100) for s in range(3)]
    (t,) = lb.build(rows).tables
    lines = {ln.model: ln for ln in t.lines}
    assert not lines["pop"].capped and lines["bpr"].capped
    assert render.line_cells(t, lines["pop"])[1] == "pop" and render.line_cells(t, lines["bpr"])[1] == "bpr †"


def test_values_tuned_under_another_fingerprint_say_so():
    """A config tuned on this dataset's random split and run on its cold-item split (another
    fingerprint than the study's, named in ``tuning.study``) reads "tuned on d1 under another
    fingerprint", not "tuned": the table's own protocol was never tuned. Its own split's rows, a
    KG ablation of it (the full model's values by design) and a record without a study name keep
    the plain text."""
    rec = {"trials": 10, "budget": {"trials": 10}, "chosen": {"lr": 1e-3}, "study": "kgplm/d1/fpA/abc/seed0"}
    warm = [row("kgplm", s, 0.30, tuning=rec) for s in range(3)]
    cold = [row("kgplm", s, 0.20, fp="fpC", pfp="pC", protocol={"split": "cold_item"}, tuning=rec) for s in range(3)]
    shuffled = [row("kgplm", s, 0.29, fp="fpS", kg="shuffled", tuning=rec) for s in range(3)]
    old = [row("bpr", s, 0.28, fp="fpC", pfp="pC", protocol={"split": "cold_item"},
               tuning={k: v for k, v in rec.items() if k != "study"}) for s in range(3)]
    assert [lb.tuned_elsewhere(r) for r in (warm[0], cold[0], shuffled[0], old[0])] == [False, True, False, False]
    assert lb.tuned_text(warm) == lb.tuned_text(shuffled) == lb.tuned_text(old) == "tuned (10 trials)"
    assert lb.tuned_text(cold) == "tuned on d1 under another fingerprint (10 trials)"
    tables = {(t.protocol.get("split"), t.kg_ablation): t for t in lb.build(warm + cold + shuffled + old).tables}
    cold_lines = {ln.model: ln.tuned for ln in tables["cold_item", "real"].lines}
    assert cold_lines == {"kgplm": "tuned on d1 under another fingerprint (10 trials)", "bpr": "tuned (10 trials)"}


def test_a_reference_shows_in_the_grid_table_only():
    """A row's ``reference`` (RecBole's converged number on the dataset's own protocol) is shown in
    the dataset's grid table, not beside the same model in a table of another protocol (the
    converged cold-item table showed BPR's warm-split 0.2928 beside its cold-item 0.0881), nor of a
    KG ablation; without a grid for the dataset every table keeps it."""
    ref = {"metrics": {"ndcg@10": 0.2928}, "source": "RecBole", "setting": "random 8:1:1"}
    warm = [row("bpr", s, 0.29, reference=ref) for s in range(3)]
    cold = [row("bpr", s, 0.09, fp="fpC", pfp="pC", protocol={**TOPK, "split": "cold_item"}, reference=ref)
            for s in range(3)]
    shuffled = [row("bpr", s, 0.28, fp="fpS", kg="shuffled", reference=ref) for s in range(3)]
    grid = {"d1": (TOPK, ("bpr",))}
    refs = {(t.protocol.get("split"), t.kg_ablation): t.lines[0].reference
            for t in lb.build(warm + cold + shuffled, grids=grid).tables}
    assert refs == {(TOPK.get("split"), "real"): 0.2928, ("cold_item", "real"): None, (TOPK.get("split"), "shuffled"): None}
    assert all(t.lines[0].reference == 0.2928 for t in lb.build(warm + cold + shuffled).tables)


def test_the_front_page_takes_a_datasets_grid_table_over_a_larger_one_of_another_protocol():
    """dkn-news's validation split became carved by title (session 17): its tables under the old
    protocol (five ranked lines) stay published as that protocol's, but the front page shows the
    table of the catalogue's protocol today (the grid's) as soon as it has a ranked line."""
    ctr = {**TOPK, "task": "ctr", "split": "given"}
    new = {**ctr, "valid_split": "cold_item"}
    old_rows = [row(m, s, 0.55 + i / 100, dataset="dkn-news", task="ctr", protocol=ctr, pfp="pOld", fp="fpOld")
                for i, m in enumerate(("pop", "dkn", "nrms", "nrms-plm", "kgplm-news")) for s in range(3)]
    new_rows = [row("pop", s, 0.5, dataset="dkn-news", task="ctr", protocol=new, pfp="pNew", fp="fpNew",
                    time="2026-12-08T10:00") for s in range(3)]
    grids = {"dkn-news": (new, ("pop", "dkn"))}
    board = lb.build(old_rows + new_rows, grids=grids)
    assert len(board.section(lb.PUBLISHED)) == 2  # the old protocol's table is still published as its own
    ((domain, t),) = render.front_tables(board)
    assert (domain, t.protocol["valid_split"], [ln.model for ln in t.lines]) == ("news", "cold_item", ["pop"])
    # without the grid table, the old protocol's table is the domain's front table
    ((_, t),) = render.front_tables(lb.build(old_rows, grids=grids))
    assert "valid_split" not in t.protocol and len(t.lines) == 5


def test_a_retired_protocols_tables_go_to_the_archive_with_the_reason():
    """A protocol that was a dataset's default before it changed (the catalogue's
    ``retired_protocols``: dkn-news's validation split carved per user) keeps its rows, true for
    that protocol, but no longer makes the dataset's published table: its tables, current
    fingerprint included, are archived with the reason, in the Markdown too."""
    ctr = {**TOPK, "task": "ctr", "split": "given"}
    new = {**ctr, "valid_split": "cold_item"}
    old_rows = [row(m, s, 0.55, dataset="dkn-news", task="ctr", protocol=ctr, pfp="pOld", fp="fpOld")
                for m in ("pop", "dkn") for s in range(3)]
    older = [row("dkn", 0, 0.6, dataset="dkn-news", task="ctr", protocol=ctr, fp="fpOlder", time="2026-11-01T10:00")]
    new_rows = [row("pop", s, 0.5, dataset="dkn-news", task="ctr", protocol=new, fp="fpNew", time="2026-12-08T10:00")
                for s in range(3)]
    why = "valid carved per user until session 17"
    board = lb.build(old_rows + older + new_rows, grids={"dkn-news": (new, ("pop", "dkn"))},
                     retired={"dkn-news": [(ctr, why)]})
    (pub,) = board.section(lb.PUBLISHED)
    assert pub.protocol == new and pub.retired == "" and pub.pending == ["dkn"]
    archived = board.section(lb.ARCHIVE)
    assert sorted(t.fingerprints[0] for t in archived) == ["fpOld", "fpOlder"] and {t.retired for t in archived} == {why}
    md = render.to_markdown(board)
    assert md.split("## Archive")[1].count(f"**Retired protocol (dkn-news):** {why}") == 2
    assert why not in md.split("## Archive")[0]
    # without the catalogue's word the old protocol's table stays published as its own
    assert len(lb.build(old_rows + new_rows, grids={"dkn-news": (new, ("pop", "dkn"))}).section(lb.PUBLISHED)) == 2
    # the catalogue's protocols as rows record them
    assert render.dataset_retired(["dkn-news", "ml-100k-kg"])["dkn-news"][0][0]["split"] == "given"
    assert "ml-100k-kg" not in render.dataset_retired(["dkn-news", "ml-100k-kg"])


def test_a_fixed_epochs_run_never_replaces_a_converged_seed():
    """``kgzoo bench --epochs 2`` rows built with ``--with-published``: the 2-epoch seed 0 is a line
    of its own, not seed 0 of the published converged line (which became 'cap ×1, early stop ×2',
    unranked, its mean pulled down by the 2-epoch run), and the run table says 'other schedule'."""
    published = [row("bpr", s, 0.30 + s / 100) for s in (0, 1, 2)]
    mine = row("bpr", 0, 0.01, kind="fixed", epochs=2, cap=2, time="2026-12-07T23:55")
    (table,) = lb.build(published + [mine]).section(lb.PUBLISHED)
    lines = {ln.name: ln for ln in table.lines}
    assert sorted(lines) == ["bpr", "bpr (--epochs 2)"]
    assert lines["bpr"].seeds == [0, 1, 2] and lines["bpr"].rank == 1
    assert lines["bpr"].metrics["ndcg@10"].mean == pytest.approx(0.31)
    assert lines["bpr (--epochs 2)"].seeds == [0] and lines["bpr (--epochs 2)"].rank is None
    stat, same = render.reference_value(mine, published)
    assert not same and stat.mean == pytest.approx(0.31)
    # alone in its table (no converged row of the model) a fixed line keeps its plain name
    assert [ln.name for ln in lb.build([mine]).section(lb.PUBLISHED)[0].lines] == ["bpr"]
    # nor do the KG robustness tables mix them: the converged real column stays the 3 seeds' mean
    shuffled = [row("bpr", s, 0.2, kg="shuffled", fp="fpS") for s in (0, 1, 2)]
    board = lb.build(published + shuffled + [mine, row("bpr", 0, 0.02, kg="shuffled", fp="fpS", kind="fixed",
                                                       epochs=2, cap=2, time="2026-12-07T23:56")])
    by_kind = {t.schedule: t for t in board.robustness}
    assert sorted(by_kind) == ["converged", "fixed"]
    assert by_kind["converged"].lines[0]["values"]["real"].mean == pytest.approx(0.31)
    assert by_kind["fixed"].title.endswith("fixed schedule (kgzoo bench --epochs N)")


def test_catalogue_texts_shown_under_tables_speak_to_readers():
    """A caveat or retired-protocol reason is printed under every table of its dataset: it names
    a date, not the project's internal work sessions ("until session 17"), and a claim about one
    table (book-crossing-kg's "Pop ranks first") names the protocol it holds for, since the
    require_train_positive table below it has no Pop line."""
    from kgzoo.data.datasets import dataset_spec, list_datasets

    for name in list_datasets():
        spec = dataset_spec(name)
        texts = [spec.caveat or ""] + [why for _, why in (spec.retired_protocols or ())]
        assert not any(re.search(r"\bsession \d+", t) for t in texts), name
    assert "Pop ranks first on the default protocol" in dataset_spec("book-crossing-kg").caveat


def test_a_subclass_on_its_parents_config_is_not_read_as_tuned():
    """A registered subclass without a zoo config of its own runs its parent's (README, "Your own
    code in the grid"): its rows carry the parent's tuning record, which the line read as
    "tuned (10 trials + defaults)" beside the baselines, never flagged as under budget."""
    tuning = {"trials": 10, "default": {"state": "COMPLETE"}, "dataset": "d1", "study": "bpr/d1/fpA/cfg/seed0"}
    board = lb.build([row("bpr", s, 0.3, tuning=tuning) for s in (0, 1, 2)]
                     + [row("bpr-sub", s, 0.3, tuning=tuning) for s in (0, 1, 2)])
    (table,) = board.section(lb.PUBLISHED)
    lines = {ln.model: ln for ln in table.lines}
    assert lines["bpr"].tuned == "tuned (10 trials + defaults)" and lines["bpr"].trials == 10
    assert lines["bpr-sub"].tuned == "untuned: bpr's tuned values (10 trials + defaults)"
    assert lines["bpr-sub"].trials == 0 and table.under_budget(lines["bpr-sub"])
    assert "bpr-sub: untuned;" in render.budget_text(table, table.lines)
