"""Train and evaluate one model on one dataset: the unit of work of ``kgzoo bench``.

Lightning does the work: :func:`lightning.seed_everything` (workers too), deterministic
algorithms where torch allows, early stopping on a validation metric, the best
checkpoint restored for test, a CSV logger and (in a terminal) a rich progress bar.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import resource
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger

from .api import create_datamodule, create_datamodule_for, create_model
from .config import ZooConfig
from .data.protocol import EvalProtocol
from .models.base import SIZE_KEYS


class EpochTimer(Callback):
    """Wall seconds of each training epoch (evaluation excluded), of each evaluation pass,
    and the epoch of the best monitored validation value."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.train_seconds: list[float] = []
        self.eval_seconds: list[float] = []
        self.best_epoch: int | None = None
        self._best = -float("inf")
        self._t: float | None = None
        self._v = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t = time.perf_counter()

    def _close_train(self) -> None:
        if self._t is not None:
            self.train_seconds.append(time.perf_counter() - self._t)
            self._t = None

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._close_train()  # Lightning 2.x validates inside the train epoch, after its batches
        self._v = time.perf_counter()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self.eval_seconds.append(time.perf_counter() - self._v)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None and not trainer.sanity_checking and float(value) > self._best:
            self._best, self.best_epoch = float(value), trainer.current_epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close_train()


def _rss_mb() -> float:
    """Resident set size of this process in MB (Linux ``/proc``; elsewhere the lifetime peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


class PeakMemory:
    """Peak memory in MB while the ``with`` block runs.

    On CUDA, ``torch.cuda.max_memory_allocated`` (reset on entry); on CPU, the highest
    resident set size sampled every ``interval`` seconds by a daemon thread (the process's
    lifetime peak, ``ru_maxrss``, would carry earlier cells of a grid into later ones).
    """

    def __init__(self, device: str = "cpu", interval: float = 0.05) -> None:
        self.device, self.interval, self.peak_mb = device, interval, 0.0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, _rss_mb())

    def __enter__(self) -> "PeakMemory":
        if self.device == "cuda" and torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        else:
            self.peak_mb = _rss_mb()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device == "cuda" and torch.cuda.is_available():
            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20
        else:
            self._stop.set()
            self._thread.join()
            self.peak_mb = max(self.peak_mb, _rss_mb())


def library_versions() -> dict[str, str]:
    import lightning
    import torch_geometric

    from . import __version__

    return {"kgzoo": __version__, "torch": torch.__version__, "lightning": lightning.__version__,
            "torch_geometric": torch_geometric.__version__, "python": platform.python_version()}


def default_protocol(dataset: str) -> EvalProtocol:
    """The dataset's default protocol, whose split seed stays fixed across training seeds.

    A benchmark's seeds vary initialisation and negative sampling on one split, so that
    their rows share a fingerprint and the leaderboard reports mean and std over seeds.
    """
    from .data.datasets import dataset_spec

    return dataset_spec(dataset).protocol


def run_experiment(model: str, dataset: str = "ml-100k-kg", seed: int = 0, protocol: EvalProtocol | None = None,
                   max_epochs: int | None = None, patience: int | None = None, monitor: str | None = None,
                   quick: bool = False, devices: int | str = 1, strategy: str = "auto", accelerator: str = "cpu",
                   kg_ablation: str = "real", root: str | None = None, out_dir: str | Path = "runs",
                   progress: bool | None = None, model_overrides: dict[str, Any] | None = None,
                   data_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``model`` on ``dataset`` with early stopping, test the best checkpoint, return a result row.

    Args:
        model, dataset: registry names. seed: seeds initialisation and negative sampling
            (``seed_everything`` and the DataModule's sampler); the split is the protocol's.
        protocol: ``None`` = the dataset's default (:func:`default_protocol`).
        max_epochs, patience, monitor: override the config's ``train`` section (``monitor``
            is a metric name such as ``"ndcg@10"``; default the model's main metric).
        quick: use the config's ``bench`` section (the short schedule of the default bench).
        devices, strategy, accelerator: passed to :class:`lightning.Trainer` (``strategy="ddp"``).
        kg_ablation: ``"real"``, ``"none"``, ``"shuffled"``, ``"noisy:P"``.
        out_dir: where checkpoints and CSV logs go
            (``out_dir/dataset/model/seed<S>-<kg_ablation>[-<key>-<value>...]``, one pair per
            protocol field that differs from the dataset's default and per model override).
        model_overrides: hyper-parameters over the zoo config (a bench variant).
        data_overrides: DataModule arguments over the config's ``data`` section.

    Returns:
        The result row (DESIGN.md, "Result row"): ``metrics`` (``test/...`` and best
        ``valid/...``), ``best_epoch``, ``epochs``, ``seconds_per_epoch``,
        ``eval_seconds`` (mean per evaluation pass), ``train_seconds``, ``test_seconds``,
        ``peak_memory_mb``, ``params``, ``devices``, ``strategy``, ``versions``,
        ``fingerprint``, ``checkpoint``, ``time``.

    Raises:
        KeyError: unknown model or dataset. ValueError: unknown metric or hyper-parameter.
        DivergedError: the loss became NaN.
    """
    cfg = ZooConfig.load(model, dataset)
    schedule = cfg.schedule(quick, max_epochs, patience, monitor)
    max_epochs, patience, monitor = schedule.max_epochs, schedule.patience, schedule.monitor
    L.seed_everything(seed, workers=True, verbose=False)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if protocol is None:
        protocol = default_protocol(dataset)
    dm = create_datamodule(dataset, root=root, protocol=protocol, kg_ablation=kg_ablation, seed=seed,
                           **{**cfg.data, **(data_overrides or {})})
    overrides = dict(model_overrides or {})
    if monitor is not None:
        overrides["main_metric"] = monitor
    net = create_model(model, datamodule=dm, **overrides)
    dm = create_datamodule_for(net, dm)  # the model's task decides its data (KG link prediction: triples)
    mon = f"valid/{net.main_metric}"
    default = default_protocol(dataset)
    changed = {f.name: getattr(protocol, f.name) for f in dataclasses.fields(protocol)
               if getattr(protocol, f.name) != getattr(default, f.name)}  # e.g. split=cold_item
    run_dir = Path(out_dir) / dataset / model / (
        f"seed{seed}-{kg_ablation.replace(':', '')}"
        + "".join(f"-{k}-{v}" for k, v in sorted({**changed, **(model_overrides or {})}.items())))
    ckpt = ModelCheckpoint(dirpath=run_dir / "checkpoints", monitor=mon, mode="max", save_top_k=1,
                           filename="best", enable_version_counter=False)
    timer = EpochTimer(mon)
    callbacks: list[Callback] = [ckpt, timer, EarlyStopping(monitor=mon, mode="max", patience=patience)]
    if progress is None:
        progress = sys.stdout.isatty()
    if progress:
        callbacks.append(RichProgressBar())
    trainer = L.Trainer(max_epochs=max_epochs, accelerator=accelerator, devices=devices, strategy=strategy,
                        callbacks=callbacks, logger=CSVLogger(run_dir, name="logs"), enable_progress_bar=progress,
                        enable_model_summary=False, num_sanity_val_steps=0, deterministic=False,
                        log_every_n_steps=1000)
    with PeakMemory("cuda" if accelerator in ("gpu", "cuda") else "cpu") as memory:
        t0 = time.perf_counter()
        with warnings.catch_warnings():  # log_every_n_steps=1000 only keeps step logging off (we log per epoch)
            warnings.filterwarnings("ignore", message="The number of training batches .* is smaller than the logging")
            trainer.fit(net, datamodule=dm)
        train_seconds = time.perf_counter() - t0
        best_valid = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("valid/")}
        best_path = ckpt.best_model_path or None
        t1 = time.perf_counter()
        results = trainer.test(net, datamodule=dm, ckpt_path=best_path, verbose=False, weights_only=True)
        test_seconds = time.perf_counter() - t1
    if best_path:
        # the valid metrics of the restored best epoch
        best_valid = {mon: float(ckpt.best_model_score)} | {k: v for k, v in best_valid.items() if k != mon}
    best_epoch = timer.best_epoch
    row: dict[str, Any] = {
        "model": model, "dataset": dataset, "seed": seed, "kg_ablation": dm.kg_ablation_kind,
        "task": net.task, "protocol": protocol.to_dict(), "fingerprint": dm.fingerprint,
        "protocol_fingerprint": dm.protocol_fingerprint, "main_metric": net.main_metric,
        "metrics": {k: float(v) for k, v in (results[0] if results else {}).items()},
        "valid_metrics": best_valid, "best_epoch": best_epoch, "epochs": trainer.current_epoch,
        "seconds_per_epoch": (sum(timer.train_seconds) / len(timer.train_seconds)) if timer.train_seconds else 0.0,
        "eval_seconds": (sum(timer.eval_seconds) / len(timer.eval_seconds)) if timer.eval_seconds else 0.0,
        "train_seconds": train_seconds, "test_seconds": test_seconds,
        "peak_memory_mb": memory.peak_mb,
        "params": sum(p.numel() for p in net.parameters() if p.requires_grad),
        "devices": devices, "strategy": strategy, "accelerator": accelerator,
        "hparams": {k: v for k, v in dict(net.hparams).items() if k not in SIZE_KEYS},
        "versions": library_versions(), "checkpoint": best_path, "config": str(cfg.path) if cfg.path else None,
        "paper": cfg.paper, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "status": "ok",
    }
    return row
