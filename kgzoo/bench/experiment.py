"""One cell of a benchmark: train and evaluate one model on one dataset, return its ResultRow.

Lightning does the work: :func:`lightning.seed_everything` (workers too), deterministic
algorithms where torch allows, early stopping on a validation metric, the best
checkpoint restored for test, a CSV logger and (in a terminal) a rich progress bar.
Every :class:`~kgzoo.bench.rows.ResultRow` kgzoo writes is assembled here, by
:func:`assemble_row`: the successful one by :func:`run_experiment`, a failed cell's by
:func:`failed_row`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import json
import os
import pickle
import platform
import resource
import shlex
import sys
import threading
import time
import traceback
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

try:
    import fcntl
except ImportError:  # Windows: cells are not locked
    fcntl = None  # type: ignore[assignment]

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, Checkpoint, EarlyStopping, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger

from .. import __version__
from ..dist import destroy_group_at_exit, is_rank_zero, sigterm_without_collectives
from ..quiet import RESUMED_CHECKPOINTS, lightning_quiet
from ..version import git_revision
from ..api import create_datamodule_for, create_model, has_nothing_to_train
from ..config import ZooConfig
from ..paths import config_dirs
from ..data.protocol import EvalProtocol
from ..models.base import SIZE_KEYS
from ..models.layers.fusion import FusionLayer
from ..protocols import default_protocol, parse_protocol, protocol_key
from ..registry import MODELS
from .cells import (Cell, cell_config, cell_config_sha, cell_datamodule, cell_schedule, cell_task,
                    variant_name)
from .rows import BASE_VARIANT, ResultRow, protocol_label, relative_config, row_time

# the checkout's commit as it is now, when the model code the rows will run has just been imported
# (api imports every model): a commit made while a grid runs must not be recorded as its code
git_revision()


class BestModelCheckpoint(ModelCheckpoint):
    """Lightning's :class:`~lightning.pytorch.callbacks.ModelCheckpoint` that also keeps the fit of a
    model with nothing to train (no parameter with ``requires_grad``: Pop, news-plm-mean) when
    training ends, as ``best_model_path`` (its file name, e.g. ``best.ckpt``). Lightning's saves only
    after an optimiser step, which such a model never takes: without this its fit had no checkpoint
    for ``kgzoo recommend``/``export``/``test``. The arguments are ModelCheckpoint's; the trainers
    of ``kgzoo bench`` (:func:`bench_trainer`) and ``kgzoo fit --zoo``
    (:class:`kgzoo.cli.lightning.BestCheckpoint`) use it.

    Raises:
        as ``Trainer.save_checkpoint``.
    """

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if not self.best_model_path and self.dirpath is not None and has_nothing_to_train(pl_module):
            path = self.format_checkpoint_name({})
            trainer.save_checkpoint(path)  # every rank takes part; rank 0 writes
            self.best_model_path = path


class WarmupEarlyStopping(EarlyStopping):
    """:class:`~lightning.pytorch.callbacks.EarlyStopping` that may end a run only once it has
    trained ``min_epochs`` epochs: the converged schedule's warm-up
    (:attr:`kgzoo.data.spec.DatasetSpec.min_epochs`; Keras's ``EarlyStopping(start_from_epoch=...)``).

    The best value and the epochs without improvement are counted from the first epoch, as
    without a warm-up; only the decision to stop waits. Lightning's ``Trainer(min_epochs=...)``
    is not the same: a stop signalled during its warm-up stays set, and the run ends at
    ``min_epochs`` even when the metric improved in between.

    The epoch comes from Lightning's public hooks (``on_train_epoch_end``, ``on_validation_end``,
    whichever runs the check); the hold overrides the one private method that decides a stop,
    ``EarlyStopping._evaluate_stopping_criteria(current) -> (stop, reason)`` (the same in
    lightning 2.2.0 and 2.6.6). A Lightning without it would never call the hold and the
    warm-up would be silently lost, so a warm-up is refused there (no warm-up: plain
    ``EarlyStopping``). Every rank of a DDP run holds the same epochs (the epoch is the same on
    every rank, and Lightning reduces the stop decision after the hold).

    Args:
        min_epochs: epochs (int >= 0) the run trains before early stopping may end it; 0: none.
        *args, **kwargs: as ``EarlyStopping``.

    Raises:
        ValueError: ``min_epochs`` not an integer >= 0. RuntimeError: ``min_epochs`` > 0 under a
            Lightning whose ``EarlyStopping`` has no ``_evaluate_stopping_criteria``.
    """

    def __init__(self, *args: Any, min_epochs: int = 0, **kwargs: Any) -> None:
        if isinstance(min_epochs, bool) or not isinstance(min_epochs, int) or min_epochs < 0:
            raise ValueError(f"min_epochs={min_epochs!r} must be an integer >= 0")
        if min_epochs and not callable(getattr(EarlyStopping, "_evaluate_stopping_criteria", None)):
            raise RuntimeError(
                f"a warm-up of {min_epochs} epochs needs lightning's EarlyStopping._evaluate_stopping_criteria, "
                f"which lightning {L.__version__} does not have (kgzoo pins lightning>=2.2,<3): without it early "
                f"stopping would not wait")
        super().__init__(*args, **kwargs)
        self.min_epochs = min_epochs
        self._trained = 0

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._trained = trainer.current_epoch + 1  # epochs trained at this check (0-based epoch + 1)
        super().on_train_epoch_end(trainer, pl_module)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        self._trained = trainer.current_epoch + 1
        super().on_validation_end(trainer, pl_module)

    def _evaluate_stopping_criteria(self, current: torch.Tensor) -> tuple[bool, str | None]:
        before = getattr(self, "stopping_reason", None)  # lightning >= 2.5.x records why it stopped
        stop, reason = super()._evaluate_stopping_criteria(current)  # keeps counting best and wait
        if stop and self._trained < self.min_epochs:
            if before is not None:  # a held stop is no stop (nor is it one in a checkpoint's state)
                self.stopping_reason = before
            return False, None
        return stop, reason


class FitState(Callback):
    """A callback whose state belongs to a fit: saved in every checkpoint and restored into a fit
    resumed from one (:class:`ResumePoint`), never by another stage. Lightning restores every
    callback's state wherever a checkpoint is loaded, ``trainer.test(ckpt_path=best)`` included,
    which would put the best epoch's state (its timings, its fit seconds) over the finished run's.
    The stage comes from ``setup``, which Lightning calls before it restores a checkpoint; a
    subclass restores in :meth:`restore`."""

    _stage: str | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._stage = stage

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self._stage == "fit":
            self.restore(state)

    def restore(self, state: dict[str, Any]) -> None:
        """Take ``state`` (this class's ``state_dict()`` of a resumed fit's checkpoint)."""
        raise NotImplementedError


class EpochTimer(FitState):
    """Wall seconds of each training epoch (evaluation excluded), of each evaluation pass (scoring,
    metric computation and logging), the epoch of the best monitored validation value and every
    validation metric of that epoch (``best_valid``: what the restored best checkpoint scored, not
    the last epoch's values); a resumed fit goes on with the epochs before it (:class:`FitState`)."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.train_seconds: list[float] = []
        self.eval_seconds: list[float] = []
        self.best_epoch: int | None = None
        #: ``"valid/<m>" -> float`` of the best epoch (``None`` before one, or from an older resume point)
        self.best_valid: dict[str, float] | None = None
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

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The evaluation window closes here, after the module's on_validation_epoch_end has computed
        # and logged its metrics (Lightning calls the callbacks' on_validation_epoch_end before the
        # module's, so a window closed there would leave the metrics out).
        if trainer.sanity_checking:
            return
        self.eval_seconds.append(time.perf_counter() - self._v)
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None and not trainer.sanity_checking and float(value) > self._best:
            self._best, self.best_epoch = float(value), trainer.current_epoch
            self.best_valid = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("valid/")}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close_train()

    def state_dict(self) -> dict[str, Any]:
        return {"train_seconds": list(self.train_seconds), "eval_seconds": list(self.eval_seconds),
                "best_epoch": self.best_epoch, "best": self._best, "best_valid": self.best_valid}

    def restore(self, state: dict[str, Any]) -> None:
        self.train_seconds, self.eval_seconds = list(state["train_seconds"]), list(state["eval_seconds"])
        self.best_epoch, self._best = state["best_epoch"], float(state["best"])
        self.best_valid = state.get("best_valid")  # a point written before it was kept: None


def _rng_states() -> dict[str, Any]:
    """The global generators' states: torch (and CUDA's where there is one), NumPy, Python."""
    import random  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            # as tensors and numbers: a checkpoint must load with torch.load(weights_only=True)
            "numpy": (name, torch.from_numpy(keys.astype("int64")), int(pos), int(has_gauss), float(gauss)),
            "python": random.getstate()}


def _set_rng_states(states: dict[str, Any]) -> None:
    import random  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    name, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, keys.numpy().astype("uint32"), pos, has_gauss, gauss))
    random.setstate(states["python"])


#: a cell's resume point is written at most once per this many wall seconds (:class:`ResumePoint`)
RESUME_EVERY_SECONDS = 60.0


class ResumePoint(FitState, Checkpoint):
    """Saves where a run stands at the end of a training epoch (after its validation, early
    stopping's check and the best checkpoint), so that a killed cell resumes from its last such
    epoch (``run_experiment(resume=True)``, ``kgzoo bench --resume``) and ends where the
    uninterrupted run would have ended, with the same row.

    ``path`` (``<cell dir>/checkpoints/last.ckpt``) holds Lightning's full training state (weights,
    optimiser, epoch, the callbacks' states: best checkpoint, early stopping, :class:`EpochTimer`)
    and this callback's state:

    - the global generators' states (torch, CUDA, NumPy, Python) of every rank, gathered to the
      point (``torch.distributed.all_gather_object`` under DDP: ranks with uneven last shards draw
      different numbers of dropout masks) and set again, each rank its own, when the resumed
      run's next epoch starts (this callback's ``on_train_epoch_start``, before the module's), so
      dropout and every other global draw go on as uninterrupted (the training batches draw from
      the DataModule's seed and the epoch: :class:`kgzoo.data.datamodule.EpochIterable`);
    - the fit seconds spent so far, wall and this process's CPU (a row's ``train_seconds``,
      ``cell_seconds`` and ``cell_cpu_seconds`` count every process; a point written before it
      recorded CPU seconds leaves the resumed row's ``cell_cpu_seconds`` unknown, ``None``);
    - ``key``, the cell's identity beyond its folder name (:func:`resume_key`: hyper-parameters,
      the DataModule's identity, schedule, accelerator): a point of another configuration is
      never resumed (:func:`resume_point`).

    The sidecar ``last.json`` holds the key, the epoch and the folder. Each file is written under
    a temporary name and renamed, the checkpoint first, so a kill mid-write leaves the previous
    point whole.
    It is a Lightning :class:`~lightning.pytorch.callbacks.Checkpoint`, which Lightning runs after
    the callbacks that monitor a metric.

    A point is written at most once per ``every`` wall seconds (0: every epoch; rank 0's clock
    decides for every rank), and never at the epoch that ends the run (early stopping or the
    cap): a resumed run trains at least one epoch, as the uninterrupted one did after that point.

    Args:
        path: the checkpoint file. key: the cell's identity (a hex string). every: seconds >= 0.

    Raises:
        RuntimeError: resuming a fit from a point whose key is not ``key``, or one written by
            another number of ranks.
    """

    def __init__(self, path: str | Path, key: str, every: float = RESUME_EVERY_SECONDS) -> None:
        self.path, self.key, self.every = Path(path), key, every
        self.fit_seconds = 0.0  # fit seconds of earlier processes (a resumed run), restored from the point
        self.fit_cpu_seconds: float | None = 0.0  # their CPU seconds; None: a point that did not record them
        self._started, self._cpu_started = time.perf_counter(), time.process_time()
        self._last = -float("inf")
        self._rng: list[dict[str, Any]] | None = None  # every rank's states, from the point, set at the next epoch
        self._gathered: list[dict[str, Any]] | None = None  # every rank's states while this callback saves

    @staticmethod
    def _every_rank_rng(trainer: L.Trainer) -> list[dict[str, Any]]:
        """The generators' states of every rank, in global-rank order (collective under DDP)."""
        mine = _rng_states()
        if trainer.world_size == 1 or not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return [mine]
        every: list[Any] = [None] * trainer.world_size
        torch.distributed.all_gather_object(every, mine)
        return every

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # both clocks count the fit (after the point was restored), not the Trainer's set-up before it
        self._started = self._last = time.perf_counter()
        self._cpu_started = time.process_time()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # a Checkpoint: Lightning calls it after the other callbacks, early stopping and the best checkpoint
        # included (they check at the train epoch's end, after its validation), so their states hold this epoch
        if trainer.should_stop or trainer.current_epoch + 1 >= (trainer.max_epochs or 0):
            return
        # rank 0's clock decides for every rank (saving is collective: ranks that disagreed would deadlock)
        if not trainer.strategy.broadcast(time.perf_counter() - self._last >= self.every, src=0):
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        self._gathered = self._every_rank_rng(trainer)  # every rank takes part
        try:
            trainer.save_checkpoint(tmp)  # every rank takes part; rank 0 writes
        finally:
            self._gathered = None
        if trainer.is_global_zero:
            os.replace(tmp, self.path)
            side = self.path.with_suffix(".json")
            side.with_name(side.name + ".tmp").write_text(
                json.dumps({"key": self.key, "epoch": trainer.current_epoch, "dir": str(self.path.parent.resolve())})
                + "\n")
            os.replace(side.with_name(side.name + ".tmp"), side)
        self._last = time.perf_counter()

    def remove(self, trainer: L.Trainer) -> None:
        """Deletes the point (and its sidecar) once its run has ended, with the temporary files
        that a kill during a write left (``last.ckpt.tmp``: a whole checkpoint's size); rank 0 only."""
        if trainer.is_global_zero:
            for f in (self.path, self.path.with_suffix(".json")):
                f.unlink(missing_ok=True)
                f.with_name(f.name + ".tmp").unlink(missing_ok=True)

    def state_dict(self) -> dict[str, Any]:
        # "rng": one entry per rank (rank order); outside this callback's own save (the best checkpoint,
        # never resumed from) this rank's alone
        return {"key": self.key, "rng": self._gathered if self._gathered is not None else [_rng_states()],
                "fit_seconds": self.fit_seconds + time.perf_counter() - self._started,
                "fit_cpu_seconds": (None if self.fit_cpu_seconds is None
                                    else self.fit_cpu_seconds + time.process_time() - self._cpu_started)}

    def restore(self, state: dict[str, Any]) -> None:
        if state["key"] != self.key:
            raise RuntimeError(f"{self.path}: a resume point of another configuration ({state['key'][:12]}, "
                               f"this cell is {self.key[:12]})")
        self.fit_seconds = float(state["fit_seconds"])
        cpu = state.get("fit_cpu_seconds")  # absent from a point written before it was recorded: unknown
        self.fit_cpu_seconds = None if cpu is None else float(cpu)
        rng = state["rng"]
        # set when the next epoch starts (below): no other hook draws after it. A point written before
        # the states were gathered per rank holds rank 0's alone (one dict): every rank takes them, as then
        self._rng = [rng] if isinstance(rng, dict) else list(rng)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._rng is None:
            return
        rng, self._rng = self._rng, None
        if len(rng) == trainer.world_size:
            _set_rng_states(rng[trainer.global_rank])
        elif len(rng) == 1:
            _set_rng_states(rng[0])
        else:
            raise RuntimeError(f"{self.path}: a resume point of {len(rng)} ranks; this run has {trainer.world_size}")


def resume_key(model: L.LightningModule, datamodule: L.LightningDataModule, schedule: dict[str, Any],
               accelerator: str) -> str:
    """The key of a cell's :class:`ResumePoint`: what decides its training beyond the cell folder's
    name (:func:`cell_dir`: model, dataset, seed, KG ablation, protocol changes, overrides, devices,
    strategy, nodes, epoch cap, code hash), as a sha256 hex string over

    - the model's hyper-parameters (``model.hparams``: the zoo config's ``model`` section, the
      tuned values and the overrides);
    - the DataModule's identity (its ``state_dict()`` without ``folder``: the data and protocol
      fingerprint, the batch sizes, the sampler's seed, ``max_history``, ``npratio``, the triple
      split), so a changed ``data:`` section of the zoo config (``batch_size``) is another key,
      and its ``protocol_fingerprint``;
    - the schedule (cap, patience, warm-up, monitor) and the accelerator (a GPU's epochs are not
      a CPU run's).
    """
    data = {k: v for k, v in datamodule.state_dict().items() if k != "folder"}  # a moved folder: the same data
    return hashlib.sha256(json.dumps(
        {"hparams": dict(model.hparams), "data": data, "protocol": datamodule.protocol_fingerprint,
         "schedule": schedule, "accelerator": accelerator}, sort_keys=True, default=str).encode()).hexdigest()


@contextlib.contextmanager
def cell_lock(run_dir: str | Path) -> Iterator[None]:
    """Holds an exclusive lock on a cell's folder (``<run_dir>/.lock``, ``fcntl.flock``) while its
    run reads its resume point, trains and tests, on global rank 0 (:func:`kgzoo.dist.is_rank_zero`).
    ``kgzoo bench --resume`` runs every checkout's cells in one folder per results name
    (:func:`kgzoo.bench.cli.run_folder_for`): two processes running the same cell at once would
    write each other's best checkpoint and resume point. The lock goes with the process (a kill
    releases it). Without ``fcntl`` (Windows) nothing is locked.

    Raises:
        RuntimeError: another process holds the cell (naming the folder).
    """
    if fcntl is None or not is_rank_zero():
        yield
        return
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(run_dir) / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"{run_dir}: another process is running this cell (the same model, data, seed, "
                               f"overrides and code); wait for it, or give this run its own --runs folder") from None
        yield  # closing the file releases the lock


def resume_point(run_dir: str | Path, key: str, callbacks: Iterable[Callback] | None = None) -> Path | None:
    """The resume point (:class:`ResumePoint`) of a cell's folder when it was written by a run of
    this configuration (``key``) in this very folder, else ``None`` (none there, one of another
    configuration: changed hyper-parameters, data or schedule; or a folder moved or copied since:
    Lightning's ``ModelCheckpoint`` reloads its best score only under the folder it saved from, so
    the resumed run would take its first epoch for the best; or a checkpoint cut short, which
    has no zip directory, said on stdout).

    ``callbacks``: the callbacks of the Trainer that would resume it (``trainer.callbacks``). A
    point that holds the state of a callback none of them has (``Callback.state_key``: written by
    other code, e.g. before the best checkpoint became :class:`BestModelCheckpoint`) is not taken
    either, said on stdout: Lightning would drop that state with a warning and go on, and the
    resumed run would lose its best score (its test would read a worse epoch) or its early
    stopping's count. ``None``: not checked. The checkpoint is read weights-only
    (``torch.load(weights_only=True)``: tensors and plain containers, no code run); a point that
    holds anything else is not taken either, said on stdout, as the fit, which also loads it
    weights-only, would refuse it."""
    path = Path(run_dir) / "checkpoints" / "last.ckpt"
    side = path.with_suffix(".json")
    if not (path.is_file() and side.is_file()):
        return None
    try:
        meta = json.loads(side.read_text())
    except ValueError:
        return None
    # the folder it was written in: Lightning's best checkpoint state is dropped where the folder moved
    # (ModelCheckpoint reloads its best score only under the same dirpath), and the resumed run's best would be wrong
    if meta.get("key") != key or meta.get("dir") != str(path.parent.resolve()):
        return None
    # a file cut short (a full disk, a copy interrupted) has no zip directory at its end (torch.save writes a zip):
    # the run starts afresh rather than fail; Lightning reads the whole file once it resumes
    if not zipfile.is_zipfile(path):
        if is_rank_zero():  # every DDP rank reads the point; one says so
            print(f"{path}: unreadable resume point (no zip directory: cut short?); training from scratch", flush=True)
        return None
    if callbacks is not None:
        # weights only: a checkpoint never runs code when read (the fit loads it so too); mmap: its tensors stay on disk
        try:
            saved = torch.load(path, map_location="cpu", mmap=True, weights_only=True).get("callbacks") or {}
        except pickle.UnpicklingError as e:
            if is_rank_zero():
                print(f"{path}: resume point a weights-only load refuses ({str(e).splitlines()[0]}); "
                      "training from scratch", flush=True)
            return None
        lost = sorted(map(str, set(saved) - {cb.state_key for cb in callbacks}))
        if lost:
            if is_rank_zero():
                print(f"{path}: resume point written with callbacks this run does not have ({'; '.join(lost)}: "
                      "other code); training from scratch", flush=True)
            return None
    return path


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
    """Versions of kgzoo, torch, Lightning, PyG and Python (strings), recorded in every row."""
    import lightning
    import torch_geometric

    return {"kgzoo": __version__, "torch": torch.__version__, "lightning": lightning.__version__,
            "torch_geometric": torch_geometric.__version__, "python": platform.python_version()}


def code_hash(model: str | type) -> str:
    """16 hex digits of sha256 over kgzoo's version and the source files of the model class and
    of each of its bases outside torch and Lightning (the base Recommender included). A row keeps
    it, so ``--resume`` reruns a cell whose model code changed.

    Raises:
        KeyError: an unknown model name.
    """
    cls = MODELS.get(model) if isinstance(model, str) else model
    h = hashlib.sha256(__version__.encode())
    files: list[str] = []
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] in ("builtins", "torch", "lightning", "pytorch_lightning", "typing", "abc"):
            continue
        try:
            f = inspect.getsourcefile(klass)
        except TypeError:  # a class defined in C or interactively
            continue
        if f and f not in files:
            files.append(f)
    for f in files:
        h.update(Path(f).name.encode())
        h.update(Path(f).read_bytes())
    return h.hexdigest()[:16]


def command_line() -> str:
    """This process's command line, shell-quoted, program name without its folder; ``python -m
    kgzoo.cli ...`` (argv[0] ``.../kgzoo/cli/__main__.py``) is written as the ``kgzoo ...`` it is."""
    prog = Path(sys.argv[0])
    name = "kgzoo" if prog.name == "__main__.py" and prog.parent.parent.name == "kgzoo" else prog.name
    return " ".join(shlex.quote(a) for a in [name, *sys.argv[1:]])


def cell_dir(out_dir: str | Path, model: str, dataset: str, seed: int, kg_ablation: str,
             changed: dict[str, Any], devices: int | str, strategy: str, num_nodes: int, max_epochs: int,
             code: str) -> Path:
    """The folder of one cell's checkpoints and logs, unique per cell key and code hash::

        out_dir/<dataset>/<model>/seed<S>-<ablation>[-<k>-<v>...]-<devices>dev-<strategy>-<nodes>node-<E>ep-<code8>

    with one ``-k-v`` pair per protocol field that differs from the dataset's default and per
    model override, so no two cells overwrite each other's best checkpoint."""
    name = (f"seed{seed}-{kg_ablation.replace(':', '')}" + "".join(f"-{k}-{v}" for k, v in sorted(changed.items()))
            + f"-{devices}dev-{strategy}-{num_nodes}node-{max_epochs}ep-{code[:8]}")
    return Path(out_dir) / dataset / model / name


def _relative(path: str | Path | None, base: str | Path) -> str | None:
    if not path:
        return None
    try:
        return Path(path).resolve().relative_to(Path(base).resolve()).as_posix()
    except ValueError:
        return Path(path).name


def _short_traceback(e: BaseException) -> str:
    """The last frames of ``e``'s traceback with the kgzoo checkout and the interpreter prefix cut
    from file names (a row holds no machine paths)."""
    text = "".join(traceback.format_exception(e)[-6:])
    for prefix in sorted({str(Path(__file__).resolve().parents[2]) + os.sep, sys.prefix + os.sep,
                          sys.base_prefix + os.sep}, key=len, reverse=True):
        text = text.replace(prefix, "")
    return text


def tuning_record(cfg: ZooConfig) -> dict[str, Any] | None:
    """The row's ``tuning`` block from the config's ``tuned:`` section (written by ``kgzoo tune``):
    ``{"trials", "budget", "chosen", "best_valid", "study", "date", "dataset", "default"}``
    (``dataset``: where the values were chosen, this cell's dataset unless the config says
    ``tuned: {from: ...}``; ``default``: how the study's default trial did, ``None`` for a study
    without one); ``None`` for an untuned config."""
    t = cfg.tuned
    if not t:
        return None
    return {"trials": t.get("trials"), "budget": t.get("budget"), "chosen": dict(t.get("params") or {}),
            "best_valid": t.get("best_valid"), "study": t.get("study"), "date": t.get("date"),
            "dataset": t.get("dataset", cfg.dataset), "default": t.get("default")}


def assemble_row(*, model: str, dataset: str, seed: int, protocol: EvalProtocol, kg_ablation: str,
                 overrides: dict[str, Any], schedule: dict[str, Any], devices: int | str, strategy: str,
                 num_nodes: int, accelerator: str, fingerprint: str, protocol_fingerprint: str,
                 cell_fingerprint: str | None = None, command: str | None = None, variant: str | None = None,
                 config: ZooConfig | None = None, t_start: float, **measured: Any) -> ResultRow:
    """The one constructor of a kgzoo result row (:class:`~kgzoo.bench.rows.ResultRow`): the
    cell's identity, its config (path relative to the config directory, sha, paper block), its
    code hash, the git commit and dirtiness of the checkout (:func:`kgzoo.version.git_revision`,
    computed once per process, when this module was imported), versions, the torch thread count, time,
    ``cell_seconds`` since ``t_start``
    (``time.perf_counter``), and
    ``measured`` (metrics, epochs, timings, ...; ``status="failed"`` with ``error``/``traceback``).
    ``variant``: the cell's variant name as the grid spells it (:attr:`~kgzoo.bench.cells.Cell.variant`);
    ``None``: written from ``overrides``. ``config``: the config the cell trained with
    (:func:`~kgzoo.bench.cells.cell_config`, loaded once by :func:`run_experiment`), so the row
    records that one even where the file changed during the run; ``None``: loaded here.

    Raises:
        KeyError: an unknown model. ValueError: a broken config or a bad field value.
    """
    cfg = config or cell_config(model, dataset, protocol)
    if variant is None:
        variant = variant_name(overrides)
    config_path = None  # the row's config: the file relative to its config directory
    if cfg.path is not None:
        config_path = relative_config(str(cfg.path.resolve()))
        for d in config_dirs():
            if cfg.path.resolve().is_relative_to(d.resolve()):
                config_path = cfg.path.resolve().relative_to(d.resolve()).as_posix()
    task = measured.pop("task", None) or cell_task(model, dataset).name
    return ResultRow(
        model=model, dataset=dataset, task=task, seed=seed, variant=variant, overrides=dict(overrides),
        kg_ablation=kg_ablation, protocol=protocol.to_dict(), protocol_label=protocol_label(protocol.to_dict(), task),
        fingerprint=fingerprint, protocol_fingerprint=protocol_fingerprint,
        cell_fingerprint=cell_fingerprint if cell_fingerprint != fingerprint else None,
        devices=devices, strategy=strategy, num_nodes=num_nodes, accelerator=accelerator, schedule=dict(schedule),
        config=config_path, config_sha=cell_config_sha(Cell(model, dataset, seed, kg_ablation, variant,
                                         protocol_key(dataset, protocol, model)), schedule, overrides, cfg),
        code_hash=code_hash(model), git_commit=git_revision()[0], git_dirty=git_revision()[1],
        versions=library_versions(), torch_threads=torch.get_num_threads(), paper={} if cfg.inherited_from else dict(cfg.paper), tuning=tuning_record(cfg),
        # a subclass on its parent's zoo config: the parent's paper and reference numbers are not its own
        reference=None if cfg.inherited_from else cfg.reference_for(dataset),
        command=command or command_line(), time=row_time(),
        cell_seconds=time.perf_counter() - t_start, **measured)


def failed_row(cell: Cell, error: BaseException, *, schedule: dict[str, Any], fingerprint: str,
               protocol_fingerprint: str, devices: int | str = 1, strategy: str = "auto", num_nodes: int = 1,
               accelerator: str = "cpu", command: str | None = None, config: ZooConfig | None = None,
               t_start: float) -> ResultRow:
    """The row of a cell that raised ``error`` (``status="failed"``, the error and the last frames
    of its traceback), by :func:`assemble_row` (``config``: the cell's, where the caller loaded it)."""
    return assemble_row(model=cell.model, dataset=cell.dataset, seed=cell.seed,
                        protocol=parse_protocol(cell.dataset, cell.protocol, cell.model),
                        kg_ablation=cell.kg_ablation,
                        overrides=cell.overrides, schedule=schedule, devices=devices, strategy=strategy,
                        num_nodes=num_nodes, accelerator=accelerator, fingerprint=fingerprint,
                        protocol_fingerprint=protocol_fingerprint, command=command, variant=cell.variant,
                        config=config, t_start=t_start, status="failed",
                        error=f"{type(error).__name__}: {error}", traceback=_short_traceback(error))


#: Lightning's DDP strategies that take a ``_find_unused_parameters_true`` form
DDP_STRATEGIES = ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook")


def leaves_parameters_unused(model: Any) -> bool:
    """Whether a training step of ``model`` may leave trainable parameters without a gradient,
    which DDP's gradient reducer refuses at the next step: a model that trains in phases
    (``kg_phase``: KGAT's alternating optimisation; the KG phase leaves the aggregation weights,
    the CF phase TransR's relation tables), or one with a fusion layer that has parameters
    (:class:`~kgzoo.models.layers.fusion.FusionLayer`: with one source present it passes that
    source on as it is; KGPLM's user fusion on data without user attributes and social ties,
    kgplm-news on dkn-news)."""
    return bool(getattr(model, "kg_phase", False)) or any(
        isinstance(m, FusionLayer) and any(p.requires_grad for p in m.parameters()) for m in model.modules())


def _several_processes(devices: Any, num_nodes: int) -> bool:
    """Whether Lightning's ``devices`` and ``num_nodes`` ask for more than one process: several
    nodes, an integer (or its string) above 1, a list or a ``"0,1"`` string of several devices.
    ``"auto"`` and ``-1`` (every device the accelerator has) count as one."""
    if num_nodes > 1:
        return True
    if isinstance(devices, (list, tuple)):
        return len(devices) > 1
    if isinstance(devices, str):
        text = devices.strip()
        if "," in text:
            return len([d for d in text.split(",") if d.strip()]) > 1
        return text.isdigit() and int(text) > 1
    return isinstance(devices, int) and not isinstance(devices, bool) and devices > 1


def _interactive() -> bool:
    """An interactive Python session (a REPL, ``python -i``, a notebook), as Lightning tells it
    (``lightning.fabric.utilities.imports._IS_INTERACTIVE``), where its ``"auto"`` strategy for
    several processes is ``"ddp_fork"``."""
    return hasattr(sys, "ps1") or bool(sys.flags.interactive)


def _resolved(strategy: str, devices: Any, num_nodes: int) -> str:
    """``strategy``, except ``"auto"`` for several processes (:func:`_several_processes`): the DDP
    strategy Lightning picks for them (``_AcceleratorConnector._choose_strategy``: ``"ddp"``,
    ``"ddp_fork"`` in an interactive session)."""
    if strategy == "auto" and _several_processes(devices, num_nodes):
        return "ddp_fork" if _interactive() else "ddp"
    return strategy


def _family(strategy: str, families: Sequence[str]) -> str | None:
    """The one of ``families`` that ``strategy`` is, itself or a ``<family>_...`` form of it
    (``"ddp_spawn_find_unused_parameters_true"``: ``"ddp_spawn"``), else ``None``."""
    return next((f for f in families if strategy == f or strategy.startswith(f"{f}_")), None)


def strategy_for(model: Any, strategy: Any, devices: Any = 1, num_nodes: int = 1) -> Any:
    """The Lightning strategy ``model`` trains under: ``strategy``, except that a DDP one
    (:data:`DDP_STRATEGIES`) becomes its ``*_find_unused_parameters_true`` form for a model whose
    steps may leave parameters without a gradient (:func:`leaves_parameters_unused`), which DDP's
    gradient reducer otherwise refuses at the next step. ``"auto"`` with several processes
    (``devices``, ``num_nodes``: :func:`_several_processes`) is the DDP strategy Lightning picks for
    them (:func:`_resolved`) and is treated as that one. A strategy object (``DDPStrategy(...)``)
    is the caller's own and returned as it is.

    Raises:
        ValueError: a model with nothing to train (:func:`has_nothing_to_train`: Pop,
            news-plm-mean) under a DDP strategy (or ``"auto"`` with several processes), which
            ``DistributedDataParallel`` refuses (``RuntimeError: DistributedDataParallel is not
            needed when a module doesn't have any parameter that requires a gradient``, each rank,
            once the data was read); the message says to run it on one device.
    """
    if not isinstance(strategy, str):
        return strategy
    name = _resolved(strategy, devices, num_nodes)
    if has_nothing_to_train(model) and _family(name, DDP_STRATEGIES):
        raise ValueError(f"{type(model).__name__} has nothing to train (no parameter with requires_grad), which DDP "
                         f"refuses (strategy {strategy!r}, devices {devices}): run it on one device (--devices 1)")
    if name in DDP_STRATEGIES and leaves_parameters_unused(model):
        return f"{name}_find_unused_parameters_true"
    return strategy


#: the Lightning strategies that train in child processes of the calling one (their launcher spawns or
#: forks the ranks), which a bench cell cannot read back (:func:`bench_strategy`)
CHILD_PROCESS_STRATEGIES = ("ddp_spawn", "ddp_fork", "ddp_notebook")


def bench_strategy(strategy: Any, devices: Any = 1, num_nodes: int = 1) -> Any:
    """The strategy a bench cell trains and is recorded under: ``strategy``, except ``"auto"`` for
    several processes (``devices``, ``num_nodes``), which is ``"ddp"``, the strategy Lightning picks
    for them outside an interactive session (:func:`_resolved`); so ``--devices 2`` and
    ``--devices 2 --strategy ddp`` are one cell (row key, folder, leaderboard line), as they are one
    training.

    Refused: a strategy whose ranks are child processes of this one
    (:data:`CHILD_PROCESS_STRATEGIES`, with or without a ``_find_unused_parameters_*`` ending;
    ``"auto"`` for several processes in an interactive session, which Lightning makes
    ``"ddp_fork"``). Their callbacks (the epoch timer, early stopping, the best checkpoint, the
    resume point) run in the children, so the row would miss its best epoch and timings: under
    ``ddp_spawn`` the cell failed pickling the DataModule, under ``ddp_fork`` on ``float(None)``.
    ``"ddp"`` runs the command again for every rank (Lightning's subprocess launcher), rank 0
    being this process.

    Raises:
        ValueError: such a strategy, naming ``--strategy ddp``.
    """
    if not isinstance(strategy, str):
        return strategy
    name = _resolved(strategy, devices, num_nodes)
    child = _family(name, CHILD_PROCESS_STRATEGIES)
    if child is not None:
        given = (f"--strategy {strategy}" if name == strategy
                 else f"--devices {devices} in an interactive session (Lightning's auto: {name})")
        raise ValueError(f"{given}: {child} trains the ranks in child processes, whose callbacks (epoch timer, early "
                         "stopping, best checkpoint, resume point) a bench cell cannot read back; use --strategy ddp "
                         "(every rank runs the command, rank 0 writes the row)")
    return name


def bench_trainer(run_dir: str | Path, monitor: str, patience: int, max_epochs: int, *, accelerator: str = "cpu",
                  devices: int | str = 1, strategy: str = "auto", num_nodes: int = 1, progress: bool | None = None,
                  callbacks: Sequence[Callback] = (), min_epochs: int = 0, **trainer_kwargs: Any
                  ) -> tuple[L.Trainer, ModelCheckpoint, EpochTimer, EarlyStopping]:
    """The :class:`lightning.Trainer` of a benchmark cell, as :func:`run_experiment` trains with it:
    the best checkpoint on ``monitor`` (``max``) under ``run_dir/checkpoints``, an
    :class:`EpochTimer`, early stopping with ``patience`` that may end the run only once it has
    trained ``min_epochs`` epochs (:class:`WarmupEarlyStopping`), ``callbacks`` after them, a CSV logger
    under ``run_dir/logs``, a rich progress bar when ``progress`` (``None``: stdout is a terminal),
    no sanity validation, a SIGTERM handler without collective calls
    (:func:`kgzoo.dist.sigterm_without_collectives`), the process group destroyed at exit
    (:func:`kgzoo.dist.destroy_group_at_exit`). ``trainer_kwargs`` override Trainer arguments
    (a timing harness turning validation off: ``benchmarks/scripts/loop_overhead.py``).

    Returns:
        ``(trainer, checkpoint callback, epoch timer, early stopping)``.
    """
    run_dir = Path(run_dir)
    ckpt = BestModelCheckpoint(dirpath=run_dir / "checkpoints", monitor=monitor, mode="max", save_top_k=1,
                               filename="best", enable_version_counter=False)
    timer = EpochTimer(monitor)
    stopper = WarmupEarlyStopping(monitor=monitor, mode="max", patience=patience, min_epochs=min_epochs)
    callbacks_: list[Callback] = [ckpt, timer, stopper, *callbacks]
    if progress is None:
        progress = sys.stdout.isatty()
    if progress:
        callbacks_.append(RichProgressBar())
    kwargs: dict[str, Any] = dict(max_epochs=max_epochs, accelerator=accelerator, devices=devices, strategy=strategy,
                                  num_nodes=num_nodes, callbacks=callbacks_, logger=CSVLogger(run_dir, name="logs"),
                                  enable_progress_bar=progress, enable_model_summary=False, num_sanity_val_steps=0,
                                  deterministic=False, log_every_n_steps=1000)
    trainer = L.Trainer(**{**kwargs, **trainer_kwargs})
    sigterm_without_collectives(trainer)  # SIGTERM to every DDP rank stops them, without a hang
    destroy_group_at_exit()  # a gloo group left to the interpreter's exit aborted a rank now and then
    return trainer, ckpt, timer, stopper


def run_experiment(model: str, dataset: str = "ml-100k-kg", seed: int = 0, protocol: EvalProtocol | None = None,
                   max_epochs: int | None = None, patience: int | None = None, monitor: str | None = None,
                   quick: bool = False, devices: int | str = 1, strategy: str = "auto", accelerator: str = "cpu",
                   num_nodes: int = 1, kg_ablation: str = "real", root: str | None = None,
                   out_dir: str | Path = "runs", progress: bool | None = None,
                   model_overrides: dict[str, Any] | None = None, data_overrides: dict[str, Any] | None = None,
                   command: str | None = None, variant: str | None = None,
                   callbacks: Callable[[Any], Sequence[Callback]] | None = None, run_test: bool = True,
                   resume: bool = False) -> ResultRow:
    """Train ``model`` on ``dataset`` with early stopping, test the best checkpoint, return its row.

    Args:
        model, dataset: registry names. seed: seeds initialisation and negative sampling
            (``seed_everything`` and the DataModule's sampler); the split is the protocol's.
        protocol: ``None`` = the dataset's default (:func:`~kgzoo.protocols.default_protocol`).
        max_epochs: a fixed epoch cap (schedule kind ``"fixed"``); ``None``: the config's
            schedule (:func:`~kgzoo.bench.cells.cell_schedule`: ``quick`` or converged).
        patience: early-stopping patience over the schedule's. monitor: a metric name such as
            ``"ndcg@10"`` (default the model's main metric), followed by early stopping and
            checkpointing as ``valid/<monitor>``.
        devices, strategy, accelerator, num_nodes: passed to :class:`lightning.Trainer`.
        kg_ablation: ``"real"``, ``"none"``, ``"shuffled"``, ``"noisy:P"``.
        out_dir: the run folder; checkpoints and CSV logs go to :func:`cell_dir` below it and the
            row's ``checkpoint`` is relative to it.
        model_overrides: hyper-parameters over the zoo config (a bench variant).
        data_overrides: DataModule arguments over the config's ``data`` section.
        command: recorded in the row (default: this process's command line).
        variant: the name of ``model_overrides`` as the grid spells it (default: written from them).
        callbacks: ``model -> [Callback, ...]``: more Trainer callbacks for the built model (``kgzoo
            tune``'s pruning callback, which needs the model's main metric).
        run_test: ``False`` leaves the test split unread (``kgzoo tune`` selects on validation
            only); the row then has no test metrics.
        resume: go on from the cell folder's resume point (:class:`ResumePoint`: written at the end
            of a training epoch, at most once a minute) where a killed run of this very cell
            (same hyper-parameters, data and schedule) left one; the row is the one the
            uninterrupted run gives (its ``train_seconds``, ``cell_seconds`` and ``cell_cpu_seconds``
            count both processes' fits, the last ``None`` from a point that did not record them;
            ``peak_memory_mb`` is this process's). ``False``: train from scratch.
            Either way the point is removed once the run ends, by its end or by an ``Exception`` (a
            pruned trial, a NaN loss); a kill (SIGKILL, SIGTERM, Ctrl-C: no ``Exception``) leaves it.

    Returns:
        A :class:`~kgzoo.bench.rows.ResultRow` with ``status="ok"``: test metrics of the best
        checkpoint, its ``valid_metrics``, ``best_epoch`` (0-based), ``epochs``, ``stopped_by``
        (``"early_stopping"`` when EarlyStopping stopped the run, ``"closed_form"`` for a model
        without trainable parameters, which trains one epoch whatever the schedule's cap, ``"cap"``
        when it ran ``max_epochs``), seconds per training epoch, mean seconds per evaluation pass, train,
        test and cell seconds (wall), the cell's process CPU seconds, peak memory [MiB], trainable
        parameters, code hash.

    Raises:
        KeyError: unknown model or dataset. ValueError: unknown metric or hyper-parameter; a
            strategy whose ranks are child processes (:func:`bench_strategy`).
        DivergedError: the loss became NaN.
    """
    t_start, cpu_start = time.perf_counter(), time.process_time()
    strategy = bench_strategy(strategy, devices, num_nodes)  # auto for several processes: ddp, as recorded
    if protocol is None:
        protocol = default_protocol(dataset, model)
    cfg = cell_config(model, dataset, protocol)  # loaded once: schedule, data, model and row all read this one
    schedule = cell_schedule(model, dataset, max_epochs, quick, monitor, patience, protocol, config=cfg)
    L.seed_everything(seed, workers=True, verbose=False)
    torch.use_deterministic_algorithms(True, warn_only=True)
    dm = cell_datamodule(model, dataset, protocol, kg_ablation, seed, root, data_overrides, config=cfg)
    overrides = dict(model_overrides or {})
    net = create_model(model, datamodule=dm, config=cfg,
                       **({**overrides, "main_metric": monitor} if monitor else overrides))
    dm.setup()
    planned_fp = dm.fingerprint
    dm = create_datamodule_for(net, dm)  # the model's task decides its data (KG link prediction: triples)
    mon = f"valid/{net.main_metric}"
    schedule["monitor"] = mon
    default = default_protocol(dataset, model)
    changed = {f.name: getattr(protocol, f.name) for f in dataclasses.fields(protocol)
               if getattr(protocol, f.name) != getattr(default, f.name)}  # e.g. split=cold_item
    code = code_hash(model)
    run_dir = cell_dir(out_dir, model, dataset, seed, kg_ablation, {**changed, **overrides}, devices, strategy,
                       num_nodes, schedule["max_epochs"], code)
    # nothing to train (Pop): the one pass is the exact fit, whatever the schedule's cap and warm-up
    closed_form = has_nothing_to_train(net)
    point_key = resume_key(net, dm, schedule, accelerator)
    point = ResumePoint(run_dir / "checkpoints" / "last.ckpt", point_key, RESUME_EVERY_SECONDS)
    extra = [point, *(callbacks(net) if callbacks is not None else [])]
    with cell_lock(run_dir), lightning_quiet(*([RESUMED_CHECKPOINTS] if resume else [])):
        trainer, ckpt, timer, stopper = bench_trainer(
            run_dir, mon, schedule["patience"], 1 if closed_form else schedule["max_epochs"], accelerator=accelerator,
            devices=devices, strategy=strategy_for(net, strategy, devices, num_nodes), num_nodes=num_nodes,
            progress=progress, callbacks=extra, min_epochs=0 if closed_form else schedule.get("min_epochs", 0))
        start = resume_point(run_dir, point_key, trainer.callbacks) if resume and not closed_form else None
        if start is not None and is_rank_zero():  # once, not once per DDP rank
            print(f"resuming {model} / {dataset} / seed {seed} after epoch "
                  f"{json.loads(start.with_suffix('.json').read_text())['epoch']} ({start})", flush=True)
        with PeakMemory("cuda" if accelerator in ("gpu", "cuda") else "cpu") as memory:
            t0 = time.perf_counter()
            try:
                trainer.fit(net, datamodule=dm, ckpt_path=start, weights_only=True)
            except Exception:  # the run ended (pruned, diverged, an error); a kill is no Exception
                point.remove(trainer)
                raise
            train_seconds = point.fit_seconds + time.perf_counter() - t0  # earlier processes' fits too
            earlier_cpu = point.fit_cpu_seconds  # read before test, as the fit seconds are
            # read before test: restoring the best checkpoint restores Lightning's callbacks' states of that
            # epoch (EarlyStopping's, ModelCheckpoint's); kgzoo's are a fit's only (FitState)
            early_stopped = stopper.stopped_epoch > 0
            epochs = trainer.current_epoch
            best_valid = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("valid/")}
            best_path = ckpt.best_model_path or None  # a closed-form model's fit too (BestModelCheckpoint)
            t1 = time.perf_counter()
            results = (trainer.test(net, datamodule=dm, ckpt_path=best_path, verbose=False, weights_only=True)
                       if run_test else [])
            test_seconds = time.perf_counter() - t1
        point.remove(trainer)  # the run ended: its resume point has served
    if best_path and ckpt.best_model_score is not None:
        # the valid metrics of the restored best epoch (every one of them, not the last epoch's beside
        # the best monitored value; a fit resumed from a point without them: the last epoch's, as before)
        best_valid = {mon: float(ckpt.best_model_score)} | {k: v for k, v in (timer.best_valid or best_valid).items()
                                                             if k != mon}
    if closed_form:
        stopped_by = "closed_form"
    else:
        stopped_by = "early_stopping" if early_stopped else "cap" if epochs >= schedule["max_epochs"] else None
    return assemble_row(
        model=model, dataset=dataset, seed=seed, protocol=protocol, kg_ablation=dm.kg_ablation_kind,
        overrides=overrides, schedule=schedule, devices=devices, strategy=strategy, num_nodes=num_nodes,
        accelerator=accelerator, fingerprint=dm.fingerprint, protocol_fingerprint=dm.protocol_fingerprint,
        cell_fingerprint=planned_fp, command=command, variant=variant, config=cfg,
        t_start=t_start - point.fit_seconds,  # a resumed cell's time counts its earlier processes' fits
        task=net.task, main_metric=net.main_metric,
        metrics={k: float(v) for k, v in (results[0] if results else {}).items()},
        valid_metrics=best_valid, best_epoch=timer.best_epoch, epochs=epochs, stopped_by=stopped_by,
        seconds_per_epoch=(sum(timer.train_seconds) / len(timer.train_seconds)) if timer.train_seconds else 0.0,
        eval_seconds=(sum(timer.eval_seconds) / len(timer.eval_seconds)) if timer.eval_seconds else 0.0,
        train_seconds=train_seconds, test_seconds=test_seconds, peak_memory_mb=memory.peak_mb,
        cell_cpu_seconds=None if earlier_cpu is None else earlier_cpu + time.process_time() - cpu_start,
        params=sum(p.numel() for p in net.parameters() if p.requires_grad),
        hparams={k: v for k, v in dict(net.hparams).items() if k not in SIZE_KEYS},
        checkpoint=_relative(best_path, out_dir), status="ok")
