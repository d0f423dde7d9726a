"""Training-step and evaluation speed of one model, this checkout against a git revision, side by side.

The revision's model file (default ``main``) and those of the modules it imports relatively
that differ from this checkout (e.g. ``kgzoo/models/layers/propagation.py``) are loaded from
``git show REV:<file>`` into private modules (``kgzoo.models._rev_kgin``, ...; the model is not
registered), so both implementations run in ONE process on the same data, batches and seeds:

* training: the same parameters (the revision's model gets this checkout's ``state_dict``), each
  with its own Adam; step ``i`` of both runs on batch ``i`` after ``torch.manual_seed(i)`` (the
  same dropout and sampling draws), interleaved A/B/A/B, timed with ``time.process_time`` (CPU)
  and ``time.perf_counter`` (wall). The loss of both at each step is printed (equal up to float
  round-off as long as the parameters agree, they drift apart slowly).
* evaluation: ``prepare_scoring`` + ``score`` of every valid user in ``eval_batch_size`` chunks +
  ``end_scoring`` (a full-ranking pass without metrics), interleaved, and the largest score
  difference.

Medians over the timed repetitions; one torch thread unless ``--threads``. Other processes
sharing the CPU slow both sides alike: the ratios hold, absolute times do not.

Usage: ``PYTHONPATH=$PWD python benchmarks/scripts/model_speed.py MODEL DATASET [--steps N]
[--evals N] [--rev main] [--threads 1]``
"""
from __future__ import annotations

import argparse
import importlib.util
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import torch

ROOT = Path(__file__).resolve().parents[2]


def _changed(rev: str, path: str) -> bool:
    return subprocess.run(["git", "diff", "--quiet", rev, "--", path], cwd=ROOT).returncode != 0


def _load_from_rev(rev: str, path: str, tag: str) -> ModuleType:
    """Module ``path`` (``kgzoo/...py``) as of ``rev``, named ``<package>._<tag>_<stem>``; its
    relative imports of modules that differ from this checkout are loaded from ``rev`` too."""
    source = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout
    package = path[:-3].rsplit("/", 1)[0].replace("/", ".")

    def swap(m: re.Match) -> str:
        dots, name = m.group(1), m.group(2)
        base = package.split(".")[: len(package.split(".")) - (len(dots) - 1)]
        target = "/".join(base + name.split(".")) + ".py"
        if not (ROOT / target).exists() or not _changed(rev, target):
            return m.group(0)
        old = _load_from_rev(rev, target, tag)
        return f"from {dots}{'.'.join(name.split('.')[:-1] + [old.__name__.rsplit('.', 1)[1]])} import"

    source = re.sub(r"from (\.+)([\w.]+) import", swap, source)
    name = f"{package}._{tag}_{Path(path).stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_loader(name, loader=None)
    mod = importlib.util.module_from_spec(spec)
    mod.__file__ = f"{rev}:{path}"
    sys.modules[name] = mod
    import kgzoo.registry as registry

    real = registry.register_model

    def unregistered(model_name: str, **_: object):
        def wrap(cls: type) -> type:
            cls.model_name = model_name
            return cls
        return wrap

    registry.register_model = unregistered  # the revision's class must not replace the registered one
    try:
        exec(compile(source, mod.__file__, "exec"), mod.__dict__)
    finally:
        registry.register_model = real
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("dataset")
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per side")
    ap.add_argument("--evals", type=int, default=2, help="timed evaluation passes per side (0: none)")
    ap.add_argument("--rev", default="main", help="the git revision to compare against")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import kgzoo
    from kgzoo.api import attach, create_datamodule, create_model, model_hparams
    from kgzoo.config import ZooConfig
    from kgzoo.registry import MODELS

    cfg = ZooConfig.load(args.model, args.dataset)
    dm = create_datamodule(args.dataset, batch_size=cfg.data["batch_size"],
                           eval_batch_size=cfg.data.get("eval_batch_size", 256), seed=0)
    torch.manual_seed(0)
    new = create_model(args.model, dm)
    cls = MODELS.get(args.model)
    path = str(Path(sys.modules[cls.__module__].__file__).resolve().relative_to(ROOT))
    old_cls = getattr(_load_from_rev(args.rev, path, args.rev.replace("-", "_").replace("/", "_")), cls.__name__)
    # the revision's class with its own defaults: only the sizes and the zoo config's values are given
    kwargs = {k: v for k, v in dm.model_kwargs().items() if k in model_hparams(old_cls)}
    kwargs.update(cfg.model)
    old = old_cls(**kwargs)
    attach(old, dm)
    old.load_state_dict(new.state_dict())
    models = {"rev": old, "new": new}
    opts = {k: m.configure_optimizers() for k, m in models.items()}
    batches: list[dict[str, torch.Tensor]] = []
    while len(batches) < args.steps + 2:  # as many epochs as it takes
        batches.extend(iter(dm.train_dataloader()))
    batches = batches[: args.steps + 2]

    cpu: dict[str, list[float]] = {"rev": [], "new": []}
    wall: dict[str, list[float]] = {"rev": [], "new": []}
    worst = 0.0
    for i, b in enumerate(batches):
        losses = {}
        for k in ("rev", "new") if i % 2 == 0 else ("new", "rev"):  # alternate who goes first
            m, opt = models[k], opts[k]
            m.train()
            torch.manual_seed(i)
            c, w = time.process_time(), time.perf_counter()
            opt.zero_grad()
            loss = m.loss(b)
            loss.backward()
            opt.step()
            c, w = time.process_time() - c, time.perf_counter() - w
            losses[k] = float(loss.detach())
            if i >= 2:  # warm-up
                cpu[k].append(c)
                wall[k].append(w)
        rel = abs(losses["new"] - losses["rev"]) / max(abs(losses["rev"]), 1e-12)
        worst = max(worst, rel)
        print(f"step {i}: loss rev {losses['rev']:.8g} new {losses['new']:.8g} (rel diff {rel:.1e})", flush=True)

    def med(x: list[float]) -> float:
        return statistics.median(x) if x else float("nan")

    print(f"\n{args.model} on {args.dataset}, {args.threads} thread(s), batch {dm.batch_size}, {len(batches)} steps "
          f"(an epoch has {len(dm._train_ds)}); torch {torch.__version__}, kgzoo {kgzoo.__version__}")
    print(f"train step  rev: cpu {med(cpu['rev']) * 1e3:8.1f} ms  wall {med(wall['rev']) * 1e3:8.1f} ms")
    print(f"train step  new: cpu {med(cpu['new']) * 1e3:8.1f} ms  wall {med(wall['new']) * 1e3:8.1f} ms")
    print(f"train speed-up (rev / new): cpu {med(cpu['rev']) / med(cpu['new']):.2f}x  "
          f"wall {med(wall['rev']) / med(wall['new']):.2f}x; largest relative loss difference {worst:.1e}")
    steps_per_epoch = len(dm._train_ds)
    print(f"per epoch ({steps_per_epoch} steps, from the medians): rev cpu {med(cpu['rev']) * steps_per_epoch:.1f} s, "
          f"new cpu {med(cpu['new']) * steps_per_epoch:.1f} s")

    if args.evals <= 0:
        return
    users = dm.eval_users("valid")
    ecpu: dict[str, list[float]] = {"rev": [], "new": []}
    ewall: dict[str, list[float]] = {"rev": [], "new": []}
    scores: dict[str, torch.Tensor] = {}
    old.load_state_dict(new.state_dict())
    for r in range(args.evals + 1):
        for k in ("rev", "new") if r % 2 == 0 else ("new", "rev"):
            m = models[k]
            m.eval()
            c, w = time.process_time(), time.perf_counter()
            with torch.no_grad():
                m.prepare_scoring()
                first = None
                for s in range(0, users.numel(), dm.eval_batch_size):
                    out = m.score(users[s:s + dm.eval_batch_size])
                    first = out if first is None else first
                m.end_scoring()
            c, w = time.process_time() - c, time.perf_counter() - w
            scores[k] = first
            if r >= 1:
                ecpu[k].append(c)
                ewall[k].append(w)
    diff = float((scores["new"] - scores["rev"]).abs().max())
    print(f"eval pass   rev: cpu {med(ecpu['rev']):8.3f} s  wall {med(ewall['rev']):8.3f} s  ({users.numel()} users)")
    print(f"eval pass   new: cpu {med(ecpu['new']):8.3f} s  wall {med(ewall['new']):8.3f} s")
    print(f"eval speed-up (rev / new): cpu {med(ecpu['rev']) / med(ecpu['new']):.2f}x  "
          f"wall {med(ewall['rev']) / med(ewall['new']):.2f}x; largest score difference (first batch) {diff:.1e}")


if __name__ == "__main__":
    main()
