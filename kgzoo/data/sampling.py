"""The training-batch samplers: BPR triplets and corrupted KG triples, a whole epoch at once
(rejection sampling by :func:`kgzoo.ops.sampling.uniform_negatives`; no Python loop over
users, items or triples)."""
from __future__ import annotations

import torch
from torch import Tensor

from ..ops.sampling import KnownPairs, SamplingError, uniform_negatives


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
        self.known = KnownPairs(self.users, self.items, n_items)

    def epoch(self, generator: torch.Generator) -> dict[str, Tensor]:
        """Returns ``{"user", "pos_item", "neg_item"}``: LongTensors ``[N]`` in a random order."""
        perm = torch.randperm(self.users.numel(), generator=generator)
        u, p = self.users[perm], self.items[perm]
        return {"user": u, "pos_item": p, "neg_item": uniform_negatives(u, self.n_items, self.known, generator)}


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
        self.known = KnownPairs(hr, triples[:, 2], n_entities)

    def sample(self, n: int, generator: torch.Generator) -> dict[str, Tensor]:
        """Returns ``{"head", "relation", "pos_tail", "neg_tail"}``: LongTensors ``[n]``.

        Raises:
            SamplingError: the KG is empty.
        """
        if self.triples.shape[0] == 0:
            raise SamplingError("the KG has no triples to sample")
        idx = torch.randint(self.triples.shape[0], (n,), generator=generator)
        h, r, t = self.triples[idx].unbind(1)
        neg = uniform_negatives(h * self.n_relations + r, self.n_entities, self.known, generator)
        return {"head": h, "relation": r, "pos_tail": t, "neg_tail": neg}
