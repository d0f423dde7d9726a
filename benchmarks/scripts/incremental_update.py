"""Incremental update against retraining on a temporal split of ml-100k-kg (issue 15, part 7).

The rows of ``ml-100k-kg`` sorted by timestamp (ties by row order) are cut into the first 90%
(``base``), the next 5% (``update``) and the last 5% (``test``). For each model:

- (a) ``no update``: trained on ``base`` only (every row a train row) for ``--epochs`` epochs
  (ml-100k-kg's zoo config, tuned values included; KGPLM with :data:`OVERRIDES`);
- (b) ``update``: (a) with the ``update`` rows folded in by :func:`kgzoo.hub.update.update_model`
  (new users, new items, their KG links and text), closed form only (``fold-in``) and with
  ``--finetune`` epochs on the new pairs plus as many replayed base pairs (``fold-in + ft``);
- (c) ``retrain``: trained from scratch on ``base + update`` for the same ``--epochs``.

Test: the ``test`` rows whose user and item are in ``base + update`` (the others no model can
rank: counted), full ranking over the items of ``base + update``, every ``base + update`` item
of the user masked (the protocol's "seen items"); NDCG@10 and Recall@20 per user
(:func:`kgzoo.metrics.ranking.topk_metrics`), averaged over (i) the test users of ``base`` and
(ii) every test user (a model that has not seen a user, (a) for the update's new users, scores 0
for that user; an item it has not seen it cannot recommend). Seconds: wall clock of the update
(extending the data, growing, folding in, fine-tuning) and of the retrain (data, model, fit).

Run: ``OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/scripts/incremental_update.py``
(defaults: ``--models bpr lightgcn kgplm --epochs bpr=100 lightgcn=30 kgplm=10 --finetune 3 --out
benchmarks/studies/incremental_update.json``). Before each model the base+update text vectors are
computed once, untimed (kgzoo's text cache is keyed by the whole text list, so the first of the
update and the retrain to run would otherwise re-encode every item text).
"""
from __future__ import annotations

import argparse
import copy
import json
import time
import uuid
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch

import kgzoo
from kgzoo.config import ZooConfig
from kgzoo.data import load_data
from kgzoo.data.protocol import EvalProtocol
from kgzoo.hub.update import update_model
from kgzoo.metrics.ranking import topk_metrics

#: every row a train row: the temporal cut is the split (no valid or test part inside a dataset)
ALL_TRAIN = EvalProtocol(task="topk", split="random", ratios=(1.0, 0.0, 0.0))
#: the study's KGPLM: the KG in the graph (the update's form; the zoo config's TransE vectors are
#: not extended by an update), no attributes (an update gives new items none), 2 graph layers (the
#: config has 3; for time)
OVERRIDES = {"kgplm": {"kg_encoder": "ckg", "use_attributes": False, "n_layers": 2}}
#: the update's counts kept in the results (by key prefix)
REPORTED = ("new ", "folded-in", "items with", "base entities", "update interactions")


def frames(cut: tuple[float, float]) -> dict[str, pd.DataFrame]:
    """ml-100k-kg as frames of raw ids, the interactions cut by time into base / update / test."""
    d = load_data("ml-100k-kg")
    order = torch.sort(d.timestamp, stable=True).indices
    x = pd.DataFrame({"user": np.asarray(d.user_ids, dtype=object)[d.interactions[order, 0].numpy()],
                      "item": np.asarray(d.item_ids, dtype=object)[d.interactions[order, 1].numpy()],
                      "rating": d.rating[order].numpy(), "timestamp": d.timestamp[order].numpy()})
    n = len(x)
    a, b = int(round(cut[0] * n)), int(round(cut[1] * n))
    ent = np.asarray(d.entity_ids, dtype=object)
    kg = pd.DataFrame({"head": ent[d.triples[:, 0].numpy()],
                       "relation": np.asarray(d.relation_names, dtype=object)[d.triples[:, 1].numpy()],
                       "tail": ent[d.triples[:, 2].numpy()]})
    text = pd.DataFrame({"item": d.item_ids, "text": d.item_text})
    return {"base": x.iloc[:a].reset_index(drop=True), "update": x.iloc[a:b].reset_index(drop=True),
            "test": x.iloc[b:].reset_index(drop=True), "kg": kg, "text": text,
            "span": [int(x["timestamp"].iloc[0]), int(x["timestamp"].iloc[a]), int(x["timestamp"].iloc[b]),
                     int(x["timestamp"].iloc[-1])]}


def dataset(x: pd.DataFrame, f: dict[str, pd.DataFrame], tag: str) -> str:
    items = set(x["item"])
    text = f["text"][f["text"]["item"].isin(items)]
    return kgzoo.from_frames(x, triples=f["kg"], item_text=text, name=f"ml100k-{tag}-{uuid.uuid4().hex[:6]}",
                             protocol=ALL_TRAIN).name


def train(model_name: str, name: str, epochs: int, seed: int) -> tuple[object, object, float]:
    """``model_name`` trained ``epochs`` epochs on dataset ``name`` (ml-100k-kg's zoo config and
    :data:`OVERRIDES`); returns (model, datamodule, wall seconds of data, model and fit)."""
    start = time.perf_counter()
    L.seed_everything(seed, verbose=False)
    cfg = ZooConfig.load(model_name, "ml-100k-kg")
    dm = kgzoo.create_datamodule(name, batch_size=int(cfg.data.get("batch_size", 2048)), seed=seed)
    model = kgzoo.create_model(model_name, datamodule=dm, config=False,
                               **{**cfg.model, **OVERRIDES.get(model_name, {})})
    L.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0).fit(model, datamodule=dm)
    return model.eval(), dm, time.perf_counter() - start


@torch.no_grad()
def evaluate(model, dm, seen: pd.DataFrame, test: pd.DataFrame, users: list[str], items: list[str],
             base_users: set[str]) -> dict[str, float]:
    """NDCG@10 and Recall@20 of ``model`` on ``test`` (raw ids) over the catalogue ``items``, the
    ``seen`` rows masked; mean over the base's test users and over all test users (0 for a user
    the model does not know)."""
    uidx, iidx = pd.Index(users), pd.Index(items)
    m_users, m_items = pd.Index(dm.data.user_ids), pd.Index(dm.data.item_ids)
    t_u, t_i = uidx.get_indexer(test["user"].astype(str)), iidx.get_indexer(test["item"].astype(str))
    eval_users = np.unique(t_u)
    known = m_users.get_indexer(np.asarray(users, dtype=object)[eval_users])
    have = known >= 0
    model_item_of = m_items.get_indexer(np.asarray(items, dtype=object))  # catalogue item -> model item (-1)
    ndcg, recall = np.zeros(len(eval_users)), np.zeros(len(eval_users))
    s_u, s_i = uidx.get_indexer(seen["user"].astype(str)), iidx.get_indexer(seen["item"].astype(str))
    ok = torch.from_numpy(np.flatnonzero(model_item_of >= 0))
    row_of = np.full(len(users), -1)
    model.prepare_scoring()
    try:
        for start in range(0, int(have.sum()), 256):
            pick = np.flatnonzero(have)[start:start + 256]
            raw = model.score(torch.from_numpy(known[pick]).long()).float()
            scores = torch.full((len(pick), len(items)), -torch.inf)
            scores[:, ok] = raw[:, torch.from_numpy(model_item_of[ok.numpy()])]
            row_of[:] = -1
            row_of[eval_users[pick]] = np.arange(len(pick))
            sm, tm = row_of[s_u] >= 0, row_of[t_u] >= 0
            scores[torch.from_numpy(row_of[s_u[sm]]), torch.from_numpy(s_i[sm])] = -torch.inf
            target = (torch.from_numpy(row_of[t_u[tm]]), torch.from_numpy(t_i[tm]).long())
            m = topk_metrics(scores, target, [10, 20], ["ndcg", "recall"])
            ndcg[pick], recall[pick] = m["ndcg@10"].numpy(), m["recall@20"].numpy()
    finally:
        model.end_scoring()
    is_base = np.array([users[u] in base_users for u in eval_users])
    return {"ndcg@10 base users": float(ndcg[is_base].mean()), "recall@20 base users": float(recall[is_base].mean()),
            "ndcg@10 all users": float(ndcg.mean()), "recall@20 all users": float(recall.mean()),
            "users scored": int(have.sum()), "test users": int(len(eval_users))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["bpr", "lightgcn", "kgplm"])
    p.add_argument("--epochs", nargs="+", default=["bpr=100", "lightgcn=30", "kgplm=10"],
                   help="fixed training epochs of (a) and (c) per model, MODEL=N")
    p.add_argument("--finetune", type=int, default=3, help="fine-tuning epochs of the update (b)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/studies/incremental_update.json")
    args = p.parse_args()
    epochs = {k: int(v) for k, v in (e.split("=") for e in args.epochs)}
    torch.set_num_threads(1)
    f = frames((0.90, 0.95))
    seen = pd.concat([f["base"], f["update"]])
    users = list(pd.unique(seen["user"].astype(str)))
    items = list(pd.unique(seen["item"].astype(str)))
    base_users = set(f["base"]["user"].astype(str))
    test = f["test"]
    keep = test["user"].astype(str).isin(set(users)) & test["item"].astype(str).isin(set(items))
    info = {"rows": {k: len(f[k]) for k in ("base", "update", "test")}, "test rows ranked": int(keep.sum()),
            "test rows of a user unseen in base+update": int((~test["user"].astype(str).isin(set(users))).sum()),
            "test rows of an item unseen in base+update": int((~test["item"].astype(str).isin(set(items))).sum()),
            "new users in update": len(set(f["update"]["user"].astype(str)) - base_users),
            "new items in update": len(set(f["update"]["item"].astype(str)) - set(f["base"]["item"].astype(str))),
            "time span (s)": f["span"], "epochs": epochs, "finetune": args.finetune, "seed": args.seed}
    print(json.dumps(info))
    test = test[keep]
    base_name, full_name = dataset(f["base"], f, "t90"), dataset(seen, f, "t95")
    new_items = set(f["update"]["item"]) - set(f["base"]["item"])
    upd_text = f["text"][f["text"]["item"].isin(new_items)]
    results = []
    for name in args.models:
        # the text vectors of base+update once, untimed: kgzoo's text cache is keyed by the whole text
        # list, so whichever of the update and the retrain ran first would re-encode every item text
        train(name, full_name, 0, args.seed)
        model, dm, t_base = train(name, base_name, epochs[name], args.seed)
        row = {"model": name, "base train s": t_base}
        row["a: no update"] = evaluate(model, dm, seen, test, users, items, base_users)
        for label, ep in (("b: fold-in", 0), ("b: fold-in + ft", args.finetune)):
            up = update_model(copy.deepcopy(model), dm, interactions=f["update"], item_text=upd_text, epochs=ep,
                              seed=args.seed)
            row[label] = {**evaluate(up.model, up.datamodule, seen, test, users, items, base_users),
                          "update s": up.report["seconds"],
                          **{k: v for k, v in up.report.items() if k.startswith(REPORTED)}}
        retrained, dm3, t_full = train(name, full_name, epochs[name], args.seed)
        row["c: retrain"] = {**evaluate(retrained, dm3, seen, test, users, items, base_users), "retrain s": t_full}
        results.append(row)
        print(json.dumps(row))
    Path(args.out).write_text(json.dumps({"setup": info, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
