"""Per-step training and evaluation speed of a model: this checkout against another git revision,
side by side in one process (issue 16, part 5).

The other revision's ``kgzoo`` package (default ``main``) is extracted with ``git archive`` into a
temporary folder as the package ``kgzoo_base`` and its model class built with the same
hyper-parameters, the same initial weights (this checkout's state dict) and the same graphs. Both
then train on the same batches, interleaved step by step (base, new, base, new...) with the same
random seed before each step (so dropout draws the same masks), one Adam each; per step the
script records process CPU time (``time.process_time``) and wall time, and the two losses (the
math must agree up to float round-off). Evaluation: one full-ranking pass without metrics in
eval mode, also interleaved: ``prepare_scoring`` (the whole-graph propagation, KGAT's attention),
``score`` of every valid user in ``eval_batch_size`` chunks, ``end_scoring``; and the largest
score difference between the two sides.

Other processes on the machine change absolute times but hit both sides alike: the ratios are
the measurement. Run with one thread (``OMP_NUM_THREADS=1``, also set here).

Usage::

    PYTHONPATH=$PWD python benchmarks/scripts/model_speed.py gat ml-1m-kg --steps 10 [--base main] [--eval 3]
"""
from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]


def load_base_package(rev: str, dest: Path) -> str:
    """Extract ``kgzoo/`` at git revision ``rev`` into ``dest/kgzoo_base``; returns the package name."""
    blob = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", rev, "kgzoo"], check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")
    (dest / "kgzoo").rename(dest / "kgzoo_base")
    sys.path.insert(0, str(dest))
    return "kgzoo_base"


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``(result, cpu seconds, wall seconds)`` of ``fn()``."""
    c, w = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c, time.perf_counter() - w


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("dataset")
    ap.add_argument("--steps", type=int, default=10, help="timed training steps per side (after one warm-up)")
    ap.add_argument("--eval", type=int, default=3, help="timed full-ranking passes per side")
    ap.add_argument("--base", default="main", help="git revision to compare against")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the numbers to this JSON file")
    args = ap.parse_args()
    if args.steps < 1 or args.eval < 0:
        ap.error("--steps must be >= 1 and --eval >= 0")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import torch
    torch.set_num_threads(1)
    from kgzoo.api import create_datamodule, create_model, model_hparams
    from kgzoo.config import ZooConfig

    cfg = ZooConfig.load(args.model, args.dataset)
    dm = create_datamodule(args.dataset, **cfg.data)
    dm.setup()
    torch.manual_seed(args.seed)
    new = create_model(args.model, dm)
    dm.adapt_to(new)
    graphs = dm.graphs()

    tmp = tempfile.TemporaryDirectory(prefix="model_speed_")
    pkg = load_base_package(args.base, Path(tmp.name))
    base_registry = importlib.import_module(f"{pkg}.registry")
    importlib.import_module(f"{pkg}.models")
    base_cls = base_registry.MODELS.get(args.model)
    known = model_hparams(base_cls)
    base = base_cls(**{k: v for k, v in new.hparams.items() if k in known})
    base.load_state_dict(new.state_dict())
    base.attach(graphs)

    it = iter(dm.train_dataloader())
    batches = [next(it) for _ in range(args.steps + 1)]
    sides = {"base": base, "new": new}
    opts = {k: m.configure_optimizers() for k, m in sides.items()}
    rec: dict[str, dict[str, list[float]]] = {k: {"cpu": [], "wall": [], "loss": [], "eval_cpu": [], "eval_wall": []}
                                              for k in sides}

    def step(name: str, batch: dict, i: int) -> float:
        m, opt = sides[name], opts[name]
        torch.manual_seed(args.seed * 100003 + i)
        opt.zero_grad()
        loss = m.loss(batch)
        loss.backward()
        opt.step()
        return float(loss.detach())

    for m in sides.values():
        m.train()
    for i, batch in enumerate(batches):
        for name in sides:
            loss, c, w = timed(lambda: step(name, batch, i))
            if i == 0:
                continue  # warm-up (first-touch allocations, lazy graph structures)
            r = rec[name]
            r["cpu"].append(c), r["wall"].append(w), r["loss"].append(loss)
        if i:
            print(f"step {i}: base {rec['base']['cpu'][-1]:.3f} s CPU, new {rec['new']['cpu'][-1]:.3f} s CPU; "
                  f"loss base {rec['base']['loss'][-1]:.6f} new {rec['new']['loss'][-1]:.6f}", flush=True)

    users = dm.eval_users("valid")

    def full_pass(m: Any) -> torch.Tensor:
        with torch.no_grad():
            m.prepare_scoring()
            last = None
            for s in range(0, users.numel(), dm.eval_batch_size):
                last = m.score(users[s:s + dm.eval_batch_size])
            m.end_scoring()
        return last

    for m in sides.values():
        m.eval()
    score_diff = 0.0
    for i in range(args.eval):
        last = {}
        for name, m in sides.items():
            last[name], c, w = timed(lambda: full_pass(m))
            rec[name]["eval_cpu"].append(c), rec[name]["eval_wall"].append(w)
        score_diff = max(score_diff, float((last["base"] - last["new"]).abs().max()))
    med = {n: {k: statistics.median(v) for k, v in r.items() if v and k != "loss"} for n, r in rec.items()}
    diff = max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(rec["base"]["loss"], rec["new"]["loss"]))
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.base], check=True,
                            capture_output=True, text=True).stdout.strip()
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    out = {"model": args.model, "dataset": args.dataset, "base": f"{args.base} ({commit})", "new": f"HEAD ({head})",
           "steps": args.steps,
           "median": med, "speedup_cpu": med["base"]["cpu"] / med["new"]["cpu"],
           "speedup_wall": med["base"]["wall"] / med["new"]["wall"],
           "eval_speedup_cpu": med["base"]["eval_cpu"] / med["new"]["eval_cpu"] if args.eval else None,
           "max_rel_loss_diff": diff, "max_score_diff": score_diff, "steps_per_epoch": len(dm.train_dataloader())}
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
