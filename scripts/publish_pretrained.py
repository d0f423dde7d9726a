#!/usr/bin/env python
"""Publish pretrained weights: train (or take a Lightning checkpoint), export safetensors,
write the manifest entry, reload through :func:`kgzoo.load_pretrained` and re-evaluate.

Examples::

    # the quick models on ml-100k-kg, shipped inside the package (kgzoo/pretrained/)
    python scripts/publish_pretrained.py pop bpr lightgcn --dataset ml-100k-kg --schedule full

    # every registered top-K model (train each one; slow)
    python scripts/publish_pretrained.py --all --dataset ml-100k-kg

    # the converged, tuned runs of the fair-baselines table (seed 0's best checkpoint; nothing trained)
    python scripts/publish_pretrained.py pop bpr lightgcn --dataset ml-100k-kg --rows benchmarks/results/converged.jsonl

    # an existing Lightning checkpoint (read with torch.load(weights_only=True): tensors only)
    python scripts/publish_pretrained.py kgat --dataset ml-100k-kg --ckpt runs/ml-100k-kg/kgat/seed0-real/checkpoints/best.ckpt

    # weights too large to ship: write the file to --out-dir for upload, the manifest points at a URL
    python scripts/publish_pretrained.py kgat --url-base https://example.org/kgzoo/v1/ --out-dir dist/weights

Steps for each model:
 1. train with :func:`kgzoo.bench.experiment.run_experiment` (the config's ``train`` schedule with
    ``--schedule full``, its ``bench`` schedule with ``--schedule bench``), or read ``--ckpt``;
 2. rebuild the model on the DataModule of the run's protocol, load the best weights and
    evaluate the test split (float32);
 3. with ``--dtype auto``, cast floating tensors to float16 and evaluate again; keep float16
    if no test metric moves by ``--fp16-tolerance`` (0.001) or more (a hit rate may move by one
    evaluated user: its resolution), else float32;
 4. write ``<model>__<dataset>.safetensors`` and a manifest entry whose ``metrics`` are the
    test metrics of the weights as written;
 5. reload through ``load_pretrained`` (which rebuilds the DataModule from the manifest's
    protocol and checks its fingerprint) and re-evaluate: every metric must equal the
    entry's within ``1e-6`` relative, else the entry is not written and the script fails.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import kgzoo
from kgzoo import hub
from kgzoo.api import create_datamodule, create_model
from kgzoo.config import ZooConfig
from kgzoo.data.datasets import dataset_spec
from kgzoo.data.download import sha256_bytes
from kgzoo.data.protocol import EvalProtocol
from kgzoo.hub.manifest import PACKAGE_DIR
from kgzoo.paths import cache_dir
from kgzoo.quiet import quiet_lightning
from kgzoo.models.base import SIZE_KEYS
from kgzoo.registry import MODELS

SHIP_LIMIT = 40 * 2**20  # total bytes of weights inside the package


def _hparams(raw: dict[str, Any]) -> dict[str, Any]:
    """Model hyper-parameters without the sizes and task (those come from the DataModule)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in raw.items() if k not in SIZE_KEYS}


def converged_row(model: str, dataset: str, args: argparse.Namespace) -> Any:
    """The newest ok row of ``model`` on ``dataset`` and ``--seed`` in ``--rows`` whose schedule is
    converged (early stopping, or closed form for models with nothing to train).

    Raises:
        SystemExit: no such row, or a row stopped by its epoch cap (not a baseline: never published).
    """
    from kgzoo.bench.rows import read_rows

    rows = [r for r in read_rows(args.rows) if r.model == model and r.dataset == dataset and r.seed == args.seed
            and r.status == "ok" and (r.schedule or {}).get("kind") == "converged"]
    if not rows:
        raise SystemExit(f"{model}/{dataset}: no converged ok row with seed {args.seed} in {args.rows}")
    row = max(rows, key=lambda r: r.time or "")
    if row.stopped_by not in ("early_stopping", "closed_form"):
        raise SystemExit(f"{model}/{dataset}: the row of {row.time} was stopped by {row.stopped_by}: not converged")
    return row


def find_checkpoint(row: Any, runs_root: Path) -> Path:
    """The file of ``row.checkpoint`` (relative to a bench output folder) under ``runs_root``: the
    newest match of ``runs_root/*/<checkpoint>`` or ``runs_root/<checkpoint>``.

    Raises:
        SystemExit: no such file (the run's folder was deleted: rerun the cell).
    """
    found = sorted([q for q in (*runs_root.glob(f"*/{row.checkpoint}"), runs_root / row.checkpoint) if q.is_file()],
                   key=lambda q: q.stat().st_mtime)
    if not found:
        raise SystemExit(f"{row.model}/{row.dataset}: checkpoint {row.checkpoint} of the row of {row.time} "
                         f"not found under {runs_root}")
    return found[-1]


def from_row(row: Any, model: str, dataset: str, ckpt: Path | None, **training: Any) -> dict[str, Any]:
    """What :func:`publish` needs of a result row: the best checkpoint's ``state_dict`` (read from
    ``ckpt``; for a model with nothing to optimise, Pop, which saves none, the state that
    ``attach`` computes), hyper-parameters, protocol, test metrics and the training record (the
    row's seed, epochs, stopping, schedule, tuning, code hash and config, plus ``training``).

    Raises:
        SystemExit: a row with parameters but no checkpoint.
    """
    cfg = ZooConfig.load(model, dataset)
    if ckpt is not None:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    elif row.params == 0:
        dm = create_datamodule(dataset, protocol=EvalProtocol(**row.protocol), **cfg.data)
        state = create_model(model, datamodule=dm, config=False, **_hparams(row.hparams)).state_dict()
    else:
        raise SystemExit(f"{model}/{dataset}: the run of {row.time} saved no checkpoint ({row.epochs} epochs)")
    record = {k: getattr(row, k) for k in ("seed", "best_epoch", "epochs", "stopped_by", "schedule",
                                           "seconds_per_epoch", "train_seconds", "valid_metrics", "tuning",
                                           "versions", "code_hash", "config", "config_sha", "time")}
    if record["config"]:  # relative to the config directory
        record["config"] = "zoo_configs/" + record["config"]
    return {"state_dict": state, "hparams": _hparams(row.hparams), "protocol": row.protocol,
            "data": dict(cfg.data), "metrics": row.metrics, "training": {**record, **training}}


def train_or_read(model: str, dataset: str, args: argparse.Namespace) -> dict[str, Any]:
    """A result-like dict with ``state_dict`` (float32), ``hparams``, ``protocol``, ``metrics`` and training info."""
    if args.rows:
        row = converged_row(model, dataset, args)
        ckpt = find_checkpoint(row, Path(args.runs_root) if args.runs_root else cache_dir("runs")) \
            if row.checkpoint else None
        return {**from_row(row, model, dataset, ckpt, from_rows=Path(args.rows).as_posix()), "strict_metrics": True}
    if args.ckpt:
        ck = torch.load(args.ckpt, map_location="cpu", weights_only=True)  # tensors and plain types only
        hp = dict(ck.get("hyper_parameters") or {})
        protocol = EvalProtocol(**{**dataset_spec(dataset).protocol.to_dict(), "seed": args.seed})
        best = [v.get("best_model_score") for k, v in (ck.get("callbacks") or {}).items() if k.startswith("ModelCheckpoint")]
        training = {"schedule": "checkpoint", "checkpoint": str(args.ckpt), "seed": args.seed,
                    "best_epoch": ck.get("epoch"), "global_step": ck.get("global_step"),
                    "best_valid_score": float(best[0]) if best and best[0] is not None else None}
        return {"state_dict": ck["state_dict"], "hparams": _hparams(hp), "protocol": protocol.to_dict(),
                "data": dict(ZooConfig.load(model, dataset).data), "metrics": {}, "training": training}
    from kgzoo.bench.experiment import run_experiment

    row = run_experiment(model, dataset, seed=args.seed, quick=args.schedule == "bench", out_dir=args.runs,
                         max_epochs=args.max_epochs, progress=False)
    ckpt = Path(args.runs) / row.checkpoint if row.checkpoint else None
    return {**from_row(row, model, dataset, ckpt, schedule=args.schedule), "row": row.to_dict()}


def _eval_users(dm: Any) -> int | None:
    """The number of users the test split evaluates (top-K DataModules), else ``None``."""
    f = getattr(dm, "eval_users", None)
    return int(f("test").numel()) if callable(f) else None


def publish(model: str, args: argparse.Namespace) -> dict[str, Any]:
    dataset = args.dataset
    name = f"{model}/{dataset}"
    hub.check_name(name)
    t0 = time.perf_counter()
    run = train_or_read(model, dataset, args)
    dm = create_datamodule(dataset, protocol=EvalProtocol(**run["protocol"]), **run["data"])
    dm.setup()
    net = create_model(model, datamodule=dm, config=False, **run["hparams"])
    state32 = {k: v.detach().float().contiguous() if v.is_floating_point() else v.contiguous()
               for k, v in run["state_dict"].items()}
    net.load_state_dict(state32, strict=True)
    m32 = hub.evaluate(net, dm)
    if run["metrics"]:
        bad = hub.metrics_close(m32, run["metrics"], rel=1e-6)
        if bad and run.get("strict_metrics"):
            raise SystemExit(f"{name}: re-evaluation of the row's checkpoint differs from the row's test metrics "
                             f"on {bad}: { {k: (m32.get(k), run['metrics'].get(k)) for k in bad} }")
        if bad:
            print(f"  note: re-evaluation of the best checkpoint differs from the run's test row on {bad}")
    state, dtype, m_final = state32, "float32", m32
    fp16_delta = None
    if args.dtype in ("auto", "float16"):
        state16 = {k: v.half() if v.is_floating_point() else v for k, v in state32.items()}
        net.load_state_dict(state16, strict=True)
        m16 = hub.evaluate(net, dm)
        fp16_delta = max(abs(m16[k] - m32[k]) for k in m32)
        if args.dtype == "float16" or hub.fp16_within(m16, m32, args.fp16_tolerance, _eval_users(dm)):
            state, dtype, m_final = state16, "float16", m16
        print(f"  float16: largest test-metric change {fp16_delta:.2e} -> keep {dtype}")

    from safetensors.torch import save

    meta = {"name": name, "model": model, "dataset": dataset, "fingerprint": dm.fingerprint, "kgzoo": kgzoo.__version__}
    blob = save({k: v.contiguous() for k, v in state.items()}, metadata=meta)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    file = f"{model}__{dataset}.safetensors"
    manifest = Path(args.manifest)
    shipped = args.url_base is None and not args.hf_repo
    if shipped:
        others = sum(e["size"] for n, e in _entries(manifest).items() if e.get("file") and n != name)
        if others + len(blob) > SHIP_LIMIT:
            raise SystemExit(f"{name}: {len(blob)} bytes would bring the shipped weights to {others + len(blob)} "
                             f"bytes (> {SHIP_LIMIT}); publish it with --url-base or --hf-repo")
    entry: dict[str, Any] = {
        "model": model, "dataset": dataset, "protocol": run["protocol"], "kg_ablation": dm.kg_ablation_kind,
        "fingerprint": dm.fingerprint, "main_metric": net.main_metric, "metrics": m_final,
        "metrics_float32": m32, "hparams": hub.json_safe(run["hparams"]), "data": run["data"],
        "sha256": sha256_bytes(blob), "size": len(blob), "dtype": dtype,
        "params": int(sum(v.numel() for v in state.values())),
        "licence": f"weights: research only, derived from {dataset} ({dm.spec.licence}); code: Apache-2.0",
        "paper": MODELS.entry(model).meta.get("paper"),
        "training": hub.json_safe(run["training"]), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if shipped:
        entry["file"] = file
    elif args.hf_repo:
        entry["hf"] = {"repo_id": args.hf_repo, "filename": file, **({"revision": args.hf_revision} if args.hf_revision else {})}
    else:
        entry["url"] = args.url_base.rstrip("/") + "/" + file

    # verify through load_pretrained on a temporary manifest before touching the real one
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".publish-") as tmp:
        tmp_manifest = Path(tmp) / "manifest.json"
        (Path(tmp) / file).write_bytes(blob)
        check_entry = {k: v for k, v in entry.items() if k not in ("url", "hf")} | {"file": file}
        hub.write_manifest_entry(tmp_manifest, name, check_entry)
        loaded = hub.load_pretrained(name, manifest=tmp_manifest, root=args.root)
        m_reload = hub.evaluate(loaded.model, loaded.datamodule)
        bad = hub.metrics_close(m_reload, m_final, rel=1e-6)
        if bad:
            raise SystemExit(f"{name}: re-evaluated metrics differ from the manifest's on {bad}: "
                             f"{ {k: (m_reload.get(k), m_final.get(k)) for k in bad} }")
        shutil.copyfile(Path(tmp) / file, out_dir / file)
    hub.write_manifest_entry(manifest, name, entry)
    main = f"test/{net.main_metric}"
    print(f"  {name}: {dtype}, {len(blob) / 2**20:.2f} MiB, {main}={m_final[main]:.4f} "
          f"(float32 {m32[main]:.4f}), verified by reload, {time.perf_counter() - t0:.0f}s")
    return entry


def _entries(manifest: Path) -> dict[str, Any]:
    return json.loads(manifest.read_text())["entries"] if manifest.is_file() else {}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", help="registered model names (see kgzoo.list_models())")
    p.add_argument("--all", action="store_true", help="every registered model of the dataset's task")
    p.add_argument("--skip-published", action="store_true", help="skip names already in the manifest")
    p.add_argument("--dataset", default="ml-100k-kg")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--schedule", choices=["full", "bench"], default="full",
                   help="the config's train section (full) or its bench section (short)")
    p.add_argument("--max-epochs", type=int, default=None, help="override the schedule's max_epochs")
    p.add_argument("--ckpt", default=None, help="an existing Lightning checkpoint instead of training (one model)")
    p.add_argument("--rows", default=None, metavar="JSONL",
                   help="publish the converged runs of these result rows (e.g. benchmarks/results/converged.jsonl): "
                        "the --seed row's best checkpoint, its tuning record and schedule; nothing is trained")
    p.add_argument("--runs-root", default=None,
                   help="where the rows' bench runs live (default: the kgzoo runs cache, cache_dir('runs'))")
    p.add_argument("--dtype", choices=["auto", "float16", "float32"], default="auto")
    p.add_argument("--fp16-tolerance", type=float, default=1e-3,
                   help="keep float16 when no test metric moves by this much or more (default 0.001; a hit "
                        "rate may move by one evaluated user, its resolution)")
    p.add_argument("--out-dir", default=str(PACKAGE_DIR), help="where the .safetensors file goes")
    p.add_argument("--manifest", default=str(hub.MANIFEST_PATH))
    p.add_argument("--url-base", default=None, help="host the file at URL_BASE/<file> instead of shipping it")
    p.add_argument("--hf-repo", default=None, help="host the file in this Hugging Face Hub repo instead")
    p.add_argument("--hf-revision", default=None)
    p.add_argument("--runs", default="runs/publish", help="training output folder")
    p.add_argument("--root", default=None, help="data root")
    args = p.parse_args(argv)
    quiet_lightning()  # its own lines only: no Lightning banner or tip per training and evaluation
    if args.ckpt and len(args.models) != 1:
        p.error("--ckpt takes exactly one model")
    if args.ckpt and args.rows:
        p.error("--ckpt and --rows exclude each other")
    task = dataset_spec(args.dataset).protocol.task
    models = list(args.models)
    if args.all:
        models += [m for m in kgzoo.list_models() if m not in models]
    if not models:
        p.error("name at least one model, or --all")
    done = _entries(Path(args.manifest))
    failed = []
    for m in models:
        if args.skip_published and f"{m}/{args.dataset}" in done:
            print(f"{m}/{args.dataset}: already published, skipped")
            continue
        print(f"{m}/{args.dataset} ({task}): publishing")
        try:
            publish(m, args)
        except (Exception, SystemExit) as e:  # report and go on with the next model
            failed.append(m)
            print(f"  FAILED: {type(e).__name__}: {e}", file=sys.stderr)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
