"""Metrics under torch.distributed (gloo, CPU): sums/counts reduce to single-process numbers.

Each process evaluates its own disjoint, unevenly sized share of the users (as the
DataModule's no-padding evaluation sampler does) and ``compute()`` must equal the
single-process result on all users.
"""

from __future__ import annotations

import datetime
import math
import socket
import tempfile
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from kgzoo.metrics import CTRMetrics, LinkPredictionMetrics, TopKMetrics

KS = [1, 5, 20]
N_USERS, N_ITEMS = 37, 50
SPLIT = 13  # rank 0 gets users [0, 13), rank 1 gets [13, 37)


def _data():
    g = torch.Generator().manual_seed(1234)
    scores = torch.randn(N_USERS, N_ITEMS, generator=g)
    seen = torch.rand(N_USERS, N_ITEMS, generator=g) < 0.2
    target = (torch.rand(N_USERS, N_ITEMS, generator=g) < 0.1) & ~seen
    target[::9] = False  # some users without test items: skipped
    scores[seen] = -math.inf
    # CTR impressions: 200 of them, for 10 users
    logits = torch.randn(200, generator=g)
    labels = (torch.rand(200, generator=g) < 0.4).long()
    users = torch.randint(0, 10, (200,), generator=g)
    true = torch.randint(0, N_ITEMS, (N_USERS,), generator=g)
    return scores, target, logits, labels, users, true


def _feed(metrics, lo: int, hi: int, data) -> None:
    """Update the metrics with users [lo, hi) in uneven batches (sizes 1, 2, 3, ...)."""
    scores, target, logits, labels, users, true = data
    topk, ctr, link = metrics
    start, size = lo, 1
    while start < hi:
        end = min(start + size, hi)
        topk.update(scores[start:end], target[start:end])
        link.update(scores[start:end], true[start:end])
        start, size = end, size + 1
    # CTR: impressions split proportionally (the same user may land on both ranks)
    a, b = lo * 200 // N_USERS, hi * 200 // N_USERS
    ctr.update(logits[a:b], labels[a:b], users[a:b])


def _new_metrics():
    return TopKMetrics(KS), CTRMetrics(), LinkPredictionMetrics()


def _results(metrics) -> dict[str, float]:
    out: dict[str, float] = {}
    for prefix, m in zip(("topk", "ctr", "link"), metrics):
        for key, value in m.compute().items():
            out[f"{prefix}/{key}"] = float(value)
    topk = metrics[0]
    with topk.sync_context():  # states are local again after compute(); sync to read global counts
        out["topk/count"] = float(topk.count)
        out["topk/skipped"] = float(topk.skipped_users)
    return out


def _worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        bounds = [0, N_USERS] if world_size == 1 else [0, SPLIT, N_USERS]
        metrics = _new_metrics()
        _feed(metrics, bounds[rank], bounds[rank + 1], _data())
        torch.save(_results(metrics), Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def single_process() -> dict[str, float]:
    metrics = _new_metrics()
    _feed(metrics, 0, N_USERS, _data())
    return _results(metrics)


@pytest.mark.parametrize("world_size", [1, 2])
def test_ddp_matches_single_process(world_size, single_process):
    assert single_process["topk/skipped"] == 5  # users 0, 9, 18, 27, 36
    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(_worker, args=(world_size, _free_port(), out_dir), nprocs=world_size, join=True)
        per_rank = [torch.load(Path(out_dir) / f"rank{r}.pt", weights_only=True) for r in range(world_size)]
    for res in per_rank:
        assert res.keys() == single_process.keys()
        for key, expected in single_process.items():
            assert math.isclose(res[key], expected, abs_tol=1e-6), (world_size, key, res[key], expected)
