"""kgzoo's evaluation window inside ``Trainer.fit``, side by side in one process (issue 16, part 5).

The window is the one ``benchmarks/scripts/recbole/compare.py`` times against RecBole: from the
callbacks' ``on_validation_epoch_start`` to ``on_validation_end`` (the module's scoring
preparation, every batch's scoring, masking, top-K and metric update, the metrics' computation
and their hand-over to callbacks, loggers and progress bar), in process CPU seconds.

Contenders, each one ``fit`` per round of ``--epochs`` epochs of one training batch
(``limit_train_batches=1``: the window, not the training, is measured) through
:func:`kgzoo.bench.experiment.bench_trainer` (the Trainer, callbacks and CSV logger of a bench
cell), all from the same seed, so they train alike and must log the same metrics at the first
evaluation (later ones too, unless the model draws dropout from the global RNG, which a
``DataLoader`` around the evaluation batches also draws from):

- ``now``: this checkout;
- ``before`` (with ``--before-ranking FILE``): the ``TopKMetrics`` of another copy of
  ``kgzoo/metrics/ranking.py`` (``git show REV:kgzoo/metrics/ranking.py > FILE``), the
  metrics logged with ``self.log`` per key, as ``Recommender`` did before
  ``publish_epoch_metrics``, and the evaluation batches rebuilt at every pass inside a
  ``DataLoader``, as the DataModule did before it kept them;
- ``log-per-key``: this checkout with only the logging undone;
- ``rebuilt-batches``: this checkout with only the kept evaluation batches undone.

Rounds rotate the contenders' order. Reported: the median window per contender (the first
``--warmup`` windows of each fit left out) and the median over rounds of each contender's
median divided by ``now``'s. Usage (repository root)::

    git show e1b3252:kgzoo/metrics/ranking.py > /tmp/ranking_before.py
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/scripts/eval_window.py bpr --rounds 5 \\
        --before-ranking /tmp/ranking_before.py
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import statistics
import tempfile
import time

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, IterableDataset

from kgzoo.api import create_datamodule, create_model
from kgzoo.bench.experiment import bench_trainer, lightning_quiet
from kgzoo.config import ZooConfig
from kgzoo.data.datamodule import _EvalBatches, dist_info


class _Windows(Callback):
    """Process CPU seconds of each evaluation window, and the monitored value after each."""

    def __init__(self, monitor: str) -> None:
        self.monitor, self.cpu, self.values, self._c = monitor, [], [], 0.0

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._c = time.process_time()

    def on_validation_end(self, trainer, pl_module) -> None:
        self.cpu.append(time.process_time() - self._c)
        self.values.append({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("valid/")})


def _log_per_key(self, prefix, metrics) -> None:
    """``Recommender._log_metrics`` before ``publish_epoch_metrics``: ``self.log`` per key."""
    values = metrics.compute()
    for k, v in values.items():
        self.log(f"{prefix}/{k}", v, prog_bar=(k == self.main_metric), sync_dist=False)
    metrics.reset()


class _Rebuilt(IterableDataset):
    """The evaluation batches built anew at every pass (the DataModule before it kept them)."""

    def __init__(self, dm, stage: str) -> None:
        self.batches = _EvalBatches(dm, stage)

    def __iter__(self):
        return self.batches._build(*dist_info())


def _load_ranking(path: str):
    spec = importlib.util.spec_from_file_location("ranking_before", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def fit_windows(model: str, dataset: str, epochs: int, *, per_key: bool = False, ranking=None,
                rebuilt: bool = False) -> _Windows:
    """One ``fit`` of ``epochs`` one-batch epochs; returns its evaluation windows."""
    cfg = ZooConfig.load(model, dataset)
    L.seed_everything(0, verbose=False)
    dm = create_datamodule(dataset, seed=0, **cfg.data)
    net = create_model(model, datamodule=dm)
    if rebuilt:
        dm.val_dataloader = lambda: DataLoader(_Rebuilt(dm, "valid"), batch_size=None)
    if per_key:
        net._log_metrics = _log_per_key.__get__(net)
    if ranking is not None:
        net.valid_metrics = ranking.TopKMetrics(net.ks)
    windows = _Windows(f"valid/{net.main_metric}")
    with lightning_quiet(), tempfile.TemporaryDirectory() as tmp:
        trainer, *_ = bench_trainer(tmp, windows.monitor, epochs + 1, epochs, progress=False, callbacks=[windows],
                                    limit_train_batches=1)
        trainer.fit(net, datamodule=dm)
    return windows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--dataset", default="ml-100k-kg")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=8, help="evaluations per fit")
    ap.add_argument("--warmup", type=int, default=2, help="windows of each fit left out")
    ap.add_argument("--before-ranking", help="another kgzoo/metrics/ranking.py for the 'before' contender")
    a = ap.parse_args()
    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    contenders = {"now": {}, "log-per-key": dict(per_key=True), "rebuilt-batches": dict(rebuilt=True)}
    if a.before_ranking:
        contenders["before"] = dict(per_key=True, rebuilt=True, ranking=_load_ranking(a.before_ranking))
    names = list(contenders)
    med: dict[str, list[float]] = {n: [] for n in names}
    ratios: dict[str, list[float]] = {n: [] for n in names}
    reference = None
    for r in range(a.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        this = {}
        for n in order:
            w = fit_windows(a.model, a.dataset, a.epochs, **contenders[n])
            this[n] = statistics.median(w.cpu[a.warmup:])
            # the first evaluation's metrics must be the same for every contender; later ones may
            # differ for a model that draws dropout from the global RNG: a DataLoader ('before',
            # 'rebuilt-batches') draws a seed from it at every evaluation pass, the kept batches do not
            if reference is None:
                reference = w.values[0]
            elif w.values[0] != reference:
                raise SystemExit(f"{n}: the logged validation metrics differ from the first contender's")
        for n in names:
            med[n].append(this[n])
            ratios[n].append(this[n] / this["now"])
        print(f"round {r}: " + ", ".join(f"{n} {1000 * this[n]:.2f} ms" for n in names), flush=True)
    print(f"\n{a.model} on {a.dataset}: evaluation window, CPU ms (median of rounds), ratio to now (median of rounds)")
    for n in names:
        print(f"  {n:12s} {1000 * statistics.median(med[n]):7.2f} ms   x{statistics.median(ratios[n]):.3f}")
    print("metrics of the first evaluation identical across contenders: yes")


if __name__ == "__main__":
    main()
