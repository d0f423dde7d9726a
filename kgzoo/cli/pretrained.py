"""``kgzoo pretrained [PATTERN]``: the pretrained weights of the manifest, listed without loading a
model (:func:`kgzoo.hub.manifest.list_pretrained`)."""
from __future__ import annotations

import argparse

from rich.table import Table

from ..console import console
from ..hub.manifest import list_pretrained


def pretrained_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``kgzoo pretrained``."""
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern of names (default '*')")


def _size(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def pretrained_command(args: argparse.Namespace) -> int:
    table = Table(title="kgzoo pretrained weights",
                  caption="each the weights of one run (its seed under training; a leaderboard line is the mean over "
                          "seeds); evaluate them again: kgzoo test --pretrained NAME")
    for c in ("name", "dataset", "main metric (test)", "training", "size", "dtype", "source"):
        table.add_column(c, no_wrap=c == "name")  # the name is what a user copies: never cut
    for e in list_pretrained(args.pattern):
        m = e["main_metric"]
        v = e["metrics"].get(f"test/{m}")
        table.add_row(e["name"], e["dataset"], f"{m}={v:.4f}" if v is not None else "-", e["training"],
                      _size(e["size"]), e["dtype"], e["source"])
    console().print(table)
    return 0
