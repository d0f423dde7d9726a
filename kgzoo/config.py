"""Zoo configs: :class:`ZooConfig`, read once per (model, dataset) cell and passed down.

A config file is ``<dir>/<model>/<dataset>.yaml``, else ``<dir>/<model>/default.yaml``, over the
folders of :func:`kgzoo.paths.config_dirs` (packaged first, then ``$KGZOO_CONFIG_DIR``, then
extra folders): the folders are overlaid, so for each of the two names the file of the last
folder holding it counts, and a dataset file anywhere beats a ``default.yaml`` anywhere. Under an
evaluation protocol other than the dataset's default (``protocol``: its fields that differ, as
``kgzoo bench --protocol`` spells them, e.g. ``split=cold_item``), ``<dataset>@<protocol>.yaml``
is laid over that file: its sections replace the file's, the others stay the file's; it counts
from the last folder holding it or the dataset file (a user's folder with its own dataset file
shadows a packaged protocol file, whose values were tuned over the packaged file). ``kgzoo
tune --protocol`` writes the values chosen under that protocol there as its ``tuned:`` section
alone, so the default protocol's tables keep their record and an edit of the dataset file (its
epoch cap, its search space) reaches the protocol's runs too.

Sections (each a mapping; all optional): ``model`` (hyper-parameters), ``data`` (DataModule
arguments: batch sizes), ``train`` (the converged schedule: ``max_epochs``, ``patience``,
``monitor``), ``bench`` (overrides of ``train`` for the quick default ``kgzoo bench``),
``paper`` (the paper's reported numbers and setting, for ``kgzoo reproduce``:
:meth:`ZooConfig.paper_numbers`), ``reference`` (another implementation's converged numbers on
a kgzoo dataset, e.g. RecBole's, shown beside the rows: :meth:`ZooConfig.reference_for`), ``tune`` (the hyper-parameter search space of ``kgzoo tune``) and ``tuned`` (written by
``kgzoo tune``: the chosen values under ``params``, laid over ``model``, and the record of the
search: trials, budget, best valid value, date, kgzoo version; or ``tuned: {from: DATASET}``,
the record of the model's config on another dataset, e.g. the same domain's small set, with
``dataset: DATASET`` added to it) and ``note`` (dataset -> what a reader of the model's line in
that dataset's tables must know, shown below the table: :meth:`ZooConfig.note_for`). A dataset
file without a ``paper``, ``reference``, ``tune`` or ``note`` section takes the one of the model's
``default.yaml``.

The ``reference`` section is keyed by the kgzoo dataset the reference measured, each with
``metrics`` (metric -> number, the same metric names as kgzoo's), ``source`` (what ran, where
its raw numbers are) and ``setting`` (its protocol in words)::

    reference:
      ml-100k-kg:
        metrics: {ndcg@10: 0.2928}
        source: "RecBole 1.2.1 BPR, its defaults, trained to convergence, this machine"
        setting: "random 8:1:1 per user, full ranking"


The ``paper`` section: ``source`` (citation, table), ``setting`` (the paper's protocol in words),
``protocol`` (EvalProtocol fields the paper's code sets differently from the dataset's default),
and ``metrics``, the numbers as the paper reports them, keyed by the dataset the paper measured
them on (a kgzoo dataset name where it is the same data, else the paper's own name)::

    metrics:                  # a run on another dataset is shown the first one, as a reference
      amazon-book: {recall@20: 0.1489, ndcg@20: 0.1006}
      last-fm: {recall@20: 0.0870, ndcg@20: 0.1325}

A flat ``metrics: {auc: 0.794}`` in a ``<model>/<dataset>.yaml`` file is measured on that dataset.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, NamedTuple

import yaml

from .data import catalogue  # noqa: F401  (registers the built-in datasets: their warm-ups)
from .data.spec import DatasetSpec
from .paths import PathLike, config_dirs
from .registry import DATASETS, MODELS

SECTIONS = ("model", "data", "train", "bench", "paper", "reference", "tune", "tuned", "note")

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
            (``"ndcg@10"``), ``None`` = the model's main metric. min_epochs: the converged
            schedule's warm-up (the dataset's :attr:`kgzoo.data.spec.DatasetSpec.min_epochs`):
            early stopping may end the run only from this epoch on; ``0`` for none and for
            the quick schedule.
    """

    quick: bool
    max_epochs: int
    patience: int
    monitor: str | None
    min_epochs: int = 0

    def record(self) -> dict[str, int]:
        """``{"max_epochs", "patience"}`` and ``"min_epochs"`` only where the schedule has a
        warm-up: how rows, trial rows, ``tuned:`` budgets and shas write a schedule, so that every
        record made before the warm-up existed keeps its form (and its sha)."""
        out = {"max_epochs": self.max_epochs, "patience": self.patience}
        if self.min_epochs:
            out["min_epochs"] = self.min_epochs
        return out


class PaperNumbers(NamedTuple):
    """What a config's ``paper`` section reports for a run on one dataset
    (:meth:`ZooConfig.paper_numbers`).

    Attributes:
        numbers: metric name -> value as the paper reports it (``{"recall@20": 0.1489}``);
            empty when the config has none.
        paper_dataset: the dataset the paper measured ``numbers`` on (a kgzoo name where it is
            the same data, else the paper's name); ``None`` when there are no numbers.
        note: one line for a caption: the source, on which dataset the paper measured, and
            whether this run's dataset is another one (then the numbers are a reference only).
    """

    numbers: dict[str, float]
    paper_dataset: str | None
    note: str


def _spec_field(dataset: str | None, name: str) -> Any:
    """Field ``name`` of ``dataset``'s catalogue entry; the field's default for ``None`` or a
    name without one (in-memory data)."""
    if dataset is None or dataset not in DATASETS:
        return DatasetSpec.__dataclass_fields__[name].default
    return getattr(DATASETS.get(dataset), name)


def dataset_min_epochs(dataset: str | None) -> int:
    """The warm-up of ``dataset``'s converged schedule (:attr:`kgzoo.data.spec.DatasetSpec.min_epochs`);
    0 for ``None`` or a name without a catalogue entry."""
    return _spec_field(dataset, "min_epochs")


def dataset_tune_from(dataset: str | None) -> str:
    """The dataset whose tuned values ``dataset``'s published tables take
    (:attr:`kgzoo.data.spec.DatasetSpec.tune_from`, for ``kgzoo tune --from``); ``""`` where they are
    tuned on the dataset itself, for ``None`` or a name without a catalogue entry."""
    return _spec_field(dataset, "tune_from")


def config_file_name(dataset: str, protocol: str = "") -> str:
    """The file name of a model's config on ``dataset`` under ``protocol`` (the fields that differ
    from the dataset's default, canonical ``k=v,...`` sorted by key; ``""``: the default):
    ``<dataset>.yaml`` or ``<dataset>@<protocol>.yaml``."""
    return f"{dataset}@{protocol}.yaml" if protocol else f"{dataset}.yaml"


def _file_for(model: str, dataset: str | None, dirs: list[Path], protocol: str = "") -> Path | None:
    """The file of ``model`` on ``dataset`` under ``protocol`` (:func:`config_file_name`) or its
    dataset file, from the last of the overlaid ``dirs`` that holds either (later wins; in one
    folder the protocol's file first), else its ``default.yaml`` (later wins); ``None`` if none
    exists in any folder.

    Folder before file: a user's folder holding the dataset's file shadows a packaged protocol
    file, whose ``tuned:`` values were chosen under the packaged file's fixed configuration, not
    the user's; a dataset's file anywhere still beats a ``default.yaml`` anywhere."""
    names = ([config_file_name(dataset, protocol)] if dataset and protocol else []) + ([f"{dataset}.yaml"] if dataset else [])
    for d in reversed(dirs):
        for name in names:
            p = d / model / name
            if p.is_file():
                return p
    for d in reversed(dirs):
        p = d / model / "default.yaml"
        if p.is_file():
            return p
    return None


def tuned_from(model: str, dataset: str | None, tuned: dict[str, Any], path: Path | None,
               extra_dirs: Iterable[PathLike] = (), protocol: str = "") -> dict[str, Any]:
    """``tuned: {from: D}``: the ``tuned:`` record of the model's config on dataset ``D`` (the same
    domain's small set, tuned with the equal budget), with ``dataset: D`` added so that rows and
    tables say where the values were chosen.

    Raises:
        ValueError: other keys beside ``from``, ``from`` naming this dataset, or ``D``'s config
            without a ``tuned:`` record of its own (no chains), naming the file.
    """
    source = tuned["from"]
    if set(tuned) != {"from"} or not isinstance(source, str) or source == dataset:
        raise ValueError(f"{path}: tuned: {{from: DATASET}} takes one other dataset's name and nothing else, "
                         f"got {tuned!r}")
    other = ZooConfig.load(model, source, extra_dirs, protocol=protocol)
    if not other.tuned or "from" in other.tuned or other.tuned.get("dataset") not in (None, source):
        raise ValueError(f"{path}: tuned.from {source!r}: {other.path} has no tuned: record of its own "
                         f"(run `kgzoo tune {model} {source}` first)")
    return {**other.tuned, "dataset": source}


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


def _registered_parent(model: str, dirs: list[Path], dataset: str | None,
                       protocol: str = "") -> tuple[str, Path] | None:
    """``(name, file)`` of the nearest registered parent class of model ``model`` that has a
    config file, ``None`` if ``model`` is not registered or no parent has one."""
    if model not in MODELS:
        return None
    for base in MODELS.get(model).__mro__[1:]:
        name = MODELS.name_of(base)
        if name is not None and name != model:
            p = _file_for(name, dataset, dirs, protocol)
            if p is not None:
                return name, p
    return None


@dataclass(frozen=True)
class ZooConfig:
    """The zoo config of one model on one dataset (:meth:`load`). Treat the section dicts as
    read-only; copy one before changing it.

    Attributes:
        model_name, dataset: what was asked for (``dataset`` ``None``: ``default.yaml``).
        protocol: the evaluation protocol asked for, as the fields that differ from the dataset's
            default (``""``: the default; module docstring); ``path`` says whether a file of its
            own was found.
        model, data, train, bench, paper, reference, tune, tuned, note: the file's sections (empty
            dicts if absent); ``model`` already holds ``tuned["params"]`` over the file's ``model``.
        path: the file read, ``None`` when the model has no config (an empty config); under a
            protocol with a file of its own, that file (laid over the dataset file).
        paper_path: the file of the ``paper`` section: ``path``, or the model's ``default.yaml``
            when the dataset file has no ``paper`` section (a paper's numbers belong to the
            model, not to the dataset we run); ``None`` without a ``paper`` section.
        reference_path: the file the ``reference`` section came from (as ``paper_path``).
        tune_path: the file the ``tune`` section came from (``path`` or the ``default.yaml``).
        note_path: the file the ``note`` section came from (as ``tune_path``).
        inherited_from: the registered parent model whose config this is, when ``model_name``
            has none of its own (the caller says "X has no zoo config; using Y's").
    """

    model_name: str
    dataset: str | None = None
    protocol: str = ""
    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    bench: dict[str, Any] = field(default_factory=dict)
    paper: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)
    tune: dict[str, Any] = field(default_factory=dict)
    tuned: dict[str, Any] = field(default_factory=dict)
    #: the ``model`` section as the file writes it, before ``tuned["params"]`` (the values a study
    #: evaluates as its default trial: :func:`kgzoo.bench.tune.tune`)
    defaults: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    paper_path: Path | None = None
    reference_path: Path | None = None
    tune_path: Path | None = None
    inherited_from: str | None = None
    note: dict[str, Any] = field(default_factory=dict)
    note_path: Path | None = None

    @classmethod
    def load(cls, model: str, dataset: str | None = None, extra_dirs: Iterable[PathLike] = (),
             protocol: str = "") -> "ZooConfig":
        """Read the config of ``model`` on ``dataset`` under ``protocol`` (module docstring for the lookup).

        A dataset file without a ``paper`` section takes the one of the model's ``default.yaml``
        (``paper_path`` says which file). A model with no config file of its own takes the file
        of its nearest parent class
        registered under another name (``inherited_from`` says which); a model with neither
        (e.g. a user's model) gets an empty config with ``path=None``. Under ``protocol`` a model
        whose only file is that protocol's (``kgzoo tune --protocol`` of such a subclass) has it
        laid over its parent's file.

        Args:
            model: registered model name (the folder name). dataset: dataset name, ``None`` for
                ``default.yaml``. extra_dirs: config folders over the packaged ones and
                ``$KGZOO_CONFIG_DIR`` (:func:`kgzoo.paths.config_dirs`). protocol: the fields of
                the evaluation protocol that differ from the dataset's default, canonical
                (``kgzoo.protocols.protocol_key``: ``"split=cold_item"``); ``""``: the default.

        Raises:
            ValueError: a broken file (:func:`_read`: invalid YAML, unknown section).
            FileNotFoundError: a user config folder that does not exist.
        """
        dirs = config_dirs(extra_dirs)
        path, parent = _file_for(model, dataset, dirs, protocol), None
        if path is None:
            found = _registered_parent(model, dirs, dataset, protocol)
            if found is not None:
                parent, path = found
        sections = _read(path) if path is not None else {}
        origin = {sec: path for sec in SECTIONS if sections.get(sec)}
        under, owner = None, parent or model  # owner: the model whose dataset and default.yaml files count
        if protocol and dataset and path is not None and path.name == config_file_name(dataset, protocol):
            # the protocol's file is laid over the dataset's (or default.yaml): its sections win;
            # a model whose only file is its protocol's (a study of a subclass without a config of
            # its own) lays it over the config it takes without, its registered parent's
            under = _file_for(owner, dataset, dirs)
            found = _registered_parent(model, dirs, dataset) if under is None and parent is None else None
            if found is not None:
                owner, under = found
            read = _read(under) if under is not None else {}
            for sec, value in read.items():
                if value and not sections[sec]:
                    sections[sec], origin[sec] = value, under
        fallback = {sec: origin.get(sec) for sec in ("paper", "reference", "tune", "note")}
        missing = [sec for sec in fallback if path is not None and not sections[sec]]
        default = _file_for(owner, None, dirs) if missing else None
        if default is not None and default not in (path, under):  # the model's, not the dataset's: from default.yaml
            read = _read(default)
            for sec in missing:
                sections[sec] = read[sec]
                fallback[sec] = default if read[sec] else None
        defaults = dict(sections.get("model") or {})  # the model section as written, before tuned params
        tuned = sections.get("tuned") or {}
        if tuned and "from" in tuned:
            tuned = tuned_from(model, dataset, tuned, path, extra_dirs, protocol)
            sections["tuned"] = tuned
        if tuned:
            params = tuned.get("params")
            if not isinstance(params, dict):
                raise ValueError(f"{path}: tuned.params must be a mapping of hyper-parameters, got {params!r}")
            sections["model"] = {**sections["model"], **params}
        return cls(model_name=model, dataset=dataset, protocol=protocol, path=path, paper_path=fallback["paper"],
                   reference_path=fallback["reference"], tune_path=fallback["tune"], note_path=fallback["note"],
                   inherited_from=parent,
                   defaults=defaults, **sections)

    def _train_section(self, quick: bool) -> dict[str, Any]:
        """The one train/bench merge: ``train``, overlaid by ``bench`` when ``quick``."""
        return {**self.train, **(self.bench if quick else {})}

    def schedule(self, quick: bool = False, max_epochs: int | None = None, patience: int | None = None,
                 monitor: str | None = None) -> Schedule:
        """The training schedule: the arguments, else the ``train`` section (with ``bench``
        over it when ``quick``), else ``max_epochs`` 100 and ``patience`` 10; the converged
        schedule (``quick=False``) takes its warm-up ``min_epochs`` from the dataset's catalogue
        entry (:attr:`kgzoo.data.spec.DatasetSpec.min_epochs`, at most the cap; 0 for a dataset
        without one, and for a fixed cap given as ``max_epochs``).

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
        # a cap at or below the warm-up (Pop's one closed-form epoch) trains to its cap, and a
        # row that its cap ended says so (stopped_by "cap", flagged unless closed-form)
        warm = 0 if quick or max_epochs is not None else min(dataset_min_epochs(self.dataset), epochs)
        return Schedule(quick=bool(quick), max_epochs=epochs, patience=pat, monitor=mon, min_epochs=warm)

    def sha(self, model_overrides: dict[str, Any] | None = None, schedule: Schedule | None = None) -> str:
        """sha256 (16 hex digits) of what a cell trains with: canonical JSON (sorted keys) of the
        ``model`` section with ``model_overrides``, ``data``, the merged ``train`` section of
        ``schedule.quick`` and ``schedule.max_epochs`` (default :meth:`schedule`). A result row
        keeps it, so ``--resume`` reruns a cell whose config changed.

        Raises:
            ValueError: as :meth:`schedule` when ``schedule`` is ``None``.
        """
        schedule = schedule if schedule is not None else self.schedule()
        record = schedule.record()
        del record["patience"]  # not part of the sha (as before)
        payload = {"model": {**self.model, **(model_overrides or {})}, "data": self.data,
                   "train": self._train_section(schedule.quick), **record}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def paper_numbers(self, dataset: str) -> PaperNumbers:
        """The paper's numbers to show beside a run on ``dataset``, and on which dataset the
        paper measured them (module docstring for the ``paper`` section).

        The numbers of ``dataset`` itself where the section has them (the paper measured the
        same data); else those of the first dataset the section lists, with a note that this
        run is on another dataset (and which other datasets the section gives).

        Returns:
            :class:`PaperNumbers` ``(numbers, paper_dataset, note)``; no numbers (an empty dict,
            ``None``) with a note saying so when the section has none.

        Raises:
            ValueError: ``metrics`` that is not a mapping of metric names to numbers or of
                dataset names to such mappings, or a flat mapping in a ``default.yaml`` (it does
                not say on which dataset), naming the file and field.
        """
        where = f"{self.paper_path}: paper.metrics" if self.paper_path else "paper.metrics"
        source = str(self.paper.get("source") or "").strip()
        setting = str(self.paper.get("setting") or "").strip()
        by_dataset = self._paper_metrics(where)
        if not by_dataset:
            return PaperNumbers({}, None, f"no paper numbers in {self.paper_path or self.path or 'the config'}"
                                + (f" (source: {source})" if source else ""))
        paper_dataset = dataset if dataset in by_dataset else next(iter(by_dataset))
        others = [d for d in by_dataset if d != paper_dataset]
        note = (f"{source}; " if source else "") + f"measured by the paper on {paper_dataset}"
        note += f" ({setting})" if setting else ""
        if paper_dataset != dataset:
            note += f"; this run is on {dataset}, another dataset: the paper's numbers are for reference only"
        if others:
            note += f"; the config also gives the paper's numbers on {', '.join(others)}"
        return PaperNumbers(dict(by_dataset[paper_dataset]), paper_dataset, note)

    def reference_for(self, dataset: str) -> dict[str, Any] | None:
        """The ``reference`` numbers measured on ``dataset`` itself (module docstring), as
        ``{"metrics": {metric: float}, "source": str, "setting": str}``; ``None`` where the section
        has none for this dataset (a reference on other data is not shown beside a row).

        Raises:
            ValueError: a section that is not keyed by dataset, an entry without ``metrics`` or
                ``source``, a metric that is not a number; naming the file and field.
        """
        where = f"{self.reference_path or self.path or 'config'}: reference"
        entry = self.reference.get(dataset)
        if entry is None:
            return None
        if not isinstance(entry, dict) or not isinstance(entry.get("metrics"), dict) or not entry.get("source"):
            raise ValueError(f"{where}.{dataset} must be a mapping with metrics (metric: number) and source, "
                             f"got {entry!r}")
        metrics = entry["metrics"]
        bad = [k for k, v in metrics.items() if isinstance(v, bool) or not isinstance(v, (int, float))]
        if bad:
            raise ValueError(f"{where}.{dataset}.metrics.{bad[0]} must be a number, got {metrics[bad[0]]!r}")
        return {"metrics": {str(k): float(v) for k, v in metrics.items()}, "source": str(entry["source"]),
                "setting": str(entry.get("setting") or "")}

    def note_for(self, dataset: str) -> str:
        """What a reader of this model's line in ``dataset``'s tables must know (the ``note``
        section's entry for ``dataset``: e.g. why a model tuned on another dataset sits below Pop
        there, with the evidence), shown below the table; ``""`` where the section has none.

        Raises:
            ValueError: a section that is not keyed by dataset, or an entry that is not a
                non-empty string, naming the file and field.
        """
        where = f"{self.note_path or self.path or 'config'}: note"
        if not isinstance(self.note, dict):
            raise ValueError(f"{where} must be a mapping of dataset names to text, got {self.note!r}")
        entry = self.note.get(dataset)
        if entry is None:
            return ""
        if not isinstance(entry, str) or not entry.strip():
            raise ValueError(f"{where}.{dataset} must be a non-empty string, got {entry!r}")
        return " ".join(entry.split())

    def _paper_metrics(self, where: str) -> dict[str, dict[str, float]]:
        """``paper.metrics`` as dataset -> metric -> value (a flat mapping: this file's dataset).

        Raises:
            ValueError: as :meth:`paper_numbers`.
        """
        raw = self.paper.get("metrics")
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise ValueError(f"{where} must be a mapping, got {type(raw).__name__}")

        def numbers(field: str, values: Any) -> dict[str, float]:
            bad = [k for k, v in values.items() if isinstance(v, bool) or not isinstance(v, (int, float))]
            if bad:
                raise ValueError(f"{field}.{bad[0]} must be a number, got {values[bad[0]]!r}")
            return {str(k): float(v) for k, v in values.items()}

        if all(isinstance(v, dict) for v in raw.values()):
            return {str(d): numbers(f"{where}.{d}", v) for d, v in raw.items()}
        if any(isinstance(v, dict) for v in raw.values()):
            raise ValueError(f"{where} mixes numbers and per-dataset mappings; use one form")
        if self.paper_path is None or self.paper_path.stem == "default":
            raise ValueError(f"{where} gives numbers without a dataset; key them by the dataset the "
                             f"paper measured them on ({{dataset: {{metric: value}}}})")
        return {self.paper_path.stem: numbers(where, raw)}


def parse_assignments(spec: str, what: str = "setting") -> tuple[str, dict[str, Any]]:
    """``(canonical "k=v,..." sorted by key, {key: value})`` of comma-separated ``key=value``
    pairs (the parser of ``kgzoo bench --variants`` (:func:`kgzoo.bench.cells.parse_variant`) and of
    ``--protocol`` (:func:`kgzoo.protocols.parse_protocol`)); ``""`` -> ``("", {})``.

    Raises:
        ValueError: a pair without ``=``, an empty or non-identifier key, a key given twice, a value
            that is not a YAML scalar (messages name ``what`` and the pair).
    """
    spec = spec.strip()
    if not spec:
        return "", {}
    overrides: dict[str, Any] = {}
    texts: dict[str, str] = {}
    for pair in spec.split(","):
        key, eq, text = pair.partition("=")
        key, text = key.strip(), text.strip()
        if not eq or not key or not key.isidentifier():
            example = "split=cold_item" if what == "protocol" else "use_kg=false"
            raise ValueError(f"{what} {spec!r}: {pair.strip()!r} is not key=value (e.g. {example})")
        if key in overrides:
            raise ValueError(f"{what} {spec!r}: {key!r} is given twice")
        try:
            value = parse_number(text)
            if value is None:
                value = yaml.safe_load(text) if text else None
        except yaml.YAMLError as e:
            raise ValueError(f"{what} {spec!r}: value of {key!r} is not YAML ({e})") from None
        if isinstance(value, (dict, list)):
            raise ValueError(f"{what} {spec!r}: value of {key!r} must be a scalar, not {type(value).__name__}")
        overrides[key], texts[key] = value, text
    return ",".join(f"{k}={texts[k]}" for k in sorted(texts)), {k: overrides[k] for k in sorted(overrides)}


def parse_number(text: str) -> int | float | None:
    """``text`` as an int or float (``"1e-2"`` too, which YAML 1.1 reads as a string), else ``None``."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return None
