"""Negative sampling's membership index (:class:`kgzoo.ops.sampling.KnownPairs`): the bitmap and
the sorted keys answer alike, so a seed draws the same negatives through either (tiny in-memory pairs)."""
from __future__ import annotations

import pytest
import torch

from kgzoo.data.sampling import BPRSampler, KGSampler
from kgzoo.ops.sampling import KnownPairs, SamplingError, is_member, sorted_keys, uniform_negatives

N_USERS, N_ITEMS = 30, 25
FREE_7 = torch.tensor([3, 6, 9, 12, 15])  # the only negatives of user 7


def pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """Every user has 5 to 20 distinct items (user 7: all 25 but items 3, 6, 9, 12, 15), in random order."""
    g = torch.Generator().manual_seed(11)
    users, items = [], []
    for u in range(N_USERS):
        k = N_ITEMS - len(FREE_7) if u == 7 else int(torch.randint(5, 21, (1,), generator=g))
        chosen = (torch.arange(N_ITEMS)[~torch.isin(torch.arange(N_ITEMS), FREE_7)] if u == 7
                  else torch.randperm(N_ITEMS, generator=g)[:k])
        users.append(torch.full((k,), u))
        items.append(chosen)
    perm = torch.randperm(sum(len(x) for x in users), generator=g)
    return torch.cat(users)[perm], torch.cat(items)[perm]


def test_bitmap_and_sorted_keys_answer_alike():
    u, i = pairs()
    bitmap, keys = KnownPairs(u, i, N_ITEMS), KnownPairs(u, i, N_ITEMS, max_bitmap=0)
    assert bitmap.bitmap is not None and bitmap.keys is None
    assert keys.bitmap is None and keys.keys is not None  # the size guard: too large a bitmap -> sorted keys
    every = torch.arange((N_USERS + 3) * N_ITEMS)  # beyond the last owner too: never known
    expected = is_member(every, sorted_keys(u, i, N_ITEMS))
    assert torch.equal(bitmap.contains(every), expected)
    assert torch.equal(keys.contains(every), expected)
    assert int(expected.sum()) == len(set(zip(u.tolist(), i.tolist())))
    assert not bool(bitmap.contains(every[N_USERS * N_ITEMS:]).any())


def test_uniform_negatives_draw_the_same_through_either_index():
    u, i = pairs()
    owners = torch.cat([u, torch.full((50,), 7)])  # user 7 has 5 negatives of 25: several rejection rounds
    draws = []
    for known in (KnownPairs(u, i, N_ITEMS), KnownPairs(u, i, N_ITEMS, max_bitmap=0), sorted_keys(u, i, N_ITEMS)):
        draws.append(uniform_negatives(owners, N_ITEMS, known, torch.Generator().manual_seed(2)))
    assert torch.equal(draws[0], draws[1]) and torch.equal(draws[0], draws[2])
    assert bool(torch.isin(draws[0][-50:], FREE_7).all())
    assert not bool(is_member(owners * N_ITEMS + draws[0], sorted_keys(u, i, N_ITEMS)).any())


def test_uniform_negatives_refuses_an_index_of_another_width_and_an_owner_with_every_candidate():
    u, i = pairs()
    with pytest.raises(ValueError, match="25 candidates per owner, not 24"):
        uniform_negatives(u, N_ITEMS - 1, KnownPairs(u, i, N_ITEMS), torch.Generator().manual_seed(0))
    full = KnownPairs(torch.zeros(N_ITEMS, dtype=torch.long), torch.arange(N_ITEMS), N_ITEMS)
    with pytest.raises(SamplingError, match="no valid negative found for 1 rows after 100 rounds"):
        uniform_negatives(torch.zeros(1, dtype=torch.long), N_ITEMS, full, torch.Generator().manual_seed(0))


def test_samplers_draw_the_same_epoch_as_with_sorted_keys():
    u, i = pairs()
    bpr = BPRSampler(torch.stack([u, i], 1), N_ITEMS)
    assert bpr.known.bitmap is not None
    epoch = bpr.epoch(torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)  # the same draws by hand, against the sorted keys
    perm = torch.randperm(u.numel(), generator=g)
    assert torch.equal(epoch["user"], u[perm]) and torch.equal(epoch["pos_item"], i[perm])
    assert torch.equal(epoch["neg_item"], uniform_negatives(u[perm], N_ITEMS, sorted_keys(u, i, N_ITEMS), g))
    triples = torch.stack([u, i % 3, i], 1)
    kg = KGSampler(triples, N_ITEMS, 3)
    got = kg.sample(64, torch.Generator().manual_seed(9))
    g = torch.Generator().manual_seed(9)
    idx = torch.randint(triples.shape[0], (64,), generator=g)
    h, r, _ = triples[idx].unbind(1)
    known = sorted_keys(triples[:, 0] * 3 + triples[:, 1], triples[:, 2], N_ITEMS)
    assert torch.equal(got["neg_tail"], uniform_negatives(h * 3 + r, N_ITEMS, known, g))
