"""Zoo configs: :class:`ZooConfig`, read once per (model, dataset) cell and passed down.

A config file is ``<dir>/<model>/<dataset>.yaml``, else ``<dir>/<model>/default.yaml``, over the
folders of :func:`kgzoo.paths.config_dirs` (packaged first, then ``$KGZOO_CONFIG_DIR``, then
extra folders): the folders are overlaid, so for each of the two names the file of the last
folder holding it counts, and a dataset file anywhere beats a ``default.yaml`` anywhere.

Sections (each a mapping; all optional): ``model`` (hyper-parameters), ``data`` (DataModule
arguments: batch sizes), ``train`` (the converged schedule: ``max_epochs``, ``patience``,
``monitor``), ``bench`` (overrides of ``train`` for the quick default ``kgzoo bench``),
``paper`` (the paper's reported numbers and setting, for ``kgzoo reproduce``) and ``tune``
(the hyper-parameter search space of ``kgzoo tune``).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from .paths import PathLike, config_dirs
from .registry import MODELS

SECTIONS = ("model", "data", "train", "bench", "paper", "tune")

#: the schedule's defaults where neither the config nor the caller sets a value
DEFAULT_MAX_EPOCHS = 100
DEFAULT_PATIENCE = 10


@dataclass(frozen=True)
class Schedule:
    """How long a cell trains.

    Attributes:
        quick: the short smoke schedule of the default ``kgzoo bench`` (config ``bench``
            section over ``train``), else the converged one (``train``).
        max_epochs: epoch cap (int >= 1). patience: early-stopping patience in validation
            epochs (int >= 0). monitor: validation metric name without the ``valid/`` prefix
            (``"ndcg@10"``), ``None`` = the model's main metric.
    """

    quick: bool
    max_epochs: int
    patience: int
    monitor: str | None


def _file_for(model: str, dataset: str | None, dirs: list[Path]) -> Path | None:
    """The file of ``model`` on ``dataset`` over the overlaid ``dirs`` (later wins), else its
    ``default.yaml``; ``None`` if neither exists in any folder."""
    for name in ([f"{dataset}.yaml"] if dataset else []) + ["default.yaml"]:
        for d in reversed(dirs):
            p = d / model / name
            if p.is_file():
                return p
    return None


def _read(path: Path) -> dict[str, dict[str, Any]]:
    """The sections of a config file, each a dict (missing ones empty).

    Raises:
        ValueError: invalid YAML, a top level that is not a mapping, an unknown section or a
            section that is not a mapping (naming the file, line or section).
    """
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of sections ({', '.join(SECTIONS)}), got {type(raw).__name__}")
    out: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for k, v in raw.items():
        if k not in SECTIONS:
            raise ValueError(f"{path}: unknown section {k!r}; expected one of {', '.join(SECTIONS)}")
        if v is not None and not isinstance(v, dict):
            raise ValueError(f"{path}: section {k!r} must be a mapping, got {type(v).__name__}")
        out[k] = dict(v or {})
    return out


def _registered_parent(model: str, dirs: list[Path], dataset: str | None) -> tuple[str, Path] | None:
    """``(name, file)`` of the nearest registered parent class of model ``model`` that has a
    config file, ``None`` if ``model`` is not registered or no parent has one."""
    if model not in MODELS:
        from . import models  # noqa: F401  (registers the built-in catalogue on first use)
    if model not in MODELS:
        return None
    names = {id(e.obj): e.name for e in MODELS.entries()}
    for base in MODELS.get(model).__mro__[1:]:
        name = names.get(id(base))
        if name is not None and name != model:
            p = _file_for(name, dataset, dirs)
            if p is not None:
                return name, p
    return None


@dataclass(frozen=True)
class ZooConfig:
    """The zoo config of one model on one dataset (:meth:`load`). Treat the section dicts as
    read-only; copy one before changing it.

    Attributes:
        model_name, dataset: what was asked for (``dataset`` ``None``: ``default.yaml``).
        model, data, train, bench, paper, tune: the file's sections (empty dicts if absent).
        path: the file read, ``None`` when the model has no config (an empty config).
        inherited_from: the registered parent model whose config this is, when ``model_name``
            has none of its own (the caller says "X has no zoo config; using Y's").
    """

    model_name: str
    dataset: str | None = None
    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    bench: dict[str, Any] = field(default_factory=dict)
    paper: dict[str, Any] = field(default_factory=dict)
    tune: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    inherited_from: str | None = None

    @classmethod
    def load(cls, model: str, dataset: str | None = None, extra_dirs: Iterable[PathLike] = ()) -> "ZooConfig":
        """Read the config of ``model`` on ``dataset`` (module docstring for the lookup).

        A model with no config file of its own takes the file of its nearest parent class
        registered under another name (``inherited_from`` says which); a model with neither
        (e.g. a user's model) gets an empty config with ``path=None``.

        Args:
            model: registered model name (the folder name). dataset: dataset name, ``None`` for
                ``default.yaml``. extra_dirs: config folders over the packaged ones and
                ``$KGZOO_CONFIG_DIR`` (:func:`kgzoo.paths.config_dirs`).

        Raises:
            ValueError: a broken file (:func:`_read`: invalid YAML, unknown section).
            FileNotFoundError: a user config folder that does not exist.
        """
        dirs = config_dirs(extra_dirs)
        path, parent = _file_for(model, dataset, dirs), None
        if path is None:
            found = _registered_parent(model, dirs, dataset)
            if found is not None:
                parent, path = found
        sections = _read(path) if path is not None else {}
        return cls(model_name=model, dataset=dataset, path=path, inherited_from=parent, **sections)

    def _train_section(self, quick: bool) -> dict[str, Any]:
        """The one train/bench merge: ``train``, overlaid by ``bench`` when ``quick``."""
        return {**self.train, **(self.bench if quick else {})}

    def schedule(self, quick: bool = False, max_epochs: int | None = None, patience: int | None = None,
                 monitor: str | None = None) -> Schedule:
        """The training schedule: the arguments, else the ``train`` section (with ``bench``
        over it when ``quick``), else ``max_epochs`` 100 and ``patience`` 10.

        Raises:
            ValueError: ``max_epochs`` not an integer >= 1, ``patience`` not an integer >= 0,
                ``monitor`` not a string (naming the file and field when the config set it).
        """
        sec = self._train_section(quick)
        where = f"{self.path}: {'bench/train' if quick else 'train'}." if self.path else ""

        def pick(name: str, arg: Any, default: Any) -> tuple[Any, str]:
            return (arg, f"{name}=") if arg is not None else (sec.get(name, default), f"{where}{name}=")

        epochs, e_src = pick("max_epochs", max_epochs, DEFAULT_MAX_EPOCHS)
        pat, p_src = pick("patience", patience, DEFAULT_PATIENCE)
        mon, m_src = pick("monitor", monitor, None)
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"{e_src}{epochs!r} must be an integer >= 1")
        if isinstance(pat, bool) or not isinstance(pat, int) or pat < 0:
            raise ValueError(f"{p_src}{pat!r} must be an integer >= 0")
        if mon is not None and not isinstance(mon, str):
            raise ValueError(f"{m_src}{mon!r} must be a metric name")
        return Schedule(quick=bool(quick), max_epochs=epochs, patience=pat, monitor=mon)

    def sha(self, model_overrides: dict[str, Any] | None = None, schedule: Schedule | None = None) -> str:
        """sha256 (16 hex digits) of what a cell trains with: canonical JSON (sorted keys) of the
        ``model`` section with ``model_overrides``, ``data``, the merged ``train`` section of
        ``schedule.quick`` and ``schedule.max_epochs`` (default :meth:`schedule`). A result row
        keeps it, so ``--resume`` reruns a cell whose config changed.

        Raises:
            ValueError: as :meth:`schedule` when ``schedule`` is ``None``.
        """
        schedule = schedule if schedule is not None else self.schedule()
        payload = {"model": {**self.model, **(model_overrides or {})}, "data": self.data,
                   "train": self._train_section(schedule.quick), "max_epochs": schedule.max_epochs}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
