"""kgzoo tune on real data: BPR-MF on ml-100k-kg, the default and two searched trials of a two-epoch schedule, test never read."""
from __future__ import annotations

import json

import pytest
import yaml

from kgzoo.bench.tune import tune
from kgzoo.config import ZooConfig


def small_bpr_config(tmp_path, monkeypatch, max_epochs: int = 2):
    """A config folder under ``tmp_path`` with BPR-MF on ml-100k-kg (d=16, ``max_epochs`` epochs,
    patience 1, lr searched) in ``$KGZOO_CONFIG_DIR``, the user cache under ``tmp_path``; returns
    the folder ``configs/bpr``."""
    d = tmp_path / "configs" / "bpr"
    d.mkdir(parents=True)
    (d / "ml-100k-kg.yaml").write_text(
        "model: {embedding_dim: 16, reg_weight: 1.0e-4, lr: 1.0e-3}\n"
        "data: {batch_size: 4096, eval_batch_size: 1024}\n"
        f"train: {{max_epochs: {max_epochs}, patience: 1}}\n"
        "tune:\n  lr: {low: 1.0e-3, high: 5.0e-2, log: true}\n")
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(tmp_path / "configs"))
    monkeypatch.setenv("KGZOO_HOME", str(tmp_path / "home"))
    return d


def test_tune_bpr_on_ml100k(tmp_path, monkeypatch, data_dir):
    small_bpr_config(tmp_path, monkeypatch)
    tested = []
    import lightning

    real_test = lightning.Trainer.test
    monkeypatch.setattr(lightning.Trainer, "test", lambda *a, **k: tested.append(1) or real_test(*a, **k))
    rep = tune("bpr", "ml-100k-kg", 2, seed=0, results=tmp_path / "results", write_config=tmp_path / "configs",
               log=None)
    assert not tested  # selection on validation only
    assert rep.complete == 2 and 0.0 < rep.best_value < 1.0 and rep.monitor == "valid/ndcg@10"
    rows = [json.loads(x) for x in (tmp_path / "results" / "tuning" / "bpr-ml-100k-kg.jsonl").read_text().splitlines()]
    # the default trial (the config's lr 1e-3) first, then the two searched ones
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3 and all(r["epochs"] == 2 for r in rows)
    assert [r["default"] for r in rows] == [True, False, False] and rows[0]["params"]["lr"] == 1e-3
    assert len({r["params"]["lr"] for r in rows}) == 3 and rep.default["trial"] == 0
    cfg = ZooConfig.load("bpr", "ml-100k-kg")
    assert cfg.model["lr"] == rep.best_params["lr"] and cfg.tuned["best_valid"]["ndcg@10"] == round(rep.best_value, 6)


def test_tune_under_the_cold_item_protocol_writes_that_protocols_config(tmp_path, monkeypatch, data_dir):
    """``kgzoo tune --protocol split=cold_item`` selects on the cold-item validation split and writes
    ``bpr/ml-100k-kg@split=cold_item.yaml``; the cells of that protocol take its values (their rows
    say "tuned", not "tuned under another fingerprint"), the default protocol's file and cells stay
    as they were. Before, a cold-start table could only take the warm split's values."""
    from kgzoo.bench.cells import Cell, cell_config, cell_config_sha, cell_fingerprint, cell_schedule
    from kgzoo.protocols import parse_protocol
    from kgzoo.bench.experiment import run_experiment
    from kgzoo.bench.leaderboard import tuned_elsewhere
    from kgzoo.cli import main

    d = tmp_path / "configs" / "bpr"
    d.mkdir(parents=True)
    warm = ("model: {embedding_dim: 16, reg_weight: 1.0e-4, lr: 1.0e-3}\n"
            "data: {batch_size: 4096, eval_batch_size: 1024}\n"
            "train: {max_epochs: 2, patience: 1}\n"
            "tune:\n  lr: {low: 1.0e-3, high: 5.0e-2, log: true}\n"
            "tuned: {params: {lr: 0.02}, trials: 10, study: bpr/ml-100k-kg/warm}\n")
    (d / "ml-100k-kg.yaml").write_text(warm)
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(tmp_path / "configs"))
    monkeypatch.setenv("KGZOO_HOME", str(tmp_path / "home"))
    assert main(["tune", "bpr", "ml-100k-kg", "--trials", "1", "--protocol", "split=cold_item",
                 "--results", str(tmp_path / "results"), "--write-config", str(tmp_path / "configs"),
                 "--storage", str(tmp_path / "s.sqlite3")]) == 0
    assert (d / "ml-100k-kg.yaml").read_text() == warm  # the default protocol's record stays
    cold_file = d / "ml-100k-kg@split=cold_item.yaml"
    # the protocol's file holds its tuned: record alone, laid over the dataset file: an edit there
    # (the epoch cap) reaches the protocol's runs, where a copy of the file hid it
    written = yaml.safe_load(cold_file.read_text())
    assert list(written) == ["tuned"] and cold_file.read_text().startswith(
        "# bpr on ml-100k-kg@split=cold_item: laid over its ml-100k-kg config")
    (d / "ml-100k-kg.yaml").write_text(warm.replace("max_epochs: 2", "max_epochs: 3"))
    assert cell_config("bpr", "ml-100k-kg", "split=cold_item").schedule().max_epochs == 3
    assert cell_config("bpr", "ml-100k-kg", "split=cold_item").tune == yaml.safe_load(warm)["tune"]
    (d / "ml-100k-kg.yaml").write_text(warm)
    rows = [json.loads(x) for x in (tmp_path / "results" / "tuning" / "bpr-ml-100k-kg@split=cold_item.jsonl")
            .read_text().splitlines()]
    cold_fp = cell_fingerprint(Cell("bpr", "ml-100k-kg", 0, protocol="split=cold_item"))[0]
    assert {r["fingerprint"] for r in rows} == {cold_fp} != {cell_fingerprint(Cell("bpr", "ml-100k-kg", 0))[0]}
    cold = cell_config("bpr", "ml-100k-kg", "split=cold_item")
    assert cold.path == cold_file and cold.protocol == "split=cold_item" and cold.tuned["trials"] == 1
    assert cold.model["lr"] == max((r for r in rows if r["state"] == "COMPLETE"), key=lambda r: r["value"])["params"]["lr"]
    assert cell_config("bpr", "ml-100k-kg", "split=random").model["lr"] == 0.02  # the default, named: the warm file
    sched = cell_schedule("bpr", "ml-100k-kg", quick=False)
    assert (cell_config_sha(Cell("bpr", "ml-100k-kg", 0), sched)
            != cell_config_sha(Cell("bpr", "ml-100k-kg", 0, protocol="split=cold_item"), sched))
    row = run_experiment("bpr", "ml-100k-kg", protocol=parse_protocol("ml-100k-kg", "split=cold_item"),
                         max_epochs=1, out_dir=tmp_path / "runs", progress=False)
    assert row.overrides == {} and row.tuning["chosen"]["lr"] == cold.model["lr"]
    assert row.config == "bpr/ml-100k-kg@split=cold_item.yaml"
    assert row.fingerprint == cold_fp and not tuned_elsewhere(row)
    with pytest.raises(SystemExit, match="--from takes another dataset's values for the default protocol"):
        main(["tune", "bpr", "ml-100k-kg", "--from", "ml-1m-kg", "--protocol", "split=cold_item"])


def test_a_capped_study_names_the_file_its_later_runs_read(tmp_path, monkeypatch, data_dir):
    """A best trial stopped at its cap says where to raise ``train.max_epochs``: the file the next
    study and ``kgzoo bench --protocol`` read. Under ``--protocol split=cold_item`` that is the
    protocol's own file, which the study writes as a copy of the dataset's: before, the line named
    ``ml-100k-kg.yaml``, whose edit the copy then hid from every later run of that protocol."""
    d = small_bpr_config(tmp_path, monkeypatch, max_epochs=1)
    said: list[str] = []
    rep = tune("bpr", "ml-100k-kg", 1, seed=0, results=tmp_path / "results", write_config=tmp_path / "configs",
               storage=tmp_path / "s.sqlite3", log=said.append, protocol="split=cold_item")
    cold = d / "ml-100k-kg@split=cold_item.yaml"
    assert rep.config == cold and ZooConfig.load("bpr", "ml-100k-kg", protocol="split=cold_item").path == cold
    capped = [s for s in said if "raise train.max_epochs in" in s]
    assert len(capped) == 1 and capped[0].endswith(f"raise train.max_epochs in {cold}"), said
