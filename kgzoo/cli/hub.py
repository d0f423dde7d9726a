"""``kgzoo recommend``, ``kgzoo export`` and ``kgzoo update``: trained models from the command line.

``kgzoo recommend --model lightgcn/ml-100k-kg --user 196 -k 10`` prints the user's top-10
unseen items with their titles (``kgzoo pretrained [PATTERN]``, :mod:`kgzoo.cli.pretrained`, lists the weights);
``kgzoo export --model NAME_OR_CHECKPOINT --top-k 10 --out DIR`` writes every user's top-K
(Parquet) and, for inner-product models, the embeddings with raw-id maps (:mod:`kgzoo.hub.export`);
``kgzoo update --model NAME_OR_CHECKPOINT --data NEW --out DIR [--epochs N]`` folds new interactions,
triples, items and users into a trained model and writes a new checkpoint (:mod:`kgzoo.hub.update`).
"""
from __future__ import annotations

import argparse
import json
import sys

from rich.table import Table

from ..console import console
from ..quiet import quiet_lightning
from ..hub.checkpoint import open_model, update_checkpoint
from ..hub.export import export
from ..hub.pretrained import DEFAULT_EXCLUDE, EXCLUDE
from ..data.readers._io import MIN_TEXT_MATCH


def recommend_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``kgzoo recommend``."""
    p.add_argument("--model", required=True, metavar="NAME_OR_CHECKPOINT",
                   help="a pretrained name 'model/dataset' (see `kgzoo pretrained`), a checkpoint file (kgzoo "
                        "bench/fit/tune/update) or a folder written by save_pretrained")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", nargs="+", help="raw user id(s) of the dataset (MovieLens: 196; a news model: the "
                                               "history of the user's last impression)")
    who.add_argument("--history", nargs="+", metavar="NEWS_ID",
                     help="a news model: the clicked news (raw ids, oldest first) of a reader the data need not know; "
                          "ranks every other news (Pretrained.rank_news)")
    p.add_argument("-k", type=int, default=10, help="list length (default 10)")
    exclude_argument(p)
    p.add_argument("--include-seen", action="store_true", help=argparse.SUPPRESS)  # deprecated: --exclude none
    p.add_argument("--root", default=None, help="data root (default $KGZOO_DATA_DIR or the user cache)")
    p.add_argument("--manifest", default=None, help="a manifest file instead of the package's")


EXCLUDED_LABEL = {"seen": "unseen ", "train": "non-train ", "none": ""}


def exclude_argument(p: argparse.ArgumentParser) -> None:
    """``--exclude {seen,train,none}``, the one spelling of which items ``kgzoo recommend`` and
    ``kgzoo export`` leave out (:meth:`kgzoo.hub.Pretrained.exclusion`)."""
    p.add_argument("--exclude", choices=EXCLUDE, default=DEFAULT_EXCLUDE,
                   help="items not to recommend: 'seen', every item the user interacted with in any split; 'train', "
                        f"the user's train items; 'none' (default {DEFAULT_EXCLUDE!r})")


def recommend_command(args: argparse.Namespace) -> int:
    if args.include_seen:
        print("kgzoo recommend: --include-seen is deprecated, use --exclude none", file=sys.stderr)
        args.exclude = "none"
    pre = open_model(args.model, root=args.root, manifest=args.manifest)  # as kgzoo export: a checkpoint too
    if args.history:
        whom, lists = [f"the history {' '.join(args.history)}"], [pre.rank_news(args.history, args.k)]
        label = "other "  # every news but the history's
    else:
        whom, lists = [f"user {u}" for u in args.user], pre.recommend(args.user, args.k, exclude=args.exclude)
        label = EXCLUDED_LABEL[args.exclude]
    con = console()
    for who, recs in zip(whom, lists):
        table = Table(title=f"{pre.name}: top-{args.k} {label}items for {who}")
        table.add_column("rank", justify="right")
        table.add_column("item", justify="right")
        table.add_column("title", overflow="fold")
        table.add_column("score", justify="right")
        for r, (item, title, score) in enumerate(recs, 1):
            table.add_row(str(r), item, title or "-", f"{score:.4f}")
        con.print(table)
    return 0


def export_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``kgzoo export``."""
    p.add_argument("--model", required=True, metavar="NAME_OR_CHECKPOINT",
                   help="a checkpoint file (kgzoo bench/fit/tune), a folder written by save_pretrained, or a "
                        "pretrained name 'model/dataset'")
    p.add_argument("--top-k", type=int, default=10, help="list length (default 10)")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--users", nargs="+", default=None, help="raw user ids (default: every user)")
    exclude_argument(p)
    p.add_argument("--ann", action="store_true",
                   help="also write an HNSW index of the item embeddings (faiss-cpu: pip install 'kgzoo[ann]') "
                        "and report its recall@K against exact search")
    p.add_argument("--batch-size", type=int, default=1024, help="users ranked at once (default 1024)")
    p.add_argument("--root", default=None, help="data root (default $KGZOO_DATA_DIR or the user cache)")
    p.add_argument("--manifest", default=None, help="a manifest file instead of the package's (pretrained names)")


def export_command(args: argparse.Namespace) -> int:
    """``kgzoo export``: writes the files, prints one line per file and the ANN's recall; returns 0."""
    pre = open_model(args.model, root=args.root, manifest=args.manifest)
    summary = export(pre, args.out, k=args.top_k, users=args.users, exclude=args.exclude, ann=args.ann,
                     batch_size=args.batch_size, source=str(args.model))
    con = console()
    con.print(f"{pre.name}: top-{args.top_k} of {summary['users']} users (excluded: {args.exclude}) -> {args.out}")
    for f in summary["files"] + ["export.json"]:
        con.print(f"  {f}")
    if "ann" in summary:
        con.print(f"  ANN recall@{args.top_k} against exact search: {summary['ann'][f'recall@{args.top_k}']:.4f}")
    return 0


def update_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``kgzoo update``."""
    p.add_argument("--ckpt_path", "--model", dest="ckpt_path", required=True, metavar="NAME_OR_CHECKPOINT",
                   help="the model to update: a checkpoint file (kgzoo bench/fit/tune, or kgzoo update), a folder "
                        "written by save_pretrained, or a pretrained name 'model/dataset' (see `kgzoo pretrained`)")
    p.add_argument("--data", required=True, nargs="+", metavar="FOLDER_OR_FILES",
                   help="the new rows: a folder or .csv/.tsv/.parquet files with named columns "
                        "(user,item[,rating,timestamp] / head,relation,tail / item,entity / item,text / user,friend / "
                        "user,<attributes> / item,<attributes>; the last three for models that read them), raw ids")
    p.add_argument("--out", required=True, help="output folder (created): update.ckpt and update.json")
    p.add_argument("--epochs", type=int, default=0,
                   help="fine-tuning epochs on the new train pairs plus a replay sample (default 0: fold-in only)")
    p.add_argument("--replay", type=float, default=1.0, help="base train pairs replayed per new pair (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fine-tune's sampling (default 0)")
    p.add_argument("--name", default=None, help="the extended dataset's name (default '<base>+update-<sha>')")
    p.add_argument("--min-text-match", type=float, default=MIN_TEXT_MATCH,
                   help=f"least share of the new items that item text must name (default {MIN_TEXT_MATCH}; "
                        "0 accepts any)")
    p.add_argument("--root", default=None, help="data root (default $KGZOO_DATA_DIR or the user cache)")


def update_command(args: argparse.Namespace) -> int:
    """``kgzoo update``: writes ``<out>/update.ckpt`` and ``<out>/update.json`` (the report), prints
    the counts; returns 0."""
    quiet_lightning()  # the fine-tune's Trainer: no banners between the command's lines
    path, up = update_checkpoint(args.ckpt_path, args.data, args.out, epochs=args.epochs, replay=args.replay,
                                 seed=args.seed, min_text_match=args.min_text_match, name=args.name, root=args.root)
    report = {**up.report, "checkpoint": str(path), "dataset": up.datamodule.dataset,
              "fingerprint": up.datamodule.fingerprint}
    (path.parent / "update.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    con = console()
    con.print(f"{type(up.model).__name__} on {up.datamodule.dataset}: {up.report['new users']} new users, "
              f"{up.report['new items']} new items, {up.report.get('new interactions', 0)} new interactions, "
              f"{up.report.get('new triples', 0)} new triples in {up.report['seconds']:.1f} s -> {path}")
    for k, v in up.report.items():
        if k.startswith("update ") and v:
            con.print(f"  dropped: {k[7:]}: {v}")
    return 0
