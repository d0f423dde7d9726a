"""Leaderboards, computed only from result rows (DESIGN.md, "Result row").

One table per ``(dataset, fingerprint)``: rows whose fingerprints differ (another split,
another protocol, other data files, another metric code version, another KG ablation) are
never put in one table. In a table, one line per model: the mean and the sample standard
deviation (``ddof=1``; 0 for a single seed) over seeds of each metric, sorted by the main
metric (test NDCG@10 for ``topk``, AUC for ``ctr``, unless another is asked for), the
paper's number where the row's ``paper`` section carries one, and the costs (parameters,
seconds per epoch, evaluation seconds, peak memory, epochs, seed count).

Leaderboards and robustness tables hold only ``base`` rows (the zoo config as it is). A
robustness table per ``(dataset, protocol_fingerprint)`` puts the KG ablations of one
protocol side by side (one column per ``kg_ablation``: real, shuffled, none, noisy:P).
An ablation table per ``(dataset, protocol_fingerprint, model)`` that has bench variants
(``kgzoo bench --variants use_kg=false ...``) puts each setting (variant x KG ablation) on
a line, with its difference from the full model.

Outputs: Markdown (``LEADERBOARD.md``), one CSV and one matplotlib PNG bar chart per
table, and rich tables for the terminal.
"""
from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

MAIN_METRIC = {"topk": "ndcg@10", "ctr": "auc", "link": "mrr"}
#: metric columns of each task, after the main one
METRIC_COLUMNS = {"topk": ("recall@10", "recall@20", "ndcg@10", "ndcg@20"), "ctr": ("auc", "acc", "f1", "gauc"),
                  "link": ("mrr", "hits@1", "hits@3", "hits@10")}
#: cost columns: row key -> column title
COST_COLUMNS = {"params": "params", "seconds_per_epoch": "s/epoch", "eval_seconds": "eval s",
                "peak_memory_mb": "peak MB", "epochs": "epochs"}
ABLATION_ORDER = ("real", "shuffled", "none")


def metric_columns(task: str, metric: str) -> list[str]:
    """The metric columns of a table: the sort metric, then the task's usual ones."""
    return [metric] + [m for m in METRIC_COLUMNS.get(task, ()) if m != metric]


def _commands(rows: Iterable[dict[str, Any]]) -> list[str]:
    """The distinct bench command lines that wrote ``rows``, in order."""
    out: list[str] = []
    for r in rows:
        cmd = (r.get("bench") or {}).get("command")
        if cmd and cmd not in out:
            out.append(cmd)
    return out


@dataclass
class Stat:
    """Mean and sample standard deviation of one value over ``n`` seeds."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Iterable[Any]) -> "Stat | None":
        v = [float(x) for x in values if isinstance(x, (int, float)) and not isinstance(x, bool)
             and math.isfinite(float(x))]
        if not v:
            return None
        a = np.asarray(v, dtype=np.float64)
        return cls(float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0, int(a.size))

    def fmt(self, digits: int = 4) -> str:
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}" if self.n > 1 else f"{self.mean:.{digits}f}"


@dataclass
class LeaderboardTable:
    """One leaderboard: a dataset under one fingerprint.

    ``lines`` holds one dict per model, best first: ``model``, ``seeds``, ``metrics``
    (name -> :class:`Stat` of the test value), ``costs`` (row key -> :class:`Stat`),
    ``paper`` (the paper's value of the main metric or ``None``), ``paper_source``,
    ``max_epochs`` (the epoch budget).
    """

    dataset: str
    fingerprint: str
    task: str
    metric: str
    kg_ablation: str
    lines: list[dict[str, Any]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    protocol: dict[str, Any] = field(default_factory=dict)

    @property
    def metric_columns(self) -> list[str]:
        return metric_columns(self.task, self.metric)

    @property
    def title(self) -> str:
        split = self.protocol.get("split")
        split = f", {split} split" if split else ""
        return f"{self.dataset} ({self.task}{split}, KG {self.kg_ablation}) fingerprint {self.fingerprint[:12]}"

    def budget(self) -> str:
        """The epoch budget: one number, or ``model=N`` per model when they differ."""
        b = {ln["model"]: ln["max_epochs"] for ln in self.lines}
        vals = set(b.values())
        if len(vals) == 1:
            return f"max_epochs={vals.pop()}"
        return "max_epochs: " + ", ".join(f"{m}={v}" for m, v in sorted(b.items()))


@dataclass
class RobustnessTable:
    """Test values of the main metric of each model under each KG ablation of one protocol."""

    dataset: str
    protocol_fingerprint: str
    metric: str
    ablations: list[str]
    lines: list[dict[str, Any]] = field(default_factory=list)  # model, values: ablation -> Stat

    @property
    def title(self) -> str:
        return f"{self.dataset} KG robustness (test {self.metric}) protocol {self.protocol_fingerprint[:12]}"


@dataclass
class AblationTable:
    """One model's settings (variant x KG ablation) under one protocol of one dataset.

    ``lines``: ``setting`` (``"full"`` for the base variant with the real KG, else the
    variant and/or ``kg=<ablation>``), ``metrics`` (name -> :class:`Stat`), ``delta`` (mean
    of the main metric minus the full model's, or ``None``), ``seeds``; the full model first.
    """

    dataset: str
    protocol_fingerprint: str
    model: str
    task: str
    metric: str
    lines: list[dict[str, Any]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    @property
    def metric_columns(self) -> list[str]:
        return metric_columns(self.task, self.metric)

    @property
    def title(self) -> str:
        return (f"{self.dataset} source ablations and variants of {self.model} (test {self.metric}) "
                f"protocol {self.protocol_fingerprint[:12]}")


# ---------------------------------------------------------------------------- rows
def variant_of(row: dict[str, Any]) -> str:
    """A row's bench variant (``"base"`` for rows written before variants existed)."""
    return row.get("variant") or "base"


def latest_ok_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Successful rows, one per ``(model, dataset, seed, kg_ablation, variant, fingerprint)``: the
    latest by the rows' ``time`` (then file order; rows from several files are merged), so a
    rerun replaces, never double-counts, a seed."""
    out: dict[tuple, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: str(r.get("time") or "")):
        if r.get("status", "ok") != "ok":
            continue
        missing = [k for k in ("model", "dataset", "seed", "fingerprint") if r.get(k) is None]
        if missing:
            raise ValueError(f"result row without {', '.join(missing)}: {str(r)[:200]}")
        out[(r["model"], r["dataset"], r["seed"], r.get("kg_ablation", "real"), variant_of(r), r["fingerprint"])] = r
    return list(out.values())


def _metric_key(metric: str) -> str:
    return metric if "/" in metric else f"test/{metric}"


def _main_metric(task: str, metric: str | None, rows: Sequence[dict[str, Any]]) -> str:
    if metric is not None and any(_metric_key(metric) in r.get("metrics", {}) for r in rows):
        return metric
    return MAIN_METRIC.get(task, "ndcg@10")


def _paper_value(rows: Sequence[dict[str, Any]], metric: str) -> tuple[float | None, str | None]:
    for r in rows:
        paper = r.get("paper") or {}
        value = (paper.get("metrics") or {}).get(metric)
        if isinstance(value, (int, float)):
            return float(value), paper.get("source")
    return None, None


def build_tables(rows: Iterable[dict[str, Any]], metric: str | None = None) -> list[LeaderboardTable]:
    """Leaderboards from result rows: one per ``(dataset, fingerprint)``, models best first.

    Args:
        rows: result rows (failed rows are ignored; a repeated cell keeps its latest row).
        metric: the metric to sort by (``"ndcg@20"``); default NDCG@10 (``topk``) or AUC (``ctr``).
            A table whose rows lack it falls back to its task's default.

    Raises:
        ValueError: a successful row without model, dataset, seed or fingerprint.
    """
    ok = [r for r in latest_ok_rows(rows) if variant_of(r) == "base"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in ok:
        groups.setdefault((r["dataset"], r["fingerprint"]), []).append(r)
    tables = []
    for (dataset, fp), grows in sorted(groups.items()):
        task = grows[0].get("task", "topk")
        main = _main_metric(task, metric, grows)
        t = LeaderboardTable(dataset, fp, task, main, grows[0].get("kg_ablation", "real"),
                             protocol=grows[0].get("protocol", {}))
        t.commands = _commands(grows)
        by_model: dict[str, list[dict[str, Any]]] = {}
        for r in grows:
            by_model.setdefault(r["model"], []).append(r)
        for model, mrows in by_model.items():
            mrows.sort(key=lambda r: r["seed"])
            paper, source = _paper_value(mrows, main)
            budgets = sorted({(r.get("bench") or {}).get("max_epochs") for r in mrows} - {None})
            t.lines.append({
                "model": model, "seeds": [r["seed"] for r in mrows],
                "metrics": {m: Stat.of(r.get("metrics", {}).get(_metric_key(m)) for r in mrows)
                            for m in t.metric_columns},
                "costs": {k: Stat.of(r.get(k) for r in mrows) for k in COST_COLUMNS},
                "paper": paper, "paper_source": source,
                "max_epochs": "/".join(map(str, budgets)) if budgets else "?",
            })
        t.lines.sort(key=lambda ln: (ln["metrics"][main] is None,
                                     -(ln["metrics"][main].mean if ln["metrics"][main] else 0.0), ln["model"]))
        tables.append(t)
    return tables


def _ablation_key(kind: str) -> tuple[int, float, str]:
    if kind in ABLATION_ORDER:
        return (ABLATION_ORDER.index(kind), 0.0, kind)
    m = re.fullmatch(r"noisy:([0-9.eE+-]+)", kind)
    return (len(ABLATION_ORDER), float(m.group(1)) if m else math.inf, kind)


def build_robustness(rows: Iterable[dict[str, Any]], metric: str | None = None) -> list[RobustnessTable]:
    """One table per ``(dataset, protocol_fingerprint)`` that has more than one KG ablation:
    models as lines, ablations as columns (real, shuffled, none, noisy:P ascending), the
    mean ± std over seeds of the test main metric (NDCG@10 for ``topk``, AUC for ``ctr``)."""
    ok = [r for r in latest_ok_rows(rows) if r.get("protocol_fingerprint") and variant_of(r) == "base"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in ok:
        groups.setdefault((r["dataset"], r["protocol_fingerprint"]), []).append(r)
    out = []
    for (dataset, pfp), grows in sorted(groups.items()):
        kinds = sorted({r.get("kg_ablation", "real") for r in grows}, key=_ablation_key)
        if len(kinds) < 2:
            continue
        main = _main_metric(grows[0].get("task", "topk"), metric, grows)
        t = RobustnessTable(dataset, pfp, main, kinds)
        for model in sorted({r["model"] for r in grows}):
            vals = {k: Stat.of(r.get("metrics", {}).get(_metric_key(main)) for r in grows
                               if r["model"] == model and r.get("kg_ablation", "real") == k) for k in kinds}
            t.lines.append({"model": model, "values": vals})
        first = kinds[0]
        t.lines.sort(key=lambda ln: -(ln["values"][first].mean if ln["values"][first] else -math.inf))
        out.append(t)
    return out


def _setting(row: dict[str, Any]) -> str:
    parts = [] if variant_of(row) == "base" else [variant_of(row)]
    if row.get("kg_ablation", "real") != "real":
        parts.append(f"kg={row['kg_ablation']}")
    return " + ".join(parts) or "full"


def build_ablations(rows: Iterable[dict[str, Any]], metric: str | None = None) -> list[AblationTable]:
    """Source-ablation tables: one per ``(dataset, protocol_fingerprint, model)`` with at least one
    non-base variant. Lines: the full model (base variant, real KG), then the other settings
    by descending main metric; ``delta`` = setting mean - full mean.

    Raises:
        ValueError: a successful row without model, dataset, seed or fingerprint.
    """
    ok = [r for r in latest_ok_rows(rows) if r.get("protocol_fingerprint")]
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in ok:
        groups.setdefault((r["dataset"], r["protocol_fingerprint"], r["model"]), []).append(r)
    out = []
    for (dataset, pfp, model), grows in sorted(groups.items()):
        if all(variant_of(r) == "base" for r in grows):
            continue
        task = grows[0].get("task", "topk")
        t = AblationTable(dataset, pfp, model, task, _main_metric(task, metric, grows))
        t.commands = _commands(grows)
        by_setting: dict[str, list[dict[str, Any]]] = {}
        for r in grows:
            by_setting.setdefault(_setting(r), []).append(r)
        for setting, srows in by_setting.items():
            t.lines.append({"setting": setting, "seeds": sorted(r["seed"] for r in srows),
                            "metrics": {m: Stat.of(r.get("metrics", {}).get(_metric_key(m)) for r in srows)
                                        for m in t.metric_columns}})
        full = next((ln["metrics"][t.metric] for ln in t.lines if ln["setting"] == "full"), None)
        for ln in t.lines:
            s = ln["metrics"][t.metric]
            ln["delta"] = (s.mean - full.mean) if (s is not None and full is not None) else None
        t.lines.sort(key=lambda ln: (ln["setting"] != "full", -(ln["metrics"][t.metric].mean
                                                                if ln["metrics"][t.metric] else -math.inf)))
        out.append(t)
    return out


def ablation_cells(t: AblationTable) -> tuple[list[str], list[list[str]]]:
    """Header and displayed cells of an ablation table."""
    header = ["setting"] + t.metric_columns[:1] + ["Δ vs full"] + t.metric_columns[1:] + ["seeds"]
    body = []
    for ln in t.lines:
        m = ln["metrics"]
        body.append([ln["setting"], m[t.metric].fmt() if m[t.metric] else "-",
                     "-" if ln["delta"] is None or ln["setting"] == "full" else f"{ln['delta']:+.4f}"]
                    + [s.fmt() if (s := m[c]) else "-" for c in t.metric_columns[1:]] + [str(len(ln["seeds"]))])
    return header, body


# ---------------------------------------------------------------------------- renderers
def _fmt_int(s: "Stat | None") -> str:
    return "-" if s is None else f"{s.mean:,.0f}"


def _fmt_num(s: "Stat | None", digits: int = 2) -> str:
    return "-" if s is None else f"{s.mean:.{digits}f}"


def table_columns(t: LeaderboardTable) -> list[str]:
    return (["model"] + [f"{m}" for m in t.metric_columns] + ["paper"] + list(COST_COLUMNS.values())
            + ["budget", "seeds"])


def table_cells(t: LeaderboardTable) -> list[list[str]]:
    """The displayed cells of each line (strings), in :func:`table_columns` order."""
    out = []
    for ln in t.lines:
        c = ln["costs"]
        out.append([ln["model"]] + [s.fmt() if (s := ln["metrics"][m]) else "-" for m in t.metric_columns]
                   + [f"{ln['paper']:.4f}" if ln["paper"] is not None else "-",
                      _fmt_int(c["params"]), _fmt_num(c["seconds_per_epoch"]), _fmt_num(c["eval_seconds"]),
                      _fmt_num(c["peak_memory_mb"], 0), _fmt_num(c["epochs"], 1), str(ln["max_epochs"]),
                      str(len(ln["seeds"]))])
    return out


def _md_table(header: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]


def to_markdown(tables: Sequence[LeaderboardTable], robustness: Sequence[RobustnessTable] = (),
                images: dict[str, str] | None = None, ablations: Sequence[AblationTable] = ()) -> str:
    """``LEADERBOARD.md``: each table with its dataset, fingerprint, protocol, commands and budget."""
    images = images or {}
    out = ["# kgzoo leaderboard", "",
           "Computed only from the result rows in `benchmarks/results/*.jsonl` (`kgzoo bench --leaderboard-only` "
           "rebuilds it). One table per dataset and fingerprint: numbers under different protocols, data files, "
           "metric code or KG ablations are never compared in one table. Test metrics of the best validation "
           "checkpoint, full ranking over all items with seen items masked; mean ± sample std over seeds. "
           "`paper`: the paper's number for the sorting metric where the model's config carries one.", ""]
    for t in tables:
        out += [f"## {t.title}", "",
                f"- sorted by: test {t.metric}",
                f"- protocol: `{_protocol_str(t.protocol)}`",
                f"- fingerprint: `{t.fingerprint}`",
                f"- epoch budget: {t.budget()}",
                "- command: " + ("; ".join(f"`{c}`" for c in t.commands) if t.commands else "(not recorded)"), ""]
        out += _md_table(table_columns(t), table_cells(t)) + [""]
        if t.fingerprint in images:
            out += [f"![{t.title}]({images[t.fingerprint]})", ""]
    for r in robustness:
        out += [f"## {r.title}", "", f"- protocol fingerprint: `{r.protocol_fingerprint}`", ""]
        body = [[ln["model"]] + [s.fmt() if (s := ln["values"][k]) else "-" for k in r.ablations] for ln in r.lines]
        out += _md_table(["model"] + r.ablations, body) + [""]
        if r.protocol_fingerprint in images:
            out += [f"![{r.title}]({images[r.protocol_fingerprint]})", ""]
    for a in ablations:
        out += [f"## {a.title}", "", f"- protocol fingerprint: `{a.protocol_fingerprint}`",
                "- command: " + ("; ".join(f"`{c}`" for c in a.commands) if a.commands else "(not recorded)"), ""]
        out += _md_table(*ablation_cells(a)) + [""]
    return "\n".join(out)


def _protocol_str(p: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in p.items()) if p else "?"


def write_csv(t: LeaderboardTable, path: str | Path) -> Path:
    """One CSV line per model: ``<metric>_mean``/``<metric>_std`` columns, paper, costs, seeds."""
    path = Path(path)
    header = (["dataset", "fingerprint", "task", "kg_ablation", "model", "seeds", "max_epochs"]
              + [f"{m}_{s}" for m in t.metric_columns for s in ("mean", "std")] + ["paper"] + list(COST_COLUMNS))
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for ln in t.lines:
            vals = []
            for m in t.metric_columns:
                s = ln["metrics"][m]
                vals += [s.mean, s.std] if s else ["", ""]
            w.writerow([t.dataset, t.fingerprint, t.task, t.kg_ablation, ln["model"], len(ln["seeds"]),
                        ln["max_epochs"]] + vals + ["" if ln["paper"] is None else ln["paper"]]
                       + [(ln["costs"][k].mean if ln["costs"][k] else "") for k in COST_COLUMNS])
    return path


def write_png(t: LeaderboardTable | RobustnessTable, path: str | Path) -> Path:
    """A bar chart of the main metric (error bars: std over seeds; grouped by ablation for robustness)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    models = [ln["model"] for ln in t.lines]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(models) + 2), 3.6))
    x = np.arange(len(models))
    if isinstance(t, LeaderboardTable):
        stats = [ln["metrics"][t.metric] for ln in t.lines]
        ax.bar(x, [s.mean if s else 0 for s in stats], yerr=[s.std if s else 0 for s in stats], capsize=3,
               color="tab:blue")
        paper = [ln["paper"] for ln in t.lines]
        if any(p is not None for p in paper):
            ax.scatter([i for i, p in enumerate(paper) if p is not None], [p for p in paper if p is not None],
                       marker="_", s=400, color="tab:red", label="paper", zorder=3)
            ax.legend()
    else:
        w = 0.8 / max(1, len(t.ablations))
        for j, k in enumerate(t.ablations):
            stats = [ln["values"][k] for ln in t.lines]
            ax.bar(x + (j - (len(t.ablations) - 1) / 2) * w, [s.mean if s else 0 for s in stats], w,
                   yerr=[s.std if s else 0 for s in stats], capsize=2, label=k)
        ax.legend(title="KG", fontsize=8)
    ax.set_xticks(x, models, rotation=30, ha="right")
    ax.set_ylabel(f"test {t.metric}")
    ax.set_title(t.title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def rich_tables(tables: Sequence[LeaderboardTable], robustness: Sequence[RobustnessTable] = (),
                ablations: Sequence[AblationTable] = ()) -> list[Any]:
    """The tables as :class:`rich.table.Table` objects (for ``Console.print``)."""
    from rich.table import Table

    out = []
    for t in tables:
        rt = Table(title=t.title, caption=f"sorted by test {t.metric}; {t.budget()}")
        for c in table_columns(t):
            rt.add_column(c, justify="left" if c == "model" else "right")
        for row in table_cells(t):
            rt.add_row(*row)
        out.append(rt)
    for r in robustness:
        rt = Table(title=r.title)
        for c in ["model"] + r.ablations:
            rt.add_column(c, justify="left" if c == "model" else "right")
        for ln in r.lines:
            rt.add_row(ln["model"], *[s.fmt() if (s := ln["values"][k]) else "-" for k in r.ablations])
        out.append(rt)
    for a in ablations:
        header, body = ablation_cells(a)
        rt = Table(title=a.title)
        for c in header:
            rt.add_column(c, justify="left" if c == "setting" else "right")
        for row in body:
            rt.add_row(*row)
        out.append(rt)
    return out


def write_leaderboard(rows: Iterable[dict[str, Any]], out_dir: str | Path, metric: str | None = None,
                      png: bool = True) -> dict[str, Any]:
    """Write ``LEADERBOARD.md``, ``leaderboard_<dataset>_<fp12>.csv`` / ``.png`` per table and
    ``robustness_<dataset>_<fp12>.png`` per robustness table into ``out_dir``.

    Returns:
        ``{"markdown": Path, "csv": [Path], "png": [Path], "tables": [...], "robustness": [...],
        "ablations": [...]}``.
    """
    rows = list(rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables, robust, ablations = build_tables(rows, metric), build_robustness(rows, metric), build_ablations(rows, metric)
    csvs, pngs, images = [], [], {}
    for t in tables:
        stem = f"leaderboard_{t.dataset}_{t.fingerprint[:12]}"
        csvs.append(write_csv(t, out / f"{stem}.csv"))
        if png and t.lines:
            pngs.append(write_png(t, out / f"{stem}.png"))
            images[t.fingerprint] = pngs[-1].name
    for r in robust:
        if png and r.lines:
            pngs.append(write_png(r, out / f"robustness_{r.dataset}_{r.protocol_fingerprint[:12]}.png"))
            images[r.protocol_fingerprint] = pngs[-1].name
    md = out / "LEADERBOARD.md"
    md.write_text(to_markdown(tables, robust, images, ablations) + "\n")
    return {"markdown": md, "csv": csvs, "png": pngs, "tables": tables, "robustness": robust, "ablations": ablations}
