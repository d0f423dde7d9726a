"""Negative sampling against known positive pairs (the data hot path).

Every call draws a whole batch or epoch at once: uniform candidates, a membership test
against the known positives (:class:`KnownPairs`: a bitmap where it fits, else the sorted keys
and :func:`torch.searchsorted`), and rejection rounds over the collided rows only. No Python
loop over users, items or triples.

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


class KnownPairs:
    """The known positive pairs ``(owner, candidate)`` as a membership index: a dense bitmap
    (BoolTensor ``[n_owners * n_candidates]``, one byte per pair, one gather per test) when it
    holds at most ``max_bitmap`` entries, else the sorted unique keys (:func:`sorted_keys`,
    binary search by :func:`is_member`). Both answer every test the same, so the negatives a
    seed draws through :func:`uniform_negatives` do not depend on which one is used.

    Args:
        owner, candidate: LongTensors ``[N]`` (``candidate`` in ``0..n_candidates-1``, ``owner >= 0``).
        n_candidates: number of candidates per owner.
        max_bitmap: the largest bitmap, in entries (= bytes); the default 64 MiB takes
            ml-1m (6,040 users x 3,706 items: 22 MB) and leaves 114k x 30k (alibaba-ifashion-kg) to
            the sorted keys.

    A data structure, not a paper's: the membership test of rejection sampling for LearnBPR's
    uniformly drawn negatives, items that are not the user's positives (Rendle et al., UAI 2009).
    """

    def __init__(self, owner: Tensor, candidate: Tensor, n_candidates: int, max_bitmap: int = 2**26) -> None:
        self.n_candidates = int(n_candidates)
        keys = owner * self.n_candidates + candidate
        self.size = (int(owner.max()) + 1) * self.n_candidates if owner.numel() else 0
        self.bitmap: Tensor | None = None
        self.keys: Tensor | None = None
        if self.size <= max_bitmap:
            self.bitmap = torch.zeros(self.size + 1, dtype=torch.bool)  # entry `size`: any key beyond, never known
            self.bitmap[keys] = True
        else:
            self.keys = torch.unique(keys)

    def contains(self, keys: Tensor) -> Tensor:
        """BoolTensor like ``keys`` (LongTensor ``owner * n_candidates + candidate``, ``>= 0``): a known pair."""
        if self.bitmap is not None:
            return self.bitmap[keys.clamp(max=self.size)]
        return is_member(keys, self.keys)


def uniform_negatives(owner: Tensor, n_candidates: int, known: Tensor | KnownPairs, generator: torch.Generator,
                      max_rounds: int = 100) -> Tensor:
    """One uniform negative per row, with replacement: ``neg[i]`` in ``0..n_candidates-1`` with
    ``owner[i] * n_candidates + neg[i]`` not in ``known`` (rejection sampling).

    Args:
        owner: LongTensor ``[B]`` (a user id, or a combined head-relation key).
        n_candidates: number of items (or entities) to draw from.
        known: the forbidden keys ``owner * n_candidates + candidate``: a :class:`KnownPairs`
            (built with the same ``n_candidates``) or a sorted LongTensor (:func:`sorted_keys`).
        generator: the torch random generator (seeded by the caller).
        max_rounds: rejection rounds before giving up.

    Returns:
        LongTensor ``[B]``.

    Raises:
        SamplingError: some rows still collide after ``max_rounds`` rounds (the owner has
            (almost) every candidate as a positive).
    """
    if isinstance(known, KnownPairs):
        if known.n_candidates != n_candidates:
            raise ValueError(f"known pairs index {known.n_candidates} candidates per owner, not {n_candidates}")
        member = known.contains
    else:
        def member(keys: Tensor) -> Tensor:
            return is_member(keys, known)
    neg = torch.randint(n_candidates, owner.shape, generator=generator)
    bad = torch.nonzero(member(owner * n_candidates + neg)).flatten()
    rounds = 0
    while bad.numel():
        rounds += 1
        if rounds > max_rounds:
            raise SamplingError(f"no valid negative found for {bad.numel()} rows after {max_rounds} rounds")
        redraw = torch.randint(n_candidates, bad.shape, generator=generator)
        neg[bad] = redraw
        still = member(owner[bad] * n_candidates + redraw)
        bad = bad[still]
    return neg


def corrupt_triples(triples: Tensor, n_entities: int, n_relations: int, known_tail_keys: Tensor,
                    known_head_keys: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """One corrupted triple per triple: its head or its tail (probability 1/2 each) replaced by a
    uniform entity such that the corrupted triple is not a known one (Bordes et al., NeurIPS
    2013, Algorithm 1; "bern" is not used).

    Args:
        triples: LongTensor ``[B, 3]`` ``(head, relation, tail)``.
        n_entities, n_relations: ``E`` and ``R``.
        known_tail_keys: sorted LongTensor of ``(h * R + r) * E + t`` of the known triples
            (:func:`sorted_keys`); known_head_keys: of ``(t * R + r) * E + h``.
        generator: the seeded torch generator.

    Returns:
        ``(neg_head, neg_tail)``: LongTensors ``[B]`` (one of them equals the true entity).

    Raises:
        SamplingError: see :func:`uniform_negatives`.
    """
    h, r, t = triples.unbind(1)
    corrupt_head = torch.rand(h.shape, generator=generator) < 0.5
    neg_t = uniform_negatives(h * n_relations + r, n_entities, known_tail_keys, generator)
    neg_h = uniform_negatives(t * n_relations + r, n_entities, known_head_keys, generator)
    return torch.where(corrupt_head, neg_h, h), torch.where(corrupt_head, t, neg_t)
