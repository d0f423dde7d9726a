"""``kgzoo data list`` and ``kgzoo data stats NAME``: the dataset catalogue from the command line.

``list`` prints every catalogue entry (domain, default protocol, licence, caveat); ``stats``
prints one dataset's statistics, its caveat (where its :class:`~kgzoo.data.datasets.DatasetSpec`
has one, e.g. a split that is not the paper's) and its cleaning report.
"""
from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..data.datasets import dataset_spec, list_datasets, load_data


def data_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``kgzoo data``: ``ACTION [NAME] [--root DIR]``."""
    p.add_argument("action", choices=["stats", "list"], help="stats: statistics and cleaning report; list: the catalogue")
    p.add_argument("name", nargs="?", default="ml-100k-kg", help="dataset name (default ml-100k-kg)")
    p.add_argument("--root", default=None, help="data root (default $KGZOO_DATA_DIR or the user cache)")


def data_command(args: argparse.Namespace) -> int:
    """Print the catalogue (``list``) or one dataset's statistics (``stats``); returns 0.

    Raises:
        KeyError: unknown dataset name (with suggestions). ChecksumError, FileNotFoundError,
        DataFormatError: as :func:`kgzoo.data.datasets.load_data`.
    """
    console = Console()
    if args.action == "list":
        table = Table(title="kgzoo datasets")
        for c in ("name", "domain", "default protocol", "licence", "caveat"):
            table.add_column(c, overflow="fold")
        for n in list_datasets():
            s = dataset_spec(n)
            table.add_row(n, s.domain, f"{s.protocol.task}/{s.protocol.split}", s.licence.split(".")[0],
                          escape(s.caveat) or "-")
        console.print(table)
        return 0
    spec = dataset_spec(args.name)
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
    if spec.caveat:
        console.print(f"[bold]caveat:[/] {escape(spec.caveat)}")
    rep = Table(title="cleaning report (rows removed)")
    rep.add_column("step")
    rep.add_column("removed", justify="right")
    for k, v in data.cleaning.items():
        rep.add_row(k, f"{v:,}")
    console.print(rep)
    return 0
