"""Self-describing checkpoints on real data (issue 15, part 4): a checkpoint written by
``kgzoo bench`` (``run_experiment``), ``kgzoo tune`` (the same writer, no test) or ``kgzoo fit``
is reloaded from its path alone, in a fresh process and by ``kgzoo test --ckpt_path``, with the
test metrics of the run; other data is refused, naming both fingerprints."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import kgzoo
from kgzoo.bench.experiment import run_experiment
from kgzoo.cli import main
from kgzoo.cli.lightning import run_lightning
from kgzoo.hub import FingerprintError, PretrainedError, evaluate, metrics_close

REPO = Path(__file__).resolve().parents[2]

RELOAD = """
import json, sys
import kgzoo
from kgzoo.api import create_datamodule_for
from kgzoo.hub import evaluate
pre = kgzoo.load_checkpoint(sys.argv[1])
print(json.dumps(evaluate(pre.model, create_datamodule_for(pre.model, pre.datamodule))))
"""


@pytest.mark.parametrize("model", ["bpr", "lightgcn"])
def test_bench_checkpoint_reloads_in_a_fresh_process(bench_runs, model):
    out, rows = bench_runs
    row = rows[model]
    path = out / row.checkpoint
    meta = torch.load(path, weights_only=True)["kgzoo"]
    assert meta["model"] == model and meta["data"]["dataset"] == "ml-100k-kg"
    assert meta["data"]["protocol"] == row.protocol and meta["fingerprint"] == row.fingerprint
    assert meta["kgzoo"] == kgzoo.__version__ and meta["class_path"].startswith("kgzoo.models.")
    env = {"PYTHONPATH": str(REPO), "KGZOO_DATA_DIR": str(kgzoo.paths.data_dir()), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", RELOAD, str(path)], capture_output=True, text=True, env=env,
                          cwd=out, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(metrics) == set(row.metrics) and not metrics_close(metrics, row.metrics, rel=1e-5), (metrics, row.metrics)


def test_kgzoo_test_takes_a_bench_checkpoint_alone(bench_runs, capsys, tmp_path):
    out, rows = bench_runs
    path = str(out / rows["lightgcn"].checkpoint)
    cli = run_lightning("test", ["--ckpt_path", path, "--trainer.logger", "false", "--trainer.enable_progress_bar",
                                 "false", "--trainer.default_root_dir", str(tmp_path)])  # LightningCLI's config.yaml
    got = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    assert not metrics_close(got, rows["lightgcn"].metrics, rel=1e-5)
    # a later argument overrides the checkpoint's data: other data is refused, naming both fingerprints
    assert main(["test", "--ckpt_path", path, "--data.kg_ablation", "none", "--trainer.logger", "false",
                 "--trainer.default_root_dir", str(tmp_path)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert rows["lightgcn"].fingerprint in err and "this data, 'ml-100k-kg', has fingerprint" in err


def test_other_data_is_refused_naming_both_fingerprints(bench_runs):
    out, rows = bench_runs
    dm = kgzoo.create_datamodule("ml-100k-kg", kg_ablation="shuffled")
    dm.setup()
    with pytest.raises(FingerprintError) as e:
        kgzoo.load_checkpoint(out / rows["bpr"].checkpoint, datamodule=dm)
    assert rows["bpr"].fingerprint in str(e.value) and dm.fingerprint in str(e.value)


def test_tune_and_fit_checkpoints_reload(tmp_path, data_dir):
    # kgzoo tune's trials: run_experiment without the test split (the same checkpoint writer)
    row = run_experiment("bpr", "ml-100k-kg", max_epochs=1, out_dir=tmp_path / "tune", progress=False, run_test=False)
    pre = kgzoo.load_checkpoint(tmp_path / "tune" / row.checkpoint)
    valid = evaluate(pre.model, pre.datamodule, stage="valid")
    assert not metrics_close({k: valid[k] for k in row.valid_metrics}, row.valid_metrics, rel=1e-5)
    # kgzoo fit (LightningCLI; its hyper-parameters carry Lightning's _class_path and _instantiator)
    assert main(["fit", "--zoo", "bpr/ml-100k-kg", "--trainer.max_epochs", "1", "--trainer.logger", "false",
                 "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path / "fit")]) == 0
    path = tmp_path / "fit" / "checkpoints" / "best.ckpt"  # BestCheckpoint of the zoo schedule
    pre = kgzoo.load_checkpoint(path)
    assert pre.name == "bpr/ml-100k-kg" and pre.spec.extra["checkpoint"] == str(path)
    cli = run_lightning("test", ["--ckpt_path", str(path), "--trainer.logger", "false", "--trainer.enable_progress_bar",
                                 "false", "--trainer.default_root_dir", str(tmp_path / "test")])
    assert not metrics_close({k: float(v) for k, v in cli.trainer.callback_metrics.items()},
                             evaluate(pre.model, pre.datamodule), rel=1e-5)


def test_a_file_without_kgzoo_entry_is_a_clear_error(tmp_path):
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(PretrainedError, match="no 'kgzoo' entry"):
        kgzoo.load_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        kgzoo.load_checkpoint(tmp_path / "missing.ckpt")


def test_a_folder_dataset_checkpoint_reloads_in_a_fresh_process(tmp_path):
    """A user's folder (plain CSV, string ids) is not registered in another process: the
    checkpoint's ``folder`` registers it again, and its contents' fingerprint is checked."""
    import lightning as L
    import pandas as pd

    folder = tmp_path / "my-shop"
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    rows = [(f"user-{u}", f"sku-{int(i)}") for u in range(30) for i in torch.randperm(40, generator=g)[:10]]
    pd.DataFrame(rows, columns=["user", "item"]).to_csv(folder / "interactions.csv", index=False)
    dm = kgzoo.create_datamodule(str(folder), batch_size=64)
    model = kgzoo.create_model("bpr", datamodule=dm, config=False, embedding_dim=8)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=dm)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    assert torch.load(tmp_path / "m.ckpt", weights_only=True)["kgzoo"]["data"]["folder"] == str(folder.resolve())
    want = evaluate(model, dm)
    env = {"PYTHONPATH": str(REPO), "KGZOO_DATA_DIR": str(kgzoo.paths.data_dir()), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "KGZOO_HOME": str(tmp_path / "home"),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    done = subprocess.run([sys.executable, "-c", RELOAD, str(tmp_path / "m.ckpt")], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not metrics_close(json.loads(done.stdout.strip().splitlines()[-1]), want, rel=1e-5)
    # other contents under the same folder: refused, naming both fingerprints
    pd.DataFrame(rows[:-5], columns=["user", "item"]).to_csv(folder / "interactions.csv", index=False)
    done = subprocess.run([sys.executable, "-c", RELOAD, str(tmp_path / "m.ckpt")], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    assert done.returncode != 0 and "FingerprintError" in done.stderr and dm.fingerprint in done.stderr


def test_kgzoo_test_refuses_data_of_other_sizes_naming_both_fingerprints(tmp_path, capsys):
    """Lightning loads the weights before the DataModule's state: a checkpoint given data with
    other user/item counts must still fail on the fingerprint (naming both), not on a shape
    mismatch of the embedding tables."""
    import lightning as L
    import pandas as pd

    g = torch.Generator().manual_seed(0)
    rows = [(f"user-{u}", f"sku-{int(i)}") for u in range(30) for i in torch.randperm(40, generator=g)[:10]]
    for name, part in (("shop-a", rows), ("shop-b", [r for r in rows if r[0] != "user-0"])):
        (tmp_path / name).mkdir()
        pd.DataFrame(part, columns=["user", "item"]).to_csv(tmp_path / name / "interactions.csv", index=False)
    dm = kgzoo.create_datamodule(str(tmp_path / "shop-a"), batch_size=64)
    model = kgzoo.create_model("bpr", datamodule=dm, config=False, embedding_dim=8)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=dm)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    other = kgzoo.create_datamodule(str(tmp_path / "shop-b"))
    other.setup()
    assert main(["test", "--ckpt_path", str(tmp_path / "m.ckpt"), "--data.dataset", str(tmp_path / "shop-b"),
                 "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "FingerprintError" in err or "fingerprint" in err
    assert dm.fingerprint in err and other.fingerprint in err and "size mismatch" not in err


def test_a_cold_item_checkpoint_reloads_and_tests_with_its_runs_metrics(tmp_path, data_dir):
    """A checkpoint of a run under ``split=cold_item`` (``kgzoo bench --protocol split=cold_item``,
    ``kgzoo fit`` under that protocol) is rebuilt by ``kgzoo.load_checkpoint`` and by ``kgzoo test
    --ckpt_path`` with the test metrics of its run. Before, both failed on its protocol record,
    which holds the ``candidates`` field that ``EvalProtocol.to_dict`` derives from the split
    ("EvalProtocol.__init__() got an unexpected keyword argument 'candidates'"; "Option
    'candidates' is not accepted")."""
    from kgzoo.protocols import parse_protocol

    out = tmp_path / "runs"
    row = run_experiment("bpr", "ml-100k-kg", protocol=parse_protocol("ml-100k-kg", "split=cold_item"),
                         max_epochs=1, out_dir=out, progress=False)
    path = out / row.checkpoint
    assert torch.load(path, weights_only=True)["kgzoo"]["data"]["protocol"]["candidates"] == "stage_cold_items"
    pre = kgzoo.load_checkpoint(path)
    assert pre.datamodule.protocol.split == "cold_item" and pre.datamodule.fingerprint == row.fingerprint
    assert not metrics_close(evaluate(pre.model, pre.datamodule), row.metrics, rel=1e-5)
    cli = run_lightning("test", ["--ckpt_path", str(path), "--trainer.logger", "false", "--trainer.enable_progress_bar",
                                 "false", "--trainer.default_root_dir", str(tmp_path)])
    assert not metrics_close({k: float(v) for k, v in cli.trainer.callback_metrics.items()}, row.metrics, rel=1e-5)
