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

Both models start equal and train on the same batches, so their parameters must stay equal
after every round (checked: the loop measured is the same math). Times are process CPU
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

from kgzoo.api import create_datamodule, create_model
from kgzoo.bench.experiment import bench_trainer, lightning_quiet
from kgzoo.config import ZooConfig
from kgzoo.data.datamodule import _TrainBatches


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


def lightning_epoch(net, dm, tmp: str, profile: bool = False) -> dict:
    """One training epoch of ``net`` through a bench Trainer; its window and the whole ``fit``."""
    window = _Window()
    with lightning_quiet():
        trainer, *_ = bench_trainer(tmp, f"valid/{net.main_metric}", patience=10, max_epochs=1, progress=False,
                                    callbacks=[window], check_val_every_n_epoch=10**6)
        prof = cProfile.Profile(time.process_time) if profile else None
        c0, w0 = time.process_time(), time.perf_counter()
        if prof:
            prof.enable()
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="ml-100k-kg")
    p.add_argument("--model", default="bpr")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true", help="cProfile one more Lightning epoch; plain-loop breakdown")
    p.add_argument("--top", type=int, default=30, help="profile lines to print")
    p.add_argument("--json", help="write the rounds and medians to this file")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no "GPU available" lines per round
    L.seed_everything(a.seed, verbose=False)
    cfg = ZooConfig.load(a.model, a.dataset)
    dm = create_datamodule(a.dataset, seed=a.seed, **cfg.data)
    net = create_model(a.model, datamodule=dm)
    dm.setup()
    twin = copy.deepcopy(net)
    n = dm.bpr_sampler.users.numel()
    print(f"{a.model} on {a.dataset}: {n} train pairs, batch {dm.batch_size}, "
          f"{-(-n // dm.batch_size)} steps per epoch, {torch.get_num_threads()} thread(s)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="loop-overhead-") as tmp:
        for r in range(a.rounds):
            # the Lightning loader's epoch counter decides the negatives; the plain loop replays it
            epoch = getattr(getattr(dm, "_train_ds", None), "epoch", 0)
            if r % 2 == 0:
                lt = lightning_epoch(net, dm, tmp)
                pt = plain_epoch(twin, dm, epoch)
            else:
                pt = plain_epoch(twin, dm, epoch)
                lt = lightning_epoch(net, dm, tmp)
            same = all(torch.equal(x, y) for x, y in zip(net.parameters(), twin.parameters()))
            if not same:
                diff = max(float((x - y).abs().max()) for x, y in zip(net.parameters(), twin.parameters()))
                raise SystemExit(f"round {r}: the two loops' parameters differ (max |diff| {diff:.3g}): not the same math")
            rows.append({"round": r, "lightning_cpu": lt["cpu"], "lightning_wall": lt["wall"],
                         "fit_cpu": lt["fit_cpu"], "fit_wall": lt["fit_wall"],
                         "plain_cpu": pt["cpu"], "plain_wall": pt["wall"],
                         "ratio_cpu": lt["cpu"] / pt["cpu"], "ratio_wall": lt["wall"] / pt["wall"]})
            x = rows[-1]
            print(f"round {r}: lightning {x['lightning_cpu']:.3f} s CPU ({x['lightning_wall']:.3f} wall; fit "
                  f"{x['fit_cpu']:.3f} CPU), plain {x['plain_cpu']:.3f} CPU ({x['plain_wall']:.3f} wall), ratio "
                  f"{x['ratio_cpu']:.3f} CPU / {x['ratio_wall']:.3f} wall", flush=True)
        med = {k: statistics.median(x[k] for x in rows) for k in rows[0] if k != "round"}
        steps = -(-n // dm.batch_size)
        print(f"median over {a.rounds} rounds: lightning {med['lightning_cpu']:.3f} s CPU, plain "
              f"{med['plain_cpu']:.3f} s CPU, ratio {med['ratio_cpu']:.3f} (wall {med['ratio_wall']:.3f}); "
              f"overhead {(med['lightning_cpu'] - med['plain_cpu']) / steps * 1e3:.2f} ms CPU per step; "
              f"parameters equal after every round")
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
