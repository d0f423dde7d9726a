"""BPR-MF's training loop: Lightning, as ``kgzoo bench`` trains, against a plain PyTorch loop
(issue 16, part 5: "the training loop's overhead over a plain PyTorch loop at most 1.2x for BPR").

One process, one dataset (``ml-100k-kg`` by default: 80,808 train pairs, batch 2048 from the
BPR zoo config), ``--rounds`` interleaved rounds of

- ``lightning``: one training epoch of a fresh :func:`kgzoo.bench.experiment.bench_trainer`
  (the Trainer, callbacks and CSV logger of a bench cell) with ``max_epochs=1``; validation is
  off for the timing (``check_val_every_n_epoch`` beyond the cap, so checkpointing and early
  stopping stay attached but never fire). The window runs from the first
  ``on_train_epoch_start`` hook to ``on_train_end``: the epoch's batches (negative sampling,
  loader, hooks, logging) and its epoch-end work (logged-metric reduction, logger), not the
  Trainer's one-off setup, which is reported apart (``fit`` column);
- ``plain``: the same epoch's batches built by the DataModule's own sampler (same seed and
  epoch number, so the same negatives), then ``zero_grad / model.loss / backward / step`` with
  the same fused Adam (:meth:`Recommender.configure_optimizers`), on a copy of the same model.

``--ablate`` adds, in the same rounds, Lightning contenders with kgzoo's loop changes of issue
16 part 5 undone, each alone and all together (``before``): ``log`` (``self.log`` and a host-synced
NaN check every step), ``setattr`` (every attribute through ``nn.Module.__setattr__``),
``transfer`` (Lightning's ``transfer_batch_to_device`` walk over every batch), ``loader``
(a ``DataLoader(batch_size=None)`` around the train batches), ``sampler`` (negatives tested
against the sorted keys instead of the bitmap); each saved what its contender costs more.

``--floor`` adds Lightning's own per-step cost, through the same bench Trainer on the same
batches: ``minimal``, a bare ``LightningModule`` whose ``training_step`` returns the same
model's ``loss`` (same optimizer; none of ``Recommender``'s hooks), and ``trivial``, a
3-float parameter whose step does no work (its time is Lightning's loop alone).

All contenders start equal and train on the same batches each round, so their parameters must
stay equal after every round (checked: the loops measured do the same math). Times are process CPU
seconds (``time.process_time``) and wall seconds; the ratio is lightning / plain per round
and its median. ``--profile`` adds a cProfile of one more Lightning epoch (top functions by
own time) and a breakdown of the plain loop (sampling, slicing, forward+backward, step).

Usage (repository root)::

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/scripts/loop_overhead.py --rounds 7 --profile
"""
from __future__ import annotations

import argparse
import copy
import cProfile
import io
import json
import logging
import pstats
import statistics
import tempfile
import time

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from kgzoo.api import create_datamodule, create_model
from kgzoo.bench.experiment import bench_trainer, lightning_quiet
from kgzoo.config import ZooConfig
from kgzoo.data.datamodule import _TrainBatches
from kgzoo.ops.sampling import sorted_keys


class _Window(Callback):
    """CPU and wall seconds from the first ``on_train_epoch_start`` to ``on_train_end``."""

    def __init__(self) -> None:
        self.cpu = self.wall = 0.0
        self._c = self._w = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self._c is None:
            self._c, self._w = time.process_time(), time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self.cpu, self.wall = time.process_time() - self._c, time.perf_counter() - self._w


def _step_logged(self, batch, batch_idx):
    """The training step before issue 16 part 5 (``--ablate log``)."""
    loss = self.loss(batch)
    if not torch.isfinite(loss):
        raise RuntimeError(f"training loss is {loss.item()}")
    self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True,
             batch_size=next(iter(batch.values())).shape[0])
    return loss


def undone(net, changes: set[str]):
    """A copy of ``net`` (same parameters) with the model-side ``changes`` undone (``log``, ``setattr``,
    ``transfer``)."""
    body = {}
    if "log" in changes:
        body["training_step"] = _step_logged
    if "setattr" in changes:
        body["__setattr__"] = L.LightningModule.__setattr__
    if "transfer" in changes:
        body["transfer_batch_to_device"] = L.LightningModule.transfer_batch_to_device
    cls = type(f"{type(net).__name__}Before", (type(net),), body) if body else type(net)
    out = cls(**{k: v for k, v in net.hparams.items()})
    out.load_state_dict(net.state_dict())
    return out


def datamodule(name: str, seed: int, data: dict, changes: set[str]):
    """The DataModule of ``name`` (set up, train loader made) with the data-side ``changes`` undone
    (``loader``, ``sampler``)."""
    dm = create_datamodule(name, seed=seed, **data)
    dm.setup()
    if "sampler" in changes:
        s = dm.bpr_sampler
        s.known = sorted_keys(s.users, s.items, s.n_items)
    batches = dm.train_dataloader()
    if "loader" in changes:
        dm.train_dataloader = lambda: DataLoader(batches, batch_size=None)
    return dm


class Minimal(L.LightningModule):
    """``--floor``: a bare LightningModule around a Recommender's ``loss`` and optimizer."""

    def __init__(self, inner) -> None:
        super().__init__()
        self.inner = inner

    def training_step(self, batch, batch_idx):
        return self.inner.loss(batch)

    def configure_optimizers(self):
        return self.inner.configure_optimizers()


class Trivial(L.LightningModule):
    """``--floor``: a step without work, so its epoch is Lightning's per-step loop alone."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(3))

    def training_step(self, batch, batch_idx):
        return self.w.pow(2).sum()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), fused=True)


def lightning_epoch(net, dm, tmp: str, profile: bool = False) -> dict:
    """One training epoch of ``net`` through a bench Trainer; its window and the whole ``fit``
    (a ``--floor`` contender trains on the DataModule's train batches without the DataModule)."""
    window = _Window()
    with lightning_quiet():
        trainer, *_ = bench_trainer(tmp, "valid/ndcg@10", patience=10, max_epochs=1, progress=False,
                                    callbacks=[window], check_val_every_n_epoch=10**6)
        prof = cProfile.Profile(time.process_time) if profile else None
        c0, w0 = time.process_time(), time.perf_counter()
        if prof:
            prof.enable()
        if isinstance(net, (Minimal, Trivial)):
            trainer.fit(net, train_dataloaders=dm._train_ds)
        else:
            trainer.fit(net, datamodule=dm)
        if prof:
            prof.disable()
        fit_cpu, fit_wall = time.process_time() - c0, time.perf_counter() - w0
    return {"cpu": window.cpu, "wall": window.wall, "fit_cpu": fit_cpu, "fit_wall": fit_wall, "profile": prof}


def plain_epoch(net, dm, epoch: int, parts: dict | None = None) -> dict:
    """The same epoch (DataModule sampler, epoch number ``epoch``) in a plain PyTorch loop."""
    opt = net.configure_optimizers()
    c0, w0 = time.process_time(), time.perf_counter()
    ds = _TrainBatches(dm)
    ds.epoch = epoch
    t = time.process_time()
    batches = ds._batches()
    if parts is not None:
        parts["sample+slice"] = parts.get("sample+slice", 0.0) + time.process_time() - t
    net.train()
    for b in batches:
        t = time.process_time()
        opt.zero_grad()
        loss = net.loss(b)
        loss.backward()
        t1 = time.process_time()
        opt.step()
        if parts is not None:
            parts["forward+backward"] = parts.get("forward+backward", 0.0) + t1 - t
            parts["adam step"] = parts.get("adam step", 0.0) + time.process_time() - t1
    return {"cpu": time.process_time() - c0, "wall": time.perf_counter() - w0}


#: the loop changes ``--ablate`` undoes one by one (see the module docstring)
CHANGES = ("log", "setattr", "transfer", "loader", "sampler")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="ml-100k-kg")
    p.add_argument("--model", default="bpr")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true", help="cProfile one more Lightning epoch; plain-loop breakdown")
    p.add_argument("--top", type=int, default=30, help="profile lines to print")
    p.add_argument("--ablate", action="store_true", help="add contenders with each loop change undone, and all")
    p.add_argument("--floor", action="store_true", help="add Lightning's own per-step cost: minimal and trivial")
    p.add_argument("--json", help="write the rounds and medians to this file")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no "GPU available" lines per round
    L.seed_everything(a.seed, verbose=False)
    cfg = ZooConfig.load(a.model, a.dataset)
    dm = datamodule(a.dataset, a.seed, cfg.data, set())
    net = create_model(a.model, datamodule=dm)
    twin = copy.deepcopy(net)
    contenders = {"lightning": (net, dm)}
    if a.ablate:
        for undo in (*CHANGES, "before"):
            changes = set(CHANGES) if undo == "before" else {undo}
            contenders[undo] = (undone(net, changes), datamodule(a.dataset, a.seed, cfg.data, changes))
    if a.floor:
        contenders["minimal"] = (Minimal(copy.deepcopy(net)), dm)
        contenders["trivial"] = (Trivial(), dm)
    n = dm.bpr_sampler.users.numel()
    steps = -(-n // dm.batch_size)
    print(f"{a.model} on {a.dataset}: {n} train pairs, batch {dm.batch_size}, {steps} steps per epoch, "
          f"{torch.get_num_threads()} thread(s); contenders: plain, {', '.join(contenders)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="loop-overhead-") as tmp:
        for r in range(a.rounds):
            order = ["plain", *contenders]
            order = order[r % len(order):] + order[:r % len(order)]  # rotate: no contender always first
            row = {"round": r}
            for name in order:
                if name == "plain":
                    t = plain_epoch(twin, dm, r)
                else:
                    model, data = contenders[name]
                    data._train_ds.epoch = r  # the negatives of epoch r, for every contender
                    t = lightning_epoch(model, data, tmp)
                    row[f"{name}_fit_cpu"] = t["fit_cpu"]
                row[f"{name}_cpu"], row[f"{name}_wall"] = t["cpu"], t["wall"]
            for name, (model, _) in contenders.items():
                if name != "trivial" and not all(torch.equal(x, y) for x, y in zip(model.parameters(), twin.parameters())):
                    diff = max(float((x - y).abs().max()) for x, y in zip(model.parameters(), twin.parameters()))
                    raise SystemExit(f"round {r}: {name} and the plain loop differ (max |diff| {diff:.3g}): "
                                     "not the same math")
            for name in contenders:
                row[f"{name}_ratio_cpu"] = row[f"{name}_cpu"] / row["plain_cpu"]
                row[f"{name}_ratio_wall"] = row[f"{name}_wall"] / row["plain_wall"]
            rows.append(row)
            print(f"round {r}: plain {row['plain_cpu']:.3f} s CPU; " + "; ".join(
                f"{name} {row[f'{name}_cpu']:.3f} (x{row[f'{name}_ratio_cpu']:.2f})" for name in contenders), flush=True)
        med = {k: statistics.median(x[k] for x in rows) for k in rows[0] if k != "round"}
        low = {k: min(x[k] for x in rows) for k in rows[0] if k.endswith("_cpu") and "ratio" not in k}
        print(f"\nover {a.rounds} rounds, CPU s per epoch (median, min) and the ratio to plain (median of the "
              f"rounds' ratios; ratio of the minima); wall ratio (median); overhead per step (medians):")
        print(f"  {'plain':10s} {med['plain_cpu']:.4f} {low['plain_cpu']:.4f}")
        for name in contenders:
            print(f"  {name:10s} {med[f'{name}_cpu']:.4f} {low[f'{name}_cpu']:.4f}  x{med[f'{name}_ratio_cpu']:.3f}  "
                  f"x{low[f'{name}_cpu'] / low['plain_cpu']:.3f}  wall x{med[f'{name}_ratio_wall']:.3f}  "
                  f"{(med[f'{name}_cpu'] - med['plain_cpu']) / steps * 1e3:.2f} ms/step")
        if len(contenders) > 1:
            print("what each change saves, CPU ms per epoch: the contender without it minus lightning, paired "
                  "by round (median [quartiles]):")
            for name in list(contenders)[1:]:
                q = statistics.quantiles([(x[f"{name}_cpu"] - x["lightning_cpu"]) * 1e3 for x in rows], n=4)
                print(f"  {name:10s} {q[1]:6.1f} [{q[0]:.1f}, {q[2]:.1f}]")
        print("parameters of every contender equal to the plain loop's after every round")
        if a.profile:
            parts: dict = {}
            for _ in range(3):
                plain_epoch(copy.deepcopy(twin), dm, 0, parts)
            print("plain loop, CPU s per epoch: " + ", ".join(f"{k} {v / 3:.3f}" for k, v in parts.items()))
            prof = lightning_epoch(copy.deepcopy(net), dm, tmp, profile=True)["profile"]
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(a.top)
            print(out.getvalue())
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(a.top)
            print(out.getvalue())
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), "rounds": rows, "median": med}, f, indent=1)


if __name__ == "__main__":
    main()
