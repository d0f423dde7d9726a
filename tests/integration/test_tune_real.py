"""kgzoo tune on real data: BPR-MF on ml-100k-kg, the default and two searched trials of a two-epoch schedule, test never read."""
from __future__ import annotations

import json

from kgzoo.bench.tune import tune
from kgzoo.config import ZooConfig


def test_tune_bpr_on_ml100k(tmp_path, monkeypatch, data_dir):
    d = tmp_path / "configs" / "bpr"
    d.mkdir(parents=True)
    (d / "ml-100k-kg.yaml").write_text(
        "model: {embedding_dim: 16, reg_weight: 1.0e-4, lr: 1.0e-3}\n"
        "data: {batch_size: 4096, eval_batch_size: 1024}\n"
        "train: {max_epochs: 2, patience: 1}\n"
        "tune:\n  lr: {low: 1.0e-3, high: 5.0e-2, log: true}\n")
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(tmp_path / "configs"))
    monkeypatch.setenv("KGZOO_HOME", str(tmp_path / "home"))
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
