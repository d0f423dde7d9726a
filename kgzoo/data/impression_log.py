"""A log of news impressions (:class:`ImpressionLog`) and its split by day (:func:`split_by_day`).

An impression is one page view: a user, the news they clicked before (their history) and the
news shown together, each clicked or not (Wu et al., "MIND: A Large-scale Dataset for News
Recommendation", ACL 2020, section 2). Readers build the log
(:func:`kgzoo.data.readers.mind.read_mind_impressions`); the impression DataModule
(:mod:`kgzoo.data.impressions`) serves it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .kgdata import DataValidationError

SECONDS_PER_DAY = 86_400


@dataclass
class ImpressionLog:
    """Impressions ``0..N-1`` in the user and item ids of a :class:`KGRecData`.

    Attributes:
        impression_ids: the source's ids (``N`` strings), for reports only: an impression is its
            row, so ids may repeat (MIND's train and dev behaviors.tsv each count from 1, and
            the two files concatenated are one log).
        user: LongTensor ``[N]``. time: LongTensor ``[N]`` seconds since the epoch.
        history_indptr: LongTensor ``[N + 1]``; history: LongTensor ``[H]``: the news clicked
            before each impression, oldest first (CSR).
        candidate_indptr: LongTensor ``[N + 1]``; candidates: LongTensor ``[C]``: the news shown
            (CSR, the source's order); label: LongTensor ``[C]``: 1 clicked, 0 not.
    """

    impression_ids: list[str]
    user: Tensor
    time: Tensor
    history_indptr: Tensor
    history: Tensor
    candidate_indptr: Tensor
    candidates: Tensor
    label: Tensor

    @property
    def n_impressions(self) -> int:
        return int(self.user.numel())

    def validate(self, n_users: int, n_items: int, name: str = "impressions") -> None:
        """Check shapes, dtypes and id ranges.

        Raises:
            DataValidationError: naming the field and what is wrong.
        """
        N = self.n_impressions
        for f in ("user", "time", "history_indptr", "history", "candidate_indptr", "candidates", "label"):
            t = getattr(self, f)
            if t.dtype != torch.long or t.dim() != 1:
                raise DataValidationError(f"{name}: impression field {f!r} must be a 1-D LongTensor, "
                                          f"got {t.dtype} {tuple(t.shape)}")
        if self.time.numel() != N or len(self.impression_ids) != N:
            raise DataValidationError(f"{name}: impression fields 'time' and 'impression_ids' must hold {N} entries")
        for ptr, vals, what in ((self.history_indptr, self.history, "history"),
                                (self.candidate_indptr, self.candidates, "candidates")):
            if ptr.numel() != N + 1 or int(ptr[0]) != 0 or int(ptr[-1]) != vals.numel() or bool((ptr.diff() < 0).any()):
                raise DataValidationError(f"{name}: {what}_indptr is not a CSR pointer of {N} impressions "
                                          f"over {vals.numel()} values")
            if vals.numel() and (int(vals.min()) < 0 or int(vals.max()) >= n_items):
                raise DataValidationError(f"{name}: {what} holds item ids outside [0, {n_items})")
        if self.label.numel() != self.candidates.numel() or bool(((self.label != 0) & (self.label != 1)).any()):
            raise DataValidationError(f"{name}: label must hold one 0/1 value per candidate")
        if N and (int(self.user.min()) < 0 or int(self.user.max()) >= n_users):
            raise DataValidationError(f"{name}: user holds ids outside [0, {n_users})")
        empty = self.candidate_indptr.diff() == 0
        if bool(empty.any()):
            i = int(torch.nonzero(empty)[0])
            raise DataValidationError(f"{name}: impression {i} (the log's row; id {self.impression_ids[i]!r}, which "
                                      "may repeat) shows no news")

    def days(self) -> Tensor:
        """LongTensor ``[N]``: the calendar day of each impression (``time // 86400``)."""
        return torch.div(self.time, SECONDS_PER_DAY, rounding_mode="floor")

    def stats(self, item_text: list[str] | None = None) -> dict[str, Any]:
        """Counts people quote about an impression log: ``impressions``, ``users``,
        ``candidates`` (shown news, repeats counted), ``clicks``, ``history_clicks``, ``days``,
        ``logged_news`` (distinct news in histories and candidates) and, with the items'
        ``item_text``, ``logged_news_with_text`` and ``candidates_with_text``."""
        logged = torch.unique(torch.cat([self.history, self.candidates]))
        out: dict[str, Any] = {
            "impressions": self.n_impressions, "users": int(torch.unique(self.user).numel()),
            "candidates": int(self.candidates.numel()), "clicks": int(self.label.sum()),
            "history_clicks": int(self.history.numel()), "days": int(torch.unique(self.days()).numel()),
            "logged_news": int(logged.numel()),
        }
        if item_text is not None:
            has = torch.tensor([bool(t) for t in item_text], dtype=torch.bool)
            out["logged_news_with_text"] = int(has[logged].sum())
            out["candidates_with_text"] = int(has[self.candidates].sum())
        return out


def split_by_day(log: ImpressionLog, valid_days: int = 1, test_days: int = 1) -> dict[str, Tensor]:
    """Impressions split by calendar day: the last ``test_days`` days with an impression are
    test, the ``valid_days`` before them valid, the earlier ones train.

    Returns:
        ``{"train", "valid", "test"}``: LongTensors of impression indices, ascending.

    Raises:
        ValueError: fewer than ``valid_days + test_days + 1`` distinct days.
    """
    day = log.days()
    uniq = torch.unique(day)
    if uniq.numel() < valid_days + test_days + 1:
        raise ValueError(f"the impression log spans {uniq.numel()} days; a split by day needs at least "
                         f"{valid_days + test_days + 1} (train, {valid_days} valid, {test_days} test)")
    first_test, first_valid = uniq[-test_days], uniq[-test_days - valid_days]
    part = (day >= first_valid).long() + (day >= first_test).long()
    return {name: torch.nonzero(part == k).flatten() for k, name in enumerate(("train", "valid", "test"))}
