"""Library notices that kgzoo triggers knowingly, dropped where it triggers them and nowhere else.

:func:`lightning_quiet` is the one ``with`` block around kgzoo's calls into Lightning (a bench
cell's Trainer, ``kgzoo fit``/``test``, the KG vector pretraining, ``kgzoo update``'s
fine-tune): it drops the notices of :data:`LIGHTNING_NOTICES` plus the caller's own patterns
(e.g. :data:`NO_VALIDATION` for a Trainer that skips validation on purpose), and
torch/Lightning's own deprecation and future warnings; every other warning shows. Not global:
:func:`warnings.catch_warnings` restores the filters when the block ends. The same block drops
the INFO lines every Trainer logs when it is built (:data:`LIGHTNING_BANNERS`: "GPU available",
"TPU available", the litlogger/litmodels tips) by a :class:`logging.Filter` on Lightning's
rank-zero loggers, removed when the block ends; Lightning's other INFO lines ("Seed set to 0",
checkpoint restores) still show, and so does its "GPU available but not used" warning.

:func:`quiet_lightning` is the process-wide form for a command whose output is a grid's or a
study's lines (``kgzoo bench``, ``reproduce``, ``tune``, ``update``, ``scripts/publish_pretrained.py``):
Lightning's loggers at WARNING, so no per-Trainer INFO line at all.
"""
from __future__ import annotations

import contextlib
import logging
import re
import warnings
from typing import Iterator

#: Lightning's notices that say nothing about a kgzoo run (matched by message, regex)
LIGHTNING_NOTICES = (
    r".*LeafSpec.*",  # torch.utils._pytree FutureWarning, raised through Lightning's apply_to_collection
    r"The number of training batches .* is smaller than the logging",  # kgzoo logs per epoch on purpose
    r".*does not have many workers which may be a bottleneck.*",  # in-memory batches need no workers
    r".*configure_optimizers` returned `None`.*",  # a model with nothing to train (Pop): "`LightningModule.configure_..."
    # Recommender overrides transfer_batch_to_device on purpose (a batch already on the device is not walked again)
    r".*overridden `transfer_batch_to_device` in `LightningModule` but have passed in a `LightningDataModule`.*",
    # under DDP, once per key and cell: kgzoo's valid/test values are torchmetrics' states summed over the
    # ranks (exact), and train/loss is rank-local on purpose (docs/contracts.md); a user's own keys still warn
    r"It is recommended to use `self.log\('(train|valid|test)/[^']*', \.\.\., sync_dist=True\)`",
)
#: a Trainer that trains without validation on purpose (``limit_val_batches=0``: the KG vector
#: pretraining, ``kgzoo update``'s fine-tune) while its module defines ``validation_step``
NO_VALIDATION = r".*`validation_step` but have no `val_dataloader`.*"
#: a cell resumed (``kgzoo bench --resume``, a study's interrupted trial): its checkpoint folder holds
#: its resume point and best checkpoint on purpose
RESUMED_CHECKPOINTS = r"Checkpoint directory .* exists and is not empty"


#: INFO lines every Lightning Trainer logs when it is built, which say nothing about a kgzoo run
#: (matched from the start of the message, regex): the device lines (a GPU present but unused is
#: still a ``PossibleUserWarning``, which shows) and the tips advertising Lightning's cloud services
LIGHTNING_BANNERS = (
    r"GPU available: ",
    r"TPU available: ",
    r"HPU available: ",
    r"💡 Tip: ",
)
#: the INFO line a Trainer logs when ``fit`` ends at its epoch cap: dropped (``lightning_quiet(lines=...)``)
#: for the Trainers kgzoo builds inside a library call (the KG vectors' pretraining, ``update_model``'s
#: fine-tune), whose caller built no Trainer; ``kgzoo fit`` and a user's own Trainer still say it
FIT_STOPPED = r"`Trainer\.fit` stopped: "
#: the loggers of Lightning's ``rank_zero_info`` (the ``lightning_utilities`` helper logs through
#: the one of these its last importer set)
RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
#: the loggers :func:`quiet_lightning` sets to WARNING
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning")


class _DropLines(logging.Filter):
    """Drops the log records whose message matches one of ``patterns`` (from its start)."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        super().__init__()
        self.patterns = [re.compile(p) for p in patterns]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(p.match(message) for p in self.patterns)


@contextlib.contextmanager
def lightning_quiet(*more: str, lines: tuple[str, ...] = ()) -> Iterator[None]:
    """A ``with`` block that drops :data:`LIGHTNING_NOTICES`, the message patterns ``more``
    (regexes) and torch/Lightning's own ``DeprecationWarning``/``FutureWarning``, and the
    :data:`LIGHTNING_BANNERS` log lines and those matching ``lines`` (regexes from the start, e.g.
    :data:`FIT_STOPPED`), nothing else. Build the Trainer inside it: the banners are logged by
    ``Trainer.__init__``."""
    drop = _DropLines((*LIGHTNING_BANNERS, *lines))
    loggers = [logging.getLogger(name) for name in RANK_ZERO_LOGGERS]
    for logger in loggers:
        logger.addFilter(drop)
    try:
        with warnings.catch_warnings():
            for pattern in (*LIGHTNING_NOTICES, *more):
                warnings.filterwarnings("ignore", message=pattern)
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(lightning|torch)\b.*")
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"(lightning|torch)\b.*")
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(drop)


def quiet_lightning() -> None:
    """Keep every Lightning INFO line (accelerator banners, tips, checkpoint restores, "fit
    stopped") out of this process's output: :data:`LIGHTNING_LOGGERS` at WARNING, so warnings
    and errors still show. For commands whose output is their own lines (a grid, a study, a
    publishing script); a library call uses :func:`lightning_quiet` instead."""
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
