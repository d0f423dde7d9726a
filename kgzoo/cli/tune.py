"""``kgzoo tune MODEL DATASET --trials N``: the equal-budget hyper-parameter search (:mod:`kgzoo.bench.tune`).

Each trial trains with the config's converged schedule and is judged on the validation
split only; trials go to ``<results>/tuning/<model>-<dataset>.jsonl`` (``--results``, default
:func:`kgzoo.bench.tune.default_results_dir`: the checkout's ``benchmarks/results`` from any
working directory; the paths printed are absolute); the study lives in a
SQLite file (a killed study resumes); the best values become the ``tuned:`` section of the
model's config for that dataset (``--write-config DIR``, default the packaged ``zoo_configs``
when it is a checkout, where the committed configs live; an installed kgzoo refuses to edit its
own and asks for ``DIR``). ``kgzoo tune MODEL DATASET --from
SMALL`` tunes nothing and writes ``tuned: {from: SMALL}``: the dataset takes the values chosen on
the same domain's small set.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..console import console
from ..quiet import quiet_lightning
from ..bench.tune import tune, write_tuned_from
from ..config import ZooConfig, dataset_tune_from
from ..data.datasets import resolve_dataset
from ..paths import config_dirs, packaged_config_dir


#: where an installed kgzoo (a wheel) holds its packaged configs; a checkout has none there
INSTALLED_CONFIGS = Path(__file__).resolve().parents[1] / "zoo_configs"


def tune_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a registered model name")
    p.add_argument("dataset", help="a dataset name (catalogue or kgzoo data import), or the folder of one's own data "
                                   "(as kgzoo bench --datasets PATH)")
    p.add_argument("--trials", type=int, default=None,
                   help="the budget: finished searched trials the study must hold (the same for every model of a "
                        "table); one more trial, outside it and never pruned, runs the config's own values")
    p.add_argument("--from", dest="source", default=None, metavar="DATASET",
                   help="tune nothing: write tuned: {from: DATASET}, so this dataset takes the values chosen on "
                        "DATASET (the same domain's small set); its rows and tables say so")
    p.add_argument("--seed", type=int, default=0, help="seeds the TPE sampler and every trial's training (default 0)")
    p.add_argument("--results", default=None,
                   help="folder of the trial rows, tuning/<model>-<dataset>.jsonl below it (default, from any working "
                        "directory: the checkout's benchmarks/results; for an installed kgzoo the user cache's runs/)")
    p.add_argument("--storage", default=None,
                   help="the study's SQLite file (default: the user cache's runs/tune.sqlite3); the trials' checkpoints "
                        "and logs go to the user cache's runs/tune/<model>-<dataset>/ ($KGZOO_HOME/runs when set)")
    p.add_argument("--write-config", default=None, metavar="DIR",
                   help="write the tuned: section into DIR/<model>/<dataset>.yaml (default: the checkout's zoo_configs; "
                        "an installed kgzoo needs DIR); later runs read a DIR of your own with --config-dir DIR")
    p.add_argument("--no-write-config", action="store_true", help="write no config, only the trial rows")
    p.add_argument("--root", default=None, help="data root (default $KGZOO_DATA_DIR or the user cache)")
    p.add_argument("--protocol", default="", metavar="K=V[,K=V]",
                   help="tune under evaluation protocol fields over the dataset's default, as kgzoo bench --protocol "
                        "takes them (e.g. split=cold_item): trials select on that protocol's validation split; rows "
                        "go to tuning/<model>-<dataset>@<protocol>.jsonl, the values to <model>/<dataset>@<protocol>.yaml, "
                        "which kgzoo bench --protocol reads; the default protocol's tuned: record stays")


def tune_command(args: argparse.Namespace) -> int:
    con = console()
    given = args.dataset  # a folder: its registered name below, the path in the hint a later run repeats
    args.dataset = resolve_dataset(args.dataset)
    target = None if args.no_write_config else (args.write_config or packaged_config_dir())
    if target is not None and args.write_config is None and Path(target).resolve() == INSTALLED_CONFIGS.resolve():
        raise SystemExit("kgzoo tune: this kgzoo is installed (its configs are in site-packages), so the tuned: "
                         "record needs a folder of your own: --write-config DIR, and --config-dir DIR on the "
                         "later runs that should use it (or --no-write-config)")
    if args.trials is not None and args.source is not None:
        raise SystemExit("kgzoo tune: give either --trials N (a study) or --from DATASET (its values), not both")
    if args.trials is None and args.source is None:
        raise SystemExit("kgzoo tune: give --trials N (the study's budget, the same N for every model of a table) "
                         "or --from DATASET (take the values tuned there)")
    if args.source is not None:
        if args.protocol:
            raise SystemExit("kgzoo tune: --from takes another dataset's values for the default protocol; under "
                             "--protocol run a study (--trials N)")
        if target is None:
            raise SystemExit("kgzoo tune --from writes a config; it cannot go with --no-write-config")
        path = write_tuned_from(Path(target), ZooConfig.load(args.model, args.dataset), args.source)
        con.print(f"{args.model} on {args.dataset}: takes the values tuned on {args.source}; written to "
                  f"{Path(path).resolve()}")
        return 0
    small = dataset_tune_from(args.dataset)
    if small:  # a study of the dataset's own is the user's choice; the published tables take another's values
        con.print(f"note: kgzoo's published tables of {args.dataset} take the values tuned on {small} "
                  f"(kgzoo tune {args.model} {args.dataset} --from {small}); this study is {args.dataset}'s own",
                  markup=False)
    quiet_lightning()  # no accelerator banner and tips per trial, as in kgzoo bench
    rep = tune(args.model, args.dataset, args.trials, seed=args.seed, results=args.results, storage=args.storage,
               write_config=target, root=args.root, protocol=args.protocol,
               log=lambda line: con.print(line, markup=False))  # its brackets are text: [defaults], lists
    default = rep.default
    con.print(f"{args.model} on {args.dataset}: {rep.complete} complete, {rep.pruned} pruned, {rep.failed} failed "
              f"of {rep.trials} trial{'' if rep.trials == 1 else 's'}"
              + (f" (and the default trial: {default['state'].lower()}"
                 + (f", {default['value']:.4f}" if isinstance(default.get("value"), float) else "") + ")"
                 if default else "")
              + f" in {rep.seconds:.0f} s; rows in {Path(rep.rows).resolve()}")
    if rep.best_value is not None:
        con.print(f"best {rep.monitor} {rep.best_value:.4f} with {json.dumps(rep.best_params, default=str)}"
                  + (" (the default trial)" if default.get("chosen") else "")
                  + (f"; written to {Path(rep.config).resolve()}" if rep.config else ""))
        written = Path(target).resolve() if rep.config else None
        if written is not None and written not in [d.resolve() for d in config_dirs()]:
            con.print(f"later runs use it with --config-dir {written} (e.g. kgzoo bench --config-dir {written} "
                      f"--models {args.model} --datasets {given} --full"
                      + (f" --protocol {args.protocol})" if args.protocol else ")"))
    return 0 if rep.best_value is not None else 1
