"""Negative sampling against known positive pairs (the data hot path).

Every call draws a whole batch or epoch at once: uniform candidates, a membership test
against the sorted keys of the known positives (:func:`torch.searchsorted`), and rejection
rounds over the collided rows only. No Python loop over users, items or triples.

(The KGCN/RippleNet preprocessing that draws, per user, as many *distinct* unrated items as
the user has positives is another operation with another name:
:func:`kgzoo.data.readers.ripplenet.draw_unrated_items`.)
"""
from __future__ import annotations

import torch
from torch import Tensor


class SamplingError(RuntimeError):
    """A sampler that cannot find a valid negative (e.g. a user who interacted with every item)."""


def sorted_keys(a: Tensor, b: Tensor, n_b: int) -> Tensor:
    """Sorted unique LongTensor of ``a * n_b + b`` (the membership index of pairs; ``a``, ``b``
    LongTensors ``[N]``, ``b`` in ``0..n_b-1``)."""
    return torch.unique(a * n_b + b)


def is_member(keys: Tensor, table: Tensor) -> Tensor:
    """BoolTensor like ``keys``: ``keys[i]`` in ``table`` (a sorted LongTensor), by binary search."""
    if table.numel() == 0:
        return torch.zeros_like(keys, dtype=torch.bool)
    pos = torch.searchsorted(table, keys).clamp_(max=table.numel() - 1)
    return table[pos] == keys


def uniform_negatives(owner: Tensor, n_candidates: int, known: Tensor, generator: torch.Generator,
                      max_rounds: int = 100) -> Tensor:
    """One uniform negative per row, with replacement: ``neg[i]`` in ``0..n_candidates-1`` with
    ``owner[i] * n_candidates + neg[i]`` not in ``known`` (rejection sampling).

    Args:
        owner: LongTensor ``[B]`` (a user id, or a combined head-relation key).
        n_candidates: number of items (or entities) to draw from.
        known: sorted LongTensor of forbidden keys ``owner * n_candidates + candidate``
            (:func:`sorted_keys`).
        generator: the torch random generator (seeded by the caller).
        max_rounds: rejection rounds before giving up.

    Returns:
        LongTensor ``[B]``.

    Raises:
        SamplingError: some rows still collide after ``max_rounds`` rounds (the owner has
            (almost) every candidate as a positive).
    """
    neg = torch.randint(n_candidates, owner.shape, generator=generator)
    bad = torch.nonzero(is_member(owner * n_candidates + neg, known)).flatten()
    rounds = 0
    while bad.numel():
        rounds += 1
        if rounds > max_rounds:
            raise SamplingError(f"no valid negative found for {bad.numel()} rows after {max_rounds} rounds")
        redraw = torch.randint(n_candidates, bad.shape, generator=generator)
        neg[bad] = redraw
        still = is_member(owner[bad] * n_candidates + redraw, known)
        bad = bad[still]
    return neg
