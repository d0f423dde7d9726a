"""The benchmark grid: models x datasets x seeds x KG ablations x variants, one result row per cell.

Each cell is one call of :func:`kgzoo.train.run_experiment` (a fresh Trainer). Its row is
appended to a JSON-lines results file and flushed + fsync'ed the moment the cell ends,
so a crash loses only the cell that was running. ``resume=True`` skips every cell whose
row is already there with ``status == "ok"``, the same ``fingerprint`` (computed from
the DataModule before training: data checksums, protocol, metric code, KG ablation) and
the same ``config_sha`` (the zoo config, variant and epoch budget: :meth:`kgzoo.config.ZooConfig.sha`).
A cell that raises (a :class:`~kgzoo.models.DivergedError` NaN loss included) is recorded
with ``status: "failed"`` and its error, and the grid goes on.

A *variant* is a set of model hyper-parameter overrides on top of the zoo config
(``"use_kg=false"``, ``"use_text=false,use_attributes=false"``; ``"base"`` = none), the
axis of source ablations: the rows carry ``variant`` and ``overrides`` and the leaderboard
puts the variants of one model side by side (:func:`kgzoo.bench.leaderboard.build_ablations`).

Everything that can be checked without training is checked first (DESIGN.md, "The flow":
the runner only speaks to the registry, the DataModule and the Trainer): patterns that
match no model or dataset, metric names, seeds, epochs, KG ablation kinds, configs.
"""
from __future__ import annotations

import json
import os
import shlex
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from ..config import ZooConfig

#: where ``kgzoo bench`` writes by default (relative to the working directory)
DEFAULT_BENCH_DIR = Path("benchmarks")
DEFAULT_RESULTS_DIR = DEFAULT_BENCH_DIR / "results"


BASE_VARIANT = "base"


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


def parse_assignments(spec: str, what: str = "setting") -> tuple[str, dict[str, Any]]:
    """``(canonical "k=v,..." sorted by key, {key: value})`` of comma-separated ``key=value``
    pairs (the parser of :func:`parse_variant` and of ``--protocol``); ``""`` -> ``("", {})``.

    Raises:
        ValueError: as :func:`parse_variant` (messages name ``what``).
    """
    import yaml

    spec = spec.strip()
    if not spec:
        return "", {}
    overrides: dict[str, Any] = {}
    texts: dict[str, str] = {}
    for pair in spec.split(","):
        key, eq, text = pair.partition("=")
        key, text = key.strip(), text.strip()
        if not eq or not key or not key.isidentifier():
            raise ValueError(f"{what} {spec!r}: {pair.strip()!r} is not key=value (e.g. use_kg=false)")
        if key in overrides:
            raise ValueError(f"{what} {spec!r}: {key!r} is given twice")
        try:
            value = _number(text)
            if value is None:
                value = yaml.safe_load(text) if text else None
        except yaml.YAMLError as e:
            raise ValueError(f"{what} {spec!r}: value of {key!r} is not YAML ({e})") from None
        if isinstance(value, (dict, list)):
            raise ValueError(f"{what} {spec!r}: value of {key!r} must be a scalar, not {type(value).__name__}")
        overrides[key], texts[key] = value, text
    return ",".join(f"{k}={texts[k]}" for k in sorted(texts)), {k: overrides[k] for k in sorted(overrides)}


def _number(text: str) -> int | float | None:
    """``text`` as an int or float (``"1e-2"`` too, which YAML 1.1 reads as a string), else ``None``."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return None


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


@dataclass
class GridReport:
    """What :func:`run_grid` did: the rows it wrote, the cells it skipped, wall seconds."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[Cell] = field(default_factory=list)
    failed: list[Cell] = field(default_factory=list)
    seconds: float = 0.0
    results: Path | None = None


# ---------------------------------------------------------------------------- helpers
def is_rank_zero() -> bool:
    """True on the process that writes results: global rank 0 of a DDP job, or a plain process.

    Under Lightning's DDP launcher every rank re-runs the command; the children carry
    ``LOCAL_RANK``/``NODE_RANK`` != 0 in their environment, and once the process group
    exists its rank decides.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return all(int(os.environ.get(k, "0") or 0) == 0 for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def canonical_ablation(kind: str) -> str:
    """The canonical name of a KG ablation (``"noisy:0.50"`` -> ``"noisy:0.5"``).

    Raises:
        ValueError: an unknown kind or a noise level outside ``[0, 1]``.
    """
    from ..data.datamodule import apply_kg_ablation

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


def cell_protocol(dataset: str, seed: int, protocol: str = "") -> Any:
    """The protocol of a cell: the dataset's default protocol (:func:`kgzoo.train.default_protocol`,
    the same split for every seed) with the fields of ``protocol`` (``"split=cold_item"``) replaced.

    Raises:
        ValueError: an unknown protocol field or a bad value (naming it).
    """
    import dataclasses

    from ..train import default_protocol

    base = default_protocol(dataset)
    fields = parse_assignments(protocol, "protocol")[1]
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(base)})
    if unknown:
        raise ValueError(f"unknown protocol field {', '.join(map(repr, unknown))}; known: "
                         f"{', '.join(f.name for f in dataclasses.fields(base))}")
    return dataclasses.replace(base, **fields) if fields else base


def cell_fingerprint(cell: Cell, root: str | None = None) -> tuple[str, str]:
    """``(fingerprint, protocol_fingerprint)`` of a cell, from its DataModule before training.

    Costs one data load (cached per process) and one split; no model is built.
    """
    from ..api import create_datamodule

    dm = create_datamodule(cell.dataset, root=root, protocol=cell_protocol(cell.dataset, cell.seed, cell.protocol),
                           kg_ablation=cell.kg_ablation)
    dm.setup()
    return dm.fingerprint, dm.protocol_fingerprint


def metric_names(model: str, dataset: str) -> list[str]:
    """The metric names model ``model`` logs on ``dataset`` (its config's ``ks``; its own task
    where it declares one, else the dataset's)."""
    from ..data.datasets import dataset_spec
    from ..registry import MODELS
    from ..tasks import get_task

    task = getattr(MODELS.get(model), "task", None) or dataset_spec(dataset).protocol.task
    ks = ZooConfig.load(model, dataset).model.get("ks", (10, 20))
    return get_task(task).metric_names(ks)


def resolve_grid(models: Sequence[str] | str = "*", datasets: Sequence[str] | str = "ml-100k-kg",
                 seeds: Sequence[int] = (0,), kg_ablations: Sequence[str] = ("real",),
                 metric: str | None = None, epochs: int | None = None,
                 variants: Sequence[str] = (BASE_VARIANT,), protocol: str = "") -> list[Cell]:
    """Expand shell patterns into the list of cells, validating everything before any training.

    Args:
        models, datasets: shell patterns (``"*"``, ``"kg*"``, ``"lightgcn"``); each pattern
            must match at least one registered name.
        seeds: non-negative integers. kg_ablations: ``real``, ``shuffled``, ``none``, ``noisy:P``.
        metric: a metric name every (model, dataset) pair logs (``"ndcg@10"``, ``"auc"``).
        epochs: ``None`` or a positive epoch count.
        variants: :func:`parse_variant` specs; every key must be a hyper-parameter of every
            model of the grid.
        protocol: protocol fields over each dataset's default for every cell
            (``"split=cold_item"``; :func:`cell_protocol`).

    Returns:
        Cells ordered dataset, KG ablation, variant, seed, model (models of one setting run together).

    Raises:
        ValueError: a pattern matching nothing, an unknown metric, a negative seed or
            epoch count, an unknown ablation, a bad or repeated variant, a variant key a
            model does not take, a bad protocol field, a duplicate, a broken config.
    """
    from ..api import list_models, model_hparams
    from ..registry import MODELS
    from ..data.datasets import dataset_spec, list_datasets

    models = [models] if isinstance(models, str) else list(models)
    datasets = [datasets] if isinstance(datasets, str) else list(datasets)
    if not models or not datasets:
        raise ValueError("the grid needs at least one model pattern and one dataset pattern")
    names = _resolve(models, list_models, "model", "registered model")
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
            bad = sorted(set(overrides) - set(model_hparams(MODELS.get(m))))
            if bad:
                raise ValueError(f"variant {v!r}: model {m!r} takes no hyper-parameter {', '.join(map(repr, bad))}")
        variant_names.append(name)
    protocol = parse_assignments(protocol, "protocol")[0]
    for d in dsets:
        dataset_spec(d)
        try:
            cell_protocol(d, 0, protocol)
        except (TypeError, ValueError) as e:
            raise ValueError(f"protocol {protocol!r} on {d}: {e}") from None
        for m in names:
            ZooConfig.load(m, d)  # raises ValueError on a broken config
            if metric is not None:
                known = metric_names(m, d)
                if metric not in known:
                    raise ValueError(f"unknown metric {metric!r} for {m} on {d}; known: {', '.join(known)}")
    return [Cell(m, d, s, k, v, protocol) for d in dsets for k in kinds for v in variant_names for s in seeds
            for m in names]


# ---------------------------------------------------------------------------- results file
def results_path(results: str | Path | None = None, name: str = "bench") -> Path:
    """The results file: ``results`` if it names a ``.jsonl`` file, ``results/<name>.jsonl``
    if it names a folder, else ``benchmarks/results/<name>.jsonl``."""
    if results is None:
        return DEFAULT_RESULTS_DIR / f"{name}.jsonl"
    p = Path(results)
    if p.suffix == ".jsonl" or (p.exists() and p.is_file()):
        return p
    return p / f"{name}.jsonl"


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a results file (missing file: none). A torn last line (a crash while
    writing) is ignored; a malformed line elsewhere is an error.

    Raises:
        ValueError: a line that is not a JSON object (file and line number).
    """
    p = Path(path)
    if not p.is_file():
        return []
    lines = p.read_text().splitlines()
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if i == len(lines):
                break
            raise ValueError(f"{p}:{i}: not a JSON line ({e})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{p}:{i}: a result row must be a JSON object")
        rows.append(row)
    return rows


def append_row(path: str | Path, row: dict[str, Any]) -> None:
    """Append one JSON line to ``path`` and force it to disk (flush + fsync)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(row, default=_json_default, sort_keys=True)
    with open(p, "a+", encoding="utf-8") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() > 0:  # start on a fresh line even after a torn write
            f.seek(f.tell() - 1)
            if f.read(1) != "\n":
                f.write("\n")
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def done_keys(rows: Iterable[dict[str, Any]]) -> set[tuple]:
    """``(model, dataset, seed, kg_ablation, variant, fingerprint, config_sha)`` of every
    successful row (the fingerprint the cell was planned under, ``cell_fingerprint``, where the
    row has one; rows written before ``config_sha`` existed match no cell)."""
    return {(r.get("model"), r.get("dataset"), r.get("seed"), r.get("kg_ablation"), r.get("variant", BASE_VARIANT),
             r.get("cell_fingerprint", r.get("fingerprint")), r.get("config_sha"))
            for r in rows if r.get("status") == "ok"}


# ---------------------------------------------------------------------------- the grid
def run_grid(cells: Sequence[Cell], results: str | Path, *, epochs: int | None = None, quick: bool = True,
             resume: bool = False, metric: str | None = None, devices: int | str = 1, strategy: str = "auto",
             accelerator: str = "cpu", root: str | None = None, out_dir: str | Path = "runs",
             command: str | None = None, progress: bool | None = False,
             log: Callable[[str], None] | None = print, experiment: Callable[..., dict] | None = None
             ) -> GridReport:
    """Run every cell, appending one row per cell to ``results``.

    Args:
        cells: from :func:`resolve_grid`. results: the JSON-lines file.
        epochs: ``max_epochs`` for every cell; ``None`` = the config's schedule
            (``bench`` section when ``quick``, else ``train``).
        resume: skip cells with a successful row of the same fingerprint in ``results``.
        metric: the validation metric monitored (model selection, early stopping).
        devices, strategy, accelerator: passed through to the Trainer.
        command: the command line recorded in every row (default: ``sys.argv``).
        log: a function printing one line per cell (``None``: silent).
        experiment: the function that runs one cell (default :func:`kgzoo.train.run_experiment`).

    Returns:
        A :class:`GridReport`. Only global rank 0 writes rows.
    """
    if experiment is None:
        from ..train import run_experiment as experiment
    results = Path(results)
    command = command or " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]])
    rank0 = is_rank_zero()
    say = log if (log is not None and rank0) else (lambda s: None)
    done = done_keys(read_rows(results)) if resume else set()
    report = GridReport(results=results)
    t_grid = time.perf_counter()
    for i, cell in enumerate(cells, 1):
        fp, pfp = cell_fingerprint(cell, root)
        cfg = ZooConfig.load(cell.model, cell.dataset)
        schedule = cfg.schedule(quick, max_epochs=epochs)
        sha = cfg.sha(cell.overrides, schedule)
        key = (cell.model, cell.dataset, cell.seed, cell.kg_ablation, cell.variant, fp, sha)
        tag = f"[{i}/{len(cells)}] {cell.label()}"
        if key in done:
            report.skipped.append(cell)
            say(f"{tag}: already in {results}, skipped")
            continue
        if cfg.inherited_from:
            say(f"{tag}: {cell.model} has no zoo config; using {cfg.inherited_from}'s")
        budget = schedule.max_epochs
        bench = {"command": command, "max_epochs": budget, "quick": bool(quick and epochs is None),
                 "results": results.name}
        t0 = time.perf_counter()
        try:
            row = experiment(cell.model, cell.dataset, seed=cell.seed,
                             protocol=cell_protocol(cell.dataset, cell.seed, cell.protocol),
                             max_epochs=budget, monitor=metric, quick=quick, devices=devices, strategy=strategy,
                             accelerator=accelerator, kg_ablation=cell.kg_ablation, root=root, out_dir=out_dir,
                             progress=progress, model_overrides=cell.overrides or None)
            row = dict(row)
            row.setdefault("status", "ok")
        except Exception as e:  # noqa: BLE001 - a failed cell is a result, the grid goes on
            row = {"model": cell.model, "dataset": cell.dataset, "seed": cell.seed, "kg_ablation": cell.kg_ablation,
                   "fingerprint": fp, "protocol_fingerprint": pfp, "status": "failed",
                   "error": f"{type(e).__name__}: {e}",
                   "traceback": "".join(traceback.format_exception(e)[-6:]),
                   "devices": devices, "strategy": strategy, "accelerator": accelerator,
                   "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            report.failed.append(cell)
        row["variant"], row["overrides"], row["config_sha"] = cell.variant, cell.overrides, sha
        row["cell_seconds"] = time.perf_counter() - t0
        row["bench"] = bench
        # the fingerprint the cell was planned under (a model may wrap the DataModule, e.g. for
        # KG link prediction, and report that one's fingerprint): what --resume matches on
        row["cell_fingerprint"] = fp
        if rank0:
            append_row(results, row)
        report.rows.append(row)
        say(_cell_line(tag, row))
    report.seconds = time.perf_counter() - t_grid
    say(f"grid: {len(cells)} cells ({len(report.rows)} run, {len(report.skipped)} skipped, "
        f"{len(report.failed)} failed) in {report.seconds:.1f} s; rows in {results}")
    return report


def _cell_line(tag: str, row: dict[str, Any]) -> str:
    secs = f"{row.get('cell_seconds', 0.0):.1f} s"
    if row.get("status") != "ok":
        return f"{tag}: FAILED after {secs}: {row.get('error')}"
    main = row.get("main_metric", "")
    value = row.get("metrics", {}).get(f"test/{main}")
    shown = f"test {main} {value:.4f}" if isinstance(value, (int, float)) else "no test metric"
    return f"{tag}: ok in {secs} ({row.get('epochs')} epochs, {row.get('seconds_per_epoch', 0.0):.2f} s/epoch), {shown}"
