"""Plan the fair-baselines tables of the other four datasets (issue 16, part 3): end to end, then per-epoch cost.

For each dataset and model, the lane's two steps, in a scratch folder (never the repository's
``zoo_configs`` or ``benchmarks/results``):

1. ``kgzoo tune MODEL DATASET --from SMALL --write-config <scratch>/configs`` (the values tuned on
   the domain's small set: video and music from ml-100k-kg, e-commerce and local business from
   amazon-hin), with ``KGZOO_CONFIG_DIR=<scratch>/configs`` (a copy of ``zoo_configs``, made by
   ``--init``);
2. ``kgzoo bench --full`` for seed 0 with the written file's ``train.max_epochs`` set to 1 (the
   scratch config is the overlay; ``patience`` stays), rows to ``<scratch>/e2e.jsonl`` and runs to
   ``<scratch>/runs``. With ``--batches N`` the training epoch stops after ``N`` batches
   (Lightning's ``limit_train_batches``; the large sets), and the epoch is projected from them.

Step 2 runs as a child process of this script (``--child``) that adds one callback to
``kgzoo bench``'s trainer: process CPU seconds (``time.process_time``) and wall seconds of the
training batches and of each validation pass, and the epoch's full number of batches. They go, with
the row's values, to one JSON line per cell in ``<scratch>/plan.jsonl``.

Usage (from the repository root, one thread)::

    OMP_NUM_THREADS=1 python benchmarks/scripts/other_datasets_plan.py --scratch DIR --init
    OMP_NUM_THREADS=1 python benchmarks/scripts/other_datasets_plan.py --scratch DIR lastfm-social bpr kgin
    OMP_NUM_THREADS=1 python benchmarks/scripts/other_datasets_plan.py --scratch DIR ml-1m-kg kgat --batches 20
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from kgzoo.data.catalogue import ONE_SEED_MINUTES  # noqa: E402 (after sys.path holds this checkout)
from kgzoo.registry import DATASETS  # noqa: E402

#: the domain's small set whose tuned values each large or social set takes (issue 16, part 1;
#: the catalogue's DatasetSpec.tune_from)
SOURCE = {e.name: e.obj.tune_from for e in DATASETS.entries() if e.obj.tune_from}


def init_scratch(scratch: Path) -> list[str]:
    """Copy ``zoo_configs`` to ``<scratch>/configs``. A source config without a ``tuned:`` record
    of its own (a lane has not finished it yet) gets a stand-in in the copy only: the ml-100k-kg
    record's values where that exists, else the config's own values (``params: {}``), marked
    ``standin: true``; the stand-ins are returned."""
    configs = scratch / "configs"
    if configs.exists():
        shutil.rmtree(configs)
    shutil.copytree(REPO / "zoo_configs", configs)
    standins = []
    for model_dir in sorted(configs.iterdir()):
        for source in sorted(set(SOURCE.values())):
            path = model_dir / f"{source}.yaml"
            base = path if path.is_file() else model_dir / "default.yaml"
            if not base.is_file():
                continue
            raw = yaml.safe_load(base.read_text()) or {}
            default = model_dir / "default.yaml"
            space = raw.get("tune") or (default.is_file() and (yaml.safe_load(default.read_text()) or {}).get("tune"))
            if raw.get("tuned") or not space:
                continue
            small = model_dir / "ml-100k-kg.yaml"
            params = ((yaml.safe_load(small.read_text()) or {}).get("tuned") or {}).get("params", {}) \
                if small.is_file() and source != "ml-100k-kg" else {}
            raw["tuned"] = {"params": dict(params), "trials": 10, "standin": True,
                            "default": {"state": "COMPLETE", "chosen": not params}}
            path.write_text(yaml.safe_dump(raw, sort_keys=False))
            standins.append(f"{model_dir.name}/{source} ({'ml-100k-kg values' if params else 'its own values'})")
    return standins


def cap_one_epoch(path: Path) -> None:
    """Set ``train.max_epochs`` of the scratch config ``path`` to 1 (patience kept)."""
    raw = yaml.safe_load(path.read_text()) or {}
    raw["train"] = {**(raw.get("train") or {}), "max_epochs": 1}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def run_cell(scratch: Path, dataset: str, model: str, batches: int | None, timeout: int,
             eval_batches: int | None = None) -> dict[str, Any]:
    """Steps 1 and 2 for one cell; the plan line (also appended to ``<scratch>/plan.jsonl``)."""
    from kgzoo.config import ZooConfig  # noqa: PLC0415
    configs = scratch / "configs"
    env = dict(os.environ, KGZOO_CONFIG_DIR=str(configs), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    line: dict[str, Any] = {"dataset": dataset, "model": model, "source": SOURCE[dataset], "batches": batches,
                            "eval_batches": eval_batches,
                            "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "load_before": os.getloadavg()[0]}
    os.environ["KGZOO_CONFIG_DIR"] = str(configs)
    cli = [sys.executable, "-m", "kgzoo.cli"]
    if ZooConfig.load(model, dataset).tune:
        p = subprocess.run(cli + ["tune", model, dataset, "--from", SOURCE[dataset], "--write-config", str(configs)],
                           cwd=REPO, env=env, capture_output=True, text=True)
        line["from_rc"], line["from_out"] = p.returncode, (p.stdout + p.stderr)[-600:]
        if p.returncode:
            return _append(scratch, line)
    target = configs / model / f"{dataset}.yaml"
    if not target.is_file():  # no tune space (pop): the overlay is a copy of the file it reads
        src = ZooConfig.load(model, dataset).path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, target)
    cap_one_epoch(target)
    timing = scratch / f"timing-{model}-{dataset}.json"
    timing.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--child", str(timing), str(batches or 0), str(eval_batches or 0), "bench", "--full", "--models", model,
           "--datasets", dataset, "--seeds", "0", "--results", str(scratch), "--name", "e2e",
           "--runs", str(scratch / "runs")]
    t0, r0 = time.perf_counter(), os.times()
    try:
        p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        line["bench_rc"], out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        line["bench_rc"], out = "timeout", str(e.stdout or "") + str(e.stderr or "")
    r1 = os.times()
    line["cell_wall"] = round(time.perf_counter() - t0, 2)
    line["cell_cpu"] = round((r1.children_user + r1.children_system) - (r0.children_user + r0.children_system), 2)
    line["bench_out"] = out[-800:]
    if timing.is_file():
        line.update(json.loads(timing.read_text()))
    rows = [json.loads(x) for x in (scratch / "e2e.jsonl").read_text().splitlines()] if (scratch / "e2e.jsonl").is_file() else []
    mine = [r for r in rows if r["model"] == model and r["dataset"] == dataset]
    if mine:
        r = mine[-1]
        line.update({k: r.get(k) for k in ("status", "error", "seconds_per_epoch", "eval_seconds", "epochs",
                                            "stopped_by", "params", "peak_memory_mb", "tuning", "cell_seconds")})
        line["valid"] = r.get("valid_metrics")
    line["load_after"] = os.getloadavg()[0]
    return _append(scratch, line)


def _append(scratch: Path, line: dict[str, Any]) -> dict[str, Any]:
    with open(scratch / "plan.jsonl", "a") as f:
        f.write(json.dumps(line, default=str) + "\n")
    short = {k: line.get(k) for k in ("dataset", "model", "from_rc", "bench_rc", "status", "train_cpu", "train_wall",
                                      "steps_run", "steps_per_epoch", "valid_cpu", "valid_wall", "cell_wall")}
    print(json.dumps(short), flush=True)
    return line


def child(timing: str, batches: int, eval_batches: int, argv: list[str]) -> int:
    """``kgzoo bench`` with a CPU/wall timing callback (and ``limit_train_batches`` when ``batches``,
    ``limit_val_batches`` and ``limit_test_batches`` when ``eval_batches``)."""
    import lightning as L  # noqa: PLC0415
    from kgzoo.bench import experiment  # noqa: PLC0415
    from kgzoo.cli import main  # noqa: PLC0415

    class CpuTimer(L.Callback):
        def __init__(self) -> None:
            self.d: dict[str, Any] = {"valid_cpu_passes": [], "valid_wall_passes": []}

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self.t = (time.process_time(), time.perf_counter())
            self.d["steps_per_epoch"] = _full_steps(trainer)

        def on_validation_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            if "train_cpu" not in self.d and hasattr(self, "t"):
                self.d["train_cpu"] = round(time.process_time() - self.t[0], 3)
                self.d["train_wall"] = round(time.perf_counter() - self.t[1], 3)
                self.d["steps_run"] = trainer.num_training_batches
            self.v = (time.process_time(), time.perf_counter())
            self.d["eval_batches_per_pass"] = _full_steps(trainer, "val")
            self.d["eval_batches_run"] = sum(trainer.num_val_batches)

        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            self.d["valid_cpu_passes"].append(round(time.process_time() - self.v[0], 3))
            self.d["valid_wall_passes"].append(round(time.perf_counter() - self.v[1], 3))
            self.d["valid_cpu"], self.d["valid_wall"] = self.d["valid_cpu_passes"][0], self.d["valid_wall_passes"][0]
            Path(timing).write_text(json.dumps(self.d))

    made = experiment.bench_trainer

    def bench_trainer(*a: Any, callbacks: Any = (), **kw: Any) -> Any:
        extra = {"limit_train_batches": batches} if batches else {}
        if eval_batches:
            extra.update(limit_val_batches=eval_batches, limit_test_batches=eval_batches)
        return made(*a, callbacks=[*callbacks, CpuTimer()], **kw, **extra)

    experiment.bench_trainer = bench_trainer
    return main(argv)


def _full_steps(trainer: Any, loop: str = "train") -> int | None:
    """Batches of a whole training epoch or validation pass (before Lightning's ``limit_*_batches``)."""
    try:
        owner = trainer.fit_loop if loop == "train" else trainer.fit_loop.epoch_loop.val_loop
        loaders = owner._combined_loader.flattened
        if loop != "train":  # kgzoo's evaluation batches have no len(): users / eval_batch_size
            return _valid_batches(trainer.datamodule)
        return max(len(dl) for dl in loaders)
    except (AttributeError, TypeError):
        return None


def _valid_batches(dm: Any) -> int:
    """Validation batches of one pass of DataModule ``dm``: its valid users / ``eval_batch_size``, rounded up."""
    return -(-dm.eval_users("valid").numel() // dm.eval_batch_size)


def one_seed_allowed(dataset: str) -> bool:
    """Whether the catalogue lets a slow model run one seed on ``dataset`` (its
    ``DatasetSpec.one_seed_minutes``: the large sets ml-1m-kg and alibaba-ifashion-kg)."""
    from kgzoo.data.datasets import dataset_spec  # noqa: PLC0415
    return dataset_spec(dataset).one_seed_minutes > 0


#: the model whose epochs stand in where a model has no converged run or finished trial yet (GAT: the
#: same GNN over the CKG with attention)
NEAREST = {"gat": "gcn"}
#: the test pass after training is about one validation pass; build (data, graphs, imports) per run [s]
BUILD_SECONDS = 15.0


def epoch_guess(model: str, source: str, results: Path) -> tuple[float | None, str]:
    """``(epochs, where from)`` of a converged run of ``model``: the mean ``best_epoch + 11`` (patience
    10) of its converged rows on ``source`` in ``converged.jsonl``; else its study's best complete
    trial there (``tuning/<model>-<source>.jsonl``); else the same on the other small set."""
    rows = [json.loads(x) for x in (results / "converged.jsonl").read_text().splitlines()]
    for small in (source, *(d for d in ("ml-100k-kg", "amazon-hin") if d != source)):
        eps = [r["best_epoch"] + 11 for r in rows if r.get("status") == "ok" and r["model"] == model
               and r["dataset"] == small and r.get("stopped_by") == "early_stopping"]
        if eps:
            return sum(eps) / len(eps), f"converged {small} ({len(eps)} rows)"
        tuning = results / "tuning" / f"{model}-{small}.jsonl"
        if tuning.is_file():
            done = [json.loads(x) for x in tuning.read_text().splitlines()]
            done = [r for r in done if r["state"] == "COMPLETE" and r.get("best_epoch") is not None]
            if done:
                best = max(done, key=lambda r: r["value"])
                return best["best_epoch"] + 11.0, f"best trial {small}"
    if model in NEAREST:  # no run of its own yet: the nearest model's
        E, where = epoch_guess(NEAREST[model], source, results)
        return E, f"{NEAREST[model]}'s: {where}"
    return None, "none"


def eval_batches_per_pass(scratch: Path, dataset: str, model: str) -> int:
    """Validation batches of one pass of ``model`` on ``dataset`` (its scratch config's
    ``eval_batch_size``), for a line written before the child recorded it."""
    from kgzoo.api import create_datamodule  # noqa: PLC0415
    from kgzoo.config import ZooConfig  # noqa: PLC0415
    os.environ["KGZOO_CONFIG_DIR"] = str(scratch / "configs")
    dm = create_datamodule(dataset, **ZooConfig.load(model, dataset).data)
    dm.setup()
    return _valid_batches(dm)


def report(scratch: Path) -> str:
    """The planning table (Markdown) of the latest line of each cell in ``<scratch>/plan.jsonl``."""
    lines: dict[tuple[str, str], dict[str, Any]] = {}
    for x in (scratch / "plan.jsonl").read_text().splitlines():
        d = json.loads(x)
        lines[d["dataset"], d["model"]] = d
    out = ["| dataset | model | batches/epoch | train CPU s/epoch | train wall s/epoch | valid CPU s | valid wall s "
           "| epochs (guess, from) | converged run CPU min | one seed? |", "|" + "---|" * 10]
    hours: dict[str, float] = {}
    results = REPO / "benchmarks" / "results"
    for (dataset, model), d in sorted(lines.items(), key=lambda kv: (list(SOURCE).index(kv[0][0]), kv[0][1])):
        timed_out = d.get("bench_rc") == "timeout" and d.get("valid_cpu") is not None
        if d.get("status") != "ok" and not timed_out:
            reason = (d.get("error") or d.get("from_out") or d.get("bench_rc") or "").strip().splitlines()
            out.append(f"| {dataset} | {model} | refused: {reason[-1][:120] if reason else '?'} |" + " |" * 7)
            continue
        steps, run = d.get("steps_per_epoch") or 0, d.get("steps_run") or 0
        scale = steps / run if run else 1.0
        tc, tw = (d.get("train_cpu") or 0.0) * scale, (d.get("train_wall") or 0.0) * scale
        limit = d.get("eval_batches") or 0
        vsteps = (d.get("eval_batches_per_pass") or eval_batches_per_pass(scratch, dataset, model)) if limit else 0
        vscale = vsteps / min(limit, vsteps) if limit else 1.0
        vc, vw = (d.get("valid_cpu") or 0.0) * vscale, (d.get("valid_wall") or 0.0) * vscale
        closed = d.get("stopped_by") == "closed_form"
        E, where = (1.0, "closed form") if closed else epoch_guess(model, SOURCE[dataset], results)
        run_min = None if E is None else (E * (tc + vc) + vc + BUILD_SECONDS) / 60
        large = one_seed_allowed(dataset)
        one = large and run_min is not None and run_min > ONE_SEED_MINUTES
        seeds = 1 if one else 3
        if run_min is not None:
            hours[dataset] = hours.get(dataset, 0.0) + seeds * run_min / 60
        out.append(f"| {dataset} | {model}" + (" (timed out after the valid pass)" if timed_out else "")
                   + f" | {steps}" + (f" ({run} run)" if run < steps else "")
                   + f" | {tc:.1f} | {tw:.1f} | {vc:.2f} | {vw:.2f} | "
                   + (f"{E:.0f} ({where})" if E is not None else "?") + " | "
                   + (f"{run_min:.1f}" if run_min is not None else "?") + " | "
                   + ("**one seed**" if one else ("3 seeds" if large else "3 seeds (not a large set)")) + " |")
    out += ["", "| dataset | projected lane-hours (CPU, all seeds) |", "|---|---|"]
    out += [f"| {k} | {v:.2f} |" for k, v in sorted(hours.items(), key=lambda kv: kv[1])]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        return child(argv[1], int(argv[2]), int(argv[3]), argv[4:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scratch", required=True, type=Path)
    ap.add_argument("--init", action="store_true", help="(re)copy zoo_configs to <scratch>/configs first")
    ap.add_argument("dataset", nargs="?")
    ap.add_argument("models", nargs="*")
    ap.add_argument("--batches", type=int, default=None, help="train batches of the one epoch (default: all)")
    ap.add_argument("--eval-batches", type=int, default=None,
                    help="validation and test batches of each pass (default: all); the pass is projected")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per cell's bench (default 300)")
    ap.add_argument("--report", action="store_true", help="print the planning table of <scratch>/plan.jsonl")
    args = ap.parse_args(argv)
    if args.report:
        print(report(args.scratch))
        return 0
    args.scratch.mkdir(parents=True, exist_ok=True)
    if args.init:
        for s in init_scratch(args.scratch):
            print(f"stand-in tuned: record (scratch only): {s}")
    for model in args.models:
        run_cell(args.scratch, args.dataset, model, args.batches, args.timeout, args.eval_batches)
    return 0


if __name__ == "__main__":
    sys.exit(main())
