"""Pop: recommends the most popular items (the floor every model must clear)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..registry import register_model
from .base import Recommender


@register_model("pop", family="baseline", paper="most-popular baseline (e.g. Cremonesi et al., RecSys 2010)")
class Pop(Recommender):
    """Scores each item by its number of train interactions, the same for every user.

    Has no trained parameters: ``fit`` only records the counts (a buffer, saved in checkpoints).
    Scores an impression's candidates by the same counts (:meth:`predict`), so on a dataset with an
    impression log (mind-sample, a MIND folder) it runs the impression task, in the same table as
    the news models (:func:`kgzoo.tasks.model_task`); elsewhere the data's task.
    """

    #: impressions where the dataset has a log, else the data's task (:func:`kgzoo.tasks.model_task`)
    tasks = ("impression", "topk", "ctr")

    def __init__(self, n_users: int, n_items: int, **kwargs: Any) -> None:
        super().__init__(n_users, n_items, **kwargs)
        self.save_hyperparameters()
        self.register_buffer("item_count", torch.zeros(self.n_items))
        self.automatic_optimization = False

    def _attach(self, graphs: Any, extras: dict[str, Any]) -> None:
        self.item_count.copy_(graphs.item_counts().float())

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        return None

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        return torch.zeros((), device=self.item_count.device)

    def score(self, users: Tensor) -> Tensor:
        """FloatTensor ``[B, I]``: ``log(1 + count)`` of each item, per user row."""
        return torch.log1p(self.item_count).expand(users.numel(), -1).clone()

    def predict(self, users: Tensor, items: Tensor) -> Tensor:
        """FloatTensor ``[B]``: ``log(1 + count)`` of ``items`` (LongTensor ``[B]``), whoever the user."""
        return torch.log1p(self.item_count[items])
