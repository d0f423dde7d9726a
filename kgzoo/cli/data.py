"""``kgzoo data list``, ``kgzoo data stats NAME|PATH`` and ``kgzoo data import PATH --name N``.

``list`` prints every dataset entry (domain, default protocol, licence, caveat); ``stats``
prints one dataset's statistics, its caveat, converged-schedule warm-up and the small set its
tables are tuned on (where its :class:`~kgzoo.data.datasets.DatasetSpec`
has one, e.g. a split that is not the paper's) and its cleaning report; given a folder, it
detects the folder's layout (:mod:`kgzoo.data.folders`). ``import`` registers a folder under a
name in the user's config directory (:func:`kgzoo.paths.user_config_dir`) for later runs.
"""
from __future__ import annotations

import argparse

from rich.markup import escape
from rich.table import Table

from ..console import console
from ..protocols import impression_protocol
from ..bench.rows import protocol_label
from ..data.datasets import (dataset_spec, is_folder_reference, list_datasets, load_data, load_impressions,
                             resolve_dataset)
from ..data.folders import import_folder, register_folder
from ..data.readers._io import MIN_TEXT_MATCH


def data_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``kgzoo data``: ``ACTION [NAME|PATH] [--root DIR] [--name N] [--min-text-match F]``."""
    p.add_argument("action", choices=["stats", "list", "import"],
                   help="stats: statistics and cleaning report; list: the catalogue; import: register a folder")
    p.add_argument("name", nargs="?", default="ml-100k-kg",
                   help="dataset name or folder (default ml-100k-kg); import: the folder")
    p.add_argument("--root", default=None, help="data root (default $KGZOO_DATA_DIR or the user cache)")
    p.add_argument("--name", dest="as_name", default=None, help="import: the name to register the folder under")
    p.add_argument("--min-text-match", type=float, default=MIN_TEXT_MATCH,
                   help="import, or stats of a folder: the least share of items the item text must name "
                        "(0 accepts any)")


def data_command(args: argparse.Namespace) -> int:
    """Print the catalogue (``list``) or one dataset's statistics (``stats``), or register a
    folder (``import``, which also prints its statistics); returns 0.

    Raises:
        KeyError: unknown dataset name (with suggestions). ChecksumError, FileNotFoundError,
        DataFormatError: as :func:`kgzoo.data.datasets.load_data` (a folder matching no layout
        lists what was looked for). ValueError: ``import`` without ``--name``, or a name taken.
    """
    con = console()
    if args.action == "import":
        if not args.as_name:
            raise ValueError("kgzoo data import PATH --name N: give the name to register the folder under")
        out = import_folder(args.name, args.as_name, min_text_match=args.min_text_match)
        con.print(f"registered {args.as_name!r} ({escape(str(out))})")
        args.name = args.as_name
    if args.action == "list":
        table = Table(title="kgzoo datasets")
        for c in ("name", "domain", "default protocol", "licence", "caveat"):
            table.add_column(c, overflow="fold")
        for n in list_datasets():
            s = dataset_spec(n)
            p = f"{s.protocol.task}/{s.protocol.split}"
            news = impression_protocol(n)  # what the news models run there
            if news is not None:
                p += f"; news models: {news.task}/{news.split}"
            table.add_row(n, s.domain, p, s.licence.split(".")[0], escape(s.caveat) or "-")
        con.print(table)
        return 0
    name = (register_folder(args.name, min_text_match=args.min_text_match).name
            if args.action == "stats" and is_folder_reference(args.name) else resolve_dataset(args.name))
    spec = dataset_spec(name)
    data = load_data(name, args.root)
    st = data.stats()
    table = Table(title=f"{name}: statistics" + (f" ({escape(str(spec.folder))})" if spec.folder else ""))
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for k in ("users", "items", "interactions", "positives", "density", "entities", "kg_entities", "relations",
              "triples", "linked_items", "social", "text_coverage"):
        v = st[k]
        table.add_row(k, f"{v:.4%}" if k in ("density", "text_coverage") else f"{v:,}")
    table.add_row("user features", ", ".join(st["user_features"]) or "-")
    table.add_row("item features", ", ".join(st["item_features"]) or "-")
    con.print(table)
    if spec.impressions is not None:  # MIND's layout: the impression view, and how much of it has text
        imp_data, log = load_impressions(name, args.root)
        imp = Table(title=f"{name}: impressions (the impression task)")
        imp.add_column("statistic")
        imp.add_column("value", justify="right")
        for k, v in log.stats(imp_data.item_text).items():
            imp.add_row(k, f"{v:,}")
        con.print(imp)
        missing = imp_data.cleaning.get("news ids: in the logs without a news.tsv row", 0)
        con.print(f"the impression task's news: {imp_data.n_items:,}, news.tsv's {imp_data.n_items - missing:,} and "
                  f"the {missing:,} logged news without a news.tsv row (kept, without text); the statistics above "
                  "and the cleaning report are of the labelled rows of news.tsv's news")
    if spec.caveat:
        con.print(f"[bold]caveat:[/] {escape(spec.caveat)}")
    if spec.min_epochs:  # the converged schedule's warm-up (DatasetSpec.min_epochs)
        con.print(f"[bold]warm-up:[/] {spec.min_epochs} epochs: {escape(spec.min_epochs_reason)}")
    if spec.tune_from:  # the small set whose tuned values the published tables take (DatasetSpec.tune_from)
        con.print(f"[bold]tuned on:[/] {spec.tune_from} (the published tables take the values tuned there: "
                  f"kgzoo tune MODEL {spec.name} --from {spec.tune_from})")
    if spec.origin:  # a user's dataset: what it was read from, and its default protocol
        con.print(f"[bold]source:[/] {escape(spec.description)}; default protocol: "
                  f"{escape(protocol_label(spec.protocol.to_dict()))}")
    rep = Table(title="cleaning report (rows removed)")
    rep.add_column("step")
    rep.add_column("removed", justify="right")
    for k, v in data.cleaning.items():
        rep.add_row(k, f"{v:,}")
    con.print(rep)
    return 0
