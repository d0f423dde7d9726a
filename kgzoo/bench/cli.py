"""Subcommands ``kgzoo bench`` and ``kgzoo reproduce`` (listed in :data:`kgzoo.cli.COMMANDS`).

Both run grids (:mod:`kgzoo.bench.runner`) and build leaderboards (:mod:`kgzoo.bench.leaderboard`).
``kgzoo fit`` / ``kgzoo test`` are in :mod:`kgzoo.cli.lightning`.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from rich.markup import escape

from ..config import ZooConfig, parse_assignments
from ..dist import is_rank_zero
from ..paths import cache_dir, committed_leaderboard_dir, committed_results_dir, published_results_dir, shown_path
from ..quiet import quiet_lightning
from ..tasks import get_task
from .cells import cell_fingerprint, resolve_grid, scalar_text
from .experiment import bench_strategy
from ..console import console
from .render import rich_run_table, write_leaderboard
from .rows import ResultRow, dump_row, read_folder, read_rows
from .runner import run_grid


# ---------------------------------------------------------------------------- shared options
#: the committed rows as --help names them: the checkout's (:func:`kgzoo.paths.committed_results_dir`),
#: whatever the working directory
COMMITTED_HELP = "the checkout's benchmarks/results"
#: the committed leaderboard as --help names it (:func:`kgzoo.paths.committed_leaderboard_dir`)
LEADERBOARD_HELP = "the checkout's benchmarks/leaderboard"
#: where run folders go without --runs, as --help says it
RUNS_HELP = "$KGZOO_HOME/runs or $XDG_CACHE_HOME/kgzoo/runs (~/.cache/kgzoo/runs)"


def default_run_folder() -> Path:
    """``<kgzoo.paths.cache_dir("runs")>/<UTC timestamp>``: a fresh folder per command, outside
    any checkout (the user cache; ``$KGZOO_HOME/runs`` when set)."""
    return cache_dir("runs") / time.strftime("%Y%m%d-%H%M%S", time.gmtime())


def run_folder_for(runs: str | None, results: str | None, name: str, resume: bool) -> Path:
    """The run folder of a ``kgzoo bench``/``reproduce`` command: ``--runs`` where given; with
    ``--resume`` and ``--results``, one folder per results file name
    (``<cache runs>/resume/<file stem>``: the same for every checkout, so a lane rerun from a new
    worktree finds the resume points that its killed run left in its cells' folders,
    :class:`~kgzoo.bench.experiment.ResumePoint`; a point is taken only by a run of the same cell,
    code, hyper-parameters, data and schedule); else a fresh :func:`default_run_folder`.

    Raises:
        ValueError: a ``name`` that is no plain file name (:func:`results_path`).
    """
    if runs:
        return Path(runs)
    if resume and results:
        return cache_dir("runs") / "resume" / results_path(results, name).stem
    return default_run_folder()


def _trainer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--devices", default="1", help="Trainer devices (an int, or 'auto'); default 1")
    p.add_argument("--strategy", default="auto", help="Trainer strategy ('ddp', ...); default auto")
    p.add_argument("--num-nodes", type=int, default=1, dest="num_nodes", help="Trainer num_nodes; default 1")
    p.add_argument("--accelerator", default="cpu", help="Trainer accelerator ('cpu', 'gpu', 'auto'); default cpu")
    p.add_argument("--root", default=None, help="data root (default $KGZOO_DATA_DIR or the user cache)")
    p.add_argument("--runs", default=None,
                   help=f"the run folder: rows (unless --results), checkpoints and CSV logs (default "
                        f"<UTC timestamp>/ under {RUNS_HELP}, outside the checkout)")
    p.add_argument("--resume", action="store_true",
                   help="skip cells already in the results file with the same cell key (model, dataset, seed, KG "
                        "ablation, variant, fingerprint, devices, strategy, nodes), config sha and code hash, and go "
                        "on with a killed cell from the last epoch it saved (same row as uninterrupted); with "
                        "--results and no --runs, the run folder is one per results file name (<runs cache>/resume/NAME)")
    p.add_argument("--metric", default=None,
                   help="validation metric for model selection and early stopping (default: the task's main metric)")


def _devices(v: str) -> int | str:
    try:
        n = int(v)
    except ValueError:
        if v != "auto":
            raise ValueError(f"--devices {v!r}: expected a positive integer or 'auto'") from None
        return v
    if n < 1:
        raise ValueError(f"--devices {n}: expected a positive integer or 'auto'")
    return n


def _same(a: Path | None, b: Path | None) -> bool:
    return a is not None and b is not None and a.resolve() == b.resolve()


def leaderboard_dir(results: str | Path, given: str | Path | None = None) -> Path:
    """Where ``kgzoo bench --leaderboard-only`` writes: ``given`` (``--leaderboard-dir``, relative to
    the working directory as typed), else the checkout's ``benchmarks/leaderboard`` for the
    committed rows (:func:`kgzoo.paths.committed_results_dir`, from any working directory), else a
    ``leaderboard/`` folder beside the rows (``results/leaderboard`` for a folder, the file's
    folder's for a ``.jsonl``): rows of one's own never replace the committed leaderboard."""
    if given is not None:
        return Path(given)
    p = Path(results)
    if _same(p, committed_results_dir()) and committed_leaderboard_dir() is not None:
        return committed_leaderboard_dir()
    return (p.parent if p.suffix == ".jsonl" else p) / "leaderboard"


def results_path(results: str | Path, name: str) -> Path:
    """The results file: ``results`` if it names a ``.jsonl`` file, else ``results/<name>.jsonl``.

    Raises:
        ValueError: a ``name`` that is no plain file name (a path separator, ``..``: ``--name
        ../x`` wrote beside the results folder instead of in it).
    """
    if not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"--name {name!r}: a file name without a folder (the rows go to <results>/<name>.jsonl; "
                         "--results DIR or FILE.jsonl says where)")
    p = Path(results)
    if p.suffix == ".jsonl" or p.is_file():
        return p
    return p / f"{name}.jsonl"


def _live(con: Any) -> Any:
    """A function giving, per cell, a transient rich progress line (spinner, text, elapsed time)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    @contextlib.contextmanager
    def live(text: str) -> Iterator[None]:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=con,
                      transient=True) as progress:
            progress.add_task(text, total=None)
            yield

    return live


# ---------------------------------------------------------------------------- bench
def bench_args(p: argparse.ArgumentParser) -> None:
    """The arguments of ``kgzoo bench``."""
    p.description = (f"Run a benchmark grid and print this run's table, each row beside the committed reference "
                     f"value of the same fingerprint. Rows, checkpoints and logs go to a run folder "
                     f"(<UTC timestamp>/ under {RUNS_HELP}) unless --runs/--results say otherwise; only "
                     f"an explicit --results naming {COMMITTED_HELP} writes the committed rows. Relative paths "
                     "given are relative to the working directory; the paths printed are absolute.")
    p.add_argument("--models", nargs="+", default=["*"], help="model name patterns (default '*': every model)")
    p.add_argument("--datasets", nargs="+", default=["ml-100k-kg"], help="dataset name patterns (default ml-100k-kg)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds (default 0)")
    p.add_argument("--kg-ablation", nargs="+", default=["real"], dest="kg_ablation",
                   help="KG ablations to sweep: real shuffled none noisy:P (default real)")
    p.add_argument("--variants", nargs="+", default=["base"],
                   help="hyper-parameter variants to sweep: 'base' (the zoo config) or key=value[,key=value] "
                        "over it, e.g. use_kg=false use_text=false (default base)")
    p.add_argument("--protocol", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="protocol fields over each dataset's default, e.g. split=cold_item (cold-start items)")
    p.add_argument("--epochs", type=int, default=None, help="max_epochs for every cell (default: the config's)")
    p.add_argument("--quick", action="store_true",
                   help="the config's quick `bench` schedule (the default when --epochs is not given)")
    p.add_argument("--full", action="store_true",
                   help="the config's converged `train` schedule (early stopping) instead of the quick one")
    p.add_argument("--name", default="bench", help="results file name: <results>/<name>.jsonl (default bench)")
    p.add_argument("--results", default=None,
                   help=f"results file (.jsonl) or folder (default: the run folder; {COMMITTED_HELP} holds the "
                        "committed rows)")
    p.add_argument("--reference", default=None,
                   help=f"folder of the reference rows shown beside this run's (default {COMMITTED_HELP}, from any "
                        "working directory; an installed kgzoo: the published rows it ships)")
    p.add_argument("--leaderboard-dir", default=None,
                   help=f"where --leaderboard-only writes (default: {LEADERBOARD_HELP} for the committed rows, else "
                        "a leaderboard/ folder beside the --results rows)")
    p.add_argument("--leaderboard-only", action="store_true",
                   help=f"rebuild the leaderboard from the rows in --results (default {COMMITTED_HELP}, from any "
                        "working directory), run nothing")
    p.add_argument("--no-png", action="store_true", help="skip the PNG charts (--leaderboard-only)")
    p.add_argument("--with-published", action="store_true",
                   help="--leaderboard-only: kgzoo's published rows (shipped with it) beside those of --results, so "
                        "a model of one's own joins the baselines' tables under the same fingerprints")
    _trainer_args(p)


def build_leaderboard(results: str | Path, out_dir: str | Path, metric: str | None = None, png: bool = True,
                      show: bool = True, published: str | Path | None = None) -> dict[str, Any]:
    """Rebuild the leaderboard in ``out_dir`` from every row of the results folder ``results``
    (or of the one file it names) by :func:`kgzoo.bench.render.write_leaderboard`, with the rows
    of the folder ``published`` beside them (``--with-published``:
    :func:`kgzoo.paths.published_results_dir`; a row in both counted once).

    Raises:
        FileNotFoundError: a ``results`` that is not there (named as such), no rows in it, or a
            ``published`` folder that is not there.
    """
    p = Path(results)
    if not p.exists():  # a typo'd folder: not "run kgzoo bench --results <the typo> first"
        raise FileNotFoundError(f"--results {p}: no such {'file' if p.suffix == '.jsonl' else 'folder'} "
                                f"({p.resolve()}); give the folder (or .jsonl file) `kgzoo bench --results` wrote")
    rows = read_rows(p) if p.suffix == ".jsonl" else read_folder(p)
    if not rows:
        raise FileNotFoundError(f"no result rows in {p} (run `kgzoo bench --results {p}` first)")
    source = shown_path(p) + ("" if p.suffix == ".jsonl" else "/*.jsonl")
    counted = f"{len(rows)} rows in {source}"
    if published is not None:
        q = Path(published)
        if not q.is_dir():
            raise FileNotFoundError(f"--with-published: no published rows at {q}")
        if q.resolve() != (p.parent if p.suffix == ".jsonl" else p).resolve():
            own = {dump_row(r) for r in rows}
            theirs = [r for r in read_folder(q) if dump_row(r) not in own]
            rows += theirs
            source += f" and the published rows ({shown_path(q)}/*.jsonl)"
            counted += f" and {len(theirs)} published rows ({shown_path(q)}/*.jsonl)"
    out = write_leaderboard(rows, out_dir, metric=metric, png=png, source=source)
    if show:
        console().print(f"leaderboard: {Path(out['markdown']).resolve()} ({len(out['csv'])} CSV, {len(out['png'])} "
                        f"PNG) from {counted}")
    return out


def bench_command(args: argparse.Namespace) -> int:
    """``kgzoo bench``: run the grid, print this run's table; or ``--leaderboard-only``."""
    quiet_lightning()
    if args.leaderboard_only:
        rows = args.results or committed_results_dir()
        if rows is None:
            raise FileNotFoundError("kgzoo bench --leaderboard-only: this kgzoo is installed, without committed rows: "
                                    "give --results DIR (a folder of result rows, or one .jsonl file), and "
                                    "--with-published to put kgzoo's published rows beside them")
        published = None
        if args.with_published:
            published = published_results_dir()
            if published is None:
                raise FileNotFoundError("kgzoo bench --with-published: this kgzoo has no published rows "
                                        "(neither a checkout's benchmarks/results nor kgzoo/published)")
        build_leaderboard(rows, leaderboard_dir(rows, args.leaderboard_dir), args.metric, png=not args.no_png,
                          published=published)
        return 0
    if args.with_published:
        raise ValueError("--with-published goes with --leaderboard-only")
    if args.full and (args.quick or args.epochs is not None):
        raise ValueError("--full cannot be combined with --quick or --epochs")
    devices = _devices(args.devices)
    strategy = bench_strategy(args.strategy, devices, args.num_nodes)  # one line before any cell, not a failed row each
    left_out: list[str] = []
    cells = resolve_grid(args.models, args.datasets, args.seeds, args.kg_ablation, metric=args.metric,
                         epochs=args.epochs, variants=args.variants, protocol=",".join(args.protocol),
                         left_out=left_out)
    for line in left_out:  # a wildcard's models that cannot run on a dataset: said, not run
        console().print(f"left out: {escape(line)}")
    quick = args.quick or (args.epochs is None and not args.full)
    run_folder = run_folder_for(args.runs, args.results, args.name, args.resume)
    results = results_path(args.results or run_folder, args.name)
    ref = Path(args.reference) if args.reference is not None else published_results_dir()
    reference = read_folder(ref) if ref is not None else []
    con = console()
    if ref is None or not ref.is_dir():  # an installed kgzoo has no committed rows; a --reference that is no folder
        con.print("no committed rows to compare with: "
                  + ("this kgzoo has no published rows" if ref is None else f"{ref.resolve()} is no folder")
                  + " (give --reference DIR); the committed column and the time estimates stay empty")
    report = run_grid(cells, results, epochs=args.epochs, quick=quick, resume=args.resume, metric=args.metric,
                      devices=devices, strategy=strategy, num_nodes=args.num_nodes,
                      accelerator=args.accelerator, root=args.root, out_dir=run_folder, log=con.print,
                      live=_live(con) if con.is_terminal else None, history=reference)
    if is_rank_zero():
        con.print(rich_run_table(report.rows, reference))
        con.print(f"total: {report.seconds:.1f} s for {len(cells)} cells; rows in {results.resolve()}, checkpoints "
                  f"and logs in {run_folder.resolve()}")
        if _same(results.parent, committed_results_dir()):
            con.print(f"committed rows changed: `kgzoo bench --leaderboard-only` rebuilds {committed_leaderboard_dir()}/")
    return 1 if report.failed else 0


# ---------------------------------------------------------------------------- reproduce
def reproduce_args(p: argparse.ArgumentParser) -> None:
    """The arguments of ``kgzoo reproduce``."""
    p.add_argument("model", help="a registered model name")
    p.add_argument("dataset", help="a catalogue dataset name")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (default 0 1 2)")
    p.add_argument("--epochs", type=int, default=None, help="override max_epochs (default: the config's `train`)")
    p.add_argument("--results", default=None,
                   help=f"results file or folder (default: the run folder; {COMMITTED_HELP} holds the committed "
                        "rows, as reproduce-MODEL-DATASET.jsonl)")
    p.add_argument("--protocol", nargs="*", default=None, metavar="FIELD=VALUE",
                   help="protocol fields over the dataset's default (default: the config's paper.protocol, "
                        "the paper's own rules, e.g. require_train_positive=true for RippleNet)")
    _trainer_args(p)


def paper_protocol(paper: dict[str, Any]) -> str:
    """The ``paper.protocol`` mapping of a config (protocol fields the paper's code sets
    differently from the dataset's default) as ``"k=v,..."`` for :func:`resolve_grid`.

    Raises:
        ValueError: ``paper.protocol`` is not a mapping of scalars.
    """
    proto = paper.get("protocol") or {}
    if not isinstance(proto, dict) or any(isinstance(v, (dict, list)) for v in proto.values()):
        raise ValueError(f"paper.protocol must map protocol fields to scalars, got {proto!r}")
    return ",".join(f"{k}={scalar_text(v)}" for k, v in sorted(proto.items()))


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for one value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def reproduce_table(rows: Sequence[ResultRow], paper: dict[str, Any],
                    main_metric: str) -> tuple[list[str], list[list[str]]]:
    """Header and lines of ours (mean ± std over seeds, the latest successful row per seed)
    beside the paper's numbers (``paper.metrics``).

    Metrics: the paper's, then the main metric, then the task's leaderboard columns
    (:data:`kgzoo.tasks.TASKS`).
    """
    latest: dict[int, ResultRow] = {}
    for r in sorted((r for r in rows if r.status == "ok"), key=lambda r: r.written_at):
        latest[r.seed] = r
    ok = list(latest.values())
    names = list((paper.get("metrics") or {}).keys())
    columns = get_task(ok[0].task).leaderboard_columns if ok else ()
    for m in [main_metric, *columns]:
        if m not in names:
            names.append(m)
    body = []
    for m in names:
        values = [r.metrics[f"test/{m}"] for r in ok if f"test/{m}" in r.metrics]
        p = (paper.get("metrics") or {}).get(m)
        ours = _mean_std(values) if values else None
        diff = f"{ours[0] - float(p):+.4f}" if (ours is not None and isinstance(p, (int, float))) else "-"
        body.append([m, f"{ours[0]:.4f} ± {ours[1]:.4f}" if ours else "-",
                     f"{float(p):.4f}" if isinstance(p, (int, float)) else "-", diff, str(len(values))])
    return ["metric", "ours (mean ± std)", "paper", "ours - paper", "seeds"], body


def reproduce_command(args: argparse.Namespace) -> int:
    """``kgzoo reproduce MODEL DATASET``: the config's full schedule over seeds, beside the paper's numbers."""
    from rich.table import Table

    quiet_lightning()
    cfg = ZooConfig.load(args.model, args.dataset)
    numbers, _, note = cfg.paper_numbers(args.dataset)  # and on which dataset the paper measured them
    paper = {**cfg.paper, "metrics": numbers, "source": note}
    paper_proto = paper_protocol(paper)
    protocol = paper_proto if args.protocol is None else ",".join(args.protocol)
    strategy = bench_strategy(args.strategy, _devices(args.devices), args.num_nodes)
    cells = resolve_grid([args.model], [args.dataset], args.seeds, ["real"], metric=args.metric, epochs=args.epochs,
                         protocol=protocol)
    if {c.model for c in cells} != {args.model} or {c.dataset for c in cells} != {args.dataset}:
        raise ValueError("reproduce takes one model name and one dataset name, not patterns")
    name = f"reproduce-{args.model}-{args.dataset}"
    run_folder = run_folder_for(args.runs, args.results, name, args.resume)
    results = results_path(args.results or run_folder, name)
    con = console()
    report = run_grid(cells, results, epochs=args.epochs, quick=False, resume=args.resume, metric=args.metric,
                      devices=_devices(args.devices), strategy=strategy, num_nodes=args.num_nodes,
                      accelerator=args.accelerator, root=args.root, out_dir=run_folder, log=con.print,
                      live=_live(con) if con.is_terminal else None)
    if not is_rank_zero():
        return 0
    fps = {cell_fingerprint(c, args.root)[0] for c in cells}  # this run's cells, resumed ones included
    rows = [r for r in read_rows(results) if (r.cell_fingerprint or r.fingerprint) in fps and r.model == args.model
            and r.seed in args.seeds and r.variant == "base"]
    main = args.metric or (rows[0].main_metric if rows else None) or "ndcg@10"
    header, body = reproduce_table(rows, paper, main)
    t = Table(title=f"reproduce {args.model} on {args.dataset}",
              caption=f"paper: {paper.get('source', 'no paper numbers in the config')}"
                      + (f"; protocol {protocol}" if protocol else "")
                      + ("" if parse_assignments(protocol)[1] == parse_assignments(paper_proto)[1]
                         else " (not the paper's protocol: its numbers are for reference only)")
                      + f"; rows in {results.resolve()}")
    for c in header:
        t.add_column(c, justify="left" if c == "metric" else "right")
    for line in body:
        t.add_row(*line)
    con.print(t)
    return 1 if report.failed else 0


__all__ = ["bench_args", "bench_command", "build_leaderboard", "leaderboard_dir", "reproduce_command",
           "reproduce_args", "reproduce_table"]
