"""Rank and world size of the running process (DDP), in one place, and the SIGTERM handling of
kgzoo's Trainers under DDP (:func:`sigterm_without_collectives`).

Lightning's DDP launcher re-runs the command in every rank; before the process group exists
the children are told apart by ``RANK`` / ``LOCAL_RANK`` / ``NODE_RANK`` in their environment
(Lightning's ``_SubprocessScriptLauncher``), afterwards by the group itself.
"""
from __future__ import annotations

import atexit
import functools
import os
import sys
import types
from typing import Any


def _group() -> Any:
    """``torch.distributed`` where its default process group exists, else ``None``; without
    importing torch (a group exists only in a process that imported it): the command line asks
    for the rank before it knows whether its command needs torch."""
    torch = sys.modules.get("torch")
    dist = getattr(torch, "distributed", None)
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist
    return None


def rank_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` without one."""
    dist = _group()
    return (dist.get_rank(), dist.get_world_size()) if dist is not None else (0, 1)


def is_rank_zero() -> bool:
    """True on the process that writes results: global rank 0 of a DDP job, or a plain process."""
    dist = _group()
    if dist is not None:
        return dist.get_rank() == 0
    return all(int(os.environ.get(k, "0") or 0) == 0 for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def _sigterm_flag(connector: Any, signum: int, _frame: Any) -> None:
    """SIGTERM handler of a Lightning ``_SignalConnector`` (bound to it): the launching process passes
    the signal on to the ranks it started (Lightning's own ``launcher.kill``), and the signal is
    noted (``received_sigterm``); no collective call."""
    if not connector.received_sigterm:
        launcher = connector.trainer.strategy.launcher
        if launcher is not None:
            launcher.kill(signum)
    connector.received_sigterm = True


def sigterm_without_collectives(trainer: Any) -> None:
    """Give ``trainer`` (a :class:`lightning.Trainer`) a SIGTERM handler without collective calls.

    Lightning 2.6's handler (``_SignalConnector._sigterm_notifier_fn``, since Lightning-AI/pytorch-lightning
    PR #20825) broadcasts from rank 0 inside the signal handler. A handler runs where the rank's Python
    happens to be: when SIGTERM reaches every rank at once (a scheduler stopping the job, ``kill`` of the
    process group, ``systemctl stop``), rank 1's handler waited in that broadcast while rank 0 waited in
    the step's gradient all-reduce (inside C++, where its own handler cannot run), and both hung until
    the process group's timeout (30 min; ``tests/unit/test_ddp_launch.py``). This handler only notes the signal
    and, on the launching process, passes it on to its ranks (as Lightning's does); rank 0's note reaches
    every rank through the broadcast Lightning's training loop makes at the start of each step, so all
    ranks raise ``SIGTERMException`` at the same step. A Trainer without Lightning's signal connector
    (another Lightning version) is left as it is.

    Raises:
        nothing.
    """
    try:
        from lightning.pytorch.trainer.connectors.signal_connector import _SignalConnector
    except ImportError:  # pragma: no cover (a Lightning without the module)
        return
    connector = getattr(trainer, "_signal_connector", None)
    if isinstance(connector, _SignalConnector):
        # read by register_signal_handlers when a fit or test starts
        connector._sigterm_notifier_fn = types.MethodType(_sigterm_flag, connector)


def _destroy_group() -> None:
    dist = _group()
    if dist is not None:
        dist.destroy_process_group()


@functools.cache  # registered once per process
def destroy_group_at_exit() -> None:
    """Destroy the default process group when this process exits, whatever its backend (once
    per process; nothing to do in a run without one).

    Lightning registers this for NCCL only. A gloo group left to the interpreter's shutdown
    aborted a rank now and then as it exited (``terminate called without an active exception``,
    SIGABRT), after a fit that had ended well: 2 of 7 runs of
    ``tests/unit/test_resume_point.py``'s two-rank fits, none of 13 with the group destroyed.
    Call it in the process that will hold the group (a rank), before the process exits.

    Raises:
        nothing.
    """
    atexit.register(_destroy_group)
