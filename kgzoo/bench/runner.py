"""The benchmark grid runner: one :class:`~kgzoo.bench.rows.ResultRow` per cell, on disk at once.

Each cell (:mod:`kgzoo.bench.cells`) is one call of
:func:`kgzoo.bench.experiment.run_experiment` (a fresh Trainer). Its row is appended to a
JSON-lines results file and flushed + fsync'ed the moment the cell ends, so a crash loses only the
cell that was running. ``resume=True`` skips a cell only when the file holds a successful row with
its cell key (:func:`kgzoo.bench.rows.cell_key`: model, dataset, seed, KG ablation, variant,
fingerprint, devices, strategy, nodes), its config sha (:func:`kgzoo.bench.cells.cell_config_sha`),
its code hash (:func:`kgzoo.bench.experiment.code_hash`) and its schedule's kind and monitored
metric (:func:`done_keys`): a cell whose data, config, model code, schedule kind or selection
metric changed runs again. A cell that raises (a :class:`~kgzoo.models.DivergedError` NaN loss
included) is recorded with ``status: "failed"`` and its error, and the grid goes on.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Iterable, Sequence

from ..dist import is_rank_zero
from ..protocols import parse_protocol
from .cells import Cell, cell_config, cell_config_sha, cell_fingerprint, cell_schedule
from .experiment import code_hash, command_line, failed_row, run_experiment
from .rows import ResultRow, append_row, cell_key, read_rows


@dataclass
class GridReport:
    """What :func:`run_grid` did: the rows it wrote, the cells it skipped or saw fail, wall seconds."""

    rows: list[ResultRow] = field(default_factory=list)
    skipped: list[Cell] = field(default_factory=list)
    failed: list[Cell] = field(default_factory=list)
    seconds: float = 0.0
    results: Path | None = None


def done_keys(rows: Iterable[ResultRow]) -> set[tuple]:
    """``(cell key, config_sha, code_hash, schedule kind, monitor)`` of every successful row: what
    ``--resume`` skips. The config sha leaves the schedule's kind and monitored metric out, so they
    join the key here: a ``--epochs N`` (fixed) or quick row never stands in for the converged run of
    its cell where the caps agree, nor a row selected on ``--metric recall@20`` for one selected on
    the main metric."""
    return {(r.key(), r.config_sha, r.code_hash, *schedule_identity(r.schedule or {})) for r in rows
            if r.status == "ok"}


def schedule_identity(schedule: dict) -> tuple:
    """``(kind, monitor)`` of a schedule (:func:`~kgzoo.bench.cells.cell_schedule`'s dict, or a row's)."""
    return schedule.get("kind"), schedule.get("monitor")


def estimate_seconds(model: str, dataset: str, max_epochs: int, history: Iterable[ResultRow]) -> float | None:
    """``max_epochs`` times the seconds per epoch of the latest successful row of ``model`` on
    ``dataset`` in ``history`` (an upper bound: early stopping may end the cell sooner), a row of
    the model's current code (:func:`~kgzoo.bench.experiment.code_hash`) where there is one (a
    row of older code may be several times slower); ``None`` when no such row measured it."""
    rows = [r for r in history if r.model == model and r.dataset == dataset and r.status == "ok"
            and r.seconds_per_epoch]
    if not rows:
        return None
    now = code_hash(model)
    rows = [r for r in rows if r.code_hash == now] or rows
    return max_epochs * max(rows, key=lambda r: r.written_at).seconds_per_epoch


def early_stopped_epochs(model: str, dataset: str, schedule: dict, history: Iterable[ResultRow]) -> list[int]:
    """The ``epochs`` of the runs of ``model`` on ``dataset`` in ``history`` that early stopping
    ended under the same schedule (``schedule``: :func:`cell_schedule`'s dict; its kind, cap,
    patience and warm-up): how long the next such run will likely take, where the cap is only its
    bound; none for a fixed schedule (it runs its epochs)."""
    if schedule.get("kind") == "fixed":
        return []
    same = ("kind", "max_epochs", "patience", "min_epochs")
    want = [schedule.get(k) for k in same]
    return [r.epochs for r in history if r.model == model and r.dataset == dataset and r.status == "ok"
            and r.stopped_by == "early_stopping" and r.epochs
            and [(r.schedule or {}).get(k) for k in same] == want]


def plan_text(model: str, dataset: str, schedule: dict, history: Iterable[ResultRow]) -> str:
    """The line said before a cell runs: its cap and its time, ``"up to 300 epochs, estimate 730 s
    (115 epochs as its 2 early-stopped runs here; at most 1,904 s)"`` where earlier runs of the
    model on the dataset measured its seconds per epoch and early stopping ended some
    (:func:`early_stopped_epochs`), else the cap's bound (:func:`estimate_seconds`: "at most" on
    the converged schedule, which early stopping ends) or ``"estimate ?"``."""
    history = list(history)
    cap = schedule["max_epochs"]
    bound = estimate_seconds(model, dataset, cap, history)
    if bound is None:
        return f"up to {cap} epochs, estimate ?"
    runs = early_stopped_epochs(model, dataset, schedule, history)
    typical = sum(runs) / len(runs) if runs else cap
    if not runs and schedule.get("kind") == "converged":  # early stopping will end it: the cap is only a bound
        return f"up to {cap} epochs, at most {bound:,.0f} s (no early-stopped run of it here yet)"
    if typical >= cap:
        return f"up to {cap} epochs, estimate {bound:.0f} s"
    return (f"up to {cap} epochs, estimate {bound * typical / cap:.0f} s ({typical:.0f} epochs as its {len(runs)} "
            f"early-stopped run{'s' if len(runs) != 1 else ''} here; at most {bound:,.0f} s)")


def run_grid(cells: Sequence[Cell], results: str | Path, *, epochs: int | None = None, quick: bool = True,
             resume: bool = False, metric: str | None = None, devices: int | str = 1, strategy: str = "auto",
             num_nodes: int = 1, accelerator: str = "cpu", root: str | None = None, out_dir: str | Path = "runs",
             command: str | None = None, progress: bool | None = False,
             log: Callable[[str], None] | None = print, live: Callable[[str], ContextManager] | None = None,
             history: Sequence[ResultRow] = (), experiment: Callable[..., ResultRow] | None = None) -> GridReport:
    """Run every cell, appending one row per cell to ``results``.

    Args:
        cells: from :func:`~kgzoo.bench.cells.resolve_grid`. results: the JSON-lines file.
        epochs: ``max_epochs`` for every cell (schedule kind ``"fixed"``); ``None``: the config's
            schedule, ``quick`` (the config's ``bench`` section) or converged.
        resume: skip cells already done (see the module doc), and go on with a killed cell from the
            last epoch its run saved (``run_experiment(resume=True)``: the same row as uninterrupted).
        metric: the validation metric monitored (model selection, early stopping).
        devices, strategy, num_nodes, accelerator: passed through to the Trainer; part of the cell key.
        out_dir: the run folder (checkpoints and logs; rows' checkpoint paths are relative to it).
        command: the command line recorded in every row (default: this process's).
        log: prints one line before and after each cell (``None``: silent).
        live: ``live(text)`` is a context manager held while a cell runs (a progress line with
            the cell's estimate, e.g. rich's); ``None``: none.
        history: earlier rows for the time estimate (:func:`estimate_seconds`); this run's rows
            join them as they come.
        experiment: the function that runs one cell (default :func:`run_experiment`), called
            with ``run_experiment``'s arguments.

    Returns:
        A :class:`GridReport`. Only global rank 0 (:func:`kgzoo.dist.is_rank_zero`) writes rows.
    """
    experiment = experiment or run_experiment
    results = Path(results)
    command = command or command_line()
    rank0 = is_rank_zero()
    say = log if (log is not None and rank0) else (lambda s: None)
    old = read_rows(results)
    done = done_keys(old) if resume else set()
    seen = [*history, *old]
    report = GridReport(results=results)
    t_grid = time.perf_counter()
    for i, cell in enumerate(cells, 1):
        cfg = cell_config(cell.model, cell.dataset, cell.protocol)  # once for the plan (the run loads its own)
        fp, pfp = cell_fingerprint(cell, root, config=cfg)
        schedule = cell_schedule(cell.model, cell.dataset, epochs, quick, metric, protocol=cell.protocol, config=cfg)
        key = (cell_key(cell.model, cell.dataset, cell.seed, cell.kg_ablation, cell.variant, fp, devices, strategy,
                        num_nodes), cell_config_sha(cell, schedule, config=cfg), code_hash(cell.model),
               *schedule_identity(schedule))
        tag = f"[{i}/{len(cells)}] {cell.label()}"
        if key in done:
            report.skipped.append(cell)
            say(f"{tag}: already in {results}, skipped")
            continue
        inherited = cfg.inherited_from
        if inherited:
            say(f"{tag}: {cell.model} has no zoo config; using {inherited}'s")
        plan = plan_text(cell.model, cell.dataset, schedule, seen)
        say(f"{tag}: {plan}")
        t0 = time.perf_counter()
        with (live(f"{tag} ({plan})") if (live is not None and rank0) else contextlib.nullcontext()):
            try:
                row = experiment(cell.model, cell.dataset, seed=cell.seed,
                                 protocol=parse_protocol(cell.dataset, cell.protocol, cell.model),
                                 max_epochs=epochs,
                                 monitor=metric, quick=quick, devices=devices, strategy=strategy,
                                 num_nodes=num_nodes, accelerator=accelerator, kg_ablation=cell.kg_ablation,
                                 root=root, out_dir=out_dir, progress=progress,
                                 model_overrides=cell.overrides or None, command=command, variant=cell.variant,
                                 resume=resume)
            except Exception as e:  # noqa: BLE001 - a failed cell is a result, the grid goes on
                row = failed_row(cell, e, schedule=schedule, fingerprint=fp, protocol_fingerprint=pfp,
                                 devices=devices, strategy=strategy, num_nodes=num_nodes, accelerator=accelerator,
                                 command=command, config=cfg, t_start=t0)
        if row.status != "ok":
            report.failed.append(cell)
        if rank0:
            append_row(results, row)
        report.rows.append(row)
        seen.append(row)
        say(cell_line(tag, row))
    report.seconds = time.perf_counter() - t_grid
    say(f"grid: {len(cells)} cells ({len(report.rows)} run, {len(report.skipped)} skipped, "
        f"{len(report.failed)} failed) in {report.seconds:.1f} s; rows in {Path(results).resolve()}")
    return report


def cell_line(tag: str, row: ResultRow) -> str:
    """One line on how a cell ended: status, seconds, epochs (and what stopped them), main test metric."""
    secs = f"{row.cell_seconds or 0.0:.1f} s"
    if row.status != "ok":
        return f"{tag}: FAILED after {secs}: {row.error}"
    value = row.metrics.get(f"test/{row.main_metric}")
    shown = f"test {row.main_metric} {value:.4f}" if isinstance(value, (int, float)) else "no test metric"
    stop = f", {row.stopped_by.replace('_', ' ')}" if row.stopped_by else ""
    return (f"{tag}: ok in {secs} ({row.epochs} epochs{stop}, {row.seconds_per_epoch or 0.0:.2f} s/epoch), "
            f"{shown}")


__all__ = ["GridReport", "cell_line", "done_keys", "schedule_identity", "estimate_seconds", "early_stopped_epochs", "plan_text", "run_grid"]
