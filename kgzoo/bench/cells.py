"""The cells of a benchmark grid: models x datasets x seeds x KG ablations x variants.

A :class:`Cell` names one unit of work; :func:`resolve_grid` expands shell patterns into cells,
checking everything that can be checked without training (patterns that match no model or
dataset, metric names, seeds, epochs, KG ablation kinds, variants, protocol fields, configs).
:func:`~kgzoo.protocols.parse_protocol`, :func:`cell_fingerprint`, :func:`cell_schedule` and
:func:`cell_config_sha` give what a cell runs under before it runs, so ``--resume`` can tell
a finished cell from a changed one. :mod:`kgzoo.bench.runner` runs the cells.

A *variant* is a set of model hyper-parameter overrides on top of the zoo config
(``"use_kg=false"``, ``"use_text=false,use_attributes=false"``; ``"base"`` = none), the
axis of source ablations: the rows carry ``variant`` and ``overrides``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..api import check_config, check_hparams, check_model_class, create_datamodule, list_models
from ..config import Schedule, ZooConfig, parse_assignments
from ..data.datamodule import apply_kg_ablation
from ..data.datasets import dataset_spec, is_folder_reference, list_datasets, looks_like_path, resolve_dataset
from ..data.protocol import EvalProtocol
from ..protocols import parse_protocol, protocol_key, task_on
from ..registry import MODELS
from ..tasks import Task, get_task
from .rows import BASE_VARIANT


def parse_variant(spec: str) -> tuple[str, dict[str, Any]]:
    """``(canonical name, overrides)`` of a variant spec.

    ``"base"`` (or ``""``) means no override; otherwise comma-separated ``key=value`` pairs
    whose values are numbers (``1e-2``, ``64``) or YAML scalars (``false``, ``mean``). The canonical name
    lists the pairs sorted by key (``"use_text=false,use_kg=false"`` ->
    ``"use_kg=false,use_text=false"``), so one setting has one name in the results.

    Raises:
        ValueError: a pair without ``=``, an empty key, a key given twice, a value that is
            not a YAML scalar.
    """
    spec = spec.strip()
    if spec in ("", BASE_VARIANT):
        return BASE_VARIANT, {}
    return parse_assignments(spec, "variant")


def scalar_text(value: Any) -> str:
    """A scalar as :func:`parse_assignments` reads it back (``None`` -> ``"null"``, ``True`` ->
    ``"true"``, numbers and strings as ``str``); a list or tuple as a YAML flow sequence of them
    (``[1, 2, 3]``: in a :func:`variant_name` only, which a grid variant cannot spell)."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(scalar_text(v) for v in value) + "]"
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def variant_name(overrides: dict[str, Any]) -> str:
    """The variant name of hyper-parameter ``overrides`` (a tuning trial's, which may hold lists:
    kgat's ``layer_sizes``, dkn's ``windows``): ``"k=v,..."`` sorted by key, ``"base"`` for none;
    the canonical name of :func:`parse_variant` where every value is a scalar.

    Raises:
        ValueError: a key that is not an identifier; scalar values as :func:`parse_variant`.
    """
    if not any(isinstance(v, (list, tuple)) for v in overrides.values()):
        return parse_variant(",".join(f"{k}={scalar_text(v)}" for k, v in sorted(overrides.items())))[0]
    bad = [k for k in overrides if not str(k).isidentifier()]
    if bad:
        raise ValueError(f"variant keys must be identifiers, got {bad!r}")
    return ",".join(f"{k}={scalar_text(v)}" for k, v in sorted(overrides.items()))


@dataclass(frozen=True)
class Cell:
    """One unit of the grid: a model on a dataset with one seed, one KG ablation and one
    variant (hyper-parameter overrides, :func:`parse_variant`)."""

    model: str
    dataset: str
    seed: int
    kg_ablation: str = "real"
    variant: str = BASE_VARIANT
    #: protocol fields over the dataset's default (:func:`parse_assignments`; ``""``: none)
    protocol: str = ""

    @property
    def overrides(self) -> dict[str, Any]:
        return parse_variant(self.variant)[1]

    def label(self) -> str:
        extra = "" if self.variant == BASE_VARIANT else f" / {self.variant}"
        extra += f" / protocol {self.protocol}" if self.protocol else ""
        return f"{self.model} / {self.dataset} / seed {self.seed} / kg {self.kg_ablation}{extra}"


# ---------------------------------------------------------------------------- what a cell runs under
def canonical_ablation(kind: str) -> str:
    """The canonical name of a KG ablation (``"noisy:0.50"`` -> ``"noisy:0.5"``).

    Raises:
        ValueError: an unknown kind or a noise level outside ``[0, 1]``.
    """
    return apply_kg_ablation(torch.zeros(0, 3, dtype=torch.long), 1, kind, 0)[1]


def _resolve(patterns: Sequence[str], lister: Any, kind: str, what: str) -> list[str]:
    """Names matching each shell pattern, in order, without repeats.

    Raises:
        ValueError: a pattern that matches nothing (naming it and the known names).
    """
    names: list[str] = []
    for p in patterns:
        hit = lister(p)
        if not hit:
            raise ValueError(f"{kind} pattern {p!r} matches no {what} (known: {', '.join(lister())})")
        names += [n for n in hit if n not in names]
    return names


def cell_config(model: str, dataset: str, protocol: EvalProtocol | str = "") -> ZooConfig:
    """The zoo config a cell of ``model`` on ``dataset`` trains with under ``protocol`` (an
    :class:`~kgzoo.data.protocol.EvalProtocol` or a cell's protocol string; ``""``: the default):
    :meth:`kgzoo.config.ZooConfig.load` with its :func:`protocol_key`, so a study run under that
    protocol (``kgzoo tune --protocol``) gives the values its cells take.

    Raises:
        As :meth:`kgzoo.config.ZooConfig.load` and :func:`protocol_key`.
    """
    return ZooConfig.load(model, dataset, protocol=protocol_key(dataset, protocol, model))


def cell_datamodule(model: str, dataset: str, protocol: EvalProtocol, kg_ablation: str = "real", seed: int = 0,
                    root: str | None = None, data_overrides: dict[str, Any] | None = None,
                    config: ZooConfig | None = None) -> Any:
    """The DataModule a cell of ``model`` on ``dataset`` trains and is evaluated on, not yet set up:
    :func:`kgzoo.create_datamodule` with the zoo config's ``data`` section (batch sizes,
    ``max_history``; the protocol's config, :func:`cell_config`), then ``data_overrides`` over it. The one builder behind both a cell's
    planned fingerprint (:func:`cell_fingerprint`) and its run
    (:func:`kgzoo.bench.experiment.run_experiment`), so the two cannot drift apart.

    Args:
        protocol: the cell's :class:`~kgzoo.data.protocol.EvalProtocol` (:func:`~kgzoo.protocols.parse_protocol`).
        kg_ablation: ``"real"``, ``"none"``, ``"shuffled"`` or ``"noisy:P"``.
        seed: seeds the DataModule's negative sampler; the split is the protocol's, so the
            fingerprints do not depend on it.
        data_overrides: DataModule arguments over the config's ``data`` section.
        config: the cell's config where the caller loaded it (:func:`cell_config`; a cell loads
            its config once and passes it down), else loaded here.

    Raises:
        KeyError: an unknown dataset. ValueError: a broken config or a bad DataModule argument
            (naming the file and field). DataFormatError: a malformed data file.
    """
    data = {**(config or cell_config(model, dataset, protocol)).data, **(data_overrides or {})}
    return create_datamodule(dataset, root=root, protocol=protocol, kg_ablation=kg_ablation, seed=seed, **data)


def cell_fingerprint(cell: Cell, root: str | None = None, config: ZooConfig | None = None) -> tuple[str, str]:
    """``(fingerprint, protocol_fingerprint)`` of a cell, from its DataModule before training
    (sha256 hex strings, :class:`~kgzoo.data.datamodule.KGRecDataModule`), built by
    :func:`cell_datamodule` as :func:`kgzoo.bench.experiment.run_experiment` builds it (the zoo
    config's ``max_history`` enters the fingerprint where it is not 50).

    Costs one data load (cached per process) and one split; no model is built. ``config``: the
    cell's config where the caller loaded it (:func:`cell_config`).
    """
    dm = cell_datamodule(cell.model, cell.dataset, parse_protocol(cell.dataset, cell.protocol, cell.model),
                         cell.kg_ablation, cell.seed, root, config=config)
    dm.setup()
    return dm.fingerprint, dm.protocol_fingerprint


def cell_task(model: str, dataset: str) -> Task:
    """The :class:`~kgzoo.tasks.Task` of ``model`` on ``dataset`` (:func:`kgzoo.protocols.task_on`):
    the model class's own ``task`` where it declares one (KG link prediction), the impression task
    for a news model on a dataset with an impression log, else the dataset's protocol task.

    Raises:
        KeyError: an unknown model, dataset or task. ValueError: a news model on a dataset it
            cannot run on.
    """
    return get_task(task_on(model, dataset))


def metric_names(model: str, dataset: str) -> list[str]:
    """The metric names model ``model`` logs on ``dataset``: its task's
    (:func:`cell_task`) for the config's ``ks`` (default 10, 20)."""
    ks = ZooConfig.load(model, dataset).model.get("ks", (10, 20))
    return cell_task(model, dataset).metric_names(ks)


def cell_schedule(model: str, dataset: str, epochs: int | None = None, quick: bool = True,
                  metric: str | None = None, patience: int | None = None,
                  protocol: EvalProtocol | str = "", config: ZooConfig | None = None) -> dict[str, Any]:
    """The schedule a cell trains under, as a result row records it: ``{"kind", "max_epochs",
    "patience", "monitor"}`` from :meth:`kgzoo.config.ZooConfig.schedule` (the one merge of the
    config's ``train`` and ``bench`` sections), and ``"min_epochs"`` where the dataset's converged
    schedule has a warm-up (:attr:`kgzoo.data.spec.DatasetSpec.min_epochs`; absent where it has
    none, so the rows and config shas of every other cell stay as they were).

    ``kind`` is ``"fixed"`` when ``epochs`` is given (``max_epochs = epochs``), else ``"quick"``
    (the default ``kgzoo bench``) or ``"converged"``. ``monitor`` is ``"valid/<metric>"`` with
    ``metric``, else the config's ``train.monitor`` or ``model.main_metric``, else the task's
    main metric (:func:`cell_task`). The config is the protocol's (:func:`cell_config`; ``config``:
    that one where the caller loaded it).

    Raises:
        ValueError: a broken config or a bad schedule value (naming the file and field).
    """
    cfg = config or cell_config(model, dataset, protocol)
    sched = cfg.schedule(quick, max_epochs=epochs, patience=patience, monitor=metric)
    main = sched.monitor or cfg.model.get("main_metric") or cell_task(model, dataset).main_metric(
        cfg.model.get("ks", (10, 20)))
    kind = "fixed" if epochs is not None else ("quick" if quick else "converged")
    return {"kind": kind, **sched.record(), "monitor": f"valid/{main}"}


def cell_config_sha(cell: Cell, schedule: dict[str, Any], overrides: dict[str, Any] | None = None,
                    config: ZooConfig | None = None) -> str:
    """:meth:`kgzoo.config.ZooConfig.sha` of what a cell trains with: its config's ``model``
    section with the variant's overrides (``overrides`` where given: a tuning trial's, whose
    :func:`variant_name` may hold lists), ``data`` and the ``schedule`` (:func:`cell_schedule`),
    of the cell's protocol's config (:func:`cell_config`; ``config``: that one where the caller
    loaded it). A row keeps it, so ``--resume`` reruns a cell whose config has changed (a study
    under its protocol included)."""
    sched = Schedule(quick=schedule["kind"] == "quick", max_epochs=schedule["max_epochs"],
                     patience=schedule["patience"], monitor=schedule["monitor"],
                     min_epochs=schedule.get("min_epochs", 0))
    cfg = config or cell_config(cell.model, cell.dataset, cell.protocol)
    return cfg.sha(cell.overrides if overrides is None else overrides, sched)


def resolve_grid(models: Sequence[str] | str = "*", datasets: Sequence[str] | str = "ml-100k-kg",
                 seeds: Sequence[int] = (0,), kg_ablations: Sequence[str] = ("real",),
                 metric: str | None = None, epochs: int | None = None,
                 variants: Sequence[str] = (BASE_VARIANT,), protocol: str = "",
                 left_out: list[str] | None = None) -> list[Cell]:
    """Expand shell patterns into the list of cells, validating everything before any training.

    Args:
        models, datasets: shell patterns (``"*"``, ``"kg*"``, ``"lightgcn"``); each pattern
            must match at least one registered name. A dataset may also be the path of a folder
            of one's own files (:func:`kgzoo.data.datasets.resolve_dataset`). A model that a
            wildcard matched and that cannot run on a dataset (:func:`cell_task`: a news model on
            top-K data) has no cell there; one named exactly is an error.
        left_out: where given, one line ``"<model> on <dataset>: <why>"`` is appended per such pair.
        seeds: non-negative integers. kg_ablations: ``real``, ``shuffled``, ``none``, ``noisy:P``.
        metric: a metric name every (model, dataset) pair logs (``"ndcg@10"``, ``"auc"``).
        epochs: ``None`` or a positive epoch count.
        variants: :func:`parse_variant` specs; every key must be a hyper-parameter of every
            model of the grid.
        protocol: protocol fields over each dataset's default for every cell
            (``"split=cold_item"``; :func:`~kgzoo.protocols.parse_protocol`).

    Returns:
        Cells ordered dataset, KG ablation, variant, seed, model (models of one setting run together).

    Raises:
        ValueError: a pattern matching nothing, a model named exactly that cannot run on a dataset
            of the grid (or no model that can), an unknown metric, a negative seed or
            epoch count, an unknown ablation, a bad or repeated variant, a variant key a
            model does not take or a value of another type than its argument's
            (:func:`kgzoo.api.check_hparams`), a bad protocol field, a duplicate, a broken config.
    """
    models = [models] if isinstance(models, str) else list(models)
    datasets = [datasets] if isinstance(datasets, str) else list(datasets)
    if not models or not datasets:
        raise ValueError("the grid needs at least one model pattern and one dataset pattern")
    names = _resolve(models, list_models, "model", "registered model")
    # a folder: its name; a path that is no folder: resolve_dataset's error, not "matches no dataset"
    datasets = [resolve_dataset(d) if is_folder_reference(d) or looks_like_path(str(d)) else d for d in datasets]
    dsets = _resolve(datasets, list_datasets, "dataset", "dataset")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("the grid needs at least one seed")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ValueError(f"seed {s!r} must be a non-negative integer")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"duplicate seeds in {seeds}")
    if epochs is not None and (isinstance(epochs, bool) or int(epochs) != epochs or epochs < 1):
        raise ValueError(f"epochs={epochs!r} must be a positive integer")
    kinds: list[str] = []
    for k in kg_ablations or ("real",):
        c = canonical_ablation(k)
        if c in kinds:
            raise ValueError(f"KG ablation {k!r} is given twice")
        kinds.append(c)
    variant_names: list[str] = []
    for v in variants or (BASE_VARIANT,):
        name, overrides = parse_variant(v)
        if name in variant_names:
            raise ValueError(f"variant {v!r} is given twice")
        for m in names:
            check_hparams(m, MODELS.get(m), overrides, where=f"variant {v!r}: ")
        variant_names.append(name)
    protocol = parse_assignments(protocol, "protocol")[0]
    skip: dict[tuple[str, str], str] = {}  # (model, dataset) pairs a wildcard matched that cannot run: why
    for d in dsets:
        dataset_spec(d)
        try:
            parse_protocol(d, protocol)
        except (TypeError, ValueError) as e:
            raise ValueError(f"protocol {protocol!r} on {d}: {e}") from None
        for m in names:
            try:
                cell_task(m, d)
            except ValueError as e:
                if m in models:  # named: refused before any training
                    raise ValueError(f"{m} on {d}: {e}") from None
                skip[(m, d)] = f"{m} on {d}: {e}"
                continue
            check_model_class(m, MODELS.get(m))  # a user's model without its loss or scoring: before any cell
            check_config(m, MODELS.get(m), ZooConfig.load(m, d))  # a broken config: an error naming its file
            if metric is not None:
                known = metric_names(m, d)
                if metric not in known:
                    raise ValueError(f"unknown metric {metric!r} for {m} on {d}; known: {', '.join(known)}")
    if len(skip) == len(names) * len(dsets):
        raise ValueError("no model of the grid runs on its datasets: " + "; ".join(skip.values()))
    if left_out is not None:
        left_out += skip.values()
    return [Cell(m, d, s, k, v, protocol) for d in dsets for k in kinds for v in variant_names for s in seeds
            for m in names if (m, d) not in skip]


