"""Incremental update against retraining on a temporal split (issue 15, part 7).

The rows of ``--dataset`` (``ml-100k-kg``: Unix seconds; ``amazon-hin``: whole days) sorted by
timestamp (stable: ties by row order) are cut into the first 90% (``base``), the next 5%
(``update``) and the last 5% (``test``). **Ties stay on one side**: a cut falls before the first
row of its timestamp (:func:`cut`), so no timestamp is split between two parts. For each model:

- (a) ``no update``: trained on ``base`` only (every row a train row) for ``--epochs`` epochs
  (the dataset's zoo config, tuned values included, else the model's default config; plus
  :data:`OVERRIDES`);
- (b) ``update``: (a) with the ``update`` rows folded in by :func:`kgzoo.hub.update.update_model`
  (new users, new items, their KG links and text), closed form only (``fold-in``) and with
  ``--finetune`` epochs on the new pairs plus as many replayed base pairs (``fold-in + ft``);
  the fold-in's ridge ``reg`` and confidence ``alpha`` (:attr:`Recommender.fold_in_reg`,
  ``fold_in_alpha``) chosen first on the update window's validation part (below);
- (c) ``retrain``: trained from scratch on ``base + update`` for the same ``--epochs``.

Fold-in grid (never the test rows): the ``update`` window is cut again by time (ties on one
side) into its first 80% (``update-fit``) and last 20% (``update-valid``); (a) is updated with
``update-fit`` for every ``reg`` in ``--regs`` and ``alpha`` in ``--alphas`` (closed form only)
and scored on ``update-valid`` as the test below is scored (catalogue and seen rows: ``base +
update-fit``); the pair of best NDCG@10 over all valid users is used for (b) (ties: the first in
grid order).

Test: the ``test`` rows whose user and item are in ``base + update`` (the others no model can
rank: counted), full ranking over the items of ``base + update``, every ``base + update`` item
of the user masked (the protocol's "seen items"); NDCG@10 and Recall@20 per user
(:func:`kgzoo.metrics.ranking.topk_metrics`), averaged over (i) the test users of ``base`` and
(ii) every test user (a model that has not seen a user, (a) for the update's new users, scores 0
for that user; an item it has not seen it cannot recommend). Seconds: wall clock of the update
(extending the data, growing, folding in, encoding the new items' texts, growing KG vectors,
fine-tuning) and of the retrain (data, KG vectors, model, fit; text vectors come from the
per-text cache, which (a) and (b) filled).

Run: ``OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/scripts/incremental_update.py``
(defaults: ``--dataset ml-100k-kg --models bpr lightgcn kgplm --epochs bpr=100 lightgcn=30
kgplm=10 --finetune 3 --regs 0.1 1 10 --alphas 0 1 10 40 --out
benchmarks/studies/incremental_update.json``).
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
#: the study's KGPLM: the config's KG encoder (TransE vectors, grown by the update), no attributes
#: (an update gives new items none), 2 graph layers (the config has 3; for time); no text where the
#: dataset has none
OVERRIDES = {"kgplm": {"use_attributes": False, "n_layers": 2}}
NO_TEXT = {"kgplm": {"use_text": False}}
#: the update's counts kept in the results (by key prefix)
REPORTED = ("new ", "folded-in", "items with", "base entities", "update interactions")


def cut(ts: np.ndarray, q: float) -> int:
    """The index that cuts the sorted timestamps ``ts`` at share ``q`` with ties on one side: the
    first row of the timestamp of row ``round(q * n)`` (the whole tie group goes to the later part)."""
    a = int(round(q * len(ts)))
    return int(np.searchsorted(ts, ts[min(a, len(ts) - 1)], side="left"))


def frames(dataset_name: str, cuts: tuple[float, float], valid_share: float) -> dict[str, pd.DataFrame]:
    """``dataset_name`` as frames of raw ids, the interactions cut by time (:func:`cut`) into base /
    update / test, the update cut again into update-fit / update-valid (``valid_share`` last)."""
    d = load_data(dataset_name)
    if d.timestamp is None:
        raise ValueError(f"{dataset_name} has no timestamps: no temporal split")
    order = torch.sort(d.timestamp, stable=True).indices
    x = pd.DataFrame({"user": np.asarray(d.user_ids, dtype=object)[d.interactions[order, 0].numpy()],
                      "item": np.asarray(d.item_ids, dtype=object)[d.interactions[order, 1].numpy()],
                      "timestamp": d.timestamp[order].numpy()})
    if d.rating is not None:
        x.insert(2, "rating", d.rating[order].numpy())
    ts = x["timestamp"].to_numpy()
    a, b = cut(ts, cuts[0]), cut(ts, cuts[1])
    v = a + cut(ts[a:b], 1.0 - valid_share)
    ent = np.asarray(d.entity_ids, dtype=object)
    kg = pd.DataFrame({"head": ent[d.triples[:, 0].numpy()],
                       "relation": np.asarray(d.relation_names, dtype=object)[d.triples[:, 1].numpy()],
                       "tail": ent[d.triples[:, 2].numpy()]})
    text = pd.DataFrame({"item": d.item_ids, "text": d.item_text}) if d.item_text is not None else None
    part = {"base": x.iloc[:a], "update": x.iloc[a:b], "update-fit": x.iloc[a:v], "update-valid": x.iloc[v:b],
            "test": x.iloc[b:]}
    return {**{k: f.reset_index(drop=True) for k, f in part.items()}, "kg": kg, "text": text,
            "span": [int(ts[0]), int(ts[a]), int(ts[v]), int(ts[b]), int(ts[-1])],
            "ties at the cuts": [int((ts == ts[i]).sum()) for i in (a, v, b)]}


def dataset(x: pd.DataFrame, f: dict[str, pd.DataFrame], tag: str) -> str:
    text = None
    if f["text"] is not None:
        text = f["text"][f["text"]["item"].isin(set(x["item"]))]
    return kgzoo.from_frames(x, triples=f["kg"], item_text=text, name=f"{f['name']}-{tag}-{uuid.uuid4().hex[:6]}",
                             protocol=ALL_TRAIN).name


def new_text(f: dict[str, pd.DataFrame], before: pd.DataFrame, window: pd.DataFrame) -> pd.DataFrame | None:
    """The texts of the items of ``window`` that ``before`` has not (``None`` without text)."""
    if f["text"] is None:
        return None
    return f["text"][f["text"]["item"].isin(set(window["item"]) - set(before["item"]))]


def train(model_name: str, name: str, epochs: int, seed: int, f: dict) -> tuple[object, object, float]:
    """``model_name`` trained ``epochs`` epochs on dataset ``name`` (the study dataset's zoo config
    and :data:`OVERRIDES`); returns (model, datamodule, wall seconds of data, model and fit)."""
    start = time.perf_counter()
    L.seed_everything(seed, verbose=False)
    cfg = ZooConfig.load(model_name, f["name"])
    dm = kgzoo.create_datamodule(name, batch_size=int(cfg.data.get("batch_size", 2048)), seed=seed)
    over = {**OVERRIDES.get(model_name, {}), **(NO_TEXT.get(model_name, {}) if f["text"] is None else {})}
    model = kgzoo.create_model(model_name, datamodule=dm, config=False, **{**cfg.model, **over})
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


def catalogue(seen: pd.DataFrame, base: pd.DataFrame, test: pd.DataFrame) -> tuple[list, list, set, pd.DataFrame, dict]:
    """Users and items of ``seen``, the users of ``base``, the rankable ``test`` rows and their counts."""
    users = list(pd.unique(seen["user"].astype(str)))
    items = list(pd.unique(seen["item"].astype(str)))
    u_ok, i_ok = test["user"].astype(str).isin(set(users)), test["item"].astype(str).isin(set(items))
    counts = {"rows ranked": int((u_ok & i_ok).sum()), "rows of a user unseen before": int((~u_ok).sum()),
              "rows of an item unseen before": int((~i_ok).sum())}
    return users, items, set(base["user"].astype(str)), test[u_ok & i_ok], counts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="ml-100k-kg")
    p.add_argument("--models", nargs="+", default=["bpr", "lightgcn", "kgplm"])
    p.add_argument("--epochs", nargs="+", default=["bpr=100", "lightgcn=30", "kgplm=10"],
                   help="fixed training epochs of (a) and (c) per model, MODEL=N")
    p.add_argument("--finetune", type=int, default=3, help="fine-tuning epochs of the update (b)")
    p.add_argument("--regs", nargs="+", type=float, default=[0.1, 1.0, 10.0], help="fold-in ridge grid")
    p.add_argument("--alphas", nargs="+", type=float, default=[0.0, 1.0, 10.0, 40.0], help="fold-in confidence grid")
    p.add_argument("--valid-share", type=float, default=0.2, help="last share of the update window for the grid")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/studies/incremental_update.json")
    args = p.parse_args()
    epochs = {k: int(v) for k, v in (e.split("=") for e in args.epochs)}
    torch.set_num_threads(1)
    f = frames(args.dataset, (0.90, 0.95), args.valid_share)
    f["name"] = args.dataset
    seen = pd.concat([f["base"], f["update"]])
    users, items, base_users, test, counts = catalogue(seen, f["base"], f["test"])
    seen_v = pd.concat([f["base"], f["update-fit"]])
    users_v, items_v, _, valid, counts_v = catalogue(seen_v, f["base"], f["update-valid"])
    info = {"dataset": args.dataset, "rows": {k: len(f[k]) for k in ("base", "update", "update-fit", "update-valid",
                                                                       "test")},
            "test": counts, "update-valid": counts_v,
            "new users in update": len(set(f["update"]["user"].astype(str)) - base_users),
            "new items in update": len(set(f["update"]["item"].astype(str)) - set(f["base"]["item"].astype(str))),
            "time span (s)": f["span"], "ties at the cuts": f["ties at the cuts"], "epochs": epochs,
            "finetune": args.finetune, "grid": {"reg": args.regs, "alpha": args.alphas}, "seed": args.seed}
    print(json.dumps(info), flush=True)
    base_name, full_name = dataset(f["base"], f, "t90"), dataset(seen, f, "t95")
    upd_text = new_text(f, f["base"], f["update"])
    fit_text = new_text(f, f["base"], f["update-fit"])
    results = []
    for name in args.models:
        model, dm, t_base = train(name, base_name, epochs[name], args.seed, f)
        row = {"model": name, "base train s": t_base}
        row["a: no update"] = evaluate(model, dm, seen, test, users, items, base_users)
        grid = []
        for reg in args.regs:
            for alpha in args.alphas:
                m = copy.deepcopy(model)
                m.fold_in_reg, m.fold_in_alpha = reg, alpha
                up = update_model(m, dm, interactions=f["update-fit"], item_text=fit_text, epochs=0, seed=args.seed)
                score = evaluate(up.model, up.datamodule, seen_v, valid, users_v, items_v, base_users)
                grid.append({"reg": reg, "alpha": alpha, "valid ndcg@10 all users": score["ndcg@10 all users"],
                             "valid ndcg@10 base users": score["ndcg@10 base users"]})
                print(json.dumps({"model": name, **grid[-1]}), flush=True)
        best = max(grid, key=lambda g: g["valid ndcg@10 all users"])  # first of equal ones
        row["fold-in grid"], row["chosen"] = grid, {"reg": best["reg"], "alpha": best["alpha"]}
        for label, ep in (("b: fold-in", 0), ("b: fold-in + ft", args.finetune)):
            m = copy.deepcopy(model)
            m.fold_in_reg, m.fold_in_alpha = best["reg"], best["alpha"]
            up = update_model(m, dm, interactions=f["update"], item_text=upd_text, epochs=ep, seed=args.seed)
            row[label] = {**evaluate(up.model, up.datamodule, seen, test, users, items, base_users),
                          "update s": up.report["seconds"],
                          **{k: v for k, v in up.report.items() if k.startswith(REPORTED)}}
        retrained, dm3, t_full = train(name, full_name, epochs[name], args.seed, f)
        row["c: retrain"] = {**evaluate(retrained, dm3, seen, test, users, items, base_users), "retrain s": t_full}
        results.append(row)
        print(json.dumps(row), flush=True)
        Path(args.out).write_text(json.dumps({"setup": info, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
