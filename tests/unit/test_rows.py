"""kgzoo.bench.rows: the versioned ResultRow, the schema-1 upgrade, the JSON-lines file helpers.

``fixtures/rows_v1/<file>.jsonl`` are schema-1 rows copied verbatim from each committed
``benchmarks/results/<file>.jsonl`` before its migration (first and last row of each file, every
failed row, a link-prediction row planned under another fingerprint, a ``--epochs`` row).
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path, PurePath

import pytest

from kgzoo.bench.experiment import command_line
from kgzoo.bench.rows import (NO_TIME, SCHEMA_VERSION, ResultRow, append_line, append_row, dump_row, protocol_label,
                              read_folder, read_rows, upgrade_v1)

FIXTURES = Path(__file__).parent / "fixtures" / "rows_v1"
V1_FILES = sorted(FIXTURES.glob("*.jsonl"))
REPO = Path(__file__).resolve().parents[2]


def v1_rows() -> list[tuple[str, dict]]:
    return [(f"{f.name}:{i}", json.loads(line)) for f in V1_FILES
            for i, line in enumerate(f.read_text().splitlines(), 1) if line.strip()]


def assert_keeps_every_value(old: dict, new: ResultRow) -> None:
    """Every key of a schema-1 row is found, with its value, in the upgraded row."""
    d = new.to_dict()
    for k, v in old.items():
        if k == "bench":
            assert d["command"] == v["command"]
            assert d["schedule"]["max_epochs"] == v["max_epochs"]
            assert (d["schedule"]["kind"] == "quick") == v["quick"]
            assert d["extra"]["bench"] == {x: y for x, y in v.items() if x not in ("command", "max_epochs", "quick")}
        elif k == "cell_fingerprint":
            assert (d["cell_fingerprint"] or d["fingerprint"]) == v
        elif k == "wall_seconds":
            assert d["cell_seconds"] == v
        elif k in ("config", "checkpoint") and v is not None:
            assert not PurePath(d[k]).is_absolute() and v.endswith("/" + d[k]), (k, v, d[k])
        elif k in d and k != "extra":
            assert d[k] == v, k
        else:
            assert d["extra"][k] == v, k


def test_fixtures_cover_every_committed_results_file():
    names = {f.name for f in V1_FILES}
    assert len(names) == 9 and "bench.jsonl" in names and "link_prediction.jsonl" in names
    for _, old in v1_rows():
        assert "schema" not in old  # genuinely schema 1


@pytest.mark.parametrize("where,old", v1_rows(), ids=[w for w, _ in v1_rows()])
def test_v1_row_upgrades_round_trips_and_keeps_every_value(where, old):
    row = ResultRow.from_dict(old, where=where)
    assert row.schema == SCHEMA_VERSION == 2
    assert_keeps_every_value(old, row)
    line = dump_row(row)
    without_traceback = json.dumps({**row.to_dict(), "traceback": None})  # a traceback is text, kept as written
    assert "/work/" not in without_traceback and "/tmp/" not in without_traceback  # no machine path survives
    again = ResultRow.from_dict(json.loads(line))
    assert again == row and again.to_dict() == row.to_dict()
    assert row.key()[:5] == (old["model"], old["dataset"], old["seed"], old["kg_ablation"],
                             old.get("variant", "base"))


def test_upgrade_details():
    rows = {w: ResultRow.from_dict(o) for w, o in v1_rows()}
    first = rows["ablation.jsonl:1"]
    assert first.config == "kgplm/ml-100k-kg.yaml"
    assert first.checkpoint == "ml-100k-kg/kgplm/seed0-real-use_kg-False/checkpoints/best.ckpt"
    assert first.schedule == {"kind": "quick", "max_epochs": 60, "patience": None, "monitor": "valid/ndcg@10"}
    assert first.epochs == 60 and first.stopped_by == "cap" and not first.is_published()
    assert first.protocol_label == "random 8:1:1 per user, full ranking, seen masked"
    assert first.num_nodes == 1 and first.extra == {"bench": {"results": "ablation.jsonl"}}
    link = rows["link_prediction.jsonl:1"]
    assert link.schedule["kind"] == "fixed" and link.schedule["max_epochs"] is None and link.stopped_by is None
    assert link.cell_seconds == pytest.approx(870.1053228380001) and link.variant == "base"
    assert link.checkpoint == "ml-100k-kg/transe/seed0-real/checkpoints/best.ckpt"
    planned = [r for r in rows.values() if r.cell_fingerprint]
    assert planned and all(r.cell_fingerprint != r.fingerprint and r.key()[5] == r.cell_fingerprint for r in planned)
    failed = [r for r in rows.values() if r.status == "failed"]
    assert len(failed) == 3 and all(r.stopped_by is None and r.error and r.metrics == {} for r in failed)
    fixed = [r for r in rows.values() if "--epochs" in r.command]
    assert fixed and all(r.schedule["kind"] == "fixed" for r in fixed)
    repro = rows["reproduce-kgcn-lastfm-kg.jsonl:1"]
    assert repro.schedule["kind"] == "converged" and repro.stopped_by == "cap"  # 10 of 10 epochs
    assert repro.protocol_label == "ctr, random 6:2:2 of rows, AUC/F1 on labelled pairs"
    early = [r for r in rows.values() if r.status == "ok" and r.epochs < (r.schedule["max_epochs"] or 0)]
    assert early and all(r.stopped_by == "early_stopping" for r in early)


def test_upgrade_keeps_unknown_keys_in_extra():
    _, old = v1_rows()[0]
    d = upgrade_v1({**old, "mystery": [1, 2], "extra": {"x": 1}})
    assert d["extra"]["mystery"] == [1, 2] and d["extra"]["extra"] == {"x": 1}
    assert ResultRow.from_dict(d).extra["mystery"] == [1, 2]


def _row(**kw) -> ResultRow:
    base = dict(model="bpr", dataset="ml-100k-kg", seed=0, fingerprint="f" * 64, task="topk",
                schedule={"kind": "converged", "max_epochs": 300, "patience": 10, "monitor": "valid/ndcg@10"},
                epochs=40, stopped_by="early_stopping", metrics={"test/ndcg@10": 0.3})
    return ResultRow(**{**base, **kw})


def test_is_published_and_key():
    assert _row().is_published()
    assert not _row(stopped_by="cap").is_published()
    assert not _row(status="failed").is_published()
    assert not _row(schedule={"kind": "quick", "max_epochs": 4, "patience": 10, "monitor": ""}).is_published()
    assert _row().key() != _row(devices=2, strategy="ddp").key()  # DDP rows are other cells
    assert _row().key() != _row(num_nodes=2).key()
    assert _row().key() == _row(metrics={"test/ndcg@10": 0.1}).key()


@pytest.mark.parametrize("bad,match", [
    (dict(status="done"), "status"), (dict(stopped_by="patience"), "stopped_by"),
    (dict(checkpoint="/abs/best.ckpt"), "checkpoint '/abs/best.ckpt' must be a relative path"),
    (dict(config="/work/zoo_configs/bpr/default.yaml"), "config"),
    (dict(schedule={"kind": "long"}), "schedule.kind"), (dict(metrics={"test/auc": "0.7"}), "not a number"),
    (dict(time="yesterday"), "time 'yesterday' is not an ISO 8601 time"),
])
def test_bad_values_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        _row(**bad)


def test_written_at_is_the_utc_instant_of_time():
    """Rows carry their machine's UTC offset: the instant orders them, not the text."""
    assert _row(time="2026-12-07T05:30:00-0500").written_at > _row(time="2026-12-07T10:00:00+0000").written_at
    # no offset: UTC
    assert _row(time="2026-12-07T10:00").written_at == _row(time="2026-12-07T10:00:00+0000").written_at
    assert _row(time="").written_at == NO_TIME < _row(time="2026-01-01").written_at


def test_a_rows_time_reads_under_python_3_10s_fromisoformat(monkeypatch):
    """kgzoo runs on Python >= 3.10 (pyproject), whose ``datetime.fromisoformat`` reads only what
    ``isoformat()`` writes: an offset with a colon (``+00:00``), no ``Z``. Every row's time is
    ``time.strftime`` with ``%z`` (``+0000``), so reading it with ``fromisoformat`` alone refused
    every row there, the committed ones included (544 of 544 under CPython 3.10.13). Here
    ``fromisoformat`` is held to 3.10's reading; the rows' own form still reads, and orders."""
    from datetime import datetime, timezone

    from kgzoo.bench import rows as rows_module

    class Python310Datetime(datetime):
        @classmethod
        def fromisoformat(cls, text: str) -> datetime:
            if re.search(r"(Z|[+-]\d{4})$", text):
                raise ValueError(f"Invalid isoformat string: {text!r}")
            return datetime.fromisoformat(text)

    monkeypatch.setattr(rows_module, "datetime", Python310Datetime)
    utc = timezone.utc
    assert rows_module.parse_time("2026-12-07T10:00:00+0000") == datetime(2026, 12, 7, 10, tzinfo=utc)
    assert rows_module.parse_time("2026-12-07T05:30:00-0500") == datetime(2026, 12, 7, 10, 30, tzinfo=utc)
    assert rows_module.parse_time("2026-12-07T10:00:00Z") == rows_module.parse_time("2026-12-07T10:00:00+00:00")
    assert rows_module.parse_time("2026-12-07T10:00") == datetime(2026, 12, 7, 10, tzinfo=utc)  # no offset: UTC
    written = rows_module.row_time()  # what assemble_row writes on this machine
    assert _row(time=written).written_at == rows_module.parse_time(written)
    assert _row(time="2026-12-07T05:30:00-0500").written_at > _row(time="2026-12-07T10:00:00+0000").written_at
    with pytest.raises(ValueError, match="not an ISO 8601 time"):
        _row(time="7 Dec 2026")


def test_a_rows_time_is_written_with_an_offset_on_every_platform(monkeypatch):
    """``time.strftime("%z")`` is the C library's: on Windows it writes the zone's name
    ("Pacific Standard Time", CPython issue 82232), and a row's time that is no ISO 8601 time is
    refused (ResultRow), so no row could be written there. ``row_time`` takes the offset from
    Python (``datetime.strftime`` of an aware time); here ``time.strftime`` is Windows' in that."""
    import time

    from kgzoo.bench.rows import TIME_FORMAT, parse_time, row_time

    real = time.strftime
    monkeypatch.setattr(time, "strftime", lambda fmt, *t: real(fmt.replace("%z", "Pacific Standard Time"), *t))
    written = row_time()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", written), written
    assert abs((parse_time(written) - parse_time(real(TIME_FORMAT))).total_seconds()) < 5
    assert _row(time=written).written_at == parse_time(written)


def test_from_dict_errors_name_where():
    d = _row().to_dict()
    with pytest.raises(ValueError, match=r"x.jsonl:3: schema 3"):
        ResultRow.from_dict({**d, "schema": 3}, where="x.jsonl:3")
    with pytest.raises(ValueError, match=r"x.jsonl:4: unknown field\(s\) 'bogus'"):
        ResultRow.from_dict({**d, "bogus": 1}, where="x.jsonl:4")
    with pytest.raises(ValueError, match=r"missing field\(s\) 'fingerprint'"):
        ResultRow.from_dict({k: v for k, v in d.items() if k != "fingerprint"})
    with pytest.raises(ValueError, match="JSON object"):
        ResultRow.from_dict([1, 2])


def test_protocol_labels():
    assert protocol_label({"task": "topk", "split": "temporal", "ratios": [0.8, 0.1, 0.1], "k_core": 5,
                           "threshold": 4}) == "temporal 8:1:1 per user, full ranking, seen masked, ratings >= 4, 5-core"
    assert protocol_label({"task": "ctr", "split": "random", "ratios": [0.6, 0.2, 0.2],
                           "require_train_positive": True}).endswith("require_train_positive")
    assert protocol_label({"task": "topk", "split": "cold_item", "ratios": [0.7, 0.15, 0.15]}) == \
        "cold items 70:15:15, ranking each stage's cold items"
    assert protocol_label({"task": "topk", "split": "loo"}).startswith("leave-one-out")
    assert protocol_label({"task": "topk"}, task="link").startswith("KG link prediction")


def test_append_and_read_rows(tmp_path):
    path = tmp_path / "sub" / "r.jsonl"
    assert read_rows(path) == []
    append_row(path, _row(seed=0))
    with open(path, "a") as f:  # a crash in the middle of a write
        f.write('{"model": "bp')
    assert [r.seed for r in read_rows(path)] == [0]  # the torn last line is ignored
    append_row(path, _row(seed=1))  # starts a fresh line after the torn one
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["seed"] == 1
    with pytest.raises(ValueError, match=r"r.jsonl:2: not a JSON line"):
        read_rows(path)  # the torn line is no longer the last
    with pytest.raises(ValueError, match="without a newline"):
        append_line(path, '{"a": 1}\n{"b": 2}')


def test_read_rows_names_file_and_line_of_a_bad_row(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(dump_row(_row()) + "\n" + json.dumps({**_row().to_dict(), "status": "?"}) + "\n")
    with pytest.raises(ValueError, match=r"r.jsonl:2: .*status '\?'"):
        read_rows(path)


# ---------------------------------------------------------------------------- the migration
def _migrate_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("migrate_rows", REPO / "scripts" / "migrate_rows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_migrate_script_is_lossless_and_idempotent(tmp_path, capsys):
    import shutil

    files = []
    for f in V1_FILES:
        shutil.copy(f, tmp_path / f.name)
        files.append(tmp_path / f.name)
    assert _migrate_script().main([str(f) for f in files]) == 0
    out = capsys.readouterr().out
    for f in V1_FILES:
        n = len(f.read_text().splitlines())
        assert f"{f.name}: {n} rows in, {n} rows out" in out
        olds = [json.loads(line) for line in f.read_text().splitlines()]
        news = [json.loads(line) for line in (tmp_path / f.name).read_text().splitlines()]
        assert len(olds) == len(news) and all(d["schema"] == 2 for d in news)
        for old, new in zip(olds, news):
            assert new["metrics"] == old.get("metrics", {}) and new["valid_metrics"] == old.get("valid_metrics", {})
            assert_keeps_every_value(old, ResultRow.from_dict(new))
    before = {f: f.read_bytes() for f in files}
    assert _migrate_script().main([str(f) for f in files]) == 0
    assert {f: f.read_bytes() for f in files} == before  # a second run changes nothing


def test_migrate_refuses_a_torn_file_and_leaves_it(tmp_path, capsys):
    f = tmp_path / "torn.jsonl"
    text = (V1_FILES[0].read_text().splitlines()[0] + "\n") + '{"model": "b'
    f.write_text(text)
    assert _migrate_script().main([str(f)]) == 1
    assert "torn.jsonl" in capsys.readouterr().err and f.read_text() == text


#: main before the migration: every committed row then was schema 1
PRE_MIGRATION = "439f8f1"


def test_committed_rows_are_schema_2_and_keep_every_pre_migration_value():
    import subprocess

    results = REPO / "benchmarks" / "results"
    files = sorted(results.glob("*.jsonl"))
    assert files and len(read_folder(results)) == sum(len(read_rows(f)) for f in files) >= 274
    for f in files:
        for line in f.read_text().splitlines():
            assert json.loads(line)["schema"] == SCHEMA_VERSION, f
    if subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", PRE_MIGRATION], capture_output=True).returncode:
        pytest.skip(f"no git history with {PRE_MIGRATION} (not a clone)")
    for f in files:
        shown = subprocess.run(["git", "-C", str(REPO), "show", f"{PRE_MIGRATION}:benchmarks/results/{f.name}"],
                               capture_output=True, text=True)
        if shown.returncode:
            continue  # a file added after the migration
        olds = [json.loads(line) for line in shown.stdout.splitlines() if line.strip()]
        news = read_rows(f)
        assert len(news) >= len(olds), f  # rows are appended, never dropped
        for old, new in zip(olds, news):  # the rewrite keeps the order
            assert new.metrics == old.get("metrics", {}), f
            assert_keeps_every_value(old, new)


def test_closed_form_rows_are_published_capped_rows_are_not():
    """A converged-schedule row of a model without trainable parameters (Pop) is a baseline;
    the same row stopped by its cap is not; an unknown stopped_by is refused."""
    base = next(r for _, r in v1_rows() if r.get("status", "ok") == "ok")
    row = ResultRow.from_dict(base)
    conv = {**row.schedule, "kind": "converged"}
    assert dataclasses.replace(row, schedule=conv, stopped_by="closed_form").is_published()
    assert not dataclasses.replace(row, schedule=conv, stopped_by="cap").is_published()
    with pytest.raises(ValueError, match="stopped_by"):
        dataclasses.replace(row, stopped_by="patience")


def test_command_line_names_the_kgzoo_command(monkeypatch):
    monkeypatch.setattr("sys.argv", ["/venv/lib/site-packages/kgzoo/cli/__main__.py", "bench", "--models", "a b"])
    assert command_line() == "kgzoo bench --models 'a b'"
    monkeypatch.setattr("sys.argv", ["/usr/bin/kgzoo", "tune", "bpr"])
    assert command_line() == "kgzoo tune bpr"
    monkeypatch.setattr("sys.argv", ["/x/train.py", "--lr", "1"])
    assert command_line() == "train.py --lr 1"
