"""One background lane of the fair-baselines grid (issue 16): tune, then converged runs.

For each model, in order, on one dataset:

1. ``kgzoo tune MODEL DATASET --trials N``, or ``--from SMALL`` where the dataset's catalogue entry
   names the domain's small set whose tuned values its tables take
   (:attr:`kgzoo.data.spec.DatasetSpec.tune_from`; ``--from``/``--tune-here`` choose otherwise)
   (Optuna TPE, validation only; the study lives in a
   SQLite file, so a killed lane resumes where it stopped; on a machine without that file the
   committed trial rows rebuild the study, ``kgzoo.bench.tune.restore_study``) writes the ``tuned:`` section of
   ``zoo_configs/<model>/<dataset>.yaml`` and one row per trial under ``benchmarks/results/tuning/``;
   models without a ``tune:`` space (Pop) skip this step;
2. ``kgzoo bench --full --resume`` runs the tuned configuration to convergence (early stopping
   on the validation main metric) for every seed and appends the rows to
   ``benchmarks/results/<name>.jsonl``; ``--resume`` skips the cells already there, and the lane
   asks only for the seeds whose published row is in no ``benchmarks/results/*.jsonl`` file.

Without models, the lane runs the dataset's grid (the models of its published table, the
catalogue's :attr:`kgzoo.data.spec.DatasetSpec.grid`, in its order) less those whose converged,
early-stopped rows of that table (its protocol, real KG) in any ``benchmarks/results/*.jsonl``
already cover every seed asked for (``--seeds``), so a lane restarted in a later session lists
nothing by hand (the news rows are in ``converged-news.jsonl``, the CTR ones in
``converged-ctr.jsonl``: a lane left at the default ``--name converged`` reran them).

On a dataset whose catalogue entry allows one seed for a slow model
(:attr:`kgzoo.data.spec.DatasetSpec.one_seed_minutes`: ml-1m-kg and alibaba-ifashion-kg, issue 16
part 3), each model runs its first seed alone; the other seeds follow only where that run of the
converged schedule took no longer than the limit (one stopped at its epoch cap counts too: it
cost as much, and its seeds would be marked † anyway), so the rule is read off the run, not
guessed beforehand. It reads the row's process CPU seconds (``ResultRow.run_seconds``), which the other lane and other
work on the machine do not inflate as they do its wall time. ``--seeds 0`` runs one seed whatever it costs.

Each step is a child process with one torch thread (``OMP_NUM_THREADS=1``), so two lanes share
two cores. A failed step is logged and the lane goes on with the next model.

Usage (from the repository root)::

    nohup python benchmarks/scripts/fair_lane.py ml-100k-kg pop bpr lightgcn --trials 10 \\
        > lane-ml-100k-kg.log 2>&1 &
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # this checkout's kgzoo, in this process and (PYTHONPATH) in every step


def has_space(model: str, dataset: str, protocol: str = "") -> bool:
    """Whether the model's zoo config on ``dataset`` (under ``protocol``: its cells' config,
    :func:`kgzoo.bench.cells.cell_config`) has a ``tune:`` search space (Pop has none)."""
    from kgzoo.bench.cells import cell_config  # noqa: PLC0415 (after sys.path holds this checkout)
    return bool(cell_config(model, dataset, protocol).tune)


def published_runs(dataset: str, results: Path, capped: bool = False, protocol: str = "") -> dict[str, dict[int, float]]:
    """``model -> {seed: seconds the run cost}`` (:attr:`~kgzoo.bench.rows.ResultRow.run_seconds`:
    process CPU seconds where the row has them, else wall) of the published rows
    (:meth:`~kgzoo.bench.rows.ResultRow.is_published`: ok, converged, not stopped by its cap; base
    variant) of the dataset's grid table (its task and protocol, the real KG:
    :func:`kgzoo.bench.leaderboard.in_grid_table`) in the folder ``results`` (every ``*.jsonl`` in
    it, whatever the file); a row without either counts 0 s. ``capped``: also the runs of the
    converged schedule that stopped at their epoch cap (not published, not converged, yet as
    costly): what a run took, whatever ended it, for the lane's first-seed decision. ``protocol``
    (``--protocol``, e.g. ``split=cold_item``): the rows of that protocol's table instead, its fields
    over the protocol each model's cells take (:func:`kgzoo.protocols.parse_protocol`: a news
    model's impressions on mind-sample, not the dataset's ctr default). A row
    counts only where it ran the values the model's config now holds (its ``tuning.chosen``, the
    ``tuned:`` params of :func:`kgzoo.bench.cells.cell_config` under that protocol): after a new
    study (a protocol's own, say) the rows of the old values are due again.

    Raises:
        ValueError: a dataset without a grid (name the models); as :func:`kgzoo.bench.rows.read_folder`.
    """
    from kgzoo.bench.leaderboard import in_grid_table  # noqa: PLC0415 (after sys.path holds this checkout)
    from kgzoo.bench.render import dataset_grids  # noqa: PLC0415
    from kgzoo.bench.rows import read_folder  # noqa: PLC0415

    grids = dataset_grids([dataset])
    if dataset not in grids:
        raise ValueError(f"{dataset} has no grid in the catalogue: name the models")
    grid_table, _ = grids[dataset]
    from kgzoo.bench.cells import cell_config  # noqa: PLC0415
    from kgzoo.protocols import parse_protocol  # noqa: PLC0415

    tables: dict[str, dict] = {}

    def table(model: str) -> dict:  # the protocol of the model's cells: the fields over its default (news: impressions)
        if model not in tables:
            try:
                tables[model] = parse_protocol(dataset, protocol, model).to_dict() if protocol else grid_table
            except KeyError:  # a model no longer registered: the dataset's default under the fields
                tables[model] = {**grid_table, **parse_protocol(dataset, protocol).to_dict()}
            except ValueError:  # fields its task refuses (an impression model's split): no cell of it ran there
                tables[model] = {}
        return tables[model]

    values: dict[str, dict] = {}

    def current(model: str) -> dict:  # the tuned values the model's cells now take
        if model not in values:
            try:
                values[model] = dict(cell_config(model, dataset, protocol).tuned.get("params") or {})
            except KeyError:  # a model no longer registered: its rows count as they are
                values[model] = {}
        return values[model]

    runs: dict[str, dict[int, float]] = {}
    for r in read_folder(results):
        ran = r.is_published() or (capped and r.status == "ok" and r.schedule.get("kind") == "converged")
        if (r.dataset == dataset and r.variant == "base" and ran
                and in_grid_table(r.task, r.kg_ablation, r.protocol, table(r.model))
                and dict((r.tuning or {}).get("chosen") or {}) == current(r.model)):
            runs.setdefault(r.model, {})[r.seed] = float(r.run_seconds or 0.0)
    return runs


def one_seed_minutes(dataset: str) -> float:
    """The minutes of a converged run over which a model runs one seed on ``dataset``
    (:attr:`kgzoo.data.spec.DatasetSpec.one_seed_minutes`, issue 16 part 3; ``0``: three seeds
    always, also for a dataset the catalogue does not know: :func:`kgzoo.bench.render.dataset_one_seed_minutes`,
    the leaderboard's reading)."""
    from kgzoo.bench.render import dataset_one_seed_minutes  # noqa: PLC0415 (after sys.path holds this checkout)
    return float(dataset_one_seed_minutes([dataset]).get(dataset, 0.0))


def is_slow(seconds: dict[int, float], limit_minutes: float) -> bool:
    """Whether a model's published runs (``seed -> seconds``, :func:`published_runs`) took longer
    on average than ``limit_minutes`` (``0``: no limit), so that one seed stands for its cell: the
    leaderboard's rule (:func:`kgzoo.bench.leaderboard.over_one_seed_limit`)."""
    from kgzoo.bench.leaderboard import over_one_seed_limit  # noqa: PLC0415 (after sys.path holds this checkout)
    return bool(seconds) and over_one_seed_limit(sum(seconds.values()) / len(seconds) / 60, limit_minutes)


def missing_grid_models(dataset: str, seeds: list[str], results: Path, protocol: str = "") -> list[str]:
    """The dataset's grid models (:attr:`kgzoo.data.spec.DatasetSpec.grid`, its order) whose
    published rows (:func:`published_runs`) in the folder ``results`` do not cover every seed in
    ``seeds``, less those whose runs took longer than the dataset's one-seed limit
    (:func:`one_seed_minutes`, :func:`is_slow`).

    Raises:
        ValueError: a dataset without a grid (name the models); as :func:`kgzoo.bench.rows.read_folder`.
    """
    from kgzoo.bench.render import dataset_grids  # noqa: PLC0415 (after sys.path holds this checkout)

    runs, limit = published_runs(dataset, results, protocol=protocol), one_seed_minutes(dataset)
    want = {int(s) for s in seeds}
    _, grid = dataset_grids([dataset])[dataset]
    return [m for m in grid if not (want <= runs.get(m, {}).keys() or is_slow(runs.get(m, {}), limit))]


def step(cmd: list[str], env: dict[str, str]) -> int:
    started = time.time()
    print(f"[{time.strftime('%H:%M:%S')}] $ {' '.join(cmd)}", flush=True)
    rc = subprocess.call(cmd, cwd=REPO, env=env)
    print(f"[{time.strftime('%H:%M:%S')}] rc={rc} after {time.time() - started:.0f} s", flush=True)
    return rc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset")
    ap.add_argument("models", nargs="*", help="default: the dataset's grid models not yet done (see above)")
    ap.add_argument("--trials", type=int, default=10, help="the equal tuning budget (default 10)")
    ap.add_argument("--from", dest="source", default=None, metavar="DATASET",
                    help="tune nothing: take the values tuned on DATASET (kgzoo tune --from); default: the domain's "
                         "small set that the dataset's catalogue entry names (DatasetSpec.tune_from), if any")
    ap.add_argument("--tune-here", action="store_true",
                    help="run a study on the dataset itself even where its catalogue entry names a small set")
    ap.add_argument("--seeds", nargs="+", default=["0", "1", "2"])
    ap.add_argument("--name", default="converged", help="results file benchmarks/results/<name>.jsonl")
    ap.add_argument("--storage", default=None, help="the study SQLite file (default: one per dataset in the cache)")
    ap.add_argument("--threads", default="1", help="torch threads per step (default 1)")
    ap.add_argument("--protocol", default="", metavar="K=V[,K=V]",
                    help="protocol fields over the dataset's default (e.g. split=cold_item): a study under that "
                         "protocol (kgzoo tune --protocol; never --from), then its converged runs (kgzoo bench "
                         "--protocol)")
    args = ap.parse_args(argv)
    if args.tune_here and args.source:
        ap.error("give --from DATASET or --tune-here, not both")
    if args.protocol and args.source:
        ap.error("--protocol runs a study under that protocol: it cannot take --from")
    if args.source is None and not args.tune_here and not args.protocol:  # a protocol's study is the dataset's own
        from kgzoo.config import dataset_tune_from  # noqa: PLC0415 (after sys.path holds this checkout)
        args.source = dataset_tune_from(args.dataset) or None
    print(f"lane {args.dataset}: " + (f"values tuned on {args.source} (--from)" if args.source
                                      else f"{args.trials}-trial studies on {args.dataset}"), flush=True)

    results, limit = REPO / "benchmarks" / "results", one_seed_minutes(args.dataset)
    if not args.models:
        args.models = missing_grid_models(args.dataset, args.seeds, results, args.protocol)
        print(f"lane {args.dataset}: the grid's models not yet done: {' '.join(args.models) or 'none'}", flush=True)
    env = dict(os.environ, OMP_NUM_THREADS=args.threads, MKL_NUM_THREADS=args.threads,
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cli = [sys.executable, "-m", "kgzoo.cli"]
    storage = args.storage
    if storage is None:
        from kgzoo.paths import cache_dir  # noqa: PLC0415 (after sys.path holds this checkout)
        storage = str(cache_dir("runs") / f"tune-{args.dataset}.sqlite3")
    failed = []
    for model in args.models:
        if has_space(model, args.dataset, args.protocol):
            tune = ["--from", args.source] if args.source else ["--trials", str(args.trials), "--storage", storage]
            tune += ["--protocol", args.protocol] if args.protocol else []
            if step(cli + ["tune", model, args.dataset, *tune], env):
                failed.append(f"tune {model}")
                continue
        bench = cli + ["bench", "--models", model, "--datasets", args.dataset, "--full",
                       "--results", "benchmarks/results", "--name", args.name, "--resume",
                       *(["--protocol", args.protocol] if args.protocol else []), "--seeds"]
        # the seeds whose published row is in any results file are not run again (bench --resume
        # looks in --name's file only: a seed published in another file ran a second time)
        done = published_runs(args.dataset, results, protocol=args.protocol).get(model, {})
        seeds = [s for s in args.seeds if int(s) not in done]
        if not seeds:
            print(f"lane {args.dataset}: {model}: seeds {' '.join(args.seeds)} published already", flush=True)
            continue
        if is_slow(done, limit):
            print(f"lane {args.dataset}: {model} keeps one seed: its published run took over {limit:g} min",
                  flush=True)
            continue
        if limit and len(seeds) > 1 and not done:  # the first seed says whether the others are affordable (part 3)
            if step(bench + seeds[:1], env):
                failed.append(f"bench {model}")
                continue
            # whatever ended it: a run stopped at its cap is as costly, and the table marks its seeds † anyway
            first = published_runs(args.dataset, results, capped=True, protocol=args.protocol).get(model, {})
            if is_slow({s: t for s, t in first.items() if s == int(seeds[0])}, limit):
                from kgzoo.bench.render import minutes_text  # noqa: PLC0415 (after sys.path holds this checkout)
                print(f"lane {args.dataset}: {model} keeps one seed: its run took "
                      f"{minutes_text(first[int(seeds[0])] / 60, limit)} min, over {limit:g} min", flush=True)
                continue
        if step(bench + seeds, env):
            failed.append(f"bench {model}")
    print(f"lane {args.dataset} done; failed: {failed or 'none'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
