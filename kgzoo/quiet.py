"""Library notices that kgzoo triggers knowingly, dropped where it triggers them and nowhere else.

:func:`lightning_quiet` is the one ``with`` block around kgzoo's calls into Lightning (a bench
cell's Trainer, ``kgzoo fit``/``test``, the KG vector pretraining, ``kgzoo update``'s
fine-tune): it drops the notices of :data:`LIGHTNING_NOTICES` plus the caller's own patterns
(e.g. :data:`NO_VALIDATION` for a Trainer that skips validation on purpose), and
torch/Lightning's own deprecation and future warnings; every other warning shows. Not global:
:func:`warnings.catch_warnings` restores the filters when the block ends.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

#: Lightning's notices that say nothing about a kgzoo run (matched by message, regex)
LIGHTNING_NOTICES = (
    r".*LeafSpec.*",  # torch.utils._pytree FutureWarning, raised through Lightning's apply_to_collection
    r"The number of training batches .* is smaller than the logging",  # kgzoo logs per epoch on purpose
    r".*does not have many workers which may be a bottleneck.*",  # in-memory batches need no workers
    r".*`configure_optimizers` returned `None`.*",  # a model with nothing to train (Pop)
    # Recommender overrides transfer_batch_to_device on purpose (a batch already on the device is not walked again)
    r".*overridden `transfer_batch_to_device` in `LightningModule` but have passed in a `LightningDataModule`.*",
)
#: a Trainer that trains without validation on purpose (``limit_val_batches=0``: the KG vector
#: pretraining, ``kgzoo update``'s fine-tune) while its module defines ``validation_step``
NO_VALIDATION = r".*`validation_step` but have no `val_dataloader`.*"


@contextlib.contextmanager
def lightning_quiet(*more: str) -> Iterator[None]:
    """A ``with`` block that drops :data:`LIGHTNING_NOTICES`, the message patterns ``more``
    (regexes) and torch/Lightning's own ``DeprecationWarning``/``FutureWarning``, nothing else."""
    with warnings.catch_warnings():
        for pattern in (*LIGHTNING_NOTICES, *more):
            warnings.filterwarnings("ignore", message=pattern)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(lightning|torch)\b.*")
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"(lightning|torch)\b.*")
        yield
