"""Fine-tune and save (issue 15, part 6): ``Pretrained.save_pretrained(dir)`` writes what
``load_pretrained(dir)`` reads back, ``load_pretrained(..., train=True)`` leaves a model ready
to train, ``kgzoo fit --pretrained NAME`` goes on from the named weights."""
from __future__ import annotations

import json

import pytest
import torch

import kgzoo
from kgzoo.cli import main
from kgzoo.cli.lightning import _with_pretrained_config
from kgzoo.hub import PretrainedError, evaluate, load_weights, metrics_close, pretrained_spec, read_manifest


def test_save_pretrained_round_trip_and_train_mode(tmp_path, data_dir):
    pre = kgzoo.load_pretrained("kgat/ml-100k-kg")
    assert not pre.model.training
    path = pre.save_pretrained(tmp_path / "kgat")
    entry = json.loads(path.read_text())["entries"]["kgat/ml-100k-kg"]
    assert entry["file"] == "kgat__ml-100k-kg.safetensors" and entry["fingerprint"] == pre.spec.fingerprint
    assert entry["hparams"] == pre.spec.hparams and entry["dtype"] == "float32" and entry["metrics"] == pre.spec.metrics
    assert set(read_manifest(path)) == {"kgat/ml-100k-kg"}

    again = kgzoo.load_pretrained(tmp_path / "kgat")  # checksum verified on the way in
    assert again.spec.sha256 == entry["sha256"] and not again.model.training
    users = torch.arange(20)
    assert torch.allclose(pre.model.score(users), again.model.score(users))
    assert again.recommend("196", k=5) == pre.recommend("196", k=5)

    trainable = kgzoo.load_pretrained(tmp_path / "kgat", datamodule=again.datamodule, train=True)
    dropouts = [m for m in trainable.model.modules() if isinstance(m, torch.nn.Dropout)]
    assert trainable.model.training and dropouts and all(m.training for m in dropouts)
    with torch.no_grad():  # dropout on: two passes differ
        a, b = trainable.model.final_embeddings(), trainable.model.final_embeddings()
    assert not torch.equal(a[1], b[1])
    assert all(p.requires_grad for p in trainable.model.parameters())


def test_a_checkpoint_saved_as_pretrained(bench_runs, tmp_path):
    runs, rows = bench_runs
    pre = kgzoo.load_checkpoint(runs / rows["lightgcn"].checkpoint)
    pre.save_pretrained(tmp_path / "lgcn", licence="test weights")
    spec = pretrained_spec(tmp_path / "lgcn")
    assert spec.name == "lightgcn/ml-100k-kg" and spec.licence == "test weights"
    assert spec.extra["source"] == str(runs / rows["lightgcn"].checkpoint)
    again = kgzoo.load_pretrained(tmp_path / "lgcn")
    assert not metrics_close(evaluate(again.model, again.datamodule), rows["lightgcn"].metrics, rel=1e-5)


def test_fit_goes_on_from_pretrained_weights(tmp_path, data_dir):
    spec = pretrained_spec("bpr/ml-100k-kg")
    # lr 0: one epoch of training leaves the weights where --pretrained put them
    assert main(["fit", "--pretrained", "bpr/ml-100k-kg", "--model.init_args.lr", "0", "--trainer.max_epochs", "1",
                 "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                 "--trainer.default_root_dir", str(tmp_path)]) == 0
    state = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    weights = load_weights(spec)
    assert weights.keys() == state.keys()
    assert all(torch.equal(weights[k].float(), state[k].float()) for k in weights)
    # and with the zoo learning rate they move from there
    assert main(["fit", "--pretrained", "bpr/ml-100k-kg", "--trainer.max_epochs", "1", "--trainer.logger", "false",
                 "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path / "lr")]) == 0
    moved = torch.load(tmp_path / "lr" / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    emb = "user_emb.weight"
    delta = (moved[emb].float() - weights[emb].float()).abs().max()
    assert 0 < delta < 0.1  # one epoch from the pretrained weights, not from a fresh initialisation


def test_pretrained_option_errors(tmp_path):
    with pytest.raises(ValueError, match="with kgzoo fit or test"):  # test evaluates them (test_pretrained_cli.py)
        _with_pretrained_config("predict", ["--pretrained", "bpr/ml-100k-kg"])
    with pytest.raises(ValueError, match="without --zoo"):
        _with_pretrained_config("fit", ["--pretrained", "bpr/ml-100k-kg", "--zoo", "bpr"])
    with pytest.raises(PretrainedError, match="one entry"):
        pretrained_spec(tmp_path)
