"""Subcommands ``kgzoo bench``, ``kgzoo reproduce``, ``kgzoo fit`` and ``kgzoo test``.

``bench`` and ``reproduce`` run grids (:mod:`kgzoo.bench.runner`) and build leaderboards
(:mod:`kgzoo.bench.leaderboard`). ``fit`` and ``test`` are Lightning's
:class:`~lightning.pytorch.cli.LightningCLI`: arguments come from the type hints of a
:class:`~kgzoo.models.base.Recommender` subclass (``--model``, subclass mode) and of
:class:`~kgzoo.data.datamodule.KGRecDataModule` (``--data.*``); the sizes of the
DataModule (users, items, entities, relations, task) are linked into the model on
instantiation::

    kgzoo fit --model kgzoo.models.lightgcn.LightGCN --data.dataset ml-100k-kg --trainer.max_epochs 2
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..cli import add_command
from ..models.base import SIZE_KEYS
from . import leaderboard as lb
from . import render
from .rows import ResultRow
from .runner import DEFAULT_BENCH_DIR, parse_assignments, read_rows, resolve_grid, results_path, run_grid


# ---------------------------------------------------------------------------- shared options
def _trainer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--devices", default="1", help="Trainer devices (an int, or 'auto'); default 1")
    p.add_argument("--strategy", default="auto", help="Trainer strategy ('ddp', ...); default auto")
    p.add_argument("--accelerator", default="cpu", help="Trainer accelerator ('cpu', 'gpu', 'auto'); default cpu")
    p.add_argument("--root", default=None, help="data root (default $KGZOO_DATA_DIR or the user cache)")
    p.add_argument("--runs", default="runs", help="where checkpoints and CSV logs go (default runs/)")
    p.add_argument("--resume", action="store_true",
                   help="skip cells already in the results file (same model, dataset, seed, KG ablation, variant, "
                        "data/protocol fingerprint and config)")
    p.add_argument("--metric", default=None,
                   help="validation metric for model selection and the leaderboard's sort (default ndcg@10 / auc)")


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


def _console() -> Any:
    from rich.console import Console

    con = Console()
    return con if con.is_terminal else Console(width=200)


# ---------------------------------------------------------------------------- bench
def _bench_args(p: argparse.ArgumentParser) -> None:
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
                   help="the config's `bench` schedule (the default when --epochs is not given)")
    p.add_argument("--full", action="store_true", help="the config's full `train` schedule instead of `bench`")
    p.add_argument("--name", default="bench", help="results file name: <results>/<name>.jsonl (default bench)")
    p.add_argument("--results", default=None,
                   help="results file (.jsonl) or folder (default benchmarks/results/)")
    p.add_argument("--leaderboard-dir", default=None,
                   help="where LEADERBOARD.md, tables/ (CSV) and figures/ (PNG) go, cleared and rebuilt "
                        "(default: benchmarks/leaderboard/ for the default results folder, else <results>/leaderboard/)")
    p.add_argument("--leaderboard-only", action="store_true", help="rebuild the leaderboard from existing rows")
    p.add_argument("--no-png", action="store_true", help="skip the PNG charts")
    _trainer_args(p)


def _leaderboard_dir(results: Path, given: str | None) -> Path:
    if given is not None:
        return Path(given)
    return (results.parent.parent if results.parent.name == "results" else results.parent) / "leaderboard"


def build_leaderboard(results: Path, out_dir: Path, metric: str | None = None, png: bool = True,
                      show: bool = True) -> dict[str, Any]:
    """Rebuild the leaderboard of every ``*.jsonl`` beside ``results`` into ``out_dir``."""
    files = sorted(results.parent.glob("*.jsonl")) if results.parent.is_dir() else []
    if results.is_file() and results not in files:
        files.append(results)
    rows = [ResultRow.from_dict(r, where=str(f)) for f in files for r in read_rows(f)]
    if not rows:
        raise FileNotFoundError(f"no result rows in {results.parent} (run `kgzoo bench` first)")
    out = render.write_leaderboard(rows, out_dir, metric=metric, png=png)
    if show:
        con = _console()
        for t in render.rich_tables(out["leaderboard"]):
            con.print(t)
        con.print(f"leaderboard: {out['markdown']} ({len(out['csv'])} CSV, {len(out['png'])} PNG) "
                  f"from {len(rows)} rows in {len(files)} file(s)")
    return out


def quiet_lightning() -> None:
    """Keep Lightning's per-Trainer banners (accelerator, tips, checkpoint restores) out of a
    grid's output; warnings and errors still show."""
    import logging

    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)


def bench_command(args: argparse.Namespace) -> int:
    from .runner import is_rank_zero

    quiet_lightning()
    results = results_path(args.results, args.name)
    lb_dir = _leaderboard_dir(results, args.leaderboard_dir)
    if args.leaderboard_only:
        build_leaderboard(results, lb_dir, args.metric, png=not args.no_png)
        return 0
    if args.full and (args.quick or args.epochs is not None):
        raise ValueError("--full cannot be combined with --quick or --epochs")
    devices = _devices(args.devices)
    cells = resolve_grid(args.models, args.datasets, args.seeds, args.kg_ablation, metric=args.metric,
                         epochs=args.epochs, variants=args.variants, protocol=",".join(args.protocol))
    quick = args.quick or (args.epochs is None and not args.full)
    report = run_grid(cells, results, epochs=args.epochs, quick=quick, resume=args.resume, metric=args.metric,
                      devices=devices, strategy=args.strategy, accelerator=args.accelerator, root=args.root,
                      out_dir=args.runs, log=_console().print)
    if is_rank_zero():
        build_leaderboard(results, lb_dir, args.metric, png=not args.no_png)
        _console().print(f"total: {report.seconds:.1f} s for {len(cells)} cells")
    return 1 if report.failed else 0


# ---------------------------------------------------------------------------- reproduce
def _reproduce_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a registered model name")
    p.add_argument("dataset", help="a catalogue dataset name")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (default 0 1 2)")
    p.add_argument("--epochs", type=int, default=None, help="override max_epochs (default: the config's `train`)")
    p.add_argument("--results", default=None,
                   help="results file or folder (default benchmarks/results/reproduce-MODEL-DATASET.jsonl)")
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
    def text(v: Any) -> str:  # YAML scalars, as parse_assignments reads them back
        return "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)

    return ",".join(f"{k}={text(v)}" for k, v in sorted(proto.items()))


def reproduce_table(rows: list[dict[str, Any]], paper: dict[str, Any], main_metric: str) -> tuple[list[str], list[list[str]]]:
    """Header and lines of ours (mean ± std over seeds) beside the paper's numbers.

    Metrics: the paper's, then the main metric, then the recall/NDCG columns of the task.
    """
    ok = lb.latest_ok_rows([r if isinstance(r, ResultRow) else ResultRow.from_dict(r) for r in rows], by_schedule=False)
    task = ok[0].task if ok else "topk"
    names = list((paper.get("metrics") or {}).keys())
    for m in lb.metric_columns(task, main_metric):
        if m not in names:
            names.append(m)
    body = []
    for m in names:
        s = lb.Stat.of(r.metrics.get(f"test/{m}") for r in ok)
        p = (paper.get("metrics") or {}).get(m)
        diff = f"{s.mean - float(p):+.4f}" if (s is not None and isinstance(p, (int, float))) else "-"
        body.append([m, s.fmt() if s else "-", f"{float(p):.4f}" if isinstance(p, (int, float)) else "-", diff,
                     str(s.n if s else 0)])
    return ["metric", "ours (mean ± std)", "paper", "ours - paper", "seeds"], body


def reproduce_command(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..config import ZooConfig
    from .runner import is_rank_zero

    quiet_lightning()
    cfg = ZooConfig.load(args.model, args.dataset)
    numbers, _, note = cfg.paper_numbers(args.dataset)  # and on which dataset the paper measured them
    paper = {**cfg.paper, "metrics": numbers, "source": note}
    paper_proto = paper_protocol(paper)
    protocol = paper_proto if args.protocol is None else ",".join(args.protocol)
    cells = resolve_grid([args.model], [args.dataset], args.seeds, ["real"], metric=args.metric, epochs=args.epochs,
                         protocol=protocol)
    if {c.model for c in cells} != {args.model} or {c.dataset for c in cells} != {args.dataset}:
        raise ValueError("reproduce takes one model name and one dataset name, not patterns")
    results = results_path(args.results, f"reproduce-{args.model}-{args.dataset}")
    report = run_grid(cells, results, epochs=args.epochs, quick=False, resume=args.resume, metric=args.metric,
                      devices=_devices(args.devices), strategy=args.strategy, accelerator=args.accelerator,
                      root=args.root, out_dir=args.runs, log=_console().print)
    if not is_rank_zero():
        return 0
    from .runner import cell_fingerprint

    fps = {cell_fingerprint(c, args.root)[0] for c in cells}  # this run's cells, resumed ones included
    rows = [r for r in read_rows(results) if r.get("fingerprint") in fps and r.get("model") == args.model
            and r.get("seed") in args.seeds and r.get("variant", "base") == "base"]
    main = args.metric or (rows[0].get("main_metric") if rows else None) or "ndcg@10"
    header, body = reproduce_table(rows, paper, main)
    t = Table(title=f"reproduce {args.model} on {args.dataset}",
              caption=f"paper: {paper.get('source', 'no paper numbers in the config')}"
                      + (f"; protocol {protocol}" if protocol else "")
                      + ("" if parse_assignments(protocol)[1] == parse_assignments(paper_proto)[1]
                         else " (not the paper's protocol: its numbers are for reference only)")
                      + f"; rows in {results}")
    for c in header:
        t.add_column(c, justify="left" if c == "metric" else "right")
    for line in body:
        t.add_row(*line)
    _console().print(t)
    return 1 if report.failed else 0


# ---------------------------------------------------------------------------- LightningCLI


def _size(key: str, datamodule: Any) -> Any:
    return datamodule.model_kwargs()[key]


def make_lightning_cli(args: list[str], run: bool = True) -> Any:
    """Lightning's CLI over :class:`Recommender` subclasses and :class:`KGRecDataModule`.

    ``args`` are the command line after ``kgzoo`` (``["fit", "--model", ...]``).
    """
    import functools

    from lightning.pytorch.cli import LightningCLI

    from .. import models  # noqa: F401  (registers every Recommender subclass for --model NAME)
    from ..data.datamodule import KGRecDataModule
    from ..models.base import Recommender

    class KGZooCLI(LightningCLI):
        def add_arguments_to_parser(self, parser: Any) -> None:
            for k in SIZE_KEYS:
                parser.link_arguments("data", f"model.init_args.{k}", compute_fn=functools.partial(_size, k),
                                      apply_on="instantiate")

        def _kg_batches(self) -> None:
            # as kgzoo.create_model: the DataModule adapts to the model, the model takes its graphs
            # the model's task chooses its DataModule (KG link prediction: a triple split)
            from ..api import attach, create_datamodule_for

            self.datamodule = create_datamodule_for(self.model, self.datamodule)
            attach(self.model, self.datamodule)

        def before_fit(self) -> None:
            self._kg_batches()

        def before_test(self) -> None:
            self._kg_batches()

        def before_validate(self) -> None:
            self._kg_batches()

    return KGZooCLI(Recommender, KGRecDataModule, subclass_mode_model=True, subclass_mode_data=False,
                    args=args, run=run, save_config_kwargs={"overwrite": True},
                    parser_kwargs={"prog": "kgzoo"})


def zoo_cli_config(spec: str) -> dict[str, Any]:
    """A LightningCLI config from ``zoo_configs/``: ``spec`` is ``MODEL`` or ``MODEL/DATASET``
    (default dataset ``ml-100k-kg``): the model class with its config's ``model`` section,
    the DataModule with ``data``, and the Trainer's ``max_epochs`` from ``train``.

    Raises:
        KeyError: unknown model or dataset (with suggestions).
    """
    from ..config import ZooConfig
    from ..data.datasets import dataset_spec
    from ..registry import MODELS
    from .. import models  # noqa: F401

    model, _, dataset = spec.partition("/")
    dataset = dataset or "ml-100k-kg"
    cls = MODELS.get(model)
    dataset_spec(dataset)
    cfg = ZooConfig.load(model, dataset)
    out: dict[str, Any] = {"model": {"class_path": f"{cls.__module__}.{cls.__qualname__}",
                                     "init_args": dict(cfg.model)},
                           "data": {"dataset": dataset, **cfg.data}}
    if "max_epochs" in cfg.train:
        out["trainer"] = {"max_epochs": cfg.schedule().max_epochs}
    return out


def _with_zoo_config(args: list[str]) -> tuple[list[str], str | None]:
    """Replace ``--zoo SPEC`` in ``args`` by ``--config FILE`` (first, so later arguments override it)."""
    import tempfile

    import yaml

    for i, a in enumerate(args):
        if a == "--zoo" or a.startswith("--zoo="):
            spec = a.split("=", 1)[1] if "=" in a else args[i + 1]
            rest = args[:i] + args[i + (1 if "=" in a else 2):]
            fd, path = tempfile.mkstemp(prefix="kgzoo-cli-", suffix=".yaml")
            with open(fd, "w") as f:
                yaml.safe_dump(zoo_cli_config(spec), f)
            return ["--config", path, *rest], path
    return args, None


def _passthrough_args(p: argparse.ArgumentParser) -> None:
    # every argument, options and --help included, goes to LightningCLI untouched
    p.prefix_chars = "\x00"
    p.add_argument("lightning_args", nargs=argparse.REMAINDER,
                   help="LightningCLI arguments: --model, --data.*, --trainer.*, --ckpt_path, --config; "
                        "--zoo MODEL[/DATASET] starts from that model's zoo_configs/ file")


def _lightning_command(sub: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        import warnings

        cli_args, tmp = _with_zoo_config(list(args.lightning_args))
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
                make_lightning_cli([sub, *cli_args])
        finally:
            if tmp:
                os.unlink(tmp)
        return 0

    return run


add_command("bench", "run a benchmark grid (models x datasets x seeds x KG ablations) and build the leaderboard",
            _bench_args, bench_command)
add_command("reproduce", "run a model's full schedule on a dataset over seeds, beside the paper's numbers",
            _reproduce_args, reproduce_command)
add_command("fit", "train a model with Lightning's CLI (--zoo MODEL/DATASET, or --model CLASS --data.dataset NAME; "
                   "--trainer.*)",
            _passthrough_args, _lightning_command("fit"))
add_command("test", "test a checkpoint with Lightning's CLI (--model CLASS --data.dataset NAME --ckpt_path PATH)",
            _passthrough_args, _lightning_command("test"))

__all__ = ["DEFAULT_BENCH_DIR", "bench_command", "build_leaderboard", "make_lightning_cli", "reproduce_command",
           "reproduce_table"]
