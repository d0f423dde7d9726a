"""The data layer's contracts on real ml-100k-kg data: splits, samplers, DDP sharding, CKG."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

import kgzoo
from kgzoo.data import datamodule as dmod
from kgzoo.data.cleaning import dedup_interactions, dedup_triples, drop_self_loops, drop_unreachable, k_core
from kgzoo.data.datamodule import KGRecDataModule, apply_kg_ablation
from kgzoo.data.download import ChecksumError, SourceFile, ensure_files
from kgzoo.data.kgdata import DataValidationError
from kgzoo.data.protocol import EvalProtocol, LeakageError, Split, check_leakage
from kgzoo.data.sampling import BPRSampler, KGSampler
from kgzoo.ops.csr import csr_rows, to_csr
from kgzoo.ops.sampling import is_member, sorted_keys


@pytest.fixture(scope="module")
def ml100k(data_dir):
    return kgzoo.load_data("ml-100k-kg")


@pytest.fixture(scope="module")
def dm(data_dir):
    d = KGRecDataModule("ml-100k-kg", batch_size=4096, eval_batch_size=100, kg_batch_size=1024)
    d.setup()
    return d


def _pairs(data, idx):
    x = data.interactions[idx]
    return set(map(tuple, x.tolist()))


@pytest.mark.parametrize("split", ["random", "temporal", "loo", "cold_item"])
def test_splits_are_deterministic_and_leak_free(ml100k, split):
    p = EvalProtocol(split=split, seed=3)
    data = p.prepare(ml100k)
    a, b = p.split_data(data), p.split_data(data)
    for part in ("train", "valid", "test"):
        assert torch.equal(getattr(a, part), getattr(b, part))
    sizes = a.sizes()
    assert sum(sizes.values()) == data.n_interactions
    all_rows = torch.cat([a.train, a.valid, a.test])
    assert torch.equal(all_rows.sort().values, torch.arange(data.n_interactions))
    check_leakage(data, a, cold_items=split == "cold_item")
    other = EvalProtocol(split=split, seed=4).split_data(data)
    assert not torch.equal(a.test, other.test)


def test_random_split_ratio_per_user(ml100k):
    p = EvalProtocol(split="random", ratios=(0.8, 0.1, 0.1), seed=0)
    s = p.split_data(ml100k)
    users = ml100k.interactions[:, 0]
    n = torch.bincount(users, minlength=ml100k.n_users)
    nt = torch.bincount(users[s.test], minlength=ml100k.n_users)
    # RecBole's rule: floor(0.1 n), one more only when 0 < 0.1 n < 1 (users with under 10 rows)
    small = n < 10
    assert torch.equal(nt[~small], torch.floor(n[~small] * 0.1).long())
    assert bool((nt[small] == 1).all())
    assert bool((nt >= torch.floor(n * 0.1).long()).all()) and bool((nt <= torch.floor(n * 0.1).long() + 1).all())
    assert abs(s.sizes()["train"] / ml100k.n_interactions - 0.8) < 0.01


def test_temporal_and_loo_put_latest_last(ml100k):
    data = ml100k
    for split in ("temporal", "loo"):
        s = EvalProtocol(split=split).split_data(data)
        ts, users = data.timestamp, data.interactions[:, 0]
        last_train = torch.full((data.n_users,), -1, dtype=torch.long).scatter_reduce(
            0, users[s.train], ts[s.train], reduce="amax")
        first_test = torch.full((data.n_users,), 2**62, dtype=torch.long).scatter_reduce(
            0, users[s.test], ts[s.test], reduce="amin")
        assert bool((last_train <= first_test).all())
    loo = EvalProtocol(split="loo").split_data(data)
    assert torch.bincount(data.interactions[loo.test, 0]).max() == 1


def test_leakage_check_catches_a_leak(ml100k):
    s = EvalProtocol().split_data(ml100k)
    leaky = Split(torch.cat([s.train, s.test[:5]]), s.valid, s.test)
    with pytest.raises(LeakageError, match="test"):
        check_leakage(ml100k, leaky)


def test_protocol_errors_and_fingerprint(ml100k):
    with pytest.raises(ValueError, match="task"):
        EvalProtocol(task="rank")
    with pytest.raises(ValueError, match="ratios"):
        EvalProtocol(ratios=(0.5, 0.1, 0.1))
    with pytest.raises(ValueError, match="given"):
        EvalProtocol(split="given").split_data(ml100k)
    fp = EvalProtocol().fingerprint(ml100k.source_checksums)
    assert len(fp) == 64
    assert fp != EvalProtocol(seed=1).fingerprint(ml100k.source_checksums)
    changed = dict(ml100k.source_checksums, **{"ml-100k.kg": "0" * 64})
    assert fp != EvalProtocol().fingerprint(changed)
    from kgzoo import metrics
    old = metrics.METRIC_CODE_VERSION
    try:
        metrics.METRIC_CODE_VERSION = old + "x"
        assert fp != EvalProtocol().fingerprint(ml100k.source_checksums)
    finally:
        metrics.METRIC_CODE_VERSION = old


def test_threshold_and_kcore_are_counted(ml100k):
    p = EvalProtocol(threshold=4, k_core=10)
    d = p.prepare(ml100k)
    below = int((ml100k.rating < 4).sum())
    assert d.cleaning["interactions: rating < 4"] == below
    step = "k-core (user 10, item 10)"
    removed = d.cleaning[f"{step}: interactions"]
    assert d.n_interactions == ml100k.n_interactions - below - removed
    assert int(torch.bincount(d.interactions[:, 0]).min()) >= 10
    assert int(torch.bincount(d.interactions[:, 1], minlength=d.n_items).min()) >= 10
    assert d.n_items == ml100k.n_items - d.cleaning[f"{step}: items"]
    d.validate()


def test_cleaning_counts_what_it_removes(ml100k):
    d = ml100k
    dup = d.replace(interactions=torch.cat([d.interactions, d.interactions[:7]]),
                    rating=torch.cat([d.rating, d.rating[:7]]), timestamp=torch.cat([d.timestamp, d.timestamp[:7]]))
    assert dedup_interactions(dup).cleaning["interactions: duplicate (user, item)"] == 7
    loops = torch.tensor([[5, 0, 5], [6, 1, 6]])
    t = d.replace(triples=torch.cat([d.triples, d.triples[:3], loops]))
    t = drop_self_loops(dedup_triples(t))
    assert t.cleaning["triples: duplicate"] == 3 and t.cleaning["triples: self-loop"] == 2
    assert t.n_triples == d.n_triples
    # an island of two new entities linked to each other only
    E = d.n_entities
    island = d.replace(n_entities=E + 2, entity_ids=d.entity_ids + ["x", "y"],
                       triples=torch.cat([d.triples, torch.tensor([[E, 0, E + 1]])]))
    cleaned = drop_unreachable(island)
    assert cleaned.cleaning["triples: unreachable from any item"] == 1
    assert cleaned.cleaning["entities: unreachable or unused"] == 2
    assert cleaned.n_entities == E


def test_validation_names_the_field(ml100k):
    bad = torch.tensor([[0, ml100k.n_items]])
    with pytest.raises(DataValidationError, match="item"):
        ml100k.replace(interactions=bad, rating=None, timestamp=None)


def test_bpr_negatives_are_never_positives(dm):
    s = dm.bpr_sampler
    g = torch.Generator().manual_seed(0)
    ep = s.epoch(g)
    assert ep["user"].numel() == dm.train_interactions.shape[0]
    # every (user, positive) is a train pair and no (user, negative) is one
    train = sorted_keys(dm.train_interactions[:, 0], dm.train_interactions[:, 1], dm.n_items)
    assert bool(is_member(ep["user"] * dm.n_items + ep["pos_item"], train).all())
    assert not bool(is_member(ep["user"] * dm.n_items + ep["neg_item"], train).any())
    # the pairs of an epoch are exactly the train pairs
    assert torch.equal(torch.sort(ep["user"] * dm.n_items + ep["pos_item"]).values, train)


def test_kg_negatives_are_not_known_triples(dm):
    s = dm.kg_sampler
    b = s.sample(20000, torch.Generator().manual_seed(1))
    t = dm.data.triples
    known = set(map(tuple, t.tolist()))
    corrupted = torch.stack([b["head"], b["relation"], b["neg_tail"]], 1).tolist()
    assert not any(tuple(x) in known for x in corrupted)
    assert all(tuple(x) in known for x in torch.stack([b["head"], b["relation"], b["pos_tail"]], 1).tolist()[:2000])


def test_csr_rows_matches_dense():
    rows = torch.tensor([0, 0, 2, 3, 3, 3])
    cols = torch.tensor([1, 4, 0, 2, 3, 1])
    indptr, indices = to_csr(rows, cols, 5)
    r, c = csr_rows(indptr, indices, torch.tensor([3, 1, 0]))
    assert sorted(zip(r.tolist(), c.tolist())) == [(0, 1), (0, 2), (0, 3), (2, 1), (2, 4)]


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_each_user_evaluated_exactly_once_under_ddp(dm, monkeypatch, world):
    seen = []
    n_train_batches = []
    for rank in range(world):
        monkeypatch.setattr(dmod, "rank_world", lambda r=rank: (r, world))
        for b in dm.test_dataloader():
            seen.append(b["user"])
            # masks are train+valid items of these users, targets their test items
            assert b["target_row"].max() < b["user"].numel()
        n_train_batches.append(sum(1 for _ in dm.train_dataloader()))
    users = torch.cat(seen)
    assert users.numel() == torch.unique(users).numel()
    assert torch.equal(users.sort().values, dm.eval_users("test"))
    assert len(set(n_train_batches)) == 1  # equal batch counts: no rank waits forever


def test_eval_batch_masks_train_and_valid_at_test(dm):
    b = next(iter(dm.test_dataloader()))
    users = b["user"]
    mask = set(zip(users[b["mask_row"]].tolist(), b["mask_col"].tolist()))
    target = set(zip(users[b["target_row"]].tolist(), b["target_col"].tolist()))
    train = _pairs(dm.data, dm.split.train)
    valid = _pairs(dm.data, dm.split.valid)
    test = _pairs(dm.data, dm.split.test)
    bu = set(users.tolist())
    assert mask == {p for p in train | valid if p[0] in bu}
    assert target == {p for p in test if p[0] in bu}


def test_cold_item_stages_rank_only_their_own_cold_items(data_dir):
    """Under the cold_item split every stage's candidates are that stage's cold items: a warm
    item (or a valid item at test time) is masked for every user, and the fingerprint says so."""
    from kgzoo.data.datamodule import KGRecDataModule

    cold = KGRecDataModule("ml-100k-kg", protocol=EvalProtocol(split="cold_item"))
    cold.setup()
    test_items = torch.unique(cold.data.interactions[cold.split.test, 1])
    valid_items = torch.unique(cold.data.interactions[cold.split.valid, 1])
    for loader, items in ((cold.test_dataloader, test_items), (cold.val_dataloader, valid_items)):
        b = next(iter(loader()))
        assert b["item_mask"].dtype == torch.bool and b["item_mask"].shape == (cold.n_items,)
        assert torch.equal(torch.nonzero(~b["item_mask"]).flatten(), items)
    assert "item_mask" not in next(iter(KGRecDataModule("ml-100k-kg").test_dataloader()))
    assert EvalProtocol(split="cold_item").to_dict()["candidates"] == "stage_cold_items"
    assert "candidates" not in EvalProtocol().to_dict()  # other protocols keep their fingerprints


def test_train_batches_carry_kg_triples(dm):
    b = next(iter(dm.train_dataloader()))
    assert set(b) == {"user", "pos_item", "neg_item", "head", "relation", "pos_tail", "neg_tail"}
    assert b["head"].numel() == 1024 and b["user"].dtype == torch.long


def test_ckg_layout(dm):
    ei, et, n = dm.graphs().ckg()
    E, U, R = dm.n_entities, dm.n_users, dm.n_relations
    assert n == E + U
    inter = et == 0
    assert int(inter.sum()) == 2 * dm.train_interactions.shape[0]
    src, dst = ei[:, inter]
    assert bool(((src >= E) ^ (dst >= E)).all())  # interact links users and items
    kg = (et >= 1) & (et <= R)
    assert int(kg.sum()) == dm.data.n_triples and int(((et > R) & (et <= 2 * R)).sum()) == dm.data.n_triples
    assert int(et.max()) == 2 * R


def test_kg_ablations(dm):
    t = dm.data.triples
    none, _ = apply_kg_ablation(t, dm.n_entities, "none", 0)
    assert none.shape == (0, 3)
    sh, _ = apply_kg_ablation(t, dm.n_entities, "shuffled", 0)
    assert torch.equal(sh[:, :2], t[:, :2])
    for r in torch.unique(t[:, 1]).tolist()[:5]:
        m = t[:, 1] == r
        assert torch.equal(sh[m, 2].sort().values, t[m, 2].sort().values)
    assert float((sh[:, 2] != t[:, 2]).float().mean()) > 0.3
    noisy, kind = apply_kg_ablation(t, dm.n_entities, "noisy:0.25", 0)
    changed = (noisy != t).any(1).float().mean().item()
    assert kind == "noisy:0.25" and 0.2 < changed <= 0.2501
    with pytest.raises(ValueError, match="noisy"):
        apply_kg_ablation(t, dm.n_entities, "noisy:2", 0)
    with pytest.raises(ValueError, match="unknown kind"):
        KGRecDataModule("ml-100k-kg", kg_ablation="scrambled")


def test_ctr_protocol_needs_labels(ml100k):
    with pytest.raises(ValueError, match="ctr"):
        EvalProtocol(task="ctr").prepare(ml100k)


def test_download_verifies_and_leaves_nothing_on_mismatch(tmp_path, data_dir):
    src = data_dir / "ml-100k-kg" / "ml-100k.link"
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    dest = tmp_path / "ds"
    good = SourceFile("ml-100k.link", src.as_uri(), sha)
    assert ensure_files(dest, [good]) == {"ml-100k.link": sha}
    assert (dest / "ml-100k.link").read_bytes() == src.read_bytes()
    bad = SourceFile("other.link", src.as_uri(), "0" * 64)
    with pytest.raises(ChecksumError, match="sha256"):
        ensure_files(dest, [bad])
    assert sorted(p.name for p in dest.iterdir()) == ["ml-100k.link"]  # no partial file left
    (dest / "ml-100k.link").write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match="ml-100k.link"):
        ensure_files(dest, [good])
    with pytest.raises(FileNotFoundError, match="downloads disabled"):
        ensure_files(tmp_path / "empty", [good], download_missing=False)


def test_require_train_positive_drops_and_counts_users_without_history(data_dir):
    # RippleNet's protocol on a real ctr set: rows of users with no positive train row go, counted
    base = KGRecDataModule("lastfm-kg")
    base.setup()
    proto = EvalProtocol(task="ctr", ratios=(0.6, 0.2, 0.2), require_train_positive=True)
    dm = KGRecDataModule("lastfm-kg", protocol=proto)
    dm.setup()
    data, full, kept = dm.data, base.split, dm.split
    x, label = data.interactions, data.label
    known = torch.zeros(data.n_users, dtype=torch.bool)
    known[x[full.train[label[full.train] > 0], 0]] = True
    for part in ("train", "valid", "test"):
        idx = getattr(full, part)
        want = idx[known[x[idx, 0]]]
        assert torch.equal(getattr(kept, part), want)
        assert kept.dropped[part] == idx.numel() - want.numel()
        assert data.cleaning[f"{part} rows: user without a positive train row (require_train_positive)"] \
            == kept.dropped[part]
    assert sum(kept.dropped.values()) > 0  # lastfm-kg's split leaves a few users without a train positive
    assert bool(known[x[kept.test, 0]].all())
    # off by default, and then not part of the fingerprint (earlier results keep theirs)
    assert "require_train_positive" not in EvalProtocol(task="ctr").to_dict()
    assert base.fingerprint != dm.fingerprint
    for bad in ("false", 1, None):  # only a bool: "false" would switch it on, 1 would fork the fingerprint
        with pytest.raises(ValueError, match="require_train_positive"):
            EvalProtocol(require_train_positive=bad)


def test_protocol_and_batch_fields_are_validated_by_name():
    for kw, field in (({"ratios": 0.5}, "ratios"), ({"seed": "abc"}, "seed"), ({"k_core": 2.5}, "k_core"),
                      ({"seed": -1}, "seed")):
        with pytest.raises(ValueError, match=f"EvalProtocol.{field}"):
            EvalProtocol(**kw)
    for kw, field in (({"batch_size": 0}, "batch_size"), ({"eval_batch_size": -5}, "eval_batch_size"),
                      ({"kg_batch_size": -1}, "kg_batch_size"), ({"batch_size": 2.5}, "batch_size")):
        with pytest.raises(ValueError, match=f"{field}="):
            KGRecDataModule("ml-100k-kg", **kw)


def test_train_loader_length_is_the_batches_it_yields(dm, data_dir, monkeypatch):
    # Lightning's num_training_batches comes from it (KGAT updates its attention at the last step)
    for d in (dm, KGRecDataModule("lastfm-kg", batch_size=1000)):
        d.setup()
        loader = d.train_dataloader()
        assert len(loader) == len(list(loader)) > 1
    big = KGRecDataModule("lastfm-kg", batch_size=10 ** 6)  # one batch: fine alone, none per rank under DDP
    big.setup()
    assert len(big.train_dataloader()) == 1
    monkeypatch.setattr(dmod, "rank_world", lambda: (0, 2))
    with pytest.raises(ValueError, match="batch_size=1000000 gives 1 training batches"):
        len(big.train_dataloader())
