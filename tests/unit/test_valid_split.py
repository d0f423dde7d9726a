"""EvalProtocol.valid_split: a ``given`` split's validation rows carved by item (issue 17,
``benchmarks/studies/dkn_news_valid_split.md``): drawn like a source test split whose items never
occur in train."""
from __future__ import annotations

import pytest
import torch

from kgzoo.bench.rows import protocol_label
from kgzoo.data.kgdata import KGRecData
from kgzoo.data.protocol import EvalProtocol


def given_data(U: int = 8, I: int = 60) -> KGRecData:
    """Each user 6 train rows over items 0..39 (items shared by users) and 2 test rows over items
    40..59, which no train row has (DKN's files: no test title occurs in train)."""
    g = torch.Generator().manual_seed(1)
    rows, parts, labels = [], [], []
    for u in range(U):
        rows += [(u, int(i)) for i in torch.randperm(40, generator=g)[:6]]
        rows += [(u, 40 + int(i)) for i in torch.randperm(20, generator=g)[:2]]
        parts += [0] * 6 + [2] * 2
        labels += [1, 0, 1, 0, 1, 0, 1, 0]
    return KGRecData(name="tiny-given", n_users=U, n_items=I, n_entities=I, interactions=torch.tensor(rows),
                     triples=torch.zeros(0, 3, dtype=torch.long), relation_names=[], label=torch.tensor(labels),
                     given_split=torch.tensor(parts))


def test_a_given_splits_valid_carved_by_item_has_no_item_of_train():
    data = given_data()
    x = data.interactions
    cold = EvalProtocol(task="ctr", split="given", ratios=(0.8, 0.1, 0.1), valid_split="cold_item")
    s = cold.split_data(data)
    train_items, valid_items = set(x[s.train, 1].tolist()), set(x[s.valid, 1].tolist())
    assert valid_items and not train_items & valid_items  # no valid item occurs in train
    assert sorted(torch.cat([s.train, s.valid]).tolist()) == torch.nonzero(data.given_split == 0).flatten().tolist()
    assert s.test.tolist() == torch.nonzero(data.given_split == 2).flatten().tolist()  # the source's test as given
    n_items = len(set(x[data.given_split == 0, 1].tolist()))
    assert len(valid_items) == round(n_items * 0.1 / 0.9)  # the share of the train items
    assert cold.split_data(data).valid.tolist() == s.valid.tolist()  # deterministic for the seed
    assert EvalProtocol(**{**cold.to_dict(), "seed": 1}).split_data(data).valid.tolist() != s.valid.tolist()
    # the default carves per user, and some of its valid items occur in train
    per_user = EvalProtocol(task="ctr", split="given", ratios=(0.8, 0.1, 0.1)).split_data(data)
    assert set(x[per_user.valid, 1].tolist()) & set(x[per_user.train, 1].tolist())


def test_valid_split_is_in_the_fingerprint_only_when_set_and_checked():
    default = EvalProtocol(task="ctr", split="given")
    cold = EvalProtocol(task="ctr", split="given", valid_split="cold_item")
    assert "valid_split" not in default.to_dict()  # earlier rows keep their fingerprints
    assert cold.to_dict()["valid_split"] == "cold_item" and EvalProtocol.from_dict(cold.to_dict()) == cold
    assert default.fingerprint({"f": "0"}) != cold.fingerprint({"f": "0"})
    assert protocol_label(cold.to_dict()) == "ctr, the source's split, AUC/F1 on labelled pairs, valid carved by cold item"
    with pytest.raises(ValueError, match="EvalProtocol.valid_split: unknown 'by_title'"):
        EvalProtocol(split="given", valid_split="by_title")
    with pytest.raises(ValueError, match="carves the validation rows of a 'given' split, got split='random'"):
        EvalProtocol(valid_split="cold_item")
    data = given_data()
    own_valid = data.replace(given_split=torch.where(torch.arange(data.n_interactions) % 8 == 5, 1, data.given_split))
    with pytest.raises(ValueError, match="the source's split gives its own"):
        cold.split_data(own_valid)
