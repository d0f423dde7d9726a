"""kgzoo update on real data (issue 15, part 7): a BPR trained on a slice of ml-100k-kg takes new
users' interactions through the command line; the new users get scores, the trained rows are
unchanged before fine-tuning, and the new checkpoint is rebuilt from its path alone."""
from __future__ import annotations

import uuid

import lightning as L
import pandas as pd
import torch

import kgzoo
from kgzoo.cli import main
from kgzoo.cli.lightning import run_lightning
from kgzoo.data import load_data
from kgzoo.hub.pretrained import evaluate


def slice_frames():
    d = load_data("ml-100k-kg")
    x = pd.DataFrame({"user": [d.user_ids[u] for u in d.interactions[:, 0].tolist()],
                      "item": [d.item_ids[i] for i in d.interactions[:, 1].tolist()],
                      "rating": d.rating.numpy(), "timestamp": d.timestamp.numpy()})
    t = d.triples
    kg = pd.DataFrame({"head": [d.entity_ids[h] for h in t[:, 0].tolist()],
                       "relation": [d.relation_names[r] for r in t[:, 1].tolist()],
                       "tail": [d.entity_ids[e] for e in t[:, 2].tolist()]})
    uid = x["user"].astype(int)
    return x[uid <= 120], x[(uid > 120) & (uid <= 135)], kg


def test_update_a_trained_bpr_with_new_ml100k_users(tmp_path, capsys):
    base_x, new_x, kg = slice_frames()
    ds = kgzoo.from_frames(base_x, triples=kg, name=f"ml-slice-{uuid.uuid4().hex[:6]}")
    dm = kgzoo.create_datamodule(ds.name, batch_size=1024)
    model = kgzoo.create_model("bpr", datamodule=dm, config=False, embedding_dim=16, lr=0.01)
    trainer = L.Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(model, datamodule=dm)
    trainer.save_checkpoint(tmp_path / "base.ckpt")
    new_x.to_csv(tmp_path / "new.csv", index=False)
    assert main(["update", "--ckpt_path", str(tmp_path / "base.ckpt"), "--data", str(tmp_path / "new.csv"),
                 "--out", str(tmp_path / "out")]) == 0
    pre = kgzoo.load_checkpoint(tmp_path / "out" / "update.ckpt")
    m, U0, I0 = pre.model, dm.n_users, dm.n_items
    n_new = new_x["user"].nunique()
    assert m.n_users == U0 + n_new and pre.datamodule.fingerprint != dm.fingerprint
    # trained rows unchanged (no fine-tune asked)
    assert torch.equal(m.user_emb.weight[:U0], model.user_emb.weight)
    assert torch.equal(m.item_emb.weight[:I0], model.item_emb.weight)
    # every new user scores every item, and ranks its own train items above the rest on average
    users = torch.arange(U0, U0 + n_new)
    with torch.no_grad():
        scores = m.score(users)
    assert scores.shape == (n_new, m.n_items) and bool(torch.isfinite(scores).all())
    indptr, indices = pre.datamodule.csr["train"]
    own = torch.zeros_like(scores, dtype=torch.bool)
    rows = torch.repeat_interleave(torch.arange(n_new), indptr[U0 + 1:U0 + n_new + 1] - indptr[U0:U0 + n_new])
    own[rows, indices[indptr[U0]:indptr[U0 + n_new]]] = True
    assert (scores[own].mean() > scores[~own].mean()) and scores.std(1).min() > 0
    # the raw ids of the new users are in the extended data's map, after the base's
    assert pre.datamodule.data.user_ids[U0:] == list(pd.unique(new_x["user"].astype(str)))
    # kgzoo test --ckpt_path alone rebuilds the extended data (base + the update's files) and tests the
    # updated model on it: the metrics of load_checkpoint + evaluate (it was "unknown dataset", then
    # an error pointing to load_checkpoint)
    want = evaluate(pre.model, pre.datamodule)
    cli = run_lightning("test", ["--ckpt_path", str(tmp_path / "out" / "update.ckpt"), "--trainer.logger", "false",
                                 "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path)])
    got = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    assert cli.datamodule.fingerprint == pre.datamodule.fingerprint and cli.model.n_users == U0 + n_new
    assert set(got) == set(want) and all(abs(got[k] - want[k]) < 1e-6 for k in want), (got, want)
    # an update file changed since: refused, naming the file (its sha256 is in the checkpoint)
    new_x.head(3).to_csv(tmp_path / "new.csv", index=False)
    capsys.readouterr()
    assert main(["test", "--ckpt_path", str(tmp_path / "out" / "update.ckpt"), "--trainer.logger", "false",
                 "--trainer.default_root_dir", str(tmp_path)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert str(tmp_path / "new.csv") in err and "changed since" in err
