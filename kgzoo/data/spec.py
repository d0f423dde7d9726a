"""A dataset catalogue entry (:class:`DatasetSpec`) and its registration.

Every entry pins its files (source URL at a fixed commit and sha256), its licence, its
citation, a builder that reads the files into a :class:`KGRecData` and the default
:class:`EvalProtocol` of the papers that use it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..registry import DATASETS
from .download import SourceFile, WheelSource
from .kgdata import KGRecData
from .protocol import EvalProtocol


@dataclass(frozen=True)
class DatasetSpec:
    """A catalogue entry.

    Attributes:
        name: registry name (also the folder name under the data root).
        domain: ``"video"``, ``"music"``, ``"e-commerce"``, ``"news"``, ...
        description: one paragraph: what is inside and what is special.
        files: the pinned source files. builder: ``folder -> KGRecData`` (raw, before cleaning).
        licence: licence note (every set here is research-only).
        citation: the paper(s) to cite.
        protocol: the default evaluation protocol.
        wheel: files also shipped in a PyPI wheel (offline-from-GitHub fallback).
        expected: counts the builder must reproduce (checked by the tests).
        impressions: ``folder -> (KGRecData, ImpressionLog)`` where the source logs impressions
            (MIND: :func:`kgzoo.data.readers.mind.read_mind_impressions`), for the ``impression``
            task; ``None``: the dataset has no impressions.
        caveat: one line shown wherever results on the dataset are (leaderboard captions,
            ``kgzoo data list``, ``data stats``),
            e.g. when its split is not the papers' and numbers are not comparable; ``""`` if none.
        one_seed_minutes: a published table of this dataset may hold a model with one seed instead
            of three where its converged run took longer than this (minutes on 2 cores, one torch
            thread: the row's :attr:`~kgzoo.bench.rows.ResultRow.run_seconds`, process CPU
            seconds where recorded, else wall; issue 16, part 3: 40 on the large sets); the
            leaderboard says so below its tables beside the marked lines; ``0``: every published
            line should have three.
        folder: the dataset's own folder (a user's folder, :mod:`kgzoo.data.folders`); ``None``:
            ``<data root>/<name>``.
        origin: what a user's dataset was made from, its identity when registered again:
            ``"frames:<sha256 of the contents>"``, ``"folder:<path>"``,
            ``"update:<sha256 of the contents>"``; ``""`` for the catalogue.
        extends: ``(base DataModule, Growth)`` of the extended data of an incremental update
            (:func:`kgzoo.hub.update.register_extended`), which a DataModule of this entry takes
            as its ``extended_from``; ``None`` for every other dataset.
        max_history: the history cap of the dataset's protocol: clicked items a history model
            (DKN, NRMS, ...) reads per scored row, the last ones; the DataModules' default
            (``max_history=None``), so every model of a table reads the same history and their
            rows share one fingerprint. DKN's Bing News: 30 (its authors' code,
            ``max_click_history``); elsewhere NRMS's 50.
        min_epochs: the warm-up of the dataset's converged schedule: early stopping (and the
            tuning pruner, :func:`kgzoo.bench.tune.pruner_warmup`) may end a converged run or a
            tuning trial of any model on this dataset only from this epoch on
            (:class:`kgzoo.bench.experiment.WarmupEarlyStopping`; Keras's
            ``EarlyStopping(start_from_epoch=...)``, "a warm-up period in which no improvement is
            expected"; not Lightning's ``Trainer(min_epochs=...)``, which keeps a stop signalled
            inside the warm-up and ends the run there after an improvement); the best validation
            checkpoint is kept as always, so a run that peaked earlier reports the same best.
            ``0``: none (patience alone). Set where a model's validation curve, on the values
            it was given, stays on a plateau longer than the patience before it climbs
            (``min_epochs_reason`` says what was seen).
        min_epochs_reason: the evidence for :attr:`min_epochs`, shown under the dataset's tables.
        tune_from: the dataset whose tuned values the published tables of this one take
            (``kgzoo tune MODEL DATASET --from <tune_from>``, a ``tuned: {from: ...}`` record): the
            same domain's small set, where a study per model on this dataset would cost more than
            its table can afford (issue 16, part 1: video and music from ``ml-100k-kg``,
            e-commerce and local business from ``amazon-hin``), or where its validation split is no
            guide to its test split (``mind-sample``: from ``dkn-news``). ``""``: its tables are
            tuned on the dataset itself. The lanes (``benchmarks/scripts/fair_lane.py``, ``gpu_grid.sh``) read it;
            ``kgzoo tune`` says it before a study of the dataset's own.
        retired_protocols: ``(protocol, reason)`` pairs: protocols that were the dataset's default
            (:attr:`protocol`) before it changed. The leaderboard puts their tables in its archive
            with the reason (:func:`kgzoo.bench.leaderboard.build`'s ``retired``): their rows stay
            true for their protocol but are no longer the dataset's table (dkn-news's validation
            split carved per user until 2026-12-07: ``benchmarks/studies/dkn_news_valid_split.md``).
        grid: the registered models of the dataset's published table under its default protocol
            (the impression protocol where it has impressions); the leaderboard names those
            without a line there as not yet run (:attr:`kgzoo.bench.leaderboard.Table.pending`),
            so a partial table is never read as the whole grid. ``()``: no published table.
    """

    name: str
    domain: str
    description: str
    files: tuple[SourceFile, ...]
    builder: Callable[[Path], KGRecData]
    licence: str
    citation: str
    protocol: EvalProtocol = field(default_factory=EvalProtocol)
    wheel: WheelSource | None = None
    expected: dict = field(default_factory=dict)
    caveat: str = ""
    one_seed_minutes: float = 0.0
    folder: Path | None = None
    origin: str = ""
    impressions: Callable[[Path], tuple[KGRecData, Any]] | None = None
    extends: tuple[Any, Any] | None = None
    max_history: int = 50
    min_epochs: int = 0
    min_epochs_reason: str = ""
    tune_from: str = ""
    grid: tuple[str, ...] = ()
    retired_protocols: tuple[tuple[EvalProtocol, str], ...] = ()


def history_cap(spec: DatasetSpec | None) -> int:
    """The clicked items a history model reads per scored row on ``spec``'s data: its
    :attr:`DatasetSpec.max_history`; the field's default (NRMS's 50) for in-memory data without a
    catalogue entry (``None``). What both DataModules take for ``max_history=None``."""
    return DatasetSpec.max_history if spec is None else spec.max_history


def saved_folder(spec: DatasetSpec | None) -> str | None:
    """The ``folder`` both DataModules save in a checkpoint's data entry: a user's dataset
    folder (:attr:`DatasetSpec.folder`) as an absolute path, by which another process registers
    it again (:func:`kgzoo.hub.checkpoint.datamodule_arguments`); ``None`` for the catalogue's
    datasets and in-memory data (``spec`` ``None``)."""
    folder = None if spec is None else spec.folder
    return str(Path(folder).resolve()) if folder is not None else None


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to the catalogue (see :func:`kgzoo.list_datasets`).

    A user's dataset (``spec.origin`` set) registered again under its name with the same origin
    is the entry already there (returned); with another origin it is an error.

    Raises:
        ValueError: an invalid name, or a name already registered (by another origin).
    """
    if spec.origin and spec.name in DATASETS:
        old = DATASETS.get(spec.name)
        if old.origin == spec.origin:
            return old
        raise ValueError(f"dataset {spec.name!r} is already registered ({old.origin or 'catalogue'}); "
                         f"this one is {spec.origin}: choose another name")
    DATASETS.register(spec.name, spec, domain=spec.domain)
    return spec


def gh(repo: str, commit: str, path: str) -> str:
    """GitHub raw address of ``path`` in ``repo`` at ``commit``."""
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"
