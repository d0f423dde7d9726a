"""NewsRecommender: the base of the news models that score an impression from the user's clicked
history (NRMS, NRMS-PLM, DKN), on the ``impression`` task (:data:`kgzoo.tasks.TASKS`), or a
labelled (user, news) row from the user's clicked news in train on the ``ctr`` task (DKN's
protocol on its Bing News rows, Wang et al., WWW 2018, section 5.1: each labelled row a candidate
scored against the user's click history; :func:`kgzoo.tasks.model_task` picks the task).

A subclass gives the news vectors (:meth:`NewsRecommender.news_vectors`) and the user vector of
a history (:meth:`NewsRecommender.user_vectors`); the base encodes each distinct news of a batch
once, scores ``<u, r_c>`` per candidate (NRMS, Wu et al., EMNLP-IJCNLP 2019, section 3.3, "click
predictor"), trains with the candidate softmax (:func:`~kgzoo.models.layers.news.candidate_softmax_loss`)
and, during evaluation, encodes every news once per pass (cached; the frozen PLM's item vectors
are already cached on disk by :mod:`kgzoo.pretrain.text_vectors`).

News without text (most logged news of MIND samples have no ``news.tsv`` row) get a learned news
id embedding ``[I, d]`` in place of their text vector, never a silent zero.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Recommender
from .layers.news import candidate_softmax_loss


class NewsRecommender(Recommender):
    """Base class of history-based news models (not registered itself).

    Args:
        n_users, n_items: sizes (``n_items`` = every logged news). dim: ``d``, the news and user
            vector width. id_fallback: news without text take a learned id embedding (else the
            zero vector: a model without trained parameters). task: ``"impression"`` or ``"ctr"``
            (from the DataModule, :func:`kgzoo.tasks.model_task`). **kwargs:
            :class:`~kgzoo.models.base.Recommender` (``lr``, ...).

    Buffers: ``has_text`` BoolTensor ``[I]`` (from :meth:`attach`'s item texts; not saved).

    Raises:
        ValueError: a task other than ``impression`` and ``ctr``.
    """

    #: the tasks a news model runs (:func:`kgzoo.tasks.model_task`): impressions where the dataset
    #: has a log, else its labelled rows with the user's train clicks as history
    tasks = ("impression", "ctr")
    uses_history = True
    trains_on_labels = True

    def __init__(self, n_users: int, n_items: int, dim: int = 256, id_fallback: bool = True,
                 task: str = "impression", **kwargs: Any) -> None:
        if task not in self.tasks:
            raise ValueError(f"{type(self).__name__} runs the tasks {', '.join(self.tasks)}, not {task!r}")
        super().__init__(n_users, n_items, task=task, **kwargs)
        self.dim = int(dim)
        self.news_id = nn.Embedding(self.n_items, self.dim) if id_fallback else None
        if self.news_id is not None:
            nn.init.normal_(self.news_id.weight, std=0.1)
        self.register_buffer("has_text", torch.zeros(self.n_items, dtype=torch.bool), persistent=False)
        self._news_cache: Tensor | None = None

    def _attach(self, graphs: Any, extras: dict[str, Any]) -> None:
        texts = graphs.item_text if graphs.item_text is not None else [""] * graphs.n_items
        self.has_text.copy_(torch.tensor([bool(t) for t in texts], dtype=torch.bool))

    # ------------------------------------------------------------------ the model's parts
    def text_vectors(self, items: Tensor) -> Tensor:
        """FloatTensor ``[N, d]``: the text vectors of news ``items`` LongTensor ``[N]`` (all with text)."""
        raise NotImplementedError

    def news_vectors(self, items: Tensor) -> Tensor:
        """FloatTensor ``[N, d]``: :meth:`text_vectors` where the news has text, the news id
        embedding (zeros without ``id_fallback``) where it has none (``items`` LongTensor ``[N]``)."""
        if self.news_id is not None:
            out = self.news_id(items)
        else:
            out = torch.zeros(items.numel(), self.dim, device=self.has_text.device)
        has = self.has_text[items]
        if bool(has.any()):
            out = out.index_put((torch.nonzero(has).flatten(),), self.text_vectors(items[has]).to(out.dtype))
        return out

    def user_vectors(self, history: Tensor, mask: Tensor) -> Tensor:
        """FloatTensor ``[B, d]`` of the clicked news vectors ``history`` ``[B, H, d]`` (mask ``[B, H]``)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ scoring
    def _vectors_of(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """``(vectors [N_uniq, d], inverse)`` of the distinct news of ``ids`` (cached table in evaluation)."""
        uniq, inv = torch.unique(ids, return_inverse=True)
        vec = self._news_cache[uniq] if self._news_cache is not None else self.news_vectors(uniq)
        return vec, inv

    def impression_scores(self, batch: dict[str, Tensor]) -> Tensor:
        """FloatTensor ``[B, C]``: ``<u, r_c>`` of each candidate ``c`` (NRMS, section 3.3), ``u``
        from the batch's ``history``/``history_mask`` ``[B, H]``."""
        hist, cand = batch["history"], batch["candidates"]
        vec, inv = self._vectors_of(torch.cat([hist.flatten(), cand.flatten()]))
        h = vec[inv[:hist.numel()]].view(*hist.shape, -1)
        c = vec[inv[hist.numel():]].view(*cand.shape, -1)
        u = self.user_vectors(h, batch["history_mask"])
        return (c * u.unsqueeze(1)).sum(-1)

    def ctr_scores(self, batch: dict[str, Tensor]) -> Tensor:
        """FloatTensor ``[B]``: the logit of each row's ``item`` LongTensor ``[B]`` as the one
        candidate of an impression with the row's ``history``/``history_mask`` ``[B, H]`` (the
        ``ctr`` task's batch with the user's train clicks, :class:`~kgzoo.data.datamodule.KGRecDataModule`)."""
        item = batch["item"].unsqueeze(1)
        one = {"user": batch["user"], "history": batch["history"], "history_mask": batch["history_mask"],
               "candidates": item, "candidate_mask": torch.ones_like(item, dtype=torch.bool)}
        return self.impression_scores(one).squeeze(1)

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """``ctr``: the log loss of the rows' labels (DKN, section 4.4; there is no impression
        whose non-clicks could be the negatives); ``impression``: :meth:`impression_loss`."""
        if self.task == "ctr":
            return F.binary_cross_entropy_with_logits(self.ctr_scores(batch), batch["label"].float())
        return self.impression_loss(batch)

    def impression_loss(self, batch: dict[str, Tensor]) -> Tensor:
        """The candidate softmax of the click against its negatives (NRMS, section 3.4)."""
        return candidate_softmax_loss(self.impression_scores(batch), batch["candidate_mask"])

    def all_news_vectors(self) -> Tensor:
        """FloatTensor ``[I, d]``: every news vector (evaluation; chunks of 4,096 news)."""
        return torch.cat([self.news_vectors(ids) for ids in torch.arange(self.n_items, device=self.device).split(4096)])

    def prepare_scoring(self) -> None:
        """Encode every news once for the evaluation pass."""
        with torch.no_grad():
            self._news_cache = self.all_news_vectors()

    def end_scoring(self) -> None:
        self._news_cache = None

    def score(self, users: Tensor) -> Tensor:
        """Not defined: a news model scores impressions from their click history
        (:meth:`impression_scores`), not a user id.

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError(f"{type(self).__name__} scores impressions (impression_scores), not user ids")

    def predict(self, users: Tensor, items: Tensor) -> Tensor:
        """Not defined (see :meth:`score`).

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError(f"{type(self).__name__} scores impressions (impression_scores), "
                                  "not (user, item) pairs")
