"""Vectorised negative samplers and CSR row slicing (the data hot paths).

Every sampler draws a whole epoch at once: uniform candidates, a membership test against
the sorted keys of the known positives (:func:`torch.searchsorted`), and rejection rounds
over the collided rows only. No Python loop over users, items or triples.
"""
from __future__ import annotations

import torch
from torch import Tensor


class SamplingError(RuntimeError):
    """A sampler that cannot find a valid negative (e.g. a user who interacted with every item)."""


def sorted_keys(a: Tensor, b: Tensor, n_b: int) -> Tensor:
    """Sorted unique LongTensor of ``a * n_b + b`` (the membership index of pairs)."""
    return torch.unique(a * n_b + b)


def is_member(keys: Tensor, table: Tensor) -> Tensor:
    """BoolTensor: ``keys[i]`` in ``table`` (a sorted LongTensor), by binary search."""
    if table.numel() == 0:
        return torch.zeros_like(keys, dtype=torch.bool)
    pos = torch.searchsorted(table, keys).clamp_(max=table.numel() - 1)
    return table[pos] == keys


def sample_negatives(owner: Tensor, n_candidates: int, known: Tensor, generator: torch.Generator,
                     max_rounds: int = 100) -> Tensor:
    """Uniform negatives ``neg[i]`` in ``0..n_candidates-1`` with ``owner[i] * n_candidates + neg[i]``
    not in ``known``.

    Args:
        owner: LongTensor ``[B]`` (a user id, or a combined head-relation key).
        n_candidates: number of items (or entities) to draw from.
        known: sorted LongTensor of forbidden keys ``owner * n_candidates + candidate``.
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


class BPRSampler:
    """Triplets (user, positive item, negative item) for the BPR loss (Rendle et al., UAI 2009).

    One epoch visits every train interaction once, in random order, each with one negative
    item that is not a train positive of that user.

    Args:
        interactions: LongTensor ``[N, 2]`` train (user, item) pairs.
        n_items: ``I``.
    """

    def __init__(self, interactions: Tensor, n_items: int) -> None:
        self.users = interactions[:, 0].contiguous()
        self.items = interactions[:, 1].contiguous()
        self.n_items = n_items
        self.known = sorted_keys(self.users, self.items, n_items)

    def epoch(self, generator: torch.Generator) -> dict[str, Tensor]:
        """Returns ``{"user", "pos_item", "neg_item"}``: LongTensors ``[N]`` in a random order."""
        perm = torch.randperm(self.users.numel(), generator=generator)
        u, p = self.users[perm], self.items[perm]
        return {"user": u, "pos_item": p, "neg_item": sample_negatives(u, self.n_items, self.known, generator)}


class KGSampler:
    """Corrupted triples for KG losses (TransE/TransR style, Bordes et al., NeurIPS 2013).

    Draws ``n`` triples uniformly with replacement and corrupts their tail with a random
    entity such that the corrupted triple is not a known triple.

    Args:
        triples: LongTensor ``[M, 3]`` (head, relation, tail), relations ``0..R'-1``.
        n_entities: number of entities to draw tails from. n_relations: ``R'``.
    """

    def __init__(self, triples: Tensor, n_entities: int, n_relations: int) -> None:
        self.triples = triples
        self.n_entities = n_entities
        self.n_relations = max(1, n_relations)
        hr = triples[:, 0] * self.n_relations + triples[:, 1]
        self.known = sorted_keys(hr, triples[:, 2], n_entities)

    def sample(self, n: int, generator: torch.Generator) -> dict[str, Tensor]:
        """Returns ``{"head", "relation", "pos_tail", "neg_tail"}``: LongTensors ``[n]``.

        Raises:
            SamplingError: the KG is empty.
        """
        if self.triples.shape[0] == 0:
            raise SamplingError("the KG has no triples to sample")
        idx = torch.randint(self.triples.shape[0], (n,), generator=generator)
        h, r, t = self.triples[idx].unbind(1)
        neg = sample_negatives(h * self.n_relations + r, self.n_entities, self.known, generator)
        return {"head": h, "relation": r, "pos_tail": t, "neg_tail": neg}


def csr_rows(indptr: Tensor, indices: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
    """The non-zeros of ``rows`` of a CSR matrix, as (batch row, column) pairs.

    Args:
        indptr: LongTensor ``[n_rows + 1]``; indices: LongTensor ``[nnz]``; rows: LongTensor ``[B]``.

    Returns:
        ``(row, col)``: LongTensors ``[T]``, ``row`` in ``0..B-1`` (position in ``rows``).
    """
    starts, ends = indptr[rows], indptr[rows + 1]
    lens = ends - starts
    row = torch.repeat_interleave(torch.arange(rows.numel()), lens)
    offset = torch.arange(int(lens.sum())) - torch.repeat_interleave(torch.cumsum(lens, 0) - lens, lens)
    return row, indices[starts[row] + offset]


def to_csr(rows: Tensor, cols: Tensor, n_rows: int) -> tuple[Tensor, Tensor]:
    """``(indptr [n_rows+1], indices [nnz])`` of the 0/1 matrix with ones at (rows, cols), columns sorted."""
    order = torch.argsort(rows * (int(cols.max()) + 1 if cols.numel() else 1) + cols)
    counts = torch.bincount(rows, minlength=n_rows)
    indptr = torch.zeros(n_rows + 1, dtype=torch.long)
    indptr[1:] = torch.cumsum(counts, 0)
    return indptr, cols[order]
