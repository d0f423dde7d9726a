"""The ``kgzoo`` command.

Subcommands: ``data stats NAME``, ``data list``; further ones register in :data:`COMMANDS`.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from rich.console import Console
from rich.table import Table

#: name -> (help, add_arguments(parser), run(args) -> exit code)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def add_command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                run: Callable[[argparse.Namespace], int]) -> None:
    """Register subcommand ``name``: ``add_arguments(parser)`` then ``run(args) -> exit code``."""
    COMMANDS[name] = (help, add_arguments, run)


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["stats", "list"], help="stats: statistics and cleaning report; list: the catalogue")
    p.add_argument("name", nargs="?", default="ml-100k-kg", help="dataset name (default ml-100k-kg)")
    p.add_argument("--root", default=None, help="data root (default $KGZOO_DATA_DIR or the user cache)")


def data_command(args: argparse.Namespace) -> int:
    from .data.datasets import dataset_spec, list_datasets, load_data

    console = Console()
    if args.action == "list":
        table = Table(title="kgzoo datasets")
        for c in ("name", "domain", "default protocol", "licence"):
            table.add_column(c)
        for n in list_datasets():
            s = dataset_spec(n)
            table.add_row(n, s.domain, f"{s.protocol.task}/{s.protocol.split}", s.licence.split(".")[0])
        console.print(table)
        return 0
    data = load_data(args.name, args.root)
    st = data.stats()
    table = Table(title=f"{args.name}: statistics")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for k in ("users", "items", "interactions", "positives", "density", "entities", "kg_entities", "relations",
              "triples", "linked_items", "social", "text_coverage"):
        v = st[k]
        table.add_row(k, f"{v:.4%}" if k in ("density", "text_coverage") else f"{v:,}")
    table.add_row("user features", ", ".join(st["user_features"]) or "-")
    table.add_row("item features", ", ".join(st["item_features"]) or "-")
    console.print(table)
    rep = Table(title="cleaning report (rows removed)")
    rep.add_column("step")
    rep.add_column("removed", justify="right")
    for k, v in data.cleaning.items():
        rep.add_row(k, f"{v:,}")
    console.print(rep)
    return 0


add_command("data", "dataset statistics and the catalogue", _data_args, data_command)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    _load_commands()
    parser = argparse.ArgumentParser(prog="kgzoo", description="A model zoo for knowledge-graph recommendation.")
    parser.add_argument("--version", action="version", version=f"kgzoo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_, add, _) in COMMANDS.items():
        add(sub.add_parser(name, help=help_, description=help_))
    return parser


def _load_commands() -> None:
    """Import modules that add subcommands (bench, hub, ...), if present."""
    import importlib

    for mod in ("kgzoo.bench.cli", "kgzoo.hub_cli"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command][2](args)
    except (KeyError, ValueError, FileNotFoundError) as e:
        Console(stderr=True).print(f"[bold red]error:[/] {e.args[0] if isinstance(e, KeyError) else e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
