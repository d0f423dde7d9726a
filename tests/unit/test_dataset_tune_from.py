"""The domain's small set whose tuned values a dataset's tables take (DatasetSpec.tune_from, issue 16
part 1), and the lanes that read it (benchmarks/scripts/fair_lane.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from kgzoo.config import dataset_tune_from
from kgzoo.registry import DATASETS

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "scripts" / "fair_lane.py"


def test_the_large_and_social_sets_take_their_domains_small_set():
    """Video and music from ml-100k-kg, e-commerce and local business from amazon-hin (issue 16,
    part 1), mind-sample from dkn-news (its valid day is no guide to its test day); the small sets
    and the CTR sets are tuned on themselves."""
    assert {e.name: e.obj.tune_from for e in DATASETS.entries() if e.obj.tune_from} == {
        "ml-1m-kg": "ml-100k-kg", "lastfm-social": "ml-100k-kg",
        "alibaba-ifashion-kg": "amazon-hin", "yelp-social": "amazon-hin", "mind-sample": "dkn-news"}
    for e in DATASETS.entries():
        small = e.obj.tune_from
        if small:  # a registered set tuned on itself: no chains
            assert small in DATASETS and dataset_tune_from(small) == "", e.name
    assert dataset_tune_from("ml-100k-kg") == dataset_tune_from(None) == dataset_tune_from("no-such-set") == ""


@pytest.fixture()
def lane(monkeypatch):
    spec = importlib.util.spec_from_file_location("fair_lane", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calls: list[list[str]] = []
    monkeypatch.setattr(module, "step", lambda cmd, env: calls.append(cmd[3:]) or 0)  # after python -m kgzoo.cli
    return module, calls


def test_a_lane_takes_the_catalogues_small_set_unless_told_otherwise(lane, tmp_path, monkeypatch):
    module, calls = lane
    monkeypatch.setattr(module, "published_runs", lambda dataset, results, capped=False, protocol="": {})  # nothing ran yet
    assert module.main(["ml-100k-kg", "bpr", "pop", "--from", "ml-100k-kg"]) == 0
    assert calls[0] == ["tune", "bpr", "ml-100k-kg", "--from", "ml-100k-kg"]
    assert calls[1][:4] == ["bench", "--models", "bpr", "--datasets"] and "pop" in calls[2]  # Pop: nothing to tune
    calls.clear()
    assert module.main(["ml-1m-kg", "bpr", "--seeds", "0"]) == 0
    assert calls[0] == ["tune", "bpr", "ml-1m-kg", "--from", "ml-100k-kg"]
    calls.clear()
    store = str(tmp_path / "s.sqlite3")
    module.main(["ml-1m-kg", "bpr", "--tune-here", "--storage", store])
    assert calls[0] == ["tune", "bpr", "ml-1m-kg", "--trials", "10", "--storage", store]
    calls.clear()
    module.main(["ml-100k-kg", "bpr", "--trials", "12", "--storage", store])  # a small set: its own study
    assert calls[0] == ["tune", "bpr", "ml-100k-kg", "--trials", "12", "--storage", store]
    calls.clear()
    module.main(["yelp-social", "bpr", "--from", "ml-100k-kg"])  # an explicit --from wins
    assert calls[0] == ["tune", "bpr", "yelp-social", "--from", "ml-100k-kg"]
    with pytest.raises(SystemExit):
        module.main(["ml-1m-kg", "bpr", "--tune-here", "--from", "ml-100k-kg"])


def test_a_lane_without_models_runs_the_grid_models_not_yet_done(lane, tmp_path, monkeypatch):
    """``fair_lane.py DATASET`` runs the catalogue grid's models (``DatasetSpec.grid``) whose
    published rows do not yet cover every seed: a capped row, another dataset's, a variant's or
    another protocol's does not count; a row of another file of the results folder does (the
    news and CTR rows are in converged-news.jsonl and converged-ctr.jsonl: ``fair_lane.py
    dkn-news`` listed its four published models as not done, read from converged.jsonl alone)."""
    import json

    from kgzoo.bench.cells import cell_config
    from kgzoo.bench.rows import read_rows

    module, calls = lane
    src = next(r for r in read_rows(module.REPO / "benchmarks" / "results" / "converged.jsonl")
               if r.dataset == "amazon-hin" and r.model == "bpr" and r.is_published())
    rows = [src.to_dict() | {"seed": s} for s in (0, 1, 2)]  # bpr: done
    lightgcn = dict(cell_config("lightgcn", "amazon-hin").tuned.get("params") or {})
    rows += [src.to_dict() | {"model": "lightgcn", "seed": s, "tuning": {**src.tuning, "chosen": lightgcn}}
             for s in (0, 1)]  # two seeds of three
    rows += [src.to_dict() | {"model": "cke", "seed": s, "stopped_by": "cap"} for s in (0, 1, 2)]
    rows += [src.to_dict() | {"model": "gcn", "seed": s, "variant": "x=1"} for s in (0, 1, 2)]
    rows += [src.to_dict() | {"model": "pop", "seed": s, "dataset": "ml-100k-kg"} for s in (0, 1, 2)]
    rows += [src.to_dict() | {"model": "kgat", "seed": s, "protocol": {**src.protocol, "split": "cold_item"}}
             for s in (0, 1, 2)]
    (tmp_path / "converged.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    kgin = dict(cell_config("kgin", "amazon-hin").tuned.get("params") or {})  # the values kgin's cells take
    other = [src.to_dict() | {"model": "kgin", "seed": s, "tuning": {**src.tuning, "chosen": kgin}}
             for s in (0, 1, 2)]  # done, in another file
    (tmp_path / "converged-other.jsonl").write_text("".join(json.dumps(r) + "\n" for r in other))
    from kgzoo.data.datasets import dataset_spec

    grid = list(dataset_spec("amazon-hin").grid)
    assert module.missing_grid_models("amazon-hin", ["0", "1", "2"], tmp_path) == [
        m for m in grid if m not in ("bpr", "kgin")]
    assert module.missing_grid_models("amazon-hin", ["0", "1"], tmp_path) == [
        m for m in grid if m not in ("bpr", "lightgcn", "kgin")]
    with pytest.raises(ValueError, match="mind-kg has no grid"):
        module.missing_grid_models("mind-kg", ["0"], tmp_path)
    monkeypatch.setattr(module, "missing_grid_models", lambda d, seeds, p, protocol="": ["gat", "kgin"])
    assert module.main(["amazon-hin", "--storage", str(tmp_path / "s.sqlite3")]) == 0
    assert [c[1] for c in calls if c[0] == "tune"] == ["gat", "kgin"]


def test_kgzoo_tune_says_which_values_the_published_tables_take(monkeypatch, capsys, tmp_path):
    """A study of ml-1m-kg's own is the user's to run; kgzoo tune says first that the published
    tables take ml-100k-kg's values (and how), and says nothing of the kind on a small set."""
    from kgzoo.cli import main
    from kgzoo.cli import tune as tune_cli

    class Ran(Exception):
        pass

    def fake_tune(*a, **k):
        raise Ran

    monkeypatch.setattr(tune_cli, "tune", fake_tune)
    common = ["--trials", "1", "--results", str(tmp_path), "--write-config", str(tmp_path / "cfg")]
    with pytest.raises(Ran):
        main(["tune", "bpr", "ml-1m-kg", *common])
    out = " ".join(capsys.readouterr().out.split())  # as printed, whatever the terminal's width
    assert "take the values tuned on ml-100k-kg" in out and "--from ml-100k-kg" in out
    with pytest.raises(Ran):
        main(["tune", "bpr", "ml-100k-kg", *common])
    assert "values tuned on" not in capsys.readouterr().out


def test_tune_from_writes_into_a_folder_that_does_not_exist_yet(tmp_path):
    """`kgzoo tune MODEL DATASET --from SMALL --write-config DIR` makes DIR, as a study's record does
    (it used to stop: "zoo config folder DIR is not a directory"); the record resolves to SMALL's."""
    from kgzoo.cli import main
    from kgzoo.config import ZooConfig

    folder = tmp_path / "new" / "configs"
    assert main(["tune", "bpr", "ml-1m-kg", "--from", "ml-100k-kg", "--write-config", str(folder)]) == 0
    cfg = ZooConfig.load("bpr", "ml-1m-kg", extra_dirs=[folder])
    assert cfg.tuned["dataset"] == "ml-100k-kg" and cfg.tuned["params"] == ZooConfig.load("bpr", "ml-100k-kg").tuned["params"]


def test_on_a_large_set_the_first_seed_decides_whether_the_others_run(lane, monkeypatch, capsys):
    """On ml-1m-kg (``DatasetSpec.one_seed_minutes`` 40, issue 16 part 3) a model runs its first
    seed alone; seeds 1-2 follow only where that converged run took at most 40 min (its row's
    ``run_seconds``: process CPU seconds where recorded); a model already done with one slow seed is not listed again, one with a
    fast seed is (its other seeds are due). Elsewhere the seeds run together."""
    module, calls = lane
    took = {"bpr": {0: 21 * 60.0}, "kgin": {0: 95 * 60.0}}
    landed: dict[str, dict[int, float]] = {}  # the rows as the lane's runs write them

    def run(cmd, env):
        calls.append(cmd[3:])
        if cmd[3] == "bench":
            model, seeds = cmd[cmd.index("--models") + 1], cmd[cmd.index("--seeds") + 1:]
            landed.setdefault(model, {}).update({int(s): took[model][0] for s in seeds})
        return 0

    monkeypatch.setattr(module, "step", run)
    monkeypatch.setattr(module, "published_runs", lambda dataset, results, capped=False, protocol="": landed)
    assert module.one_seed_minutes("ml-1m-kg") == 40 and module.one_seed_minutes("ml-100k-kg") == 0
    assert module.one_seed_minutes("no-such-set") == 0
    assert module.main(["ml-1m-kg", "bpr", "kgin"]) == 0
    benches = [c[c.index("--seeds") + 1:] for c in calls if c[0] == "bench"]
    assert [c[2] for c in calls if c[0] == "bench"] == ["bpr", "bpr", "kgin"]
    assert benches == [["0"], ["0", "1", "2"], ["0"]]
    assert "kgin keeps one seed: its run took 95 min, over 40 min" in capsys.readouterr().out
    assert module.is_slow({0: 2401.0}, 40) and not module.is_slow({0: 2400.0}, 40)
    assert not module.is_slow({0: 1e6}, 0) and not module.is_slow({}, 40)
    from kgzoo.data.datasets import dataset_spec

    grid = list(dataset_spec("ml-1m-kg").grid)
    monkeypatch.setattr(module, "published_runs",
                        lambda dataset, results, capped=False, protocol="": {m: {0: 60.0, 1: 60.0, 2: 60.0} for m in grid} | took)
    assert module.missing_grid_models("ml-1m-kg", ["0", "1", "2"], module.REPO) == ["bpr"]
    calls.clear()
    monkeypatch.setattr(module, "published_runs", lambda dataset, results, capped=False, protocol="": {})
    assert module.main(["ml-100k-kg", "bpr"]) == 0  # no limit: the three seeds at once
    assert [c[c.index("--seeds") + 1:] for c in calls if c[0] == "bench"] == [["0", "1", "2"]]


def test_a_lane_runs_only_the_seeds_not_published_in_any_results_file(lane, monkeypatch, capsys):
    """A seed whose published row is in another results file (the lane's ``--name`` file is the
    only one ``bench --resume`` reads) is not run again; a model whose every seed is published runs
    no bench; on a large set a published first seed over the limit ends the model there, one under it
    lets the missing seeds run together."""
    module, calls = lane
    published = {"bpr": {0: 60.0, 2: 60.0}, "cke": {0: 60.0, 1: 60.0, 2: 60.0}, "kgin": {0: 95 * 60.0},
                 "kgat": {0: 10 * 60.0}}
    monkeypatch.setattr(module, "published_runs", lambda dataset, results, capped=False, protocol="": published)
    assert module.main(["ml-100k-kg", "bpr", "cke", "--from", "ml-100k-kg"]) == 0
    assert [(c[2], c[c.index("--seeds") + 1:]) for c in calls if c[0] == "bench"] == [("bpr", ["1"])]
    assert "cke: seeds 0 1 2 published already" in capsys.readouterr().out
    calls.clear()
    assert module.main(["ml-1m-kg", "kgin", "kgat"]) == 0
    assert [(c[2], c[c.index("--seeds") + 1:]) for c in calls if c[0] == "bench"] == [("kgat", ["1", "2"])]
    assert "kgin keeps one seed" in capsys.readouterr().out


def test_a_first_seed_stopped_at_its_cap_still_says_the_run_is_slow(lane, monkeypatch, tmp_path, capsys):
    """The first seed's run decides whether the other seeds are affordable whatever ended it: a
    kgin run on ml-1m-kg that took 3 h of CPU and stopped at its 300-epoch cap is not published
    (not converged), so the lane read no time for it and ran seeds 1-2, hours each, for lines the
    table marks † anyway. A capped run is still no published row (the model stays listed)."""
    from kgzoo.bench.cells import cell_config
    from kgzoo.bench.render import dataset_grids
    from kgzoo.bench.rows import ResultRow, append_row

    module, calls = lane
    monkeypatch.setattr(module, "REPO", tmp_path)
    protocol = dataset_grids(["ml-1m-kg"])["ml-1m-kg"][0]
    capped = ResultRow(model="kgin", dataset="ml-1m-kg", task="topk", seed=0, fingerprint="f" * 64,
                       protocol=dict(protocol), status="ok", stopped_by="cap", epochs=300,
                       schedule={"kind": "converged", "max_epochs": 300, "patience": 10, "monitor": "valid/ndcg@10"},
                       cell_seconds=4 * 3600.0, cell_cpu_seconds=3 * 3600.0,
                       tuning={"chosen": dict(cell_config("kgin", "ml-1m-kg").tuned.get("params") or {})})
    append_row(tmp_path / "benchmarks" / "results" / "converged.jsonl", capped)
    assert module.published_runs("ml-1m-kg", tmp_path / "benchmarks" / "results") == {}
    assert "kgin" in module.missing_grid_models("ml-1m-kg", ["0", "1", "2"], tmp_path / "benchmarks" / "results")
    assert module.main(["ml-1m-kg", "kgin"]) == 0
    assert [c[c.index("--seeds") + 1:] for c in calls if c[0] == "bench"] == [["0"]]
    assert "kgin keeps one seed: its run took 180 min, over 40 min" in capsys.readouterr().out


def test_a_lane_under_another_protocol_tunes_and_runs_there(lane, monkeypatch, tmp_path):
    """``fair_lane.py ml-100k-kg bpr --protocol split=cold_item``: a study under that protocol (never
    --from), converged runs under it, and the seeds already published read from that protocol's
    table, not the default's (whose bpr rows are complete)."""
    import json

    from kgzoo.bench.rows import read_rows

    module, calls = lane
    monkeypatch.setattr(module, "published_runs", lambda dataset, results, capped=False, protocol="": {})
    assert module.main(["ml-100k-kg", "bpr", "--protocol", "split=cold_item",
                        "--storage", str(tmp_path / "s.sqlite3")]) == 0
    assert calls[0] == ["tune", "bpr", "ml-100k-kg", "--trials", "10", "--storage", str(tmp_path / "s.sqlite3"),
                        "--protocol", "split=cold_item"]
    bench = calls[1]
    assert bench[bench.index("--protocol") + 1] == "split=cold_item" and bench[-3:] == ["0", "1", "2"]
    with pytest.raises(SystemExit):
        module.main(["ml-100k-kg", "bpr", "--protocol", "split=cold_item", "--from", "ml-1m-kg"])
    monkeypatch.undo()
    module, calls = lane
    src = next(r for r in read_rows(module.REPO / "benchmarks" / "results" / "converged-cold.jsonl")
               if r.model == "bpr" and r.is_published())
    (tmp_path / "converged-cold.jsonl").write_text(json.dumps(src.to_dict()) + "\n")
    # the protocol's values are the row's (a user's folder holding them, whatever the package holds)
    cfg = tmp_path / "configs" / "bpr"
    cfg.mkdir(parents=True)
    chosen = dict((src.tuning or {}).get("chosen") or {})
    (cfg / "ml-100k-kg@split=cold_item.yaml").write_text(json.dumps({"tuned": {"params": chosen}}) + "\n")
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(tmp_path / "configs"))
    assert module.published_runs("ml-100k-kg", tmp_path, protocol="split=cold_item").get("bpr", {}).keys() == {src.seed}
    assert module.published_runs("ml-100k-kg", tmp_path) == {}
    # a study under the protocol wrote other values: the row of the old ones is due again
    (cfg / "ml-100k-kg@split=cold_item.yaml").write_text("tuned: {params: {lr: 0.5}}\n")
    assert module.published_runs("ml-100k-kg", tmp_path, protocol="split=cold_item") == {}


def test_a_lane_under_a_protocol_reads_a_news_models_rows_under_its_own_protocol(lane, tmp_path):
    """On mind-sample the grid's models are news models, whose cells run the impression protocol
    (``kgzoo.protocols.default_protocol``), not the dataset's default (ctr): ``--protocol seed=1`` puts
    ``seed=1`` over the impression protocol there. The lane laid the fields over the dataset's
    default instead (task ctr, split random), so no row of that protocol's table counted as
    published and every seed ran again on each lane, hours each."""
    import json

    from kgzoo.bench.rows import read_rows

    module, _ = lane
    src = next(r for r in read_rows(module.REPO / "benchmarks" / "results" / "converged-news.jsonl")
               if r.dataset == "mind-sample" and r.is_published())
    assert src.protocol["task"] == "impression"
    row = src.to_dict() | {"protocol": {**src.protocol, "seed": 1}}
    (tmp_path / "converged-news.jsonl").write_text(json.dumps(row) + "\n")
    assert module.published_runs("mind-sample", tmp_path, protocol="seed=1").get(src.model, {}).keys() == {src.seed}
    assert module.published_runs("mind-sample", tmp_path) == {}  # not the default protocol's table


def test_a_search_space_of_a_protocols_own_file_is_seen(lane, tmp_path, monkeypatch):
    """A ``tune:`` space written only in a protocol's own file (``<model>/<dataset>@<protocol>.yaml``)
    is the space of that protocol's cells: ``fair_lane --protocol`` tunes the model, as ``kgzoo
    tune --protocol`` would (``has_space`` read the dataset file alone and skipped the study)."""
    module, _ = lane
    d = tmp_path / "pop"
    d.mkdir()
    (d / "ml-100k-kg@split=cold_item.yaml").write_text("tune:\n  lr: {low: 1.0e-3, high: 1.0e-1, log: true}\n")
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(tmp_path))
    assert module.has_space("pop", "ml-100k-kg", "split=cold_item") and not module.has_space("pop", "ml-100k-kg")
