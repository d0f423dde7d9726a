"""The ``kgzoo`` command: one module per command group, imported explicitly.

:data:`COMMANDS` is the table of subcommands; each names its module's argument function and
run function (nothing registers itself by being imported):

=============  ======================================================================
``data``       :mod:`kgzoo.cli.data`: ``data list``, ``data stats NAME|PATH``, ``data import PATH --name N``
``bench``      :mod:`kgzoo.bench.cli`: a benchmark grid and its leaderboard
``reproduce``  :mod:`kgzoo.bench.cli`: one model's full schedule beside the paper's numbers
``tune``       :mod:`kgzoo.cli.tune`: the equal-budget Optuna search of one model on one dataset
``fit``        :mod:`kgzoo.cli.lightning`: LightningCLI training (``--zoo MODEL/DATASET``)
``test``       :mod:`kgzoo.cli.lightning`: LightningCLI test of a checkpoint
``recommend``  :mod:`kgzoo.cli.hub`: top-K of a pretrained model for raw user ids
``pretrained`` :mod:`kgzoo.cli.pretrained`: the pretrained weights
``export``     :mod:`kgzoo.cli.hub`: every user's top-K (Parquet) and embeddings with raw ids
``update``     :mod:`kgzoo.cli.hub`: fold new interactions, triples, items and users into a checkpoint
=============  ======================================================================

Every subcommand takes ``--import MODULE_OR_FILE`` (repeatable): the module (a dotted name or
a path to a ``.py`` file) is imported before the command runs, together with the
``kgzoo.plugins`` entry points (:func:`kgzoo.registry.load_plugins`), so that a user's models,
datasets and fusion layers join a grid: ``kgzoo bench --import my_fusion.py --models kgplm
--variants base fusion=weighted``. ``--config-dir DIR`` (repeatable) adds a folder of zoo configs
over the packaged ones (:func:`add_config_dirs`).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .. import __version__
from ..console import console
from ..dist import is_rank_zero
from ..registry import PLUGIN_GROUP
from .options import take_option


class _Lazy:
    """A function of a command's module, imported when first called: building the parser of one
    command, or running it, imports that command's module only (``kgzoo --help`` imports none;
    ``kgzoo data list`` neither the models nor Lightning)."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args: Any) -> Any:
        return getattr(importlib.import_module(self.module), self.name)(*args)

    def __repr__(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class Command:
    """One subcommand: ``add_arguments(parser)`` declares its arguments, ``run(args)`` returns
    the exit code."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


_BENCH, _DATA, _HUB, _LIGHTNING, _TUNE = "kgzoo.bench.cli", "kgzoo.cli.data", "kgzoo.cli.hub", "kgzoo.cli.lightning", "kgzoo.cli.tune"

COMMANDS: tuple[Command, ...] = (
    Command("data", "dataset statistics and the catalogue", _Lazy(_DATA, "data_arguments"), _Lazy(_DATA, "data_command")),
    Command("bench", "run a benchmark grid (models x datasets x seeds x KG ablations) and build the leaderboard",
            _Lazy(_BENCH, "bench_args"), _Lazy(_BENCH, "bench_command")),
    Command("reproduce", "run a model's full schedule on a dataset over seeds, beside the paper's numbers",
            _Lazy(_BENCH, "reproduce_args"), _Lazy(_BENCH, "reproduce_command")),
    Command("tune", "tune a model's hyper-parameters on a dataset (Optuna, validation only, a fixed trial budget)",
            _Lazy(_TUNE, "tune_arguments"), _Lazy(_TUNE, "tune_command")),
    Command("fit", "train a model with Lightning's CLI (--zoo MODEL[/DATASET[@PROTOCOL]], or --model CLASS --data.dataset "
                   "NAME; --trainer.*)", _Lazy(_LIGHTNING, "passthrough_arguments"), _Lazy(_LIGHTNING, "fit_command")),
    Command("test", "test a checkpoint with Lightning's CLI (--ckpt_path PATH of a kgzoo checkpoint alone, "
                    "or --model CLASS --data.dataset NAME --ckpt_path PATH)",
            _Lazy(_LIGHTNING, "passthrough_arguments"), _Lazy(_LIGHTNING, "test_command")),
    Command("recommend", "top-K recommendations of a pretrained model for raw user ids",
            _Lazy(_HUB, "recommend_arguments"), _Lazy(_HUB, "recommend_command")),
    Command("pretrained", "list the pretrained weights", _Lazy("kgzoo.cli.pretrained", "pretrained_arguments"),
            _Lazy("kgzoo.cli.pretrained", "pretrained_command")),
    Command("export", "write top-K lists per user (Parquet) and embeddings (safetensors) with raw ids, from a "
                      "checkpoint or pretrained weights", _Lazy(_HUB, "export_arguments"), _Lazy(_HUB, "export_command")),
    Command("update", "fold new interactions, triples, items and users into a trained model without retraining it "
                      "(--model NAME_OR_CHECKPOINT --data NEW --out DIR [--epochs N]); writes a new checkpoint",
            _Lazy(_HUB, "update_arguments"), _Lazy(_HUB, "update_command")),
)
#: ``--import`` and the entry points, where there are any (:func:`kgzoo.cli.plugins.load_and_announce`)
_LOAD_PLUGINS = _Lazy("kgzoo.cli.plugins", "load_and_announce")


def _common_arguments() -> argparse.ArgumentParser:
    """The parent parser of every subcommand: ``--import MODULE_OR_FILE`` (repeatable)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE_OR_FILE",
                   help="import a module (dotted name) or a .py file before the command runs, so that the "
                        "models, datasets and fusion layers it registers join it (repeatable); the "
                        "'kgzoo.plugins' entry points are always imported")
    p.add_argument("--config-dir", dest="config_dirs", action="append", default=[], metavar="DIR",
                   help="a folder of zoo configs (<model>/<dataset>.yaml, <model>/default.yaml) over the packaged "
                        "ones and $KGZOO_CONFIG_DIR: a file there replaces the same file below it (repeatable; "
                        "the last wins)")
    return p


def add_config_dirs(dirs: list[str]) -> None:
    """Put ``dirs`` on top of the config folders of this process and its children (DDP ranks):
    appended to ``$KGZOO_CONFIG_DIR``, which :func:`kgzoo.paths.config_dirs` overlays on the
    packaged configs (a later folder wins).

    Raises:
        FileNotFoundError: a folder that does not exist (named).
    """
    paths = [Path(d).expanduser().resolve() for d in dirs]
    for given, p in zip(dirs, paths):
        if not p.is_dir():
            raise FileNotFoundError(f"--config-dir {given}: no such folder")
    if paths:
        old = os.environ.get("KGZOO_CONFIG_DIR", "")
        os.environ["KGZOO_CONFIG_DIR"] = os.pathsep.join([*([old] if old else []), *map(str, paths)])


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``kgzoo`` parser: one subparser per entry of :data:`COMMANDS`. Given the command line
    ``argv``, only the command it names gets its arguments (and its module imported): the others
    are listed with their help and never parse; ``None``: every command's arguments."""
    parser = argparse.ArgumentParser(prog="kgzoo", description="A model zoo for knowledge-graph recommendation.")
    parser.add_argument("--version", action="version", version=f"kgzoo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    common = _common_arguments()
    named = None if argv is None else next((a for a in argv if not a.startswith("-")), "")
    for c in COMMANDS:
        p = sub.add_parser(c.name, help=c.help, description=c.help, parents=[common])
        if named is None or named == c.name:
            c.add_arguments(p)
    return parser

def main(argv: list[str] | None = None) -> int:
    """Run ``kgzoo ARGV``; returns the exit code (2 on a KeyError, ValueError, FileNotFoundError
    or ImportError, printed as one line on stderr; 143, as a shell reports a process killed by
    SIGTERM, when Lightning stopped a fit or test on SIGTERM, which it does by a ``SystemExit``
    without a code, that is exit 0; 130 (SIGINT's) when it stopped one on Ctrl-C, which it does by
    ``sys.exit(1)`` while handling the ``KeyboardInterrupt``; either said on stderr by rank 0).
    ``--config-dir`` folders join ``$KGZOO_CONFIG_DIR`` for the command (and its DDP ranks) only:
    the variable is as it was when ``main`` returns, so a second call in the same process (a
    notebook, a test) does not read the first one's folders."""
    if argv is None:
        argv = sys.argv[1:]
    args = build_parser(argv).parse_args(argv)
    before_dirs = os.environ.get("KGZOO_CONFIG_DIR")
    try:
        return _run(args)
    finally:
        if before_dirs is None:
            os.environ.pop("KGZOO_CONFIG_DIR", None)
        else:
            os.environ["KGZOO_CONFIG_DIR"] = before_dirs


def _run(args: argparse.Namespace) -> int:
    """:func:`main` after parsing."""
    err = console(stderr=True)
    try:
        if hasattr(args, "lightning_args"):  # fit/test: --import and --config-dir travel inside LightningCLI's arguments
            more, args.lightning_args = take_option("--import", args.lightning_args)
            args.imports = [*args.imports, *more]
            dirs, args.lightning_args = take_option("--config-dir", args.lightning_args)
            args.config_dirs = [*args.config_dirs, *dirs]
        add_config_dirs(args.config_dirs)
        if args.imports or importlib.metadata.entry_points(group=PLUGIN_GROUP):
            _LOAD_PLUGINS(args.imports, err.print)
        by_name = {c.name: c for c in COMMANDS}
        return by_name[args.command].run(args)
    except (KeyError, ValueError, FileNotFoundError, ImportError) as e:
        err.print(f"[bold red]error:[/] {e.args[0] if isinstance(e, KeyError) and e.args else e}")
        return 2
    except SystemExit as e:
        # Lightning answers SIGTERM in a fit or test by raising SIGTERMException, a SystemExit without a
        # code: the process would exit 0, and a lane's script would take a killed grid for a finished one
        lightning_exceptions = sys.modules.get("lightning.pytorch.utilities.exceptions")  # (where Lightning ran)
        sigterm = getattr(lightning_exceptions, "SIGTERMException", None)  # (not in every lightning>=2.2)
        if sigterm is not None and isinstance(e, sigterm) and e.code is None:
            stopped_by("SIGTERM", err.print)
            return 128 + signal.SIGTERM
        # and Ctrl-C (SIGINT) by sys.exit(1) inside its `except KeyboardInterrupt`: the command ended
        # with 1 and no word
        if isinstance(e.__context__, KeyboardInterrupt) and e.code == 1:
            stopped_by("Ctrl-C (SIGINT)", err.print)
            return 128 + signal.SIGINT
        raise


def stopped_by(what: str, say: Callable[[str], None]) -> None:
    """Say once, on global rank 0 (:func:`kgzoo.dist.is_rank_zero`; every DDP rank gets the signal of a
    process group), that a fit or test was stopped by ``what`` and how a killed cell goes on."""
    if is_rank_zero():
        say(f"kgzoo: stopped by {what} (a cell killed mid-run goes on from its last saved epoch under --resume)")

