"""The leaderboard as a pure function of result rows (DESIGN.md, "Leaderboard").

:func:`build` turns :class:`~kgzoo.bench.rows.ResultRow` objects into a :class:`Leaderboard`
of plain dataclasses; it reads no file and draws nothing (:mod:`kgzoo.bench.render` writes
the Markdown, CSV, PNG and rich views). The rules:

- **Cells.** Failed rows are ignored; of the rows of one cell (:meth:`ResultRow.key`: model,
  dataset, seed, KG ablation, variant, fingerprint, devices, strategy, nodes) and schedule
  (quick or not) the latest by ``time`` counts (file order breaks ties), so a rerun replaces,
  never double-counts, a seed, and a smoke run never replaces a published row.
- **Tables.** Rows are grouped by ``(dataset, task, protocol, KG ablation)``. The
  *current* fingerprint of a group is the one of its newest row; rows of any other
  fingerprint are superseded and go to the archive section, one table per fingerprint.
  Where a task's split is seeded by the run (:attr:`kgzoo.tasks.Task.seeded_split`: link
  prediction splits the KG triples with the run's seed, so each seed has its own
  fingerprint), the current fingerprints are the newest one of each seed, and one table
  averages the seeds. Rows with different fingerprints never share a table otherwise.
- **Sections.** Rows of the quick smoke schedule (``schedule["kind"] == "quick"``) go to
  separate smoke tables, never to the published ones. In a published table only lines whose
  every row :meth:`~kgzoo.bench.rows.ResultRow.is_published` (converged schedule, stopped by
  early stopping) and whose rows ran one configuration (one ``config_sha``, :attr:`Line.mixed`)
  get a rank; a line with a row that stopped at its epoch cap is flagged
  (``capped``): not converged, not a baseline. The published table of a dataset's grid
  (``grids``: the catalogue's models of its published table) names the grid's models without a
  line in it (:attr:`Table.pending`): a partial table is never read as the whole grid.
- **Lines.** One per model (``base`` variant; with ``show_variants=True`` also one per
  variant, shown as ``model [variant]``; a multi-device run apart from the one-device ones,
  ``model (2 devices, ddp)``): mean and sample standard deviation (``ddof=1``; 0
  for one seed) over seeds of every test metric, best epoch, how the runs stopped, costs and
  the paper's number of the sort metric where the row's ``paper`` block carries one.
- **Robustness** tables (one per ``(dataset, protocol_fingerprint, schedule class)`` with
  several KG ablations of the ``base`` rows) and **ablation** tables (one per ``(dataset,
  protocol_fingerprint, model, schedule class)`` with bench variants): the schedule class
  (quick, fixed `--epochs N` or converged, :func:`schedule_kind`) keeps a tuned converged run from being set beside
  untuned quick runs of its variants (the ``Δ vs full`` of such a table compared a 300-epoch
  tuned run with 30-epoch capped ones).

Sort metric: the task's main metric (:meth:`kgzoo.tasks.Task.main_metric`: test NDCG@10,
AUC, MRR) unless another is asked for and the table's rows carry it.
"""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..tasks import TASKS, get_task
from .rows import ResultRow, parse_time, protocol_label

#: cost columns: row attribute -> column title
COST_COLUMNS = {"params": "params", "seconds_per_epoch": "s/epoch", "eval_seconds": "eval s",
                "peak_memory_mb": "peak MB", "epochs": "epochs"}
#: how a run ended -> its short name in the "stopped by" column
STOP_NAMES = {"early_stopping": "early stop", "cap": "cap", "closed_form": "closed form", None: "not recorded"}
ABLATION_ORDER = ("real", "shuffled", "none")
PUBLISHED, SMOKE, ARCHIVE = "published", "smoke", "archive"


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation (``ddof=1``; 0 for one value) of ``n`` values, and their
    smallest and largest (``low``, ``high``; NaN where not given)."""

    mean: float
    std: float
    n: int
    low: float = math.nan
    high: float = math.nan

    @classmethod
    def of(cls, values: Iterable[Any]) -> "Stat | None":
        """The statistic of the finite numbers among ``values`` (``None`` when there is none;
        booleans, ``None``, NaN and infinities are skipped)."""
        v = [float(x) for x in values if isinstance(x, (int, float)) and not isinstance(x, bool)
             and math.isfinite(float(x))]
        if not v:
            return None
        a = np.asarray(v, dtype=np.float64)
        return cls(float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0, int(a.size), float(a.min()),
                   float(a.max()))

    def fmt(self, digits: int = 4) -> str:
        """``"0.3094 ± 0.0123"`` (``"0.3094"`` for one value)."""
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}" if self.n > 1 else f"{self.mean:.{digits}f}"


def metric_stats(rows: Sequence[ResultRow]) -> dict[str, Stat]:
    """``{"ndcg@10": Stat, ...}``: every test metric the rows carry (``"test/"`` prefix
    dropped), over the rows that have it."""
    names = sorted({m for r in rows for m in r.metrics if m.startswith("test/")})
    out = {}
    for m in names:
        s = Stat.of(r.metrics.get(m) for r in rows)
        if s is not None:
            out[m[len("test/"):]] = s
    return out


@dataclass
class Line:
    """One line of a table: a model (or ``model [variant]``) over its seeds.

    Attributes:
        model, variant, kg_ablation: what ran (``variant`` ``"base"`` = the zoo config as is).
        setup: ``""`` for one device on one node, else ``"2 devices, ddp"`` (``", 2 nodes"``):
            a DDP run is another cell than a one-device run, so another line.
        seeds: the seeds, ascending. fingerprints: the fingerprints of the rows (one, except
            for a task whose split is seeded by the run).
        metrics: test metric name (``"ndcg@10"``) -> :class:`Stat` over seeds (every metric
            the rows carry; the table chooses the columns).
        best_epoch: :class:`Stat` of the best (selected) epoch, 0-based, or ``None``.
        stopped_by: ``{"early_stopping": 2, "cap": 1}``: how many runs ended how (``None``
            where a row does not say).
        costs: :data:`COST_COLUMNS` key -> :class:`Stat` (parameters; seconds per epoch and
            per evaluation; peak memory in MB; epochs run).
        max_epochs: the epoch caps of the rows, ``"/"``-joined (``"?"`` when unknown).
        paper, paper_source, paper_setting: the paper's value of the table's sort metric, if a
            row's ``paper`` block carries one, where it comes from and under which protocol.
        reference, reference_source, reference_setting: another implementation's value of the
            sort metric on this dataset (a row's ``reference`` block, e.g. RecBole's converged
            run), what ran and under which protocol.
        tuned: ``"tuned (10 trials)"`` when every row's config was chosen by ``kgzoo tune`` with
            the same budget, ``"untuned"`` when none was, else ``"mixed"``.
        rank: 1-based rank among the table's ranked lines, or ``None`` (not ranked).
        note: what a reader of this line must know (the model's zoo config ``note`` for the
            dataset, :meth:`kgzoo.config.ZooConfig.note_for`), ``""`` if nothing.
        rows: the rows aggregated (for renderers that need more).
    """

    model: str
    variant: str
    kg_ablation: str
    seeds: list[int]
    fingerprints: list[str]
    metrics: dict[str, Stat]
    best_epoch: Stat | None
    stopped_by: dict[str | None, int]
    costs: dict[str, Stat | None]
    max_epochs: str
    paper: float | None = None
    paper_source: str | None = None
    paper_setting: str | None = None
    reference: float | None = None
    reference_source: str | None = None
    reference_setting: str | None = None
    tuned: str = "untuned"
    rank: int | None = None
    setup: str = ""
    note: str = ""
    rows: list[ResultRow] = field(default_factory=list, repr=False)

    @property
    def name(self) -> str:
        """``"kgplm"``, ``"kgplm [fusion=dot]"``, ``"bpr (2 devices, ddp)"``."""
        name = self.model if self.variant == "base" else f"{self.model} [{self.variant}]"
        return f"{name} ({self.setup})" if self.setup else name

    @property
    def capped(self) -> bool:
        """Whether a run of this line stopped at its epoch cap (not converged). A line with
        nothing to train (:func:`nothing_to_tune`: Pop's rows written before ``closed_form``
        existed read "cap" after their one pass) is fitted, not cut short: never capped."""
        return self.stopped_by.get("cap", 0) > 0 and not nothing_to_tune(self.rows)

    @property
    def fixed(self) -> bool:
        """Whether a run of this line ran a fixed schedule (``kgzoo bench --epochs N``: a set number
        of epochs, not a converged run) without stopping at its cap (that one is :attr:`capped`)."""
        return not self.capped and any((r.schedule or {}).get("kind") == "fixed" for r in self.rows)

    @property
    def configs(self) -> list[str]:
        """The distinct ``config_sha`` of the line's rows (what each seed trained with: the model
        section with its tuned values and the variant's overrides, data, schedule), sorted; a row
        without one (written before it was recorded) is not counted. Where the rows selected their
        best epoch on different validation metrics (``schedule.monitor``, which the sha leaves out:
        ``kgzoo bench --metric``), each carries its metric, ``"<sha> on recall@20"`` (:meth:`config_of`)."""
        return sorted({self.config_of(r) for r in self.rows if r.config_sha})

    def config_of(self, row: ResultRow) -> str:
        """``row``'s entry of :attr:`configs`: its ``config_sha``, with ``" on <metric>"`` where the
        line's rows monitored more than one metric."""
        monitors = {(r.schedule or {}).get("monitor") for r in self.rows if r.config_sha}
        if len(monitors) < 2:
            return row.config_sha or ""
        return f"{row.config_sha} on {str((row.schedule or {}).get('monitor')).removeprefix('valid/')}"

    @property
    def mixed(self) -> bool:
        """Whether the line's seeds ran more than one configuration (:attr:`configs`): a cell's key
        has no config sha, so a re-tune resumed on one seed leaves the other seeds of the old values
        in the line (likewise a ``--metric`` rerun of some seeds: another selection metric); its mean
        and std are not one configuration's, so it is not ranked."""
        return len(self.configs) > 1

    @property
    def published(self) -> bool:
        """Whether every run is publishable (:meth:`ResultRow.is_published`) and they ran one
        configuration (not :attr:`mixed`)."""
        return bool(self.rows) and all(r.is_published() for r in self.rows) and not self.mixed

    @property
    def trials(self) -> int | None:
        """The tuning trials behind the line: the fewest of its rows' ``tuning`` records' ``trials``
        (an untuned row counts 0, as does one run on another model's tuned values, :func:`tuned_as`;
        a study's default trial is not counted); ``None`` for a line
        with nothing to tune (:func:`nothing_to_tune`)."""
        if nothing_to_tune(self.rows):
            return None
        return min(0 if tuned_as(r) else int((r.tuning or {}).get("trials") or 0) for r in self.rows)

    @property
    def tuned_short(self) -> str:
        """How the line's tuning trials ran a shorter schedule than its runs (:func:`tuned_shorter`:
        ``"trials up to 3 epochs, runs up to 60"``), the rows' distinct answers joined; ``""`` where
        none did."""
        return "; ".join(dict.fromkeys(t for t in map(tuned_shorter, self.rows) if t))

    @property
    def one_seed(self) -> bool:
        """Whether this line has one seed (no std): a published table marks it where the line is
        converged (:attr:`Table.one_seed_minutes` says whether the dataset allows one seed)."""
        return len(self.seeds) == 1

    def stopped_text(self) -> str:
        """``"early stop ×2, cap ×1"``."""
        return ", ".join(f"{STOP_NAMES.get(k, str(k))} ×{n}" for k, n in self.stopped_by.items()) or "-"


def nothing_to_tune(rows: Sequence[ResultRow]) -> bool:
    """Whether every row (at least one) is of a model without trainable parameters (Pop,
    news-plm-mean): ``stopped_by == "closed_form"``, or ``params == 0`` in rows written before
    that was recorded (mind-kg's fixed-schedule Pop: "early stop", the quick ones: "cap")."""
    return bool(rows) and all(r.stopped_by == "closed_form" or r.params == 0 for r in rows)


def over_one_seed_limit(minutes: float | None, limit: float) -> bool:
    """Whether a run of ``minutes`` (the mean of a model's runs, :attr:`ResultRow.run_seconds` / 60;
    ``None``: unknown) took longer than a dataset's one-seed ``limit``
    (:attr:`~kgzoo.data.spec.DatasetSpec.one_seed_minutes`; ``0``: no limit), so that one seed
    stands for its cell (issue 16, part 3): the one rule of the leaderboard's ‡ note
    (:func:`kgzoo.bench.render.one_seed_reason`) and of ``benchmarks/scripts/fair_lane.py``."""
    return bool(limit) and minutes is not None and minutes > limit


def tuned_text(rows: Sequence[ResultRow]) -> str:
    """``"tuned (10 trials)"`` when every row ran a config chosen by ``kgzoo tune`` with one
    budget (:attr:`ResultRow.tuning`; ``"tuned (10 trials + defaults)"`` when the study also ran its
    default trial), ``"tuned on ml-100k-kg (10 trials)"`` when it was chosen on
    another dataset (``tuned: {from: ...}``), ``"tuned on ml-100k-kg under another fingerprint (10
    trials)"`` when it was chosen on this dataset under another protocol or data
    (:func:`tuned_elsewhere`), ``"nothing to tune"`` for a model without trainable parameters
    (:func:`nothing_to_tune`), ``"untuned: bpr's tuned values (10 trials)"`` when the study was
    another model's (:func:`tuned_as`: a subclass run on its parent's zoo config), ``"untuned"``
    when none was, else ``"mixed"``."""
    if nothing_to_tune(rows):
        return "nothing to tune"
    done = {((r.tuning or {}).get("trials"), (r.tuning or {}).get("dataset") or r.dataset,
             bool((r.tuning or {}).get("default")), tuned_elsewhere(r), tuned_as(r)) for r in rows}
    if {t for t, *_ in done} == {None}:
        return "untuned"
    if len(done) == 1:
        trials, where, default, elsewhere, parent = done.pop()
        budget = f"{trials} trial{'' if trials == 1 else 's'}" + (" + defaults" if default else "")
        if parent:  # a registered subclass without a zoo config of its own runs its parent's values
            return f"untuned: {parent}'s tuned values ({budget})"
        if elsewhere:
            return f"tuned on {where} under another fingerprint ({budget})"
        return f"tuned ({budget})" if where == rows[0].dataset else f"tuned on {where} ({budget})"
    return "mixed"


def tuned_shorter(row: ResultRow) -> str:
    """``"trials up to 3 epochs, runs up to 300"`` (``", patience 3 < 10"``) where ``row``'s tuning
    trials (its ``tuning.budget``) ran a shorter epoch cap or patience than ``row`` itself (its
    ``schedule``): values chosen on 3-epoch trials are not tuned with the budget of trials on the
    converged schedule, whatever their number (README: "each trial on the `train:` schedule"); ``""``
    otherwise, and for values tuned on another dataset or for another model (:func:`tuned_as`),
    which the ``tuned`` column names already, and where the row or the budget does not say."""
    t = row.tuning or {}
    budget, schedule = t.get("budget") or {}, row.schedule or {}
    if tuned_as(row) or (t.get("dataset") or row.dataset) != row.dataset:
        return ""
    short = {k: (budget.get(k), schedule.get(k)) for k in ("max_epochs", "patience")
             if isinstance(budget.get(k), int) and isinstance(schedule.get(k), int) and budget[k] < schedule[k]}
    if not short:
        return ""
    (tried, ran) = short.get("max_epochs") or (budget.get("max_epochs"), schedule.get("max_epochs"))
    text = f"trials up to {tried} epochs, runs up to {ran}"
    if "patience" in short:
        text += ", patience {} < {}".format(*short["patience"])
    return text


def tuned_as(row: ResultRow) -> str:
    """The model whose study chose ``row``'s tuned values where it is not ``row``'s own (the first
    part of its ``tuning.study`` name, ``model/dataset/...``): a registered subclass without a zoo
    config of its own runs its parent's (README, "Your own code in the grid"), which were not tuned
    for it; ``""`` otherwise (or for a study without a name)."""
    study = str((row.tuning or {}).get("study") or "")
    model = study.split("/")[0] if "/" in study else ""
    return model if model and model != row.model else ""


def tuned_elsewhere(row: ResultRow) -> bool:
    """Whether a base-variant, real-KG ``row`` of the dataset its config was tuned on ran under
    another fingerprint than the study's (the data fingerprint in its ``tuning.study`` name,
    ``model/dataset/<16 hex>/...``): values tuned on the random split, run on the cold-item split
    (or on changed data files), are not that table's tuning, and the ``tuned`` column says so. A
    variant or KG ablation runs the full model's tuned values by design, and a study without a
    name (an older record) is not judged."""
    t = row.tuning or {}
    parts = str(t.get("study") or "").split("/")
    return ((t.get("dataset") or row.dataset) == row.dataset and row.variant == "base"
            and row.kg_ablation == "real" and len(parts) > 2 and bool(parts[2])
            and not row.fingerprint.startswith(parts[2]))


def setup_of(row: ResultRow) -> str:
    """``""`` for one device on one node, else ``"2 devices, ddp"`` (``", 2 nodes"`` where several)."""
    if str(row.devices) == "1" and row.num_nodes == 1:
        return ""
    nodes = f", {row.num_nodes} nodes" if row.num_nodes != 1 else ""
    return f"{row.devices} devices, {row.strategy}{nodes}"


def line_setup(row: ResultRow, rows: Sequence[ResultRow]) -> str:
    """:func:`setup_of` ``row``, with ``"--epochs N"`` added for a fixed-schedule row where ``rows``
    (its table's) also hold a row of that model and variant under another schedule kind: the two
    are two lines (``bpr`` and ``bpr (--epochs 2)``), never one mean over a converged seed and a
    2-epoch one."""
    setup = setup_of(row)
    if schedule_kind(row) == "fixed" and any(
            r.model == row.model and r.variant == row.variant and schedule_kind(r) != "fixed" for r in rows):
        cap = (row.schedule or {}).get("max_epochs")
        setup = ", ".join(t for t in (setup, f"--epochs {cap}" if cap is not None else "fixed schedule") if t)
    return setup


def _first_number(rows: Sequence[ResultRow], block: str,
                  metric: str) -> tuple[float | None, str | None, str | None]:
    """``(value, source, setting)`` of ``metric`` in the first row whose ``paper`` or ``reference``
    block (``block``) gives it as a number; ``(None, None, None)`` when none does."""
    for r in rows:
        given = getattr(r, block) or {}
        value = (given.get("metrics") or {}).get(metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), given.get("source"), given.get("setting")
    return None, None, None


def caps_text(rows: Sequence[ResultRow]) -> str:
    """The epoch caps of ``rows``' schedules, ascending and ``"/"``-joined (``"30/60"``); ``"?"``
    when no row records one."""
    caps = sorted({int(r.schedule["max_epochs"]) for r in rows if (r.schedule or {}).get("max_epochs") is not None})
    return "/".join(map(str, caps)) if caps else "?"


def _line(rows: Sequence[ResultRow], metric: str, note: str = "", references: bool = True,
          setup: str | None = None) -> Line:
    """The line of ``rows`` (one model, variant and setup of a table); ``references=False`` leaves
    out the rows' ``reference`` (another implementation's number on the dataset's own protocol:
    not a reference for a table of another one); ``setup``: the line's setup (:func:`line_setup`),
    default :func:`setup_of` its first row."""
    rows = sorted(rows, key=lambda r: (r.seed, r.fingerprint))
    first = rows[0]
    paper, source, paper_setting = _first_number(rows, "paper", metric)
    reference, reference_source, reference_setting = (_first_number(rows, "reference", metric) if references
                                                      else (None, None, None))
    return Line(model=first.model, variant=first.variant, kg_ablation=first.kg_ablation,
                seeds=[r.seed for r in rows], fingerprints=sorted({r.fingerprint for r in rows}),
                metrics=metric_stats(rows), best_epoch=Stat.of(r.best_epoch for r in rows),
                stopped_by=dict(Counter(r.stopped_by for r in rows)),
                costs={k: Stat.of(getattr(r, k) for r in rows) for k in COST_COLUMNS},
                max_epochs=caps_text(rows), paper=paper, paper_source=source,
                paper_setting=paper_setting, reference=reference, reference_source=reference_source,
                reference_setting=reference_setting, tuned=tuned_text(rows),
                setup=setup_of(first) if setup is None else setup, note=note, rows=list(rows))


@dataclass
class Table:
    """One leaderboard table: a dataset under one protocol (and KG ablation), one section.

    Attributes:
        dataset, task, kg_ablation: what the rows measured.
        protocol_label: the readable protocol (``"random 8:1:1 per user, full ranking, seen
            masked"``); protocol: the protocol dict of the rows.
        fingerprints: the rows' fingerprints (one, or one per seed where the task's split is
            seeded by the run).
        section: :data:`PUBLISHED`, :data:`SMOKE` (quick schedule) or :data:`ARCHIVE`
            (superseded fingerprints).
        metric: the sort metric; its column comes first.
        caveat: the dataset's caveat from the catalogue (``""`` when none).
        one_seed_minutes: a model whose converged run took longer than this (minutes, the rows'
            :attr:`~kgzoo.bench.rows.ResultRow.run_seconds`: CPU seconds where recorded, else
            wall) may have one seed on this dataset (the catalogue's
            :attr:`~kgzoo.data.spec.DatasetSpec.one_seed_minutes`; ``0``: every line should have three).
        lines: best first: ranked lines by the sort metric, then the others by it.
        commands: the distinct command lines that wrote the rows.
        commits: the code the rows ran (:func:`commits_of`): distinct short git commits,
            ``"+dirty"`` where the checkout had uncommitted changes, ``"unrecorded"`` for rows
            without a commit (an installed wheel, or written before rows recorded it).
        newest: the ``time`` of the newest row.
        grid: the models of the dataset's grid (``build(grids=...)``, the catalogue's
            :attr:`~kgzoo.data.spec.DatasetSpec.grid`) where this is the grid's table (its task
            and protocol, real KG: :func:`in_grid_table`), in its order; ``[]`` elsewhere
            (:attr:`pending` names those without a line here).
        failed: model -> ``(seeds, error)``: the models whose cells under this table's key and
            fingerprints failed and were not rerun with success (:func:`failed_cells`), that have
            no line here (RippleNet without a KG): said below the table, never left out silently.
        retired: why this table's protocol is no longer its dataset's (``build(retired=...)``,
            the catalogue's :attr:`~kgzoo.data.spec.DatasetSpec.retired_protocols`): such a table
            is in the archive; ``""`` elsewhere.
    """

    dataset: str
    task: str
    kg_ablation: str
    protocol_label: str
    protocol: dict[str, Any]
    fingerprints: list[str]
    section: str
    metric: str
    caveat: str = ""
    one_seed_minutes: float = 0.0
    lines: list[Line] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    newest: str = ""
    grid: list[str] = field(default_factory=list)
    failed: dict[str, tuple[list[int], str]] = field(default_factory=dict)
    retired: str = ""

    @property
    def pending(self) -> list[str]:
        """The models of :attr:`grid` without a line in this table (a variant's line, ``model
        [variant]``, is not the model's), in the grid's order: not run here yet."""
        present = {ln.model for ln in self.lines if ln.variant == "base"}
        return [m for m in self.grid if m not in present]

    @property
    def budget(self) -> int | None:
        """The largest tuning budget of the table's lines (:attr:`Line.trials`), the one every
        line of a fair comparison should have had (issue 16, part 1: one budget for every model of
        a table); ``None`` where no line has anything to tune."""
        return max((ln.trials for ln in self.lines if ln.trials is not None), default=None)

    def under_budget(self, line: Line) -> bool:
        """Whether ``line`` of this published table was tuned with fewer trials than
        :attr:`budget` (untuned: 0), or with trials on a shorter schedule than its runs
        (:attr:`Line.tuned_short`): not an equal comparison, whatever its rank (a user's model
        tuned with 3 trials beside 10-trial baselines, or with 10 trials of 3 epochs each and run
        to convergence, or an untuned baseline beside tuned ones)."""
        return self.section == PUBLISHED and line.trials is not None and (
            (self.budget is not None and line.trials < self.budget) or bool(line.tuned_short))

    @property
    def metric_columns(self) -> list[str]:
        """The sort metric, then the task's leaderboard columns."""
        return metric_columns(self.task, self.metric)

    @property
    def title(self) -> str:
        """``"ml-100k-kg · random 8:1:1 per user, full ranking, seen masked"`` (``· KG shuffled``
        for a KG ablation)."""
        kg = "" if self.kg_ablation == "real" else f" · KG {self.kg_ablation}"
        return f"{self.dataset} · {self.protocol_label}{kg}"

    @property
    def capped(self) -> bool:
        return any(ln.capped for ln in self.lines)


@dataclass
class RobustnessTable:
    """Test values of the main metric of each model under each KG ablation of one protocol and
    one schedule class.

    ``lines``: ``{"model": str, "values": {ablation: Stat | None}, "capped": set of the ablations
    whose runs include one stopped at its epoch cap}`` (not converged: the markdown marks those
    cells †), best on the first ablation first. ``schedule``: :data:`QUICK`, ``"fixed"`` or :data:`CONVERGED`
    (:func:`schedule_kind`), the same for every cell.
    """

    dataset: str
    protocol_fingerprint: str
    protocol_label: str
    metric: str
    ablations: list[str]
    lines: list[dict[str, Any]] = field(default_factory=list)
    schedule: str = "converged"

    @property
    def title(self) -> str:
        return f"{self.dataset} · {self.protocol_label} · KG robustness (test {self.metric}){schedule_tag(self.schedule)}"


@dataclass
class AblationTable:
    """One model's settings (variant x KG ablation) under one protocol of one dataset.

    ``lines``: ``setting`` (``"full"`` for the base variant with the real KG, else the
    variant and/or ``kg=<ablation>``), ``variant``, ``kg_ablation``, ``metrics`` (name ->
    :class:`Stat`, every test metric), ``delta`` (mean of the sort metric minus the full
    model's of the same schedule class, or ``None``), ``delta_se`` (its standard error over seeds,
    :func:`delta_se`, or ``None``), ``seeds``, ``capped`` (a run stopped at
    its epoch cap), ``max_epochs`` (:func:`caps_text`), ``tuned`` (:func:`tuned_text`); the full
    model first. ``schedule``:
    :data:`QUICK`, ``"fixed"`` or :data:`CONVERGED` (:func:`schedule_kind`), the same for every line.
    """

    dataset: str
    protocol_fingerprint: str
    protocol_label: str
    model: str
    task: str
    metric: str
    lines: list[dict[str, Any]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    schedule: str = "converged"

    @property
    def metric_columns(self) -> list[str]:
        return metric_columns(self.task, self.metric)

    @property
    def title(self) -> str:
        return (f"{self.dataset} · {self.protocol_label} · variants and source ablations of {self.model} "
                f"(test {self.metric}){schedule_tag(self.schedule)}")


@dataclass
class Leaderboard:
    """Everything :func:`build` derives from a set of rows (no I/O; see :mod:`kgzoo.bench.render`).

    Attributes:
        tables: published tables, then smoke tables, then archive tables; within a section by
            dataset and protocol label.
        robustness, ablations: the KG-robustness and variant tables.
        n_rows: rows given; n_cells: successful cells after keeping each cell's latest row.
    """

    tables: list[Table]
    robustness: list[RobustnessTable]
    ablations: list[AblationTable]
    n_rows: int = 0
    n_cells: int = 0

    def section(self, name: str) -> list[Table]:
        """The tables of section ``name`` (:data:`PUBLISHED`, :data:`SMOKE`, :data:`ARCHIVE`)."""
        return [t for t in self.tables if t.section == name]


# ---------------------------------------------------------------------------- rows
def metric_columns(task: str, metric: str) -> list[str]:
    """The metric columns of a table: the sort metric, then the task's leaderboard columns."""
    cols = TASKS[task].leaderboard_columns if task in TASKS else ()
    return [metric] + [m for m in cols if m != metric]


def is_quick(row: ResultRow) -> bool:
    """Whether ``row`` ran the quick smoke schedule (never in a published table)."""
    return (row.schedule or {}).get("kind") == "quick"


#: the schedule kinds (:func:`schedule_kind`): the smoke schedule, ``kgzoo bench --epochs N``, early stopping
QUICK, FIXED, CONVERGED = "quick", "fixed", "converged"
#: the schedule kinds whose rows never replace each other's, in the order a run's row is compared
#: with committed ones of another kind (:func:`kgzoo.bench.render.reference_value`)
KINDS = (CONVERGED, FIXED, QUICK)


def schedule_kind(row: ResultRow) -> str:
    """:data:`QUICK` (the smoke schedule), :data:`FIXED` (``kgzoo bench --epochs N``: a set number
    of epochs) or :data:`CONVERGED` (early stopping; a row without a kind counts as one). A row of
    one kind never replaces a row of another in its cell (:func:`latest_per_cell`) and never shares
    a line with one (:func:`_table`): a 2-epoch ``--epochs 2`` run beside the published rows
    (``--with-published``) is a line of its own, not seed 0 of the converged line; robustness and
    ablation tables never mix kinds (a tuned converged full model is never the yardstick of quick
    runs)."""
    kind = (row.schedule or {}).get("kind")
    return kind if kind in (QUICK, FIXED) else CONVERGED


def schedule_tag(schedule: str) -> str:
    """``" · quick schedule (smoke)"`` for :data:`QUICK`, ``" · fixed schedule (kgzoo bench --epochs N)"``
    for ``"fixed"`` (:func:`schedule_kind`), ``""`` otherwise: the end of the title of a robustness or
    ablation table."""
    if schedule == FIXED:
        return " · fixed schedule (kgzoo bench --epochs N)"
    return " · quick schedule (smoke)" if schedule == QUICK else ""


def label_of(row: ResultRow) -> str:
    """The row's readable protocol label (:func:`kgzoo.bench.rows.protocol_label` of its
    protocol where the row carries none)."""
    return row.protocol_label or protocol_label(row.protocol or {}, row.task)


def latest_ok_rows(rows: Iterable[ResultRow]) -> list[ResultRow]:
    """The successful rows, one per cell (:meth:`ResultRow.key`) and schedule kind
    (:func:`schedule_kind`), the latest by ``time`` (:attr:`ResultRow.written_at`: the instant, not
    the text, which carries the writing machine's UTC offset), then by the order given (rows of several
    files are merged), so a rerun replaces a seed and a smoke rerun never replaces a published row."""
    return latest_per_cell(r for r in rows if r.status == "ok")


def latest_per_cell(rows: Iterable[ResultRow]) -> list[ResultRow]:
    """The latest of ``rows`` per cell (:meth:`ResultRow.key`) and schedule kind
    (:func:`schedule_kind`: a fixed ``--epochs N`` run never replaces a converged row), by :attr:`ResultRow.written_at`, then by the order given: the one
    rule behind :func:`latest_ok_rows` (of the successful rows) and :func:`failed_cells` (of all)."""
    out: dict[tuple, ResultRow] = {}
    for r in sorted(rows, key=lambda r: r.written_at):
        out[(r.key(), schedule_kind(r))] = r
    return list(out.values())


def sort_metric(task: str, metric: str | None, rows: Sequence[ResultRow]) -> str:
    """``metric`` if some row carries ``test/<metric>``, else the task's main metric."""
    if metric is not None and any(f"test/{metric}" in r.metrics for r in rows):
        return metric
    return get_task(task).main_metric() if task in TASKS else (rows[0].main_metric if rows else "")


def _canonical(d: Mapping[str, Any] | None) -> str:
    return json.dumps(d or {}, sort_keys=True, default=str)


def in_grid_table(task: str, kg_ablation: str, protocol: Mapping[str, Any] | None,
                  grid_protocol: Mapping[str, Any]) -> bool:
    """Whether rows of ``task``, ``kg_ablation`` and ``protocol`` (as rows record it) belong in the
    published table of a dataset's grid whose protocol dict is ``grid_protocol`` (``build(grids=)``,
    :func:`kgzoo.bench.render.dataset_grids`): its task (not the link-prediction rows of the same
    protocol), its protocol, the real KG."""
    return (task == grid_protocol.get("task") and kg_ablation == "real"
            and _canonical(protocol) == _canonical(grid_protocol))


def _commands(rows: Iterable[ResultRow]) -> list[str]:
    out: list[str] = []
    for r in rows:
        if r.command and r.command not in out:
            out.append(r.command)
    return out


#: hex digits of a commit in the tables (as ``git log --oneline`` shows it)
SHORT_COMMIT = 7


def commits_of(rows: Iterable[ResultRow]) -> list[str]:
    """The distinct code versions of ``rows`` in order of first appearance: the short commit
    (:data:`SHORT_COMMIT` hex digits of :attr:`ResultRow.git_commit`) with ``"+dirty"`` where
    :attr:`ResultRow.git_dirty`, and ``"unrecorded"`` (once) for rows without a commit."""
    out: list[str] = []
    for r in rows:
        c = "unrecorded" if not r.git_commit else r.git_commit[:SHORT_COMMIT] + ("+dirty" if r.git_dirty else "")
        if c not in out:
            out.append(c)
    return out


def _rank(lines: list[Line], metric: str, ranked: bool) -> list[Line]:
    """Ranked lines (published, converged) best first, then the others best first."""
    def value(ln: Line) -> float:
        s = ln.metrics.get(metric)
        return -s.mean if s is not None else math.inf

    ranked_lines = sorted((ln for ln in lines if ranked and ln.published), key=lambda ln: (value(ln), ln.name))
    for i, ln in enumerate(ranked_lines, 1):
        ln.rank = i
    rest = sorted((ln for ln in lines if ln.rank is None), key=lambda ln: (value(ln), ln.name))
    return ranked_lines + rest


def _table(rows: list[ResultRow], section: str, metric: str | None, caveat: str, one_seed_minutes: float = 0.0,
           notes: Mapping[tuple[str, str], str] | None = None, references: bool = True) -> Table:
    first = rows[0]
    main = sort_metric(first.task, metric, rows)
    by_line: dict[tuple[str, str, str], list[ResultRow]] = {}
    for r in rows:
        by_line.setdefault((r.model, r.variant, line_setup(r, rows)), []).append(r)
    lines = [_line(lrows, main, (notes or {}).get((lrows[0].model, first.dataset), ""), references, setup=key[2])
             for key, lrows in by_line.items()]
    return Table(dataset=first.dataset, task=first.task, kg_ablation=first.kg_ablation,
                 protocol_label=label_of(first), protocol=dict(first.protocol or {}),
                 fingerprints=sorted({r.fingerprint for r in rows}), section=section, metric=main, caveat=caveat,
                 one_seed_minutes=one_seed_minutes,
                 lines=_rank(lines, main, ranked=section == PUBLISHED), commands=_commands(rows),
                 commits=commits_of(rows), newest=max(rows, key=lambda r: r.written_at).time or "")


def failed_cells(rows: Iterable[ResultRow]) -> list[ResultRow]:
    """The failed rows that no later row of the same cell (:meth:`ResultRow.key`) and schedule
    kind (:func:`schedule_kind`) replaced, by time (:attr:`ResultRow.written_at`): the cells
    that have no result, where a rerun that succeeded clears its cell's failure (:func:`latest_per_cell`)."""
    return [r for r in latest_per_cell(rows) if r.status == "failed"]


def _failed_here(failed: Sequence[ResultRow], table: Table) -> dict[str, tuple[list[int], str]]:
    """:attr:`Table.failed` of ``table`` from ``failed`` (its group's :func:`failed_cells`): the
    rows of its fingerprints and schedule section whose model has no line in it, per model its
    seeds and the first line of its latest error."""
    present = {ln.model for ln in table.lines}
    out: dict[str, tuple[list[int], str]] = {}
    for r in sorted(failed, key=lambda r: r.written_at):
        if (r.model in present or r.fingerprint not in table.fingerprints
                or is_quick(r) != (table.section == SMOKE)):
            continue
        seeds = sorted({*out.get(r.model, ([], ""))[0], r.seed})
        out[r.model] = (seeds, (r.error or "no error recorded").splitlines()[0])
    return out


def build(rows: Iterable[ResultRow], metric: str | None = None, show_variants: bool = False,
          caveats: Mapping[str, str] | None = None, one_seed_minutes: Mapping[str, float] | None = None,
          line_notes: Mapping[tuple[str, str], str] | None = None,
          grids: Mapping[str, tuple[Mapping[str, Any], Sequence[str]]] | None = None,
          retired: Mapping[str, Sequence[tuple[Mapping[str, Any], str]]] | None = None) -> Leaderboard:
    """The leaderboard of ``rows`` (a pure function: no file, no clock, no registry).

    Args:
        rows: result rows (:class:`~kgzoo.bench.rows.ResultRow`; a failed one makes no line, and
            one that no later row of its cell replaced is named below its table, :attr:`Table.failed`).
        metric: the sort metric (``"ndcg@20"``); default the task's main metric. A table
            whose rows lack it falls back to its task's main metric.
        show_variants: also put non-``base`` variants (``kgzoo bench --variants
            fusion=dot``) in the tables as lines ``model [variant]`` beside the baselines
            (they are always in the ablation tables).
        caveats: dataset name -> caveat to show under its tables (the catalogue's
            :attr:`DatasetSpec.caveat`; :func:`kgzoo.bench.render.write_leaderboard` passes them).
        one_seed_minutes: dataset name -> the minutes of a converged run over which a slow model
            may have one seed there (the catalogue's :attr:`DatasetSpec.one_seed_minutes`), kept
            as :attr:`Table.one_seed_minutes` of its published tables.
        line_notes: ``(model, dataset) -> note`` (:attr:`Line.note`; the zoo configs' ``note``
            sections, :func:`kgzoo.bench.render.line_notes`), kept by the model's lines in that
            dataset's tables of its grid's protocol and real KG (:func:`in_grid_table`; every table of
            a dataset without a grid in ``grids``): PLMRec's "below Pop on the warm random split"
            marked its first line of the cold-item table.
        grids: dataset name -> ``(protocol, models)``: the protocol dict (as rows record it) of
            the dataset's published table and the models it should hold (the catalogue's
            :attr:`~kgzoo.data.spec.DatasetSpec.grid`, :func:`kgzoo.bench.render.dataset_grids`);
            that table's :attr:`Table.pending` lists the models without a line in it. The rows'
            ``reference`` numbers (measured on that protocol) are shown in that table alone.
        retired: dataset name -> ``(protocol, reason)`` pairs: protocol dicts (as rows record them)
            that were the dataset's default before it changed (the catalogue's
            :attr:`~kgzoo.data.spec.DatasetSpec.retired_protocols`,
            :func:`kgzoo.bench.render.dataset_retired`). Their tables, current fingerprint
            included, go to the archive with the reason (:attr:`Table.retired`).

    Returns:
        A :class:`Leaderboard` (see the module docstring for the rules).

    Raises:
        TypeError: an element of ``rows`` that is not a ``ResultRow`` (read JSON lines with
            :func:`kgzoo.bench.rows.read_rows` or ``ResultRow.from_dict``).
    """
    rows = list(rows)
    for i, r in enumerate(rows):
        if not isinstance(r, ResultRow):
            raise TypeError(f"leaderboard row {i}: expected a ResultRow, got {type(r).__name__} "
                            "(use kgzoo.bench.rows.read_rows or ResultRow.from_dict)")
    caveats, minutes, notes = dict(caveats or {}), dict(one_seed_minutes or {}), dict(line_notes or {})
    ok = latest_ok_rows(rows)
    shown = [r for r in ok if show_variants or r.variant == "base"]
    groups: dict[tuple[str, ...], list[ResultRow]] = {}
    for r in shown:  # the protocol dict too: two protocols never share a table, even under one label
        groups.setdefault((r.dataset, r.task, label_of(r), r.kg_ablation, _canonical(r.protocol)), []).append(r)
    failed: dict[tuple[str, ...], list[ResultRow]] = {}
    for r in failed_cells(rows):
        if show_variants or r.variant == "base":
            failed.setdefault((r.dataset, r.task, label_of(r), r.kg_ablation, _canonical(r.protocol)), []).append(r)
    published, smoke, archive = [], [], []
    for key, grows in sorted(groups.items()):
        grows.sort(key=lambda r: r.written_at)
        seeded = key[1] in TASKS and TASKS[key[1]].seeded_split
        newest = {(r.seed if seeded else None): r.fingerprint for r in grows}  # the last write wins
        current = set(newest.values())
        caveat = caveats.get(key[0], "")
        cur = [r for r in grows if r.fingerprint in current]
        pub = [r for r in cur if not is_quick(r)]
        quick = [r for r in cur if is_quick(r)]
        grid = (grids or {}).get(key[0])
        in_grid = grid is not None and in_grid_table(key[1], key[3], grows[0].protocol, grid[0])
        # a zoo config's note speaks of the dataset's grid table: not of its other protocols or KG ablations
        noted = notes if grid is None or in_grid else None
        # likewise a reference (RecBole's converged number on the grid's protocol): not one for a cold-item table
        why = next((reason for proto, reason in (retired or {}).get(key[0], ()) if _canonical(proto) == key[4]), "")
        current_tables = []
        if pub:  # a retired protocol (the dataset's before it changed): true for it, no longer its table
            t = _table(pub, ARCHIVE if why else PUBLISHED, metric, caveat, 0.0 if why else minutes.get(key[0], 0.0),
                       noted, references=grid is None or in_grid)
            t.retired, t.grid = why, list(grid[1]) if in_grid and not why else []
            (archive if why else published).append(t)
            current_tables.append(t)
        if quick:
            smoke.append(_table(quick, SMOKE, metric, caveat, notes=noted, references=grid is None or in_grid))
            current_tables.append(smoke[-1])
        for t in current_tables:
            t.failed = _failed_here(failed.get(key, []), t)
        old: dict[str, list[ResultRow]] = {}
        for r in grows:
            if r.fingerprint not in current:
                old.setdefault(r.fingerprint, []).append(r)
        for orows in old.values():
            archive.append(_table(orows, ARCHIVE, metric, caveat, notes=noted, references=grid is None or in_grid))
            archive[-1].retired = why
    archive.sort(key=lambda t: (t.dataset, t.protocol_label, t.kg_ablation, parse_time(t.newest)))
    return Leaderboard(published + smoke + archive, build_robustness(ok, metric), build_ablations(ok, metric),
                       n_rows=len(rows), n_cells=len(ok))


# ---------------------------------------------------------------------------- robustness and ablations
def _ablation_key(kind: str) -> tuple[int, float, str]:
    if kind in ABLATION_ORDER:
        return (ABLATION_ORDER.index(kind), 0.0, kind)
    m = re.fullmatch(r"noisy:([0-9.eE+-]+)", kind)
    return (len(ABLATION_ORDER), float(m.group(1)) if m else math.inf, kind)


def build_robustness(ok: Sequence[ResultRow], metric: str | None = None) -> list[RobustnessTable]:
    """One table per ``(dataset, protocol_fingerprint, schedule kind)`` of ``base`` rows with
    more than one KG ablation: models as lines, ablations as columns (real, shuffled, none,
    noisy:P ascending), mean ± std over seeds of the test sort metric. A converged run, a fixed
    ``--epochs N`` one and a quick one (:func:`schedule_kind`) never share a table.

    Args:
        ok: the latest successful row of each cell and schedule class (:func:`latest_ok_rows`).
    """
    groups: dict[tuple[str, str, str], list[ResultRow]] = {}
    for r in ok:
        if r.protocol_fingerprint and r.variant == "base":
            groups.setdefault((r.dataset, r.protocol_fingerprint, schedule_kind(r)), []).append(r)
    out = []
    for (dataset, pfp, schedule), grows in sorted(groups.items()):
        kinds = sorted({r.kg_ablation for r in grows}, key=_ablation_key)
        if len(kinds) < 2:
            continue
        main = sort_metric(grows[0].task, metric, grows)
        t = RobustnessTable(dataset, pfp, label_of(grows[0]), main, kinds, schedule=schedule)
        for model, setup in sorted({(r.model, setup_of(r)) for r in grows}):
            mine = [r for r in grows if r.model == model and setup_of(r) == setup]
            t.lines.append({"model": f"{model} ({setup})" if setup else model, "values": {
                k: Stat.of(r.metrics.get(f"test/{main}") for r in mine if r.kg_ablation == k) for k in kinds},
                "capped": {r.kg_ablation for r in mine if r.stopped_by == "cap"}})
        first = kinds[0]
        t.lines.sort(key=lambda ln: -(ln["values"][first].mean if ln["values"][first] else -math.inf))
        out.append(t)
    return out


def _setting(row: ResultRow) -> str:
    parts = [] if row.variant == "base" else [row.variant]
    if row.kg_ablation != "real":
        parts.append(f"kg={row.kg_ablation}")
    setting = " + ".join(parts) or "full"
    return f"{setting} ({setup_of(row)})" if setup_of(row) else setting


def delta_se(a: Stat | None, b: Stat | None) -> float | None:
    """The standard error of the difference of two means over seeds, ``sqrt(s_a^2 / n_a + s_b^2 /
    n_b)`` with the sample standard deviations (Welch's form: the two settings' seeds are
    independent runs); ``None`` where either has fewer than two values (no std). Beside an
    ablation's ``Δ vs full``, so a difference within seed noise is read as such."""
    if a is None or b is None or a.n < 2 or b.n < 2:
        return None
    return math.sqrt(a.std ** 2 / a.n + b.std ** 2 / b.n)


def build_ablations(ok: Sequence[ResultRow], metric: str | None = None) -> list[AblationTable]:
    """One table per ``(dataset, protocol_fingerprint, model, schedule kind)`` with at least one
    non-``base`` variant: the full model (base variant, real KG), then the other settings by
    descending sort metric; ``delta`` = setting mean - full mean, both of one schedule kind
    (:func:`schedule_kind`: a tuned converged full model is never the yardstick of quick or
    ``--epochs N`` runs),
    and ``delta_se`` its standard error over seeds (:func:`delta_se`; ``None`` for one seed).

    Args:
        ok: the latest successful row of each cell and schedule class (:func:`latest_ok_rows`).
    """
    groups: dict[tuple[str, str, str, str], list[ResultRow]] = {}
    for r in ok:
        if r.protocol_fingerprint:
            groups.setdefault((r.dataset, r.protocol_fingerprint, r.model, schedule_kind(r)), []).append(r)
    out = []
    for (dataset, pfp, model, schedule), grows in sorted(groups.items()):
        if all(r.variant == "base" for r in grows):
            continue
        main = sort_metric(grows[0].task, metric, grows)
        t = AblationTable(dataset, pfp, label_of(grows[0]), model, grows[0].task, main, commands=_commands(grows),
                          schedule=schedule)
        by_setting: dict[str, list[ResultRow]] = {}
        for r in grows:
            by_setting.setdefault(_setting(r), []).append(r)
        for setting, srows in by_setting.items():
            t.lines.append({"setting": setting, "variant": srows[0].variant, "kg_ablation": srows[0].kg_ablation,
                            "fingerprint": srows[0].fingerprint, "seeds": sorted(r.seed for r in srows),
                            "metrics": metric_stats(srows), "capped": any(r.stopped_by == "cap" for r in srows),
                            "max_epochs": caps_text(srows), "tuned": tuned_text(srows)})
        full = next((ln["metrics"].get(main) for ln in t.lines if ln["setting"] == "full"), None)
        for ln in t.lines:
            s = ln["metrics"].get(main)
            ln["delta"] = (s.mean - full.mean) if (s is not None and full is not None) else None
            ln["delta_se"] = delta_se(s, full)
        t.lines.sort(key=lambda ln: (ln["setting"] != "full",
                                     -(ln["metrics"][main].mean if ln["metrics"].get(main) else -math.inf)))
        out.append(t)
    return out


def reference_key(row: ResultRow) -> tuple[str, str, str, str, str]:
    """``(fingerprint, model, variant, kg_ablation, schedule kind)``: the rows a run's row is compared
    with (:func:`schedule_kind`: a fixed ``--epochs N`` run is not compared as if it were converged)."""
    return (row.fingerprint, row.model, row.variant, row.kg_ablation, schedule_kind(row))


def reference_lines(rows: Iterable[ResultRow]) -> dict[tuple[str, str, str, str, str], Line]:
    """The committed reference of each :func:`reference_key` -> :class:`Line` over the latest
    successful row of each seed (what ``kgzoo bench`` prints beside a run's own rows: a quick
    run beside quick rows, a converged run beside converged ones)."""
    groups: dict[tuple[str, str, str, str, str], list[ResultRow]] = {}
    for r in latest_ok_rows(rows):
        groups.setdefault(reference_key(r), []).append(r)
    return {k: _line(g, sort_metric(g[0].task, None, g)) for k, g in groups.items()}
