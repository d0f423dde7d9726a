"""The result row: one benchmark cell's outcome, a versioned dataclass stored as one JSON line.

A row is written by exactly one function (:func:`kgzoo.bench.experiment.run_experiment`, failed
cells included), appended to a JSON-lines file by :func:`append_row` (flushed and fsync'ed, so a
crash loses only the cell that was running) and read back by :func:`read_rows`. Every path in a
row is relative (``config`` to the zoo config directory, ``checkpoint`` to the run folder), so the
committed rows under ``benchmarks/results/`` carry no machine's layout.

Schema history (:data:`SCHEMA_VERSION`):

* 1 (no ``schema`` key): the untyped dicts written until 2026-12 (``bench`` block
  ``{"command", "max_epochs", "quick", "results"}``, absolute paths, no schedule, no
  ``stopped_by``). :meth:`ResultRow.from_dict` upgrades them without loss: keys it does not map
  are kept in ``extra``.
* 2: this dataclass (DESIGN.md, "ResultRow"; the field list agreed in the redesign, issue 18).
  Fields added later within schema 2 are optional with a ``None`` default, so every earlier
  row reads unchanged: ``git_commit`` and ``git_dirty`` (2026-12-06; ``None`` in older rows),
  ``cell_cpu_seconds`` (2026-12-07; ``None`` in older rows), ``torch_threads`` (2026-12-07;
  ``None`` in older rows).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePath
from typing import Any

import torch

#: the schema this module writes; rows of older schemas are upgraded on reading
SCHEMA_VERSION = 2
BASE_VARIANT = "base"
SCHEDULE_KINDS = ("quick", "converged", "fixed")
STOPPED_BY = ("early_stopping", "cap", "closed_form")
STATUSES = ("ok", "failed")
_HEX40 = re.compile(r"[0-9a-f]{40}")


@dataclass(kw_only=True)
class ResultRow:
    """One cell of a benchmark grid: what ran, on which data and protocol, how it ended.

    Attributes (units in brackets):
        schema: :data:`SCHEMA_VERSION`.
        model, dataset: registry names. task: ``"topk"``, ``"ctr"`` or ``"link"``.
        seed: training seed (initialisation, negative sampling; the split is the protocol's).
        variant: ``"base"`` or the canonical ``"k=v,..."`` of ``overrides`` (hyper-parameters
            over the zoo config). kg_ablation: ``"real"``, ``"none"``, ``"shuffled"``, ``"noisy:P"``.
        protocol: ``EvalProtocol.to_dict()``. protocol_label: a readable form of it
            (:func:`protocol_label`).
        fingerprint, protocol_fingerprint: sha256 hex of the evaluated data + protocol
            (+ metric code), and of the protocol alone (``KGRecDataModule``).
        cell_fingerprint: the fingerprint the cell was planned under where the evaluated data
            differs (a link-prediction model scores the KG's triple split), else ``None``.
        devices, strategy, num_nodes, accelerator: the Trainer's.
        schedule: ``{"kind": "quick"|"converged"|"fixed", "max_epochs": int|None,
            "patience": int|None, "monitor": str}`` (``None``: not recorded by a schema-1 row),
            and ``"min_epochs": int`` where the dataset's converged schedule has a warm-up
            (:attr:`kgzoo.data.spec.DatasetSpec.min_epochs`).
        epochs: epochs trained. best_epoch: 0-based epoch of the best monitored value.
        stopped_by: ``"early_stopping"``, ``"cap"`` (``epochs`` reached ``max_epochs``),
            ``"closed_form"`` (a model without trainable parameters, e.g. Pop: one pass over the
            training data is its exact fit, so the epoch cap ends nothing early) or ``None``.
        reference: another implementation's numbers on the same dataset from the config
            (:meth:`kgzoo.config.ZooConfig.reference_for`: ``{"metrics", "source", "setting"}``) or ``None``.
        tuning: ``None`` (an untuned config) or the config's ``tuned:`` record that the run used:
            ``{"trials", "budget", "chosen": {...}, "best_valid", "study", "date"}``
            (:func:`kgzoo.bench.experiment.tuning_record`).
        main_metric: e.g. ``"ndcg@10"``. metrics: ``"test/<m>" -> float``.
        valid_metrics: ``"valid/<m>" -> float`` of the restored best epoch.
        seconds_per_epoch, eval_seconds (mean per evaluation pass), train_seconds,
            test_seconds, cell_seconds [s, wall]; peak_memory_mb [MiB]; params (trainable scalars);
            ``None`` on a failed row that never measured them.
        cell_cpu_seconds: the cell's process CPU seconds (``time.process_time``: every thread of
            the process, rank 0's under DDP; a resumed cell counts its earlier processes' fits):
            with one torch thread, what the cell takes on an otherwise idle core, whatever else
            ran beside it. ``None`` where unknown (rows written before it was recorded, a cell
            resumed from a point that did not record it). The one-seed rule of the large sets
            reads it before ``cell_seconds`` (issue 16, part 3).
        torch_threads: ``torch.get_num_threads()`` of the process that ran the cell (``OMP_NUM_THREADS``
            sets it): float sums split over another number of threads add in another order, so a
            rerun under another count may differ in the last bits and, over a run, in its metrics
            (a CKE run on ml-100k-kg under 2 threads left the 1-thread run's validation curve at
            epoch 36). ``None`` where unknown (rows written before it was recorded).
        hparams: the model's hyper-parameters (sizes excluded). config: the zoo config file
            relative to its config directory (``"kgat/ml-100k-kg.yaml"``). config_sha: 16 hex
            of what the cell trains with. code_hash: 16 hex of kgzoo's version + the model's
            source. git_commit: 40 hex of the git checkout that ran the cell, ``None`` from an
            installed wheel or in a row written before kgzoo recorded it; git_dirty: whether
            that checkout had uncommitted changes under ``kgzoo/`` or ``zoo_configs/``
            (:func:`kgzoo.version.git_revision`). versions: library versions. paper: the
            config's paper block.
        checkpoint: best checkpoint relative to the run folder, or ``None``.
        command: the command line. time: ISO 8601 end time with the writing machine's UTC offset
            (``"2026-12-07T10:00:00+0000"``; :attr:`written_at` orders rows by it). status: ``"ok"`` or ``"failed"``;
            error, traceback: of a failed cell.
        extra: keys of an upgraded schema-1 row that have no field here (kept, never dropped).

    Raises:
        ValueError: (on construction) a bad status, task type, schedule kind, stopped_by, an
            absolute ``config`` or ``checkpoint`` path, a ``git_commit`` other than 40 hex digits,
            a non-numeric metric, a ``time`` that is not ISO 8601.
    """

    schema: int = SCHEMA_VERSION
    model: str
    dataset: str
    task: str = ""
    seed: int
    variant: str = BASE_VARIANT
    overrides: dict[str, Any] = field(default_factory=dict)
    kg_ablation: str = "real"
    protocol: dict[str, Any] = field(default_factory=dict)
    protocol_label: str = ""
    fingerprint: str
    protocol_fingerprint: str = ""
    cell_fingerprint: str | None = None
    devices: int | str = 1
    strategy: str = "auto"
    num_nodes: int = 1
    accelerator: str = "cpu"
    schedule: dict[str, Any] = field(default_factory=lambda: {"kind": "fixed", "max_epochs": None,
                                                              "patience": None, "monitor": ""})
    epochs: int | None = None
    best_epoch: int | None = None
    stopped_by: str | None = None
    tuning: dict[str, Any] | None = None
    reference: dict[str, Any] | None = None
    main_metric: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    valid_metrics: dict[str, float] = field(default_factory=dict)
    seconds_per_epoch: float | None = None
    eval_seconds: float | None = None
    train_seconds: float | None = None
    test_seconds: float | None = None
    cell_seconds: float | None = None
    cell_cpu_seconds: float | None = None
    torch_threads: int | None = None
    peak_memory_mb: float | None = None
    params: int | None = None
    hparams: dict[str, Any] = field(default_factory=dict)
    config: str | None = None
    config_sha: str | None = None
    code_hash: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    versions: dict[str, str] = field(default_factory=dict)
    paper: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None
    command: str = ""
    time: str = ""
    status: str = "ok"
    error: str | None = None
    traceback: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"result row ({self.model} / {self.dataset} / seed {self.seed})"
        if self.schema != SCHEMA_VERSION:
            raise ValueError(f"{where}: schema {self.schema!r}; this kgzoo writes {SCHEMA_VERSION}")
        if self.status not in STATUSES:
            raise ValueError(f"{where}: status {self.status!r} must be one of {STATUSES}")
        if not isinstance(self.task, str):
            raise ValueError(f"{where}: task {self.task!r} must be a string")
        if self.schedule.get("kind") not in SCHEDULE_KINDS:
            raise ValueError(f"{where}: schedule.kind {self.schedule.get('kind')!r} must be one of {SCHEDULE_KINDS}")
        if self.stopped_by is not None and self.stopped_by not in STOPPED_BY:
            raise ValueError(f"{where}: stopped_by {self.stopped_by!r} must be one of {STOPPED_BY} or null")
        for name in ("config", "checkpoint"):
            value = getattr(self, name)
            if value is not None and (PurePath(value).is_absolute() or str(value).startswith("~")):
                raise ValueError(f"{where}: {name} {value!r} must be a relative path")
        if self.git_commit is not None and not _HEX40.fullmatch(str(self.git_commit)):
            raise ValueError(f"{where}: git_commit {self.git_commit!r} must be 40 hex digits or null")
        if self.git_dirty is not None and not isinstance(self.git_dirty, bool):
            raise ValueError(f"{where}: git_dirty {self.git_dirty!r} must be true, false or null")
        if self.time:
            try:
                parse_time(self.time)
            except ValueError:
                raise ValueError(f"{where}: time {self.time!r} is not an ISO 8601 time "
                                 "(e.g. 2026-12-07T10:00:00+0000)") from None
        if self.torch_threads is not None and (isinstance(self.torch_threads, bool)
                                               or not isinstance(self.torch_threads, int) or self.torch_threads < 1):
            raise ValueError(f"{where}: torch_threads {self.torch_threads!r} must be a positive integer or null")
        for name in ("metrics", "valid_metrics"):
            for k, v in getattr(self, name).items():
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ValueError(f"{where}: {name}[{k!r}] = {v!r} is not a number")

    # ------------------------------------------------------------------ identity
    def key(self) -> tuple:
        """The cell key (:func:`cell_key`) of this row: the fingerprint is the one the cell was
        planned under (``cell_fingerprint`` where set)."""
        return cell_key(self.model, self.dataset, self.seed, self.kg_ablation, self.variant,
                        self.cell_fingerprint or self.fingerprint, self.devices, self.strategy, self.num_nodes)

    def is_published(self) -> bool:
        """True for a row the published leaderboard may rank: ``status == "ok"``, a converged
        schedule, and not stopped by its epoch cap."""
        return self.status == "ok" and self.schedule.get("kind") == "converged" and self.stopped_by != "cap"

    @property
    def written_at(self) -> datetime:
        """When the row was written, as an aware UTC instant (:func:`parse_time` of :attr:`time`):
        the order of "the latest row" (a rerun replaces a cell's row, the newest row's
        fingerprint is a table's current one). Rows carry their machine's UTC offset, so their
        text does not sort by instant (``05:30-0500`` is after ``10:00+0000``)."""
        return parse_time(self.time)

    @property
    def run_seconds(self) -> float | None:
        """What the cell cost [s]: :attr:`cell_cpu_seconds` where known, else the wall
        :attr:`cell_seconds` (``None``: neither). The one-seed rule of the large sets reads it
        (issue 16, part 3)."""
        return self.cell_cpu_seconds if self.cell_cpu_seconds is not None else self.cell_seconds

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (``schema`` included); :meth:`from_dict` inverts it."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "result row") -> "ResultRow":
        """The row of a dict of schema 1 (upgraded, :func:`upgrade_v1`) or 2.

        Args:
            d: a parsed JSON line. where: named in errors (e.g. ``"bench.jsonl:12"``).

        Raises:
            ValueError: not a dict, a schema newer than :data:`SCHEMA_VERSION`, a missing
                ``model``/``dataset``/``seed``/``fingerprint``, an unknown key in a schema-2 row,
                a bad value (:class:`ResultRow`); each message starts with ``where``.
        """
        if not isinstance(d, dict):
            raise ValueError(f"{where}: a result row must be a JSON object, not {type(d).__name__}")
        schema = d.get("schema", 1)
        if isinstance(schema, bool) or not isinstance(schema, int) or not 1 <= schema <= SCHEMA_VERSION:
            raise ValueError(f"{where}: schema {schema!r} is not one this kgzoo reads (1..{SCHEMA_VERSION}; "
                             "a newer kgzoo wrote it?)")
        if schema == 1:
            d = upgrade_v1(d)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))} in a schema-{schema} row")
        missing = [k for k in ("model", "dataset", "seed", "fingerprint") if k not in d]
        if missing:
            raise ValueError(f"{where}: missing field(s) {', '.join(map(repr, missing))}")
        try:
            return cls(**d)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from None


#: the instant of a row without a time (sorts first)
NO_TIME = datetime.min.replace(tzinfo=timezone.utc)

#: the format of :attr:`ResultRow.time` as :func:`kgzoo.bench.experiment.assemble_row` writes it
#: (``time.strftime``: local time and its UTC offset, ``"2026-12-07T10:00:00+0000"``)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


def row_time() -> str:
    """Now, as :attr:`ResultRow.time` holds it: local time and its UTC offset in
    :data:`TIME_FORMAT` (``"2026-12-07T10:00:00+0000"``). The offset is Python's
    (``datetime.strftime`` of an aware time), not the C library's: ``time.strftime("%z")`` writes
    the zone's name on Windows ("Pacific Standard Time", CPython issue 82232), which
    :func:`parse_time` refuses, so the row could not be written."""
    return datetime.now().astimezone().strftime(TIME_FORMAT)


def parse_time(value: str) -> datetime:
    """The UTC instant of an ISO 8601 time (:attr:`ResultRow.time`: ``"2026-12-07T10:00:00+0000"``,
    ``"2026-12-07T05:30:00-0500"``, ``"2026-12-07"``): one without an offset is read as UTC;
    ``""`` is :data:`NO_TIME`.

    Read by :meth:`datetime.datetime.fromisoformat`, else as :data:`TIME_FORMAT` (an offset
    without a colon, or ``Z``): Python 3.10's ``fromisoformat`` reads only what ``isoformat()``
    writes (``+00:00``), so alone it refused every row kgzoo writes there.

    Raises:
        ValueError: not an ISO 8601 date or time.
    """
    if not value:
        return NO_TIME
    text = str(value)
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        t = datetime.strptime(text, TIME_FORMAT)
    return (t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def cell_key(model: str, dataset: str, seed: int, kg_ablation: str, variant: str, fingerprint: str,
             devices: int | str, strategy: str, num_nodes: int) -> tuple:
    """The identity of a benchmark cell: ``(model, dataset, seed, kg_ablation, variant, fingerprint,
    devices, strategy, num_nodes)``. The fingerprint covers the data, the protocol and the KG
    ablation; ``devices`` is compared as text (``1`` and ``"1"`` are one setting). Two rows with one
    key are the same cell run twice; a 2-process DDP row is another cell than a 1-device row."""
    return (model, dataset, seed, kg_ablation, variant, fingerprint, str(devices), strategy, int(num_nodes))


# ---------------------------------------------------------------------------- schema 1 -> 2
def upgrade_v1(old: dict[str, Any]) -> dict[str, Any]:
    """The schema-2 dict of a schema-1 row, losing nothing.

    Mapping: ``bench.command`` -> ``command``; ``bench.quick``/``bench.max_epochs`` -> ``schedule``
    (kind ``"quick"`` if quick, ``"fixed"`` if the command set ``--epochs`` or there was no bench
    block, else ``"converged"``; monitor ``valid/<main_metric>``; patience not recorded: ``None``);
    other ``bench`` keys -> ``extra["bench"]``; ``wall_seconds`` -> ``cell_seconds``;
    ``cell_fingerprint`` kept only where it differs from ``fingerprint``; absolute ``config`` ->
    the part below ``zoo_configs/``; absolute ``checkpoint`` -> the part from the dataset's folder
    (``<dataset>/<model>/<run>/checkpoints/best.ckpt``, relative to the run folder);
    ``stopped_by`` = ``"cap"`` when ``epochs >= max_epochs`` else ``"early_stopping"`` (``None``
    on a failed row or an unknown cap); ``num_nodes`` 1; ``variant`` ``"base"``; any other
    unknown key -> ``extra``.
    """
    names = {f.name for f in dataclasses.fields(ResultRow)}
    new: dict[str, Any] = {k: v for k, v in old.items() if k in names and k not in ("extra", "cell_fingerprint")}
    extra = {k: v for k, v in old.items() if k not in names and k not in ("bench", "cell_fingerprint", "wall_seconds")}
    if "extra" in old:
        extra["extra"] = old["extra"]
    bench = old.get("bench")
    main = old.get("main_metric", "")
    if isinstance(bench, dict):
        command = bench.get("command", "")
        quick = bool(bench.get("quick"))
        kind = "quick" if quick else ("fixed" if "--epochs" in command.split() else "converged")
        max_epochs = bench.get("max_epochs")
        rest = {k: v for k, v in bench.items() if k not in ("command", "quick", "max_epochs")}
        if rest:
            extra["bench"] = rest
        new["command"] = command
    else:
        if bench is not None:
            extra["bench"] = bench
        kind, max_epochs = "fixed", None
    new["schedule"] = {"kind": kind, "max_epochs": max_epochs, "patience": None,
                       "monitor": f"valid/{main}" if main else ""}
    epochs = old.get("epochs")
    if old.get("status", "ok") == "ok" and isinstance(epochs, int) and isinstance(max_epochs, int):
        new["stopped_by"] = "cap" if epochs >= max_epochs else "early_stopping"
    cfp = old.get("cell_fingerprint")
    if cfp is not None and cfp != old.get("fingerprint"):
        new["cell_fingerprint"] = cfp
    if "wall_seconds" in old:
        if "cell_seconds" in old:
            extra["wall_seconds"] = old["wall_seconds"]
        else:
            new["cell_seconds"] = old["wall_seconds"]
    if isinstance(new.get("config"), str):
        new["config"] = relative_config(new["config"])
    if isinstance(new.get("checkpoint"), str):
        new["checkpoint"] = relative_checkpoint(new["checkpoint"], str(old.get("dataset", "")))
    new.setdefault("variant", BASE_VARIANT)
    new.setdefault("overrides", {})
    if isinstance(new.get("protocol"), dict) and new["protocol"]:
        new["protocol_label"] = protocol_label(new["protocol"], str(new.get("task", "")))
    new["schema"] = SCHEMA_VERSION
    new["extra"] = extra
    return new


def relative_config(path: str) -> str:
    """A zoo config path relative to its config directory: the part below the last
    ``zoo_configs`` folder, else ``<model>/<file>`` (the last two parts); relative paths unchanged."""
    p = PurePath(path)
    if not p.is_absolute():
        return path
    parts = p.parts
    if "zoo_configs" in parts:
        i = len(parts) - 1 - parts[::-1].index("zoo_configs")
        return PurePath(*parts[i + 1:]).as_posix()
    return PurePath(*parts[-2:]).as_posix()


def relative_checkpoint(path: str, dataset: str) -> str:
    """A checkpoint path relative to its run folder: from the last ``dataset`` folder on
    (checkpoints live at ``<run folder>/<dataset>/<model>/<cell>/checkpoints/``), else the
    file name; relative paths unchanged."""
    p = PurePath(path)
    if not p.is_absolute():
        return path
    parts = p.parts
    if dataset in parts[:-1]:
        i = len(parts) - 1 - parts[::-1].index(dataset)
        return PurePath(*parts[i:]).as_posix()
    return p.name


# ---------------------------------------------------------------------------- protocol label
def _ratios(ratios: Any) -> str:
    """``[0.8, 0.1, 0.1]`` -> ``"8:1:1"``, ``[0.6, 0.2, 0.2]`` -> ``"6:2:2"``, ``[0.7, 0.15, 0.15]`` ->
    ``"70:15:15"``: the fractions times the smallest power of ten (up to 10^4) that makes them whole."""
    try:
        values = [float(r) for r in ratios]
    except (TypeError, ValueError):
        return str(ratios)
    for scale in (10, 100, 1000, 10000):
        scaled = [v * scale for v in values]
        if all(abs(x - round(x)) < 1e-6 for x in scaled):
            return ":".join(str(round(x)) for x in scaled)
    return ":".join(f"{v:g}" for v in values)


def protocol_label(protocol: dict[str, Any], task: str = "") -> str:
    """A readable label of an ``EvalProtocol.to_dict()`` for table titles, e.g.
    ``"random 8:1:1 per user, full ranking, seen masked"``,
    ``"ctr, random 6:2:2 of rows, AUC/F1 on labelled pairs, require_train_positive"``,
    ``"cold items 70:15:15, ranking each stage's cold items"``, ``"impressions by day (...)"``.
    ``task="link"`` (a row's task)
    labels KG link prediction, whose triple split is the model's own."""
    split = protocol.get("split", "random")
    ratios = _ratios(protocol.get("ratios", (0.8, 0.1, 0.1)))
    if task == "link":
        return "KG link prediction: held-out triples, filtered ranking of all entities"
    if protocol.get("task") == "impression":
        return "impressions by day (last day test, the day before valid), AUC/MRR/nDCG per impression"
    if protocol.get("task") == "ctr":
        base = {"random": f"random {ratios} of rows", "given": "the source's split"}.get(split, f"{split} {ratios}")
        parts = ["ctr", base, "AUC/F1 on labelled pairs"]
    elif split == "cold_item":
        parts = [f"cold items {ratios}", "ranking each stage's cold items"]
    else:
        base = {"random": f"random {ratios} per user", "temporal": f"temporal {ratios} per user",
                "loo": "leave-one-out per user", "given": "the source's split"}.get(split, f"{split} {ratios}")
        parts = [base, "full ranking, seen masked"]
    if protocol.get("threshold") is not None:
        parts.append(f"ratings >= {protocol['threshold']}")
    if protocol.get("k_core"):
        parts.append(f"{protocol['k_core']}-core")
    if protocol.get("require_train_positive"):
        parts.append("require_train_positive")
    if protocol.get("valid_split", "per_user") != "per_user":
        parts.append(f"valid carved by {protocol['valid_split'].replace('_', ' ')}")
    return ", ".join(parts)


# ---------------------------------------------------------------------------- results files
def read_rows(path: str | Path) -> list[ResultRow]:
    """The rows of a JSON-lines results file (a missing file: none), schema-1 rows upgraded.

    A torn last line (a crash while writing) is ignored; a malformed line elsewhere is an error.

    Raises:
        ValueError: a line that is not JSON or not a valid row (``"<path>:<line>: ..."``).
    """
    p = Path(path)
    if not p.is_file():
        return []
    lines = p.read_text(encoding="utf-8").splitlines()
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            if i == len(lines):
                break
            raise ValueError(f"{p}:{i}: not a JSON line ({e})") from None
        rows.append(ResultRow.from_dict(d, where=f"{p}:{i}"))
    return rows


def read_folder(folder: str | Path) -> list[ResultRow]:
    """The rows of every ``*.jsonl`` in ``folder`` (sorted by file name; a missing folder: none).

    Raises:
        ValueError: as :func:`read_rows`.
    """
    return [r for f in sorted(Path(folder).glob("*.jsonl")) for r in read_rows(f)]


def append_row(path: str | Path, row: ResultRow) -> None:
    """Append ``row`` as one JSON line (sorted keys) to ``path`` (:func:`append_line`)."""
    append_line(path, dump_row(row))


def append_line(path: str | Path, line: str) -> None:
    """Append one JSON line to ``path`` (folders created) and force it to disk (flush + fsync),
    so a killed run loses nothing written; a torn last line left by a crash is ended first, so
    the new line starts a line. Used for result rows and ``kgzoo tune``'s trial rows.

    Raises:
        ValueError: ``line`` holds a newline (it would be two JSON lines).
    """
    if "\n" in line:
        raise ValueError("append_line takes one JSON line without a newline")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a+", encoding="utf-8") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() > 0:
            f.seek(f.tell() - 1)
            if f.read(1) != "\n":
                f.write("\n")
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def rewrite_rows(path: str | Path) -> tuple[int, int]:
    """Rewrite a results file in the current schema (:func:`read_rows` upgrades each row), in
    place and atomically (a sibling temporary file, fsync'ed, then ``os.replace``). Idempotent:
    a file already in the current schema comes out byte for byte the same.

    Returns:
        ``(rows in, rows out)``: non-blank lines read and rows written.

    Raises:
        ValueError: a bad row (:func:`read_rows`), or a torn last line, which would be lost
            (``"<path>: ..."``; nothing is written).
    """
    p = Path(path)
    n_in = sum(1 for line in p.read_text(encoding="utf-8").splitlines() if line.strip())
    rows = read_rows(p)
    if len(rows) != n_in:
        raise ValueError(f"{p}: {n_in} lines but {len(rows)} rows (a torn last line?); mend it first, nothing written")
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(dump_row(r) + "\n" for r in rows)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)
    return n_in, len(rows)


def dump_row(row: ResultRow) -> str:
    """The JSON line of ``row`` (sorted keys, no newline)."""
    return json.dumps(row.to_dict(), sort_keys=True)


def _plain(o: Any) -> Any:
    """``o`` as JSON-ready values: paths -> str, tensors -> lists/numbers, tuples/sets -> lists."""
    if isinstance(o, dict):
        return {str(k): _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, set)):
        return [_plain(v) for v in o]
    if isinstance(o, PurePath):
        return o.as_posix()
    if isinstance(o, torch.Tensor):
        return o.tolist()
    return o
