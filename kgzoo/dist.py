"""Rank and world size of the running process (DDP), in one place.

Lightning's DDP launcher re-runs the command in every rank; before the process group exists
the children are told apart by ``RANK`` / ``LOCAL_RANK`` / ``NODE_RANK`` in their environment
(Lightning's ``_SubprocessScriptLauncher``), afterwards by the group itself.
"""
from __future__ import annotations

import os

import torch


def rank_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def is_rank_zero() -> bool:
    """True on the process that writes results: global rank 0 of a DDP job, or a plain process."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return all(int(os.environ.get(k, "0") or 0) == 0 for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))
