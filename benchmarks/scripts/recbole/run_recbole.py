"""Train and test one RecBole 1.2.1 model on ml-100k under kgzoo's benchmark protocol.

Runs INSIDE RecBole's own virtual environment (``setup_env.sh``), never kgzoo's. Prints one
JSON line (prefixed ``RESULT``) with the same fields as kgzoo's result row:
``seconds_per_epoch`` (training only, per epoch), ``eval_seconds`` (one full validation
pass), ``epoch_seconds_list`` / ``eval_seconds_list`` (every epoch, for medians),
``metrics`` (``test/recall@10``, ``test/ndcg@10``), ``best_epoch``, ``epochs``,
``peak_memory_mb`` (process peak RSS), ``versions``.

Protocol (same as kgzoo's ``ml-100k-kg`` default): the five RecBole atomic files of
``--data`` (linked, never copied, into a temporary ``data_path``), random 8:1:1 split per
user (``RS``, ``RO``, ``group_by: user``), full ranking with seen items masked,
Recall@10 / NDCG@10, ``valid_metric: NDCG@10``, early stopping after 10 evaluations
without improvement, embedding size 64, train batch 2048, lr 1e-3, one uniform negative
per positive. ``eval_batch_size`` is set to 512 users x (items + 1) so that RecBole scores
512 users per evaluation batch, as kgzoo does (RecBole's default 4096 would be 2 users).

Usage (from the repo root):
    /tmp/recbole-venv/bin/python benchmarks/scripts/recbole/run_recbole.py --model BPR --epochs 300
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # RecBole 1.2.1 loads pickled checkpoints with torch's loader

# kgzoo config name -> RecBole hyper-parameter name, for the hyper-parameters both libraries share
SHARED_HPARAMS = {"embedding_dim": "embedding_size", "n_layers": "n_layers", "reg_weight": "reg_weight"}


def _patch_dgl() -> None:
    """RecBole 1.2.1's KGAT calls ``g.edge_subgraph(eids, preserve_nodes=True)``; dgl >= 0.9
    renamed the argument ``relabel_nodes`` (with the opposite meaning). Patch at runtime."""
    try:
        import dgl
    except Exception:  # noqa: BLE001 - dgl is optional (only RecBole's KGAT needs it)
        return
    def fix(orig):
        def edge_subgraph(graph, edges, *args, preserve_nodes=None, **kw):
            if preserve_nodes is not None:
                kw.setdefault("relabel_nodes", not preserve_nodes)
            return orig(graph, edges, *args, **kw)
        return edge_subgraph

    dgl.edge_subgraph = fix(dgl.edge_subgraph)  # RecBole's KGAT calls the function form
    dgl.DGLGraph.edge_subgraph = fix(dgl.DGLGraph.edge_subgraph)


def _patch_numpy() -> None:
    """RecBole 1.2.1 still uses ``np.float``/``np.int`` in places (removed in numpy 1.24)."""
    import numpy as np

    for name, typ in (("float", float), ("int", int), ("bool", bool)):
        if not hasattr(np, name):
            setattr(np, name, typ)


def _n_rows(loader) -> int:
    """Interactions of a RecBole dataloader's split (KG loaders wrap a general one)."""
    loader = getattr(loader, "general_dataloader", loader)
    return int(len(getattr(loader, "_dataset", None) or loader.dataset))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="RecBole model class name (Pop, BPR, LightGCN, CKE, KGAT, ...)")
    p.add_argument("--data", default=os.environ.get("KGZOO_DATA_DIR", "/work/shared/data") + "/ml-100k-kg",
                   help="folder with ml-100k.{inter,item,user,kg,link}")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--eval-users", type=int, default=512, help="users per evaluation batch")
    p.add_argument("--hparams", default="{}", help="JSON dict of extra RecBole config entries")
    p.add_argument("--no-test", action="store_true", help="skip the test pass (timing runs)")
    args = p.parse_args()

    _patch_numpy()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    _patch_dgl()
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    tmp = Path(tempfile.mkdtemp(prefix="recbole-bench-"))
    (tmp / "data").mkdir()
    os.symlink(Path(args.data).resolve(), tmp / "data" / "ml-100k")  # data_path/ml-100k/ml-100k.inter
    n_items_guess = 1683  # 1,682 items + RecBole's padding id 0
    cfg = {
        "data_path": str(tmp / "data"), "checkpoint_dir": str(tmp / "saved"), "seed": args.seed,
        "reproducibility": True, "use_gpu": False, "device": "cpu", "show_progress": False,
        "state": "WARNING", "log_wandb": False, "save_dataset": False, "save_dataloaders": False,
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"],
                     "kg": ["head_id", "relation_id", "tail_id"], "link": ["item_id", "entity_id"]},
        "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user", "mode": "full"},
        "embedding_size": 64, "train_batch_size": 2048, "learning_rate": 1e-3,
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
        "eval_batch_size": args.eval_users * n_items_guess,
        "metrics": ["Recall", "NDCG"], "topk": [10], "valid_metric": "NDCG@10",
        "stopping_step": args.patience, "epochs": args.epochs, "eval_step": 1, "worker": 0,
    }
    cfg.update(json.loads(args.hparams))
    t_setup = time.perf_counter()
    config = Config(model=args.model, dataset="ml-100k", config_dict=cfg)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    setup_seconds = time.perf_counter() - t_setup

    # time RecBole's own epoch functions: _train_epoch (training only) and _valid_epoch (one evaluation)
    train_times: list[float] = []
    eval_times: list[float] = []
    valid_scores: list[float] = []
    orig_train, orig_valid = trainer._train_epoch, trainer._valid_epoch

    train_cpu: list[float] = []
    eval_cpu: list[float] = []

    def timed_train(*a, **kw):
        t, c = time.perf_counter(), time.process_time()
        out = orig_train(*a, **kw)
        train_times.append(time.perf_counter() - t)
        train_cpu.append(time.process_time() - c)
        return out

    def timed_valid(*a, **kw):
        t, c = time.perf_counter(), time.process_time()
        out = orig_valid(*a, **kw)
        eval_times.append(time.perf_counter() - t)
        eval_cpu.append(time.process_time() - c)
        valid_scores.append(float(out[0]))
        return out

    trainer._train_epoch, trainer._valid_epoch = timed_train, timed_valid
    t0 = time.perf_counter()
    best_valid_score, best_valid_result = trainer.fit(train_data, valid_data, saved=not args.no_test,
                                                      show_progress=False)
    train_seconds = time.perf_counter() - t0
    metrics: dict[str, float] = {}
    test_seconds = 0.0
    if not args.no_test:
        t1 = time.perf_counter()
        test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
        test_seconds = time.perf_counter() - t1
        metrics = {f"test/{k}": float(v) for k, v in test_result.items()}
    import recbole

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = {
        "library": "recbole", "model": args.model, "seed": args.seed,
        "metrics": metrics, "valid_metrics": {f"valid/{k}": float(v) for k, v in (best_valid_result or {}).items()},
        "best_epoch": max(range(len(valid_scores)), key=valid_scores.__getitem__) if valid_scores else None,
        "epochs": len(train_times),
        "seconds_per_epoch": sum(train_times) / max(1, len(train_times)),
        "eval_seconds": sum(eval_times) / max(1, len(eval_times)),
        "epoch_seconds_list": train_times, "eval_seconds_list": eval_times,
        "epoch_cpu_list": train_cpu, "eval_cpu_list": eval_cpu,
        "train_seconds": train_seconds, "test_seconds": test_seconds, "setup_seconds": setup_seconds,
        "peak_memory_mb": rss, "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "threads": torch.get_num_threads(),
        "n_users": int(dataset.user_num - 1), "n_items": int(dataset.item_num - 1),
        "n_train": _n_rows(train_data), "n_valid": _n_rows(valid_data), "n_test": _n_rows(test_data),
        "config": {k: config[k] for k in ("embedding_size", "train_batch_size", "learning_rate", "eval_batch_size",
                                           "stopping_step", "valid_metric") if k in config}
                  | {k: config[k] for k in json.loads(args.hparams)},
        "versions": {"recbole": recbole.__version__, "torch": torch.__version__, "python": platform.python_version()},
    }
    print("RESULT " + json.dumps(row), flush=True)


if __name__ == "__main__":
    sys.exit(main())
