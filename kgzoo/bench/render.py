"""Views of a :class:`~kgzoo.bench.leaderboard.Leaderboard`: Markdown, CSV, PNG and rich tables.

:func:`write_leaderboard` is the one writer of a leaderboard folder (``benchmarks/leaderboard/``
for the committed rows)::

    LEADERBOARD.md                        every section, each table titled by its protocol label
    tables/<dataset>_<protocol>[...].csv  one CSV per table (mean and std of every metric column)
    figures/<dataset>_<protocol>[...].png one bar chart per table and per robustness table

File names come from the dataset and a slug of the readable protocol label (``_kg-shuffled``,
``_smoke``, ``_archive-<date>`` where needed; ``-2``, ``-3`` if two tables would still share
one), never from fingerprint prefixes. The folder is cleared of the files it owns before each
rebuild, so a table that disappeared leaves no stale file.

:func:`rich_run_table` is what ``kgzoo bench`` prints after a run: each row of the run beside
the committed reference (mean over seeds of the same fingerprint, model, variant, KG ablation).
"""
from __future__ import annotations

import csv
import re
import textwrap
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..config import ZooConfig
from ..data.datasets import dataset_spec
from ..protocols import impression_protocol
from ..registry import MODELS
from .leaderboard import (ARCHIVE, COST_COLUMNS, KINDS, PUBLISHED, SMOKE, AblationTable, Leaderboard, Line, RobustnessTable,
                          Stat, Table, build, commits_of, latest_ok_rows, over_one_seed_limit, reference_key,
                          reference_lines, sort_metric)
from .rows import ResultRow

MARKDOWN = "LEADERBOARD.md"
#: the wall-clock cost columns (:data:`~kgzoo.bench.leaderboard.COST_COLUMNS` keys), shown with their range over seeds
TIMED = ("seconds_per_epoch", "eval_seconds")
#: what each column of a leaderboard table means (the header of LEADERBOARD.md)
COLUMN_LEGEND = (
    "Columns: `#` rank among the lines whose every run converged; metrics: mean ± sample std (ddof=1) over "
    "seeds (a value without ± is one seed; in CTR tables `gauc` is the per-user AUC weighted by the user's "
    "labelled pairs, Zhou et al., KDD 2018, and `acc`, `f1` count sigmoid(score) > 0.5 as a positive, so they "
    "depend on how a model's scores are scaled, not only on their order); `paper`: the paper's number of the sort metric where the model's "
    "config carries one, `reference`: another implementation's converged number on the same files (sources "
    "and settings of both below the table); `tuned`: the config was chosen by `kgzoo tune` on the validation "
    "split with the trial budget shown (`tuned on X`: on another dataset; `untuned`: the config's own "
    "values); `best epoch`: the "
    "selected epoch, 0-based, mean over seeds; `stopped by`: how the seeds' runs ended (early stop: "
    "converged; cap: reached `cap`, the schedule's epoch limit, not converged; closed form: fitted exactly in one pass, nothing trained); "
    "`params`: trainable scalars; `s/epoch`: wall-clock seconds per training epoch, `eval s` per "
    "validation pass (scoring and metrics), mean over seeds with their range over seeds in parentheses "
    "where they differ (`10 (5.9-17)`); `peak MB`: the "
    "process's peak resident memory on CPU (CUDA: peak allocated), MiB; `epochs`: epochs trained.")
TABLES, FIGURES = "tables", "figures"
#: marker of a line with a run that stopped at its epoch cap, and its footnote
CAP_MARK = "†"
CAP_NOTE = f"{CAP_MARK} stopped at its cap: not converged, not a baseline."
#: marker of a line of a fixed schedule (:attr:`~kgzoo.bench.leaderboard.Line.fixed`), and its footnote
FIXED_MARK = "°"
FIXED_NOTE = (f"{FIXED_MARK} a fixed schedule (`kgzoo bench --epochs N`): its epochs were set, not ended by early "
              "stopping on the converged schedule, whatever its `stopped by` says; not ranked, not a baseline.")
#: marker of a published line with one seed (no std), explained below its table (:func:`one_seed_note`)
ONE_SEED_MARK = "‡"
#: marker of a line with a note (:attr:`~kgzoo.bench.leaderboard.Line.note`), given below its table
NOTE_MARK = "§"
#: marker of a line whose seeds ran different configurations (:attr:`~kgzoo.bench.leaderboard.Line.mixed`),
#: explained below its table (:func:`mixed_text`)
MIXED_MARK = "※"
#: marker of a line tuned with fewer trials than its table's largest budget
#: (:meth:`~kgzoo.bench.leaderboard.Table.under_budget`), explained below its table (:func:`budget_text`)
BUDGET_MARK = "≠"
#: why the robustness and ablation tables are one per schedule class
SCHEDULE_SPLIT = ("a converged run and a quick (smoke) one never share a table, so a tuned converged model is "
                  "never the yardstick of short untuned runs (tables of the quick schedule say so in their title).")
#: what the robustness and ablation tables' fingerprint is
PROTOCOL_FINGERPRINT_NOTE = ("Their `protocol fingerprint` covers the data files and protocol without the KG "
                             "ablation (one for real, shuffled and no KG), so it differs from the `fingerprint` of "
                             "the dataset's tables above, which includes it.")
SECTION_TITLES = {
    PUBLISHED: "Published tables",
    SMOKE: "Smoke runs (quick schedule: never published)",
    ARCHIVE: "Archive: superseded fingerprints",
}
SECTION_NOTES = {
    PUBLISHED: ("Runs of a converged (or fixed) schedule under the current fingerprint of each dataset and "
                "protocol. Only lines whose every run is of the converged schedule (early stopping on the "
                "validation metric) and did not stop at its cap are ranked (`#`), where its seeds ran one "
                f"configuration; {CAP_MARK}, {FIXED_MARK} and {MIXED_MARK} say why a line is not."),
    SMOKE: "Runs of the quick smoke schedule of the default `kgzoo bench`: a check that everything runs, not results.",
    ARCHIVE: ("Rows under a fingerprint that newer rows of the same dataset and protocol replaced (other data "
              "files or metric code), and tables of a protocol that was a dataset's default before it changed "
              "(said under each): kept for the record, not comparable with the tables above."),
}


# ---------------------------------------------------------------------------- names
def slug(text: str) -> str:
    """``"random 8:1:1 per user, full ranking, seen masked"`` -> ``"random-8-1-1-per-user-full-ranking-seen-masked"``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def table_stems(lb: Leaderboard) -> dict[int, str]:
    """``id(table) -> file stem`` for every table and robustness table, unique, readable."""
    out: dict[int, str] = {}
    used: set[str] = set()

    def unique(stem: str) -> str:
        s, i = stem, 2
        while s in used:
            s, i = f"{stem}-{i}", i + 1
        used.add(s)
        return s

    for t in lb.tables:
        stem = f"{t.dataset}_{slug(t.protocol_label)}"
        if t.kg_ablation != "real":
            stem += f"_kg-{slug(t.kg_ablation)}"
        if t.section == SMOKE:
            stem += "_smoke"
        elif t.section == ARCHIVE:
            stem += f"_archive-{slug(t.newest[:10]) or 'undated'}"
        out[id(t)] = unique(stem)
    for r in lb.robustness:
        out[id(r)] = unique(f"robustness_{r.dataset}_{slug(r.protocol_label)}")
    return out


def heading(t: Table) -> str:
    """The title of ``t`` in every view (Markdown heading, figure, console): :attr:`Table.title`,
    then ``" [smoke]"`` or ``" [archive]"`` outside the published section, so that a smoke or
    superseded table read alone (a link, a search hit, its figure) is never taken for the
    published one of the same dataset and protocol, whose title it shares. An archive table adds the
    date of its newest row (``" [archive, rows until 2026-12-06]"``): a dataset's superseded
    fingerprints of one protocol (dkn-news has two) had one heading each, told apart by nothing."""
    if t.section == ARCHIVE and t.newest:
        return f"{t.title} [{t.section}, rows until {t.newest[:10]}]"
    return t.title + ("" if t.section == PUBLISHED else f" [{t.section}]")


# ---------------------------------------------------------------------------- cells
def _mean(s: Stat | None, digits: int) -> str:
    return "-" if s is None else f"{s.mean:,.{digits}f}"


def significant(x: float) -> str:
    """``x`` (seconds, >= 0) to two significant digits, without an exponent: ``24``, ``1.4``,
    ``0.5``, ``0.012`` (``1,234`` from 100 on; ``<0.01`` below 0.01 s, where timer overhead is
    the number). Wall-clock costs measured beside other runs vary by more than their third digit
    between seeds, so they are not printed to it."""
    if 0 < x < 0.01:
        return "<0.01"
    return f"{x:,.0f}" if abs(x) >= 10 else f"{x:.2g}"


def _seconds(s: Stat | None) -> str:
    """A mean wall-clock time (:func:`significant`), with its range over seeds where the seeds
    differ at that precision: ``"10 (5.9-17)"``."""
    if s is None:
        return "-"
    lo, hi = significant(s.low), significant(s.high)
    return significant(s.mean) + (f" ({lo}-{hi})" if s.n > 1 and lo != hi else "")


def _count(s: Stat | None) -> str:
    """A mean of whole numbers (epochs): ``111`` where it is one (a single seed, or seeds that
    agree), else one decimal (``74.3``)."""
    return "-" if s is None else _mean(s, 0 if float(s.mean).is_integer() else 1)


def table_columns(t: Table) -> list[str]:
    """The column titles of a leaderboard table."""
    return (["#", "model"] + list(t.metric_columns) + ["paper", "reference", "tuned", "best epoch", "stopped by",
                                                       "seeds", "cap"]
            + list(COST_COLUMNS.values()))


def sort_text(t: Table) -> str:
    """How the lines of ``t`` are ordered: ``"sorted by test ndcg@10"``, with ``"ranked lines
    first"`` where some line has no rank (a capped, fixed-schedule or mixed one follows the ranked
    ones whatever its metric)."""
    unranked = t.section == PUBLISHED and any(ln.rank is None for ln in t.lines)
    return f"sorted by test {t.metric}" + ("; ranked lines first" if unranked else "")


def metric_cell(ln: Line, metric: str) -> str:
    """The displayed mean ± std of ``metric`` on line ``ln``; ``"-"`` where no seed has it, and
    ``"(n of N seeds)"`` after it where fewer seeds than the line's have a finite value (a row
    without the metric, or NaN), so a column never averages fewer seeds than ``seeds`` says unseen."""
    s = ln.metrics.get(metric)
    if s is None:
        return "-"
    return s.fmt() + (f" ({s.n} of {len(ln.seeds)} seeds)" if s.n < len(ln.seeds) else "")


def line_cells(t: Table, ln: Line) -> list[str]:
    """The displayed cells of one line, in :func:`table_columns` order."""
    c = ln.costs
    marks = ((f" {CAP_MARK}" if ln.capped else "") + (f" {FIXED_MARK}" if ln.fixed else "")
             + (f" {MIXED_MARK}" if ln.mixed else "") + (f" {ONE_SEED_MARK}" if _marked_one_seed(t, ln) else "")
             + (f" {BUDGET_MARK}" if t.under_budget(ln) else "") + (f" {NOTE_MARK}" if ln.note else ""))
    return ([str(ln.rank) if ln.rank is not None else "-", ln.name + marks]
            + [metric_cell(ln, m) for m in t.metric_columns]
            + [f"{ln.paper:.4f}" if ln.paper is not None else "-",
               f"{ln.reference:.4f}" if ln.reference is not None else "-", ln.tuned,
               _count(ln.best_epoch), ln.stopped_text(),
               str(len(ln.seeds)), ln.max_epochs, _mean(c["params"], 0), _seconds(c["seconds_per_epoch"]),
               _seconds(c["eval_seconds"]), _mean(c["peak_memory_mb"], 0), _count(c["epochs"])])


def _marked_one_seed(t: Table, ln: Line) -> bool:
    """A converged line (:attr:`Line.published`) of a published table with one seed; a line that
    is not a baseline (capped, a fixed schedule) or a smoke run is not marked."""
    return t.section == PUBLISHED and ln.published and ln.one_seed


def _run_minutes(ln: Line) -> float | None:
    """The mean :attr:`~kgzoo.bench.rows.ResultRow.run_seconds` (CPU seconds where recorded, else
    wall) of the line's rows in minutes (``None`` where none records either)."""
    c = Stat.of(r.run_seconds for r in ln.rows)
    return None if c is None else c.mean / 60


def minutes_text(minutes: float, limit: float) -> str:
    """``minutes`` as text beside the one-seed ``limit`` (minutes): whole minutes (``"52"``), or
    with the decimals (up to 3) that tell it from the limit where whole minutes would not (40.3
    beside 40: ``"40.3"``, not "40 min > 40 min")."""
    for digits in range(4):
        text = f"{minutes:.{digits}f}"
        if float(text) != limit:
            return text
    return text


#: the start of :func:`one_seed_reason` for a line whose run took longer than its dataset allows
SLOW = "slow"


def one_seed_reason(t: Table, ln: Line) -> str:
    """Why line ``ln`` of table ``t`` is marked :data:`ONE_SEED_MARK`, in a word or two (the CSV's
    ``one_seed`` column; :func:`one_seed_note` says it in full below the Markdown table): ``"slow
    (52 min > 40 min)"`` where its converged run took longer than the dataset allows
    (:attr:`~kgzoo.bench.leaderboard.Table.one_seed_minutes`), else ``"so far"``; ``""`` for a
    line that is not marked."""
    if not _marked_one_seed(t, ln):
        return ""
    minutes, limit = _run_minutes(ln), t.one_seed_minutes
    if over_one_seed_limit(minutes, limit):
        return f"{SLOW} ({minutes_text(minutes, limit)} min > {limit:g} min)"
    return "so far"


def one_seed_note(t: Table, lines: Sequence[Line]) -> list[str]:
    """The footnote of the one-seed lines among ``lines`` of table ``t`` (marked
    :data:`ONE_SEED_MARK`; none in a smoke or archive table). A line whose converged run took
    longer than the dataset allows (:attr:`~kgzoo.bench.leaderboard.Table.one_seed_minutes`, the
    mean of the rows' :attr:`~kgzoo.bench.rows.ResultRow.run_seconds`: CPU seconds where recorded)
    gets that reason with its minutes (issue 16, part 3);
    any other is "one seed so far": not yet the three seeds of a published cell, with its
    minutes where the dataset has a limit, so a fast run is not passed off as a slow one.
    One text per reason; ``[]`` when no line is marked."""
    marked = [ln for ln in lines if _marked_one_seed(t, ln)]
    if not marked:
        return []
    limit = t.one_seed_minutes
    minutes = {ln.name: m for ln in marked if (m := _run_minutes(ln)) is not None}
    slow = [ln.name for ln in marked if one_seed_reason(t, ln).startswith(SLOW)]
    rest = [ln.name for ln in marked if ln.name not in slow]
    out = []
    if slow:
        runs = "; ".join(f"{name}: {minutes_text(minutes[name], limit)} min" for name in slow)
        out.append(f"{ONE_SEED_MARK} one seed: a converged run of this model takes over {limit:g} min on 2 cores "
                   f"(issue 16, part 3); no std (the run: {runs}).")
    if rest:
        why = "; ".join(f"{name}: its run took {minutes_text(minutes[name], limit)} min, within the {limit:g} min "
                        "that allow one seed"
                        if limit and name in minutes else name for name in rest)
        out.append(f"{ONE_SEED_MARK} one seed so far (no std): not yet the 3 seeds of a published cell ({why}).")
    return out


def budget_text(t: Table, lines: Sequence[Line]) -> str:
    """The footnote of the lines among ``lines`` of table ``t`` tuned with fewer trials than the
    table's largest budget, or on trials of a shorter schedule than their runs
    (:meth:`~kgzoo.bench.leaderboard.Table.under_budget`, marked :data:`BUDGET_MARK`), with each
    one's trials or the two schedules (``"untuned"``; the fewest of its runs where its
    `tuned` column says ``"mixed"``): their rank is not an equal comparison (issue 16,
    part 1: one tuning budget for every model of a table). ``""`` when there is none."""
    under = [ln for ln in lines if t.under_budget(ln)]
    fewer = [ln for ln in under if t.budget is not None and ln.trials is not None and ln.trials < t.budget]
    short = [ln for ln in under if ln.tuned_short]
    texts = []
    if fewer:
        each = ", ".join(f"{ln.name}: " + ("untuned" if ln.tuned.startswith("untuned") else f"{ln.trials}")
                         + (" (mixed: the fewest of its runs)" if ln.tuned == "mixed" else "") for ln in fewer)
        texts.append(f"tuned with fewer trials than this table's largest budget ({t.budget} trials): {each}")
    if short:
        texts.append("tuned on trials of a shorter schedule than its runs: "
                     + ", ".join(f"{ln.name}: {ln.tuned_short}" for ln in short))
    if not texts:
        return ""
    return (f"{BUDGET_MARK} " + "; ".join(texts)
            + "; not an equal tuning budget, so its rank against the others is not a fair comparison.")


def under_budget_text(t: Table, ln: Line) -> str:
    """The CSV's ``under_budget`` of line ``ln`` of table ``t``: ``"3 < 10"`` (its trials against the
    table's largest budget), ``"trials up to 3 epochs, runs up to 60"`` (:attr:`Line.tuned_short`),
    both joined by ``"; "``, or ``""`` where :meth:`~kgzoo.bench.leaderboard.Table.under_budget` is false."""
    if not t.under_budget(ln):
        return ""
    fewer = f"{ln.trials} < {t.budget}" if t.budget is not None and ln.trials < t.budget else ""
    return "; ".join(x for x in (fewer, ln.tuned_short) if x)


def mixed_text(lines: Sequence[Line]) -> str:
    """The footnote of the lines among ``lines`` whose seeds ran different configurations
    (:attr:`~kgzoo.bench.leaderboard.Line.mixed`, marked :data:`MIXED_MARK`), each config sha with
    its seeds: not one configuration's mean and std, so not ranked. ``""`` when there is none."""
    mixed = [ln for ln in lines if ln.mixed]
    if not mixed:
        return ""

    def seeds(ln: Line, sha: str) -> str:
        s = sorted(r.seed for r in ln.rows if r.config_sha and ln.config_of(r) == sha)
        return f"seed{'s' if len(s) > 1 else ''} {', '.join(map(str, s))}"

    each = "; ".join(f"{ln.name}: " + ", ".join(f"{sha} ({seeds(ln, sha)})" for sha in ln.configs) for ln in mixed)
    return (f"{MIXED_MARK} its seeds ran different configurations (`config_sha`): {each}; not one configuration's "
            "mean and std (a re-tune or config change reached some seeds only): not ranked, not a baseline.")


def pending_text(t: Table, shown: Sequence[Line] | None = None) -> str:
    """The sentence naming the models of the dataset's grid that a published table does not have
    yet (:attr:`~kgzoo.bench.leaderboard.Table.pending`); ``""`` when none.

    Args:
        shown: the lines a view shows where it leaves some out (the front page: the ranked ones);
            the grid's models (:attr:`~kgzoo.bench.leaderboard.Table.grid`) with a line in the
            table but none shown are named too: as not converged yet (a line stopped at its cap),
            or, where every run converged but the seeds ran different configurations
            (:attr:`~kgzoo.bench.leaderboard.Line.mixed`), as that.
    """
    text, pending = "", t.pending
    if pending:
        text = (f"Not in this table yet: {', '.join(pending)}. It holds the runs so far, not yet the whole "
                "grid of the dataset's published table.")
    if shown is not None:
        on = {ln.model for ln in shown if ln.variant == "base"}
        hidden = [m for m in t.grid if m not in on and m not in pending]
        mixed = {ln.model for ln in t.lines
                 if ln.variant == "base" and ln.mixed and all(r.is_published() for r in ln.rows)}
        unconverged, unranked = [m for m in hidden if m not in mixed], [m for m in hidden if m in mixed]
        if unconverged:
            text += ((" " if text else "") + "Not converged yet (their lines are in the full table): "
                     f"{', '.join(unconverged)}.")
        if unranked:
            text += ((" " if text else "") + f"Not ranked, their seeds ran different configurations ({MIXED_MARK}; "
                     f"their lines are in the full table): {', '.join(unranked)}.")
    return text


def failed_text(t: Table) -> str:
    """The sentence naming the models whose cells of table ``t`` failed and have no line in it
    (:attr:`~kgzoo.bench.leaderboard.Table.failed`), each with its seeds and error; ``""`` when none."""
    if not t.failed:
        return ""
    each = "; ".join(f"{m} (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}): {error}"
                     for m, (seeds, error) in t.failed.items())
    return f"Failed here, no line: {each}."


def notes_below(t: Table, lines: Sequence[Line], shown: Sequence[Line] | None = None) -> list[str]:
    """Everything said below table ``t`` about ``lines`` (the lines a view shows), one text each,
    in one order for every view (the Markdown table, the front page, the console caption): where
    the ``paper`` and ``reference`` numbers come from (:func:`source_notes`), the ‡ one-seed lines
    (:func:`one_seed_note`), the ≠ lines tuned with a smaller budget (:func:`budget_text`), the ※
    lines whose seeds ran different configurations (:func:`mixed_text`), the §
    line notes (:func:`note_texts`), the grid's models not in the table (:func:`pending_text`,
    ``shown`` as it takes it), the models whose cells failed there (:func:`failed_text`), what †
    and ° mean where a line carries them."""
    texts = (source_notes(lines) + one_seed_note(t, lines) + [budget_text(t, lines), mixed_text(lines)]
             + note_texts(lines)
             + [pending_text(t, shown), failed_text(t)] + [CAP_NOTE if any(ln.capped for ln in lines) else ""]
             + [FIXED_NOTE if any(ln.fixed for ln in lines) else ""])
    return [x for x in texts if x]


def _paragraphs(texts: Sequence[str]) -> list[str]:
    """Markdown paragraphs: each text followed by a blank line."""
    return [x for text in texts for x in (text, "")]


def robustness_cells(r: RobustnessTable) -> tuple[list[str], list[list[str]]]:
    """Header and displayed cells of a robustness table."""
    def cell(ln: dict, k: str) -> str:
        s = ln["values"][k]
        return "-" if not s else s.fmt() + (" †" if k in ln.get("capped", ()) else "")
    return (["model"] + r.ablations, [[ln["model"]] + [cell(ln, k) for k in r.ablations] for ln in r.lines])


def _delta_text(ln: dict[str, Any]) -> str:
    """An ablation line's ``Δ vs full`` cell: ``"+0.0014 ± 0.0047"`` (the standard error of the
    difference over seeds, :func:`~kgzoo.bench.leaderboard.delta_se`), ``"+0.0014"`` where a side
    has one seed, ``"-"`` for the full model or without a value."""
    if ln["delta"] is None or ln["setting"] == "full":
        return "-"
    se = ln.get("delta_se")
    return f"{ln['delta']:+.4f}" + ("" if se is None else f" ± {se:.4f}")


def ablation_cells(a: AblationTable) -> tuple[list[str], list[list[str]]]:
    """Header and displayed cells of an ablation table (a setting with a run stopped at its cap
    marked :data:`CAP_MARK`; ``cap``: its runs' epoch caps; ``tuned``:
    :func:`~kgzoo.bench.leaderboard.tuned_text` of its rows)."""
    header = ["setting"] + a.metric_columns[:1] + ["Δ vs full"] + a.metric_columns[1:] + ["seeds", "cap", "tuned"]
    body = []
    for ln in a.lines:
        m = ln["metrics"]
        body.append([ln["setting"] + (f" {CAP_MARK}" if ln["capped"] else ""),
                     m[a.metric].fmt() if m.get(a.metric) else "-",
                     _delta_text(ln)]
                    + [s.fmt() if (s := m.get(c)) else "-" for c in a.metric_columns[1:]]
                    + [str(len(ln["seeds"])), ln["max_epochs"], ln["tuned"]])
    return header, body


# ---------------------------------------------------------------------------- markdown
def _md_table(header: list[str], body: list[list[str]]) -> list[str]:
    esc = lambda c: c.replace("|", "\\|")  # noqa: E731
    return (["| " + " | ".join(map(esc, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
            + ["| " + " | ".join(map(esc, row)) + " |" for row in body])


#: stands for the ``--models`` value of commands that differ only in it (:func:`command_text`)
MODELS_SLOT = "MODELS"


def _models_slot(command: str) -> tuple[str, str] | None:
    """``(command with its --models value replaced by MODELS, that value)``; ``None`` for a command
    without ``--models VALUE``."""
    tokens = command.split()
    if "--models" not in tokens:
        return None
    i = j = tokens.index("--models") + 1
    while j < len(tokens) and not tokens[j].startswith("-"):
        j += 1
    return (" ".join(tokens[:i] + [MODELS_SLOT] + tokens[j:]), " ".join(tokens[i:j])) if j > i else None


def command_text(commands: Sequence[str]) -> str:
    """The commands that wrote a table's rows, each in backticks, ``"; "``-joined, in order of
    first appearance; commands that differ only in their ``--models`` value are said once with
    :data:`MODELS_SLOT` in its place and the values after it (``kgzoo bench --models MODELS
    --datasets amazon-hin ...` for MODELS = `pop`, `bpr`"), not once per model.
    ``"(not recorded)"`` when there is none."""
    if not commands:
        return "(not recorded)"
    groups: dict[str, list[tuple[str, str | None]]] = {}  # template (or the command) -> (command, models)
    for c in commands:
        slot = _models_slot(c)
        groups.setdefault(slot[0] if slot else c, []).append((c, slot[1] if slot else None))
    parts = []
    for key, members in groups.items():
        if len(members) > 1:
            parts.append(f"`{key}` for {MODELS_SLOT} = " + ", ".join(f"`{models}`" for _, models in members))
        else:
            parts.append(f"`{members[0][0]}`")
    return "; ".join(parts)


def code_label(commits: Sequence[str], quote: str = "`") -> str:
    """``"code: `1234567`, `abcdef0+dirty`, unrecorded"`` for the commits of a table
    (:func:`~kgzoo.bench.leaderboard.commits_of`), each in ``quote``; ``""`` when no row records
    one (rows of before kgzoo recorded commits: nothing to say)."""
    if not commits or list(commits) == ["unrecorded"]:
        return ""
    return "code: " + ", ".join(c if c == "unrecorded" else f"{quote}{c}{quote}" for c in commits)


def _fingerprint_lines(t: Table) -> list[str]:
    """The table's provenance: its data fingerprint(s) and the code (git commits) of its rows."""
    code = code_label(t.commits)
    if len(t.fingerprints) == 1:
        return [f"fingerprint `{t.fingerprints[0]}`" + (f"; {code}" if code else "")]
    return ["fingerprints (one per seed: the split is seeded by the run) "
            + ", ".join(f"`{fp}`" for fp in t.fingerprints) + (f"; {code}" if code else "")]


def _caveat_lines(t: Table) -> list[str]:
    """The dataset's caveat under a table's title (the front page's and the full table's alike):
    what a reader must know before comparing its numbers (a split that is not the papers', the
    converged schedule's warm-up); none without one."""
    return [f"> **Caveat ({t.dataset}):** {t.caveat}", ""] if t.caveat else []


def _table_md(t: Table, image: str | None) -> list[str]:
    out = [f"### {heading(t)}", ""] + _fingerprint_lines(t) + [""] + _caveat_lines(t)
    if t.retired:
        out += [f"> **Retired protocol ({t.dataset}):** {t.retired}", ""]
    out += [f"- {sort_text(t)}; mean ± sample std over seeds; newest row {t.newest or '?'}",
            f"- command: {command_text(t.commands)}", ""]
    out += _md_table(table_columns(t), [line_cells(t, ln) for ln in t.lines]) + [""]
    out += _paragraphs(notes_below(t, t.lines))
    if image:
        out += [f"![{heading(t)}]({image})", ""]
    return out


def note_texts(lines: Sequence[Line]) -> list[str]:
    """``"§ ripplenet: ..."``: the note of each line marked :data:`NOTE_MARK` among ``lines``."""
    return [f"{NOTE_MARK} {ln.name}: {ln.note}" for ln in lines if ln.note]


#: stands for a line's model name in a source sentence that several lines share (:func:`source_notes`)
_MODEL_SLOT = "\0"


def source_notes(lines: Sequence[Line]) -> list[str]:
    """Where the ``paper`` and ``reference`` numbers of ``lines`` come from, one sentence per
    column (none for a column without a number): each source once, with the models it serves,
    its protocol (``setting``) where the row gives one. Sources that differ only in the model's
    name, as the source writes it ("RecBole 1.2.1 BPR with its default hyper-parameters ...",
    "RecBole 1.2.1 CKE with ..."), are one sentence naming the models ("bpr, cke: RecBole 1.2.1
    BPR / CKE (the line's model) with ..."), not the same sentence once per model."""
    out = []
    for column in ("paper", "reference"):
        groups: dict[tuple[str, str], set[tuple[str, str]]] = {}  # (source with the model slot, setting) -> models
        for ln in lines:
            source = getattr(ln, f"{column}_source")
            if getattr(ln, column) is None or not source:
                continue
            m = re.search(rf"(?<![\w-]){re.escape(ln.model)}(?!\w)", source, flags=re.IGNORECASE)
            template = source[:m.start()] + _MODEL_SLOT + source[m.end():] if m else source
            groups.setdefault((template, getattr(ln, f"{column}_setting") or ""), set()).add(
                (ln.model, m.group(0) if m else ""))
        parts = []
        for (template, setting), members in sorted(groups.items(), key=lambda kv: sorted(kv[1])):
            models = sorted(members)
            slot = " / ".join(w for _, w in models) + (" (the line's model)" if len(models) > 1 else "")
            parts.append(f"{', '.join(name for name, _ in models)}: {template.replace(_MODEL_SLOT, slot)}"
                         + (f" (setting: {setting})" if setting else ""))
        if parts:
            out.append(f"`{column}`: " + "; ".join(parts))
    return out


def domain_of(dataset: str) -> str:
    """The catalogue domain of ``dataset`` (``"video"``, ``"e-commerce"``, ...); ``"other"`` for a
    dataset the catalogue does not hold (a user's folder)."""
    try:
        return dataset_spec(dataset).domain
    except KeyError:
        return "other"


def front_tables(lb: Leaderboard) -> list[tuple[str, Table]]:
    """One published table per domain for the front page: of the domain's published tables, a
    dataset's grid table (:attr:`Table.grid`: its protocol is the catalogue's today) before any other
    (a reproduction protocol, or the protocol a dataset had before: dkn-news's validation split
    carved per user), then the one with the most converged (ranked) lines, then the most lines;
    domains in name order."""
    def size(t: Table) -> tuple[bool, int, int]:
        return bool(t.grid), sum(ln.rank is not None for ln in t.lines), len(t.lines)

    best: dict[str, Table] = {}
    for t in lb.section(PUBLISHED):
        d = domain_of(t.dataset)
        if size(t)[1] and (d not in best or size(t) > size(best[d])):
            best[d] = t
    return sorted(best.items())


def _front_md(lb: Leaderboard) -> list[str]:
    out = ["## Front page: one table per domain", "",
           "Per domain, the published table with the most converged lines, its converged lines only (the full "
           "tables and their figures follow).", ""]
    front = front_tables(lb)
    if not front:
        return out + ["(none yet)", ""]
    for domain, t in front:
        out += [f"### {domain}: {t.title}", ""] + _caveat_lines(t) + [f"- sorted by test {t.metric}; full table below", ""]
        ranked = [ln for ln in t.lines if ln.rank is not None]
        out += _md_table(table_columns(t), [line_cells(t, ln) for ln in ranked]) + [""]
        out += _paragraphs(notes_below(t, ranked, shown=ranked))
    return out


def _section_md(lb: Leaderboard, section: str, images: dict[int, str]) -> list[str]:
    tables = lb.section(section)
    out = [f"## {SECTION_TITLES[section]}", "", SECTION_NOTES[section], ""]
    if not tables:
        out += ["(none)", ""]
    for t in tables:
        out += _table_md(t, images.get(id(t)))
    return out


def timing_note(lb: Leaderboard, floor: float = 0.1) -> str:
    """How far apart the seeds of one published line are in ``s/epoch`` (largest over smallest,
    over the lines whose every seed took at least ``floor`` seconds), and the accelerators the
    rows ran on: wall-clock times of runs that shared a machine differ by more than their digits
    say, and a reader comparing two models' costs must know by how much. ``""`` when no line has
    two timed seeds."""
    ratios = [s.high / s.low for t in lb.section(PUBLISHED) for ln in t.lines
              if (s := ln.costs.get("seconds_per_epoch")) is not None and s.n > 1 and s.low >= floor]
    if not ratios:
        return ""
    where = sorted({r.accelerator for t in lb.section(PUBLISHED) for ln in t.lines for r in ln.rows if r.accelerator})
    return (f"Times are wall-clock on the machine of each row ({', '.join(where) or 'accelerator not recorded'}): "
            f"the seeds of one published line differ by up to {max(ratios):.1f}x in s/epoch (median "
            f"{float(np.median(ratios)):.1f}x; lines of at least {floor:g} s per epoch), so compare costs as orders "
            "of magnitude, not as a speed benchmark.")


def to_markdown(lb: Leaderboard, images: dict[int, str] | None = None,
                source: str = "benchmarks/results/*.jsonl") -> str:
    """``LEADERBOARD.md``: published tables, smoke runs, KG robustness, variants, archive.

    Args:
        lb: the leaderboard (:func:`kgzoo.bench.leaderboard.build`).
        images: ``id(table) -> relative path`` of its figure (none when empty).
        source: where the rows came from (``<folder>/*.jsonl`` or a file), named in the header.
    """
    images = images or {}
    out = ["# kgzoo leaderboard", "",
           f"Generated from {lb.n_rows} result rows ({lb.n_cells} cells) in `{source}` by "
           "`kgzoo bench --leaderboard-only`; do not edit (the folder is cleared and rebuilt). One table per "
           "dataset and evaluation protocol, titled by the protocol, with its fingerprint (data files, protocol, "
           "metric code) below: rows under different fingerprints never share a table, except the seeds of a "
           "task whose split the run's seed draws (KG link prediction: one fingerprint per seed). Test metrics of the "
           "best validation checkpoint. To rerun a line, take its `command:` with a `--results` folder of your own in place of "
           "`benchmarks/results` (that one holds the committed rows) and the seeds you want: the run prints each rerun "
           "beside the committed row of its seed (`=`: every test metric equal bit for bit; `other code`: the model's "
           "source files changed since that row ran).", "",
           " ".join(filter(None, (COLUMN_LEGEND, timing_note(lb)))), ""]
    out += _front_md(lb) + _section_md(lb, PUBLISHED, images) + _section_md(lb, SMOKE, images)
    if lb.robustness:
        out += ["## KG robustness", "",
                "Test main metric of each model with the real KG and its ablations (shuffled, none, noisy:P), "
                f"under one protocol and one schedule: {SCHEDULE_SPLIT} † a cell with a run stopped at "
                "its epoch cap: not converged, not a baseline; compare such cells only within their row. "
                f"{PROTOCOL_FINGERPRINT_NOTE}", ""]
        for r in lb.robustness:
            out += [f"### {r.title}", "", f"protocol fingerprint `{r.protocol_fingerprint}`", ""]
            out += _md_table(*robustness_cells(r)) + [""]
            if id(r) in images:
                out += [f"![{r.title}]({images[id(r)]})", ""]
    if lb.ablations:
        out += ["## Variants and source ablations", "",
                "Each setting of one model (bench variant x KG ablation) under one protocol and one schedule, "
                f"beside the full model of that schedule (`Δ vs full`: setting mean - full mean, ± the standard error "
                "of that difference over seeds, sqrt(s1²/n1 + s2²/n2): with 3 seeds a Δ within about two of them "
                f"is not told apart from seed noise): {SCHEDULE_SPLIT} "
                f"{PROTOCOL_FINGERPRINT_NOTE}", ""]
        for a in lb.ablations:
            out += [f"### {a.title}", "", f"protocol fingerprint `{a.protocol_fingerprint}`", "",
                    f"- command: {command_text(a.commands)}", ""]
            out += _md_table(*ablation_cells(a)) + [""]
            if any(ln["capped"] for ln in a.lines):
                out += [CAP_NOTE, ""]
    out += _section_md(lb, ARCHIVE, images)
    return "\n".join(out).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------- csv, png
def write_csv(t: Table, path: str | Path) -> Path:
    """One CSV line per table line: identity, ``<metric>_mean``/``<metric>_std`` of each metric
    column, paper and reference (each with its source and setting), tuned, best epoch, how runs
    stopped, seeds, cap, the schedule kinds of the rows (``converged``, ``fixed``, ``quick``), mean costs, the smallest and largest of the wall-clock ones over seeds
    (:data:`TIMED`), what the Markdown says below the table (``one_seed``: :func:`one_seed_reason`;
    ``under_budget``: ``"3 < 10"``, the line's trials against the table's largest budget where
    :meth:`~kgzoo.bench.leaderboard.Table.under_budget`; ``configs``: the config shas of a line whose
    seeds ran more than one (:attr:`~kgzoo.bench.leaderboard.Line.mixed`), space-separated;
    ``note``: the line's § note; ``caveat``: the dataset's; ``pending``: the grid's models without a
    line, space-separated: the same on every line), the line's commits
    (:func:`~kgzoo.bench.leaderboard.commits_of`, space-separated)."""
    path = Path(path)
    header = (["dataset", "task", "protocol", "kg_ablation", "section", "fingerprints", "rank", "model", "variant",
               "capped"] + [f"{m}_{s}" for m in t.metric_columns for s in ("mean", "std")]
              + ["paper", "paper_source", "paper_setting", "reference", "reference_source", "reference_setting",
                 "tuned", "best_epoch", "stopped_by", "seeds", "max_epochs", "schedule"]
              + list(COST_COLUMNS) + [f"{k}_{end}" for k in TIMED for end in ("min", "max")]
              + ["one_seed", "under_budget", "configs", "note", "caveat", "pending", "commits"])
    pending = " ".join(t.pending)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for ln in t.lines:
            vals: list[Any] = []
            for m in t.metric_columns:
                s = ln.metrics.get(m)
                vals += [s.mean, s.std] if s else ["", ""]
            w.writerow([t.dataset, t.task, t.protocol_label, t.kg_ablation, t.section, " ".join(t.fingerprints),
                        "" if ln.rank is None else ln.rank, ln.model, ln.variant, int(ln.capped)] + vals
                       + ["" if ln.paper is None else ln.paper, ln.paper_source or "", ln.paper_setting or "",
                          "" if ln.reference is None else ln.reference, ln.reference_source or "",
                          ln.reference_setting or "", ln.tuned, "" if ln.best_epoch is None else ln.best_epoch.mean,
                          ln.stopped_text(), " ".join(map(str, ln.seeds)), ln.max_epochs,
                          "/".join(sorted({str((r.schedule or {}).get("kind")) for r in ln.rows}))]
                       + [(s.mean if (s := ln.costs[k]) else "") for k in COST_COLUMNS]
                       + [(getattr(s, end) if (s := ln.costs[k]) else "") for k in TIMED for end in ("low", "high")]
                       + [one_seed_reason(t, ln), under_budget_text(t, ln),
                          " ".join(ln.configs) if ln.mixed else "", ln.note, t.caveat, pending]
                       + [" ".join(commits_of(ln.rows))])
    return path


def write_png(t: Table | RobustnessTable, path: str | Path) -> Path:
    """A bar chart of the sort metric (error bars: std over seeds; hatched: stopped at the cap;
    red ticks: the paper's number), or for a robustness table bars grouped by KG ablation."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    names = [ln.name if isinstance(t, Table) else ln["model"] for ln in t.lines]
    width = max(6.0, 0.9 * len(names) + 3)
    fig, ax = plt.subplots(figsize=(width, 3.6))
    x = np.arange(len(names))
    if isinstance(t, Table):
        stats = [ln.metrics.get(t.metric) for ln in t.lines]
        bars = ax.bar(x, [s.mean if s else 0 for s in stats], yerr=[s.std if s else 0 for s in stats], capsize=3,
                      color="tab:blue")
        for bar, ln in zip(bars, t.lines):
            if ln.capped:
                bar.set_hatch("//")
                bar.set_alpha(0.6)
        handles = []
        if t.capped:
            from matplotlib.patches import Patch

            handles.append(Patch(facecolor="tab:blue", alpha=0.6, hatch="//", label=f"{CAP_MARK} stopped at its cap"))
        paper = [ln.paper for ln in t.lines]
        if any(p is not None for p in paper):
            handles.append(ax.scatter([i for i, p in enumerate(paper) if p is not None],
                                      [p for p in paper if p is not None], marker="_", s=400, color="tab:red",
                                      label="paper", zorder=3))
        if handles:
            ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        w = 0.8 / max(1, len(t.ablations))
        for j, k in enumerate(t.ablations):
            stats = [ln["values"][k] for ln in t.lines]
            ax.bar(x + (j - (len(t.ablations) - 1) / 2) * w, [s.mean if s else 0 for s in stats], w,
                   yerr=[s.std if s else 0 for s in stats], capsize=2, label=k)
        ax.legend(title="KG", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel(f"test {t.metric}")
    ax.set_title(textwrap.fill(heading(t) if isinstance(t, Table) else t.title, int(width * 12)), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------- rich
def _rich_table(title: str, header: list[str], body: list[list[str]], caption: str | None = None,
                left: tuple[str, ...] = ("model", "setting")) -> Any:
    from rich.table import Table as RichTable

    rt = RichTable(title=title, caption=caption)
    for c in header:
        rt.add_column(c, justify="left" if c in left else "right")
    for row in body:
        rt.add_row(*row)
    return rt


def rich_tables(lb: Leaderboard, sections: Sequence[str] = (PUBLISHED,), robustness: bool = False,
                ablations: bool = False) -> list[Any]:
    """The chosen parts of ``lb`` as :class:`rich.table.Table` objects (for ``Console.print``).

    Args:
        sections: which table sections (:data:`PUBLISHED`, :data:`SMOKE`, :data:`ARCHIVE`).
        robustness, ablations: also the KG-robustness and variant tables.
    """
    out = []
    for t in lb.tables:
        if t.section in sections:
            caption = f"fingerprint {' '.join(fp[:12] for fp in t.fingerprints)}; {sort_text(t)}"
            if code_label(t.commits):
                caption += f"; {code_label(t.commits, quote='')}"
            if t.caveat:
                caption += f"; caveat: {t.caveat}"
            caption += "".join(f"; {text}" for text in notes_below(t, t.lines))
            title = heading(t)
            out.append(_rich_table(title, table_columns(t), [line_cells(t, ln) for ln in t.lines], caption))
    if robustness:
        out += [_rich_table(r.title, *robustness_cells(r)) for r in lb.robustness]
    if ablations:
        out += [_rich_table(a.title, *ablation_cells(a)) for a in lb.ablations]
    return out


def reference_value(row: ResultRow, reference: Iterable[ResultRow] | dict) -> tuple[Stat, bool] | None:
    """The committed reference of ``row``'s test main metric: ``(Stat over seeds, same schedule)``.

    The lines of :func:`kgzoo.bench.leaderboard.reference_lines` under ``row``'s
    :func:`~kgzoo.bench.leaderboard.reference_key` (same fingerprint, model, variant, KG ablation
    and schedule kind: converged, fixed ``--epochs N`` or quick); where there is none, those of another
    kind (``same schedule`` False: converged first, then fixed, then quick). ``None`` when the reference holds no such row.

    Args:
        row: a row of this run. reference: the committed rows, or their ``reference_lines``.
    """
    lines = reference if isinstance(reference, dict) else reference_lines(reference)
    metric = sort_metric(row.task, None, [row]) if row.task else row.main_metric
    key = reference_key(row)
    others = [key[:-1] + (kind,) for kind in KINDS if kind != key[-1]]
    for k, same in [(key, True)] + [(k, False) for k in others]:
        line = lines.get(k)
        if line is not None and line.metrics.get(metric) is not None:
            return line.metrics[metric], same
    return None


def rich_run_table(rows: Sequence[ResultRow], reference_rows: Iterable[ResultRow] = (), title: str | None = None) -> Any:
    """The table of one ``kgzoo bench`` run: one line per row of the run, in run order: model,
    dataset, variant, KG ablation, seed, status (a failed row: its error), epochs (best epoch,
    what stopped the run), the test main metric, the committed reference beside it
    (:func:`reference_value`: mean over its seeds, ``"other schedule"`` when only the other
    schedule class has one, ``"other config"`` when none of its rows ran this row's
    :attr:`~kgzoo.bench.rows.ResultRow.config_sha`: other hyper-parameters or another epoch cap,
    so that a difference is no reproduction failure; and the committed row of the same seed, same
    schedule class, where there is one, with ``"other code"`` where that row's
    :attr:`~kgzoo.bench.rows.ResultRow.code_hash` is another: the model's source files changed
    since it ran, so a difference may be that change's; ``"other threads"`` where both rows
    recorded :attr:`~kgzoo.bench.rows.ResultRow.torch_threads` and they differ: float sums in
    another order) and the difference (to that seed's row where
    there is one, else to the mean): ``=`` where every test metric equals the seed's committed row
    bit for bit (a reproduced row), else the signed difference of the main metric (``+0.0000``:
    equal to 4 decimals, not bit for bit); seconds per epoch and per cell.

    Returns:
        A :class:`rich.table.Table`.
    """
    rows = list(rows)
    reference_rows = list(reference_rows)
    lines = reference_lines(reference_rows)
    latest = latest_ok_rows(reference_rows)
    by_seed = {(reference_key(r), r.seed): r for r in latest}
    shas: dict[tuple, set] = {}  # the config shas each reference line ran
    for r in latest:
        shas.setdefault(reference_key(r), set()).add(r.config_sha)
    body = []
    for r in rows:
        metric = (sort_metric(r.task, None, [r]) if r.task else r.main_metric) or "-"
        value = r.metrics.get(f"test/{metric}")
        ref = reference_value(r, lines) if r.status == "ok" else None
        committed, base = "-", None
        if ref is not None:
            stat, same = ref
            twin = by_seed.get((reference_key(r), r.seed)) if same else None
            seed_value = twin.metrics.get(f"test/{metric}") if twin is not None else None
            base = seed_value if seed_value is not None else stat.mean
            other = ", other schedule" if not same else (
                ", other config" if r.config_sha not in shas.get(reference_key(r), set()) else "")
            twin_notes = "".join(f", other {what}" for what, field in (("code", "code_hash"), ("threads", "torch_threads"))
                           if twin is not None and None not in (getattr(twin, field), getattr(r, field))
                           and getattr(twin, field) != getattr(r, field))
            committed = (f"{stat.mean:.4f} ({stat.n} seed{'s' if stat.n > 1 else ''}{other}"
                         + (f"; seed {r.seed} {seed_value:.4f}{twin_notes}" if seed_value is not None else "") + ")")
        stop = {"early_stopping": "early", "cap": "cap", "closed_form": "closed form"}.get(r.stopped_by or "", "-")
        body.append([r.model, r.dataset, r.variant, r.kg_ablation, str(r.seed),
                     r.status if r.status == "ok" else f"[red]failed[/red]: {r.error}",
                     "-" if r.epochs is None else f"{r.epochs} ({'-' if r.best_epoch is None else r.best_epoch}, {stop})",
                     metric, "-" if value is None else f"{value:.4f}", committed,
                     "-" if (base is None or value is None) else (
                         "=" if seed_value is not None and twin.metrics == r.metrics else f"{value - base:+.4f}"),
                     "-" if r.seconds_per_epoch is None else f"{r.seconds_per_epoch:.2f}",
                     "-" if r.cell_seconds is None else f"{r.cell_seconds:.1f}"])
    header = ["model", "dataset", "variant", "kg", "seed", "status", "epochs (best, stop)", "metric", "test",
              "committed", "diff", "s/epoch", "cell s"]
    return _rich_table(title or f"this run: {len(rows)} cell(s)", header, body,
                       caption="committed: mean over seeds of the committed rows with the same fingerprint, model, "
                               "variant, KG ablation and schedule (converged, fixed --epochs N or quick), and the row of this seed; "
                               "'other schedule': only rows of another schedule exist (a 2-epoch run beside "
                               "converged ones), so the diff is no reproduction check; "
                               "'other config': none of them ran this row's config sha (other hyper-parameters, e.g. "
                               "before tuning, or another epoch cap); 'other code': the model's source changed since "
                               "this seed's committed row ran (another code hash); 'other threads': it ran under "
                               "another torch thread count; diff: to this seed's committed row, "
                               "else to the mean; '=': every test metric equal to this seed's committed row bit for bit",
                       left=("model", "dataset", "variant", "kg", "status", "metric"))


# ---------------------------------------------------------------------------- the folder
def dataset_caveats(datasets: Iterable[str]) -> dict[str, str]:
    """``name -> caveat`` of the catalogue datasets among ``datasets`` that have one (a dataset
    the catalogue does not know, e.g. a user's own, has none): the catalogue's
    :attr:`~kgzoo.data.spec.DatasetSpec.caveat`, then the converged schedule's warm-up where the
    dataset has one (:attr:`~kgzoo.data.spec.DatasetSpec.min_epochs_reason`), which every
    converged row of its tables trained under."""
    caveats, warm = _catalogue_values(datasets, "caveat"), _catalogue_values(datasets, "min_epochs_reason")
    return {name: "; ".join(t for t in (caveats.get(name), warm.get(name)) if t)
            for name in sorted(caveats.keys() | warm.keys())}


def line_notes(cells: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """``(model, dataset) -> note`` of the pairs among ``cells`` whose zoo config has one
    (:meth:`kgzoo.config.ZooConfig.note_for`); a model kgzoo does not know (rows of a user's model
    read without its file) has none.

    Raises:
        ValueError: a broken ``note`` section (naming the file and field).
    """
    out = {}
    for model, dataset in sorted(set(cells)):
        if model not in MODELS:
            continue
        note = ZooConfig.load(model, dataset).note_for(dataset)
        if note:
            out[(model, dataset)] = note
    return out


def dataset_one_seed_minutes(datasets: Iterable[str]) -> dict[str, float]:
    """``name -> minutes of a converged run over which a slow model may have one seed there``
    (:attr:`~kgzoo.data.spec.DatasetSpec.one_seed_minutes`) of the catalogue datasets among
    ``datasets`` that allow it (issue 16, part 3: ml-1m-kg and alibaba-ifashion-kg)."""
    return _catalogue_values(datasets, "one_seed_minutes")


def dataset_grids(datasets: Iterable[str]) -> dict[str, tuple[dict[str, Any], tuple[str, ...]]]:
    """``name -> (protocol dict, models)`` of the catalogue datasets among ``datasets`` with a
    grid (:attr:`~kgzoo.data.spec.DatasetSpec.grid`): the protocol of its published table (the
    impression protocol where the dataset has impressions, :func:`kgzoo.protocols.impression_protocol`,
    else its default) as rows record it, for :func:`kgzoo.bench.leaderboard.build`'s ``grids``."""
    out = {}
    for name in sorted(set(datasets)):
        try:
            spec = dataset_spec(name)
        except KeyError:
            continue
        if spec.grid:
            out[name] = ((impression_protocol(name) or spec.protocol).to_dict(), tuple(spec.grid))
    return out


def dataset_retired(datasets: Iterable[str]) -> dict[str, list[tuple[dict[str, Any], str]]]:
    """``name -> [(protocol dict, reason)]``: the catalogue's
    :attr:`~kgzoo.data.spec.DatasetSpec.retired_protocols` of the datasets among ``datasets`` that
    have any, as rows record a protocol, for :func:`kgzoo.bench.leaderboard.build`'s ``retired``."""
    return {name: [(proto.to_dict(), reason) for proto, reason in value]
            for name, value in _catalogue_values(datasets, "retired_protocols").items()}


def _catalogue_values(datasets: Iterable[str], attribute: str) -> dict[str, Any]:
    """``name -> DatasetSpec.<attribute>`` where it is set (not empty, not 0); datasets the catalogue does not know are left out."""
    out = {}
    for name in sorted(set(datasets)):
        try:
            value = getattr(dataset_spec(name), attribute)
        except KeyError:
            continue
        if value:
            out[name] = value
    return out


def clear_leaderboard(out_dir: str | Path) -> list[Path]:
    """Remove what :func:`write_leaderboard` owns in ``out_dir``: ``LEADERBOARD.md``, the
    ``*.csv`` of ``tables/`` and the ``*.png`` of ``figures/`` (those folders too once empty);
    nothing else. Returns the removed files."""
    out = Path(out_dir)
    removed = []
    md = out / MARKDOWN
    if md.is_file():
        md.unlink()
        removed.append(md)
    for sub, pattern in ((TABLES, "*.csv"), (FIGURES, "*.png")):
        folder = out / sub
        if not folder.is_dir():
            continue
        for f in sorted(folder.glob(pattern)):
            f.unlink()
            removed.append(f)
        if not any(folder.iterdir()):
            folder.rmdir()
    return removed


def write_leaderboard(rows: Iterable[ResultRow], out_dir: str | Path, metric: str | None = None, png: bool = True,
                      show_variants: bool = False, source: str = "benchmarks/results/*.jsonl") -> dict[str, Any]:
    """Clear ``out_dir`` of its leaderboard files (:func:`clear_leaderboard`) and rebuild them
    from ``rows``: ``LEADERBOARD.md``, ``tables/<stem>.csv`` per table, ``figures/<stem>.png`` per
    table and robustness table (``png=False``: none).

    Args:
        rows: result rows (:func:`kgzoo.bench.rows.read_rows`). metric: the sort metric
            (default each task's main metric). show_variants: variants as lines beside the
            baselines (:func:`kgzoo.bench.leaderboard.build`). source: where the rows came from
            (``<folder>/*.jsonl`` or a file), as the header of ``LEADERBOARD.md`` names it.

    Returns:
        ``{"markdown": Path, "csv": [Path], "png": [Path], "stale": [Path] (removed, not rewritten),
        "leaderboard": Leaderboard}``.

    Raises:
        TypeError: a row that is not a ``ResultRow``.
    """
    rows = list(rows)
    names = {r.dataset for r in rows if isinstance(r, ResultRow)}
    lb = build(rows, metric=metric, show_variants=show_variants, caveats=dataset_caveats(names),
               one_seed_minutes=dataset_one_seed_minutes(names), grids=dataset_grids(names),
               retired=dataset_retired(names),
               line_notes=line_notes({(r.model, r.dataset) for r in rows if isinstance(r, ResultRow)}))
    out = Path(out_dir)
    removed = clear_leaderboard(out)
    out.mkdir(parents=True, exist_ok=True)
    stems = table_stems(lb)
    csvs, pngs, images = [], [], {}
    if lb.tables:
        (out / TABLES).mkdir(exist_ok=True)
    for t in lb.tables:
        csvs.append(write_csv(t, out / TABLES / f"{stems[id(t)]}.csv"))
    if png:
        for t in [*lb.tables, *lb.robustness]:
            if t.lines:
                (out / FIGURES).mkdir(exist_ok=True)
                pngs.append(write_png(t, out / FIGURES / f"{stems[id(t)]}.png"))
                images[id(t)] = f"{FIGURES}/{pngs[-1].name}"
    md = out / MARKDOWN
    md.write_text(to_markdown(lb, images, source), encoding="utf-8")
    return {"markdown": md, "csv": csvs, "png": pngs, "stale": [p for p in removed if not p.exists()],
            "leaderboard": lb}
