"""Recommender.update and kgzoo.hub.update (issue 15, part 7): the closed-form fold-in, tables
grown without touching trained rows, graphs rebuilt, fine-tuning, unsupported models named, and
an updated checkpoint rebuilt from its path alone."""
from __future__ import annotations

import copy
import uuid

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

import kgzoo
from kgzoo.cli.lightning import run_lightning
from kgzoo.data.datamodule import KGRecDataModule
from kgzoo.data.download import ChecksumError
from kgzoo.data.frames import build_from_frames
from kgzoo.data.kgdata import content_checksum
from kgzoo.hub.checkpoint import update_checkpoint
from kgzoo.hub.update import FineTuneBatches, fine_tune, new_train_pairs, update_model
from kgzoo.models.layers.fold_in import fold_in

USERS = [f"u{k}" for k in range(12)]
ITEMS = [f"i{k}" for k in range(20)]


def frames(seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = [(u, ITEMS[j]) for k, u in enumerate(USERS) for j in rng.choice(20, 8, replace=False)]
    x = pd.DataFrame(rows, columns=["user", "item"])
    x["timestamp"] = np.arange(len(x))
    kg = pd.DataFrame({"head": ITEMS, "relation": ["genre"] * 20, "tail": [f"g{k % 4}" for k in range(20)]})
    return x, kg


def trained(name: str, dm: KGRecDataModule, **over):
    """``name`` trained 5 epochs on ``dm`` (the update folds into a model that ranks), seeded: the
    result must not depend on what ran before in the session."""
    torch.manual_seed(0)
    model = kgzoo.create_model(name, datamodule=dm, config=False, embedding_dim=8, lr=0.05, **over)
    L.Trainer(max_epochs=5, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0).fit(model, datamodule=dm)
    return model.eval()


def datamodule() -> KGRecDataModule:
    x, kg = frames()
    data = build_from_frames(x, triples=kg, name="tiny")
    data.source_checksums = {"in-memory": content_checksum(data)}
    return KGRecDataModule.from_data(data, batch_size=32)


def base_checkpoint(path, name: str, **over):
    """``name`` trained 1 epoch on a fresh tiny from_frames dataset and saved to ``path``: ``(model, datamodule)``."""
    x, kg = frames()
    ds = kgzoo.from_frames(x, triples=kg, name=f"tiny-{uuid.uuid4().hex[:6]}")
    dm = kgzoo.create_datamodule(ds.name, batch_size=32)
    model = kgzoo.create_model(name, datamodule=dm, config=False, **over)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(model, datamodule=dm)
    trainer.save_checkpoint(path)
    return model, dm


NEW_X = pd.DataFrame({"user": ["new-a", "new-a", "new-a", "new-b", "u0", "u1"],
                      "item": ["i1", "i2", "i3", "i5", "fresh", "fresh"], "timestamp": [100] * 6})
NEW_KG = pd.DataFrame({"head": ["fresh"], "relation": ["genre"], "tail": ["g1"]})


def test_fold_in_recovers_a_planted_vector():
    g = torch.Generator().manual_seed(0)
    Y, X = torch.randn(50, 8, generator=g), torch.randn(3, 8, generator=g)
    rows = torch.arange(3).repeat_interleave(20)
    cols = torch.cat([torch.randperm(50, generator=g)[:20] for _ in range(3)])
    target = (X[rows] * Y[cols]).sum(-1)
    got = fold_in(Y, rows, cols, 3, target, reg=1e-9, implicit=False)
    assert torch.allclose(got, X, atol=1e-4)


def test_implicit_fold_in_is_hu_et_al_closed_form():
    g = torch.Generator().manual_seed(1)
    Y = torch.randn(30, 4, generator=g, dtype=torch.float64)
    cols = torch.tensor([2, 7, 11])
    got = fold_in(Y, torch.zeros(3, dtype=torch.long), cols, 1, 2.0, reg=0.5, alpha=3.0)
    c = torch.ones(30, dtype=torch.float64)
    c[cols] = 4.0
    p = torch.zeros(30, dtype=torch.float64)
    p[cols] = 2.0
    want = torch.linalg.solve(Y.T @ (c[:, None] * Y) + 0.5 * torch.eye(4, dtype=torch.float64), Y.T @ (c * p))
    assert torch.allclose(got[0], want)


@pytest.mark.parametrize("name", ["bpr", "lightgcn", "cke", "kgplm"])
def test_update_keeps_trained_rows_and_folds_in_new_users(name):
    dm = datamodule()
    over = {"use_text": False, "n_layers": 1} if name == "kgplm" else {}
    model = trained(name, dm, **over)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    up = update_model(model, dm, interactions=NEW_X, triples=NEW_KG)
    g = up.growth
    assert (up.datamodule.n_users, up.datamodule.n_items) == (14, 21) and model.n_users == 14
    assert up.report["new users"] == 2 and up.report["new items"] == 1 and up.report["folded-in users"] == 2
    after = model.state_dict()
    U0, I0 = g.n_users, g.n_items
    if name == "bpr":
        assert torch.equal(after["user_emb.weight"][:U0], before["user_emb.weight"])
        assert torch.equal(after["item_emb.weight"][:I0], before["item_emb.weight"])
    elif name == "lightgcn":
        w = after["embedding.weight"]
        assert torch.equal(w[:U0], before["embedding.weight"][:U0])
        assert torch.equal(w[14:14 + I0], before["embedding.weight"][U0:])
    elif name == "cke":
        assert torch.equal(after["entity.weight"][g.entity_map], before["entity.weight"])
        assert torch.equal(after["user.weight"][:U0], before["user.weight"])
    else:
        w = after["graph.embedding.weight"]
        assert torch.equal(w[g.entity_map], before["graph.embedding.weight"][: g.n_entities])
        assert torch.equal(w[model.user_offset:model.user_offset + U0], before["graph.embedding.weight"][g.n_entities:])
    # the new users score every item; the fold-in ranks their own items above the others
    scores = model.score(torch.tensor([12]))[0]
    own = torch.tensor([dm.data.item_ids.index(i) for i in ("i1", "i2", "i3")])
    rest = torch.ones(21, dtype=torch.bool)
    rest[own] = False
    assert scores.shape == (21,) and torch.isfinite(scores).all()
    assert scores[own].mean() > scores[rest].mean()


def test_fine_tune_trains_on_new_and_replayed_pairs():
    dm = datamodule()
    model = kgzoo.create_model("bpr", datamodule=dm, config=False, embedding_dim=8)
    up = update_model(model, dm, interactions=NEW_X, triples=NEW_KG, epochs=2, replay=2.0)
    ft = up.report["fine-tune"]
    assert up.report["new train pairs"] > 0 and ft["rows per epoch"] == 3 * up.report["new train pairs"]
    assert np.isfinite(ft["train/loss"]) and not model.training


def plain_loop(model, batches: FineTuneBatches, epochs: int) -> None:
    """The plain PyTorch loop fine_tune was before it ran through Lightning: the reference."""
    opt = model.configure_optimizers()
    model.train()
    for _ in range(epochs):
        for batch in batches:
            loss = model.loss(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()


@pytest.mark.parametrize("name, over", [("bpr", {}), ("cke", {})])  # CKE: with KG batches
def test_fine_tune_runs_the_models_training_through_lightning_as_the_plain_loop_did(name, over):
    """The same batches, steps and weights as the plain loop (bit for bit), now through a
    Lightning Trainer: the model's training_step logs its train/loss, its epoch hooks run."""
    dm = datamodule()
    base = trained(name, dm, **over)
    up = update_model(copy.deepcopy(base), dm, interactions=NEW_X, triples=NEW_KG, epochs=0)
    new = new_train_pairs(up.datamodule, up.datamodule.data, up.growth)
    ours, ref = copy.deepcopy(up.model), copy.deepcopy(up.model)
    modes, loss = [], ours.loss
    ours.loss = lambda batch: modes.append(ours.training) or loss(batch)  # trained in train mode (dropout on)
    report = fine_tune(ours, up.datamodule, new, epochs=3, replay=1.5, seed=7)
    assert modes and all(modes)
    kg = bool(getattr(ref, "uses_kg_batches", False))
    assert kg == (name == "cke")
    plain_loop(ref, FineTuneBatches(up.datamodule, new, 1.5, 7, kg), epochs=3)
    a, b = ours.state_dict(), ref.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    before = up.model.state_dict()
    assert any(not torch.equal(a[k], before[k]) for k in a)  # it trained
    assert ours.trainer.current_epoch == 3 and report["train/loss"] == float(ours.trainer.callback_metrics["train/loss"])
    assert report["rows per epoch"] == int(new.sum()) + round(1.5 * int(new.sum())) and not ours.training


def test_models_without_an_update_say_so():
    dm = datamodule()
    for name, kw in (("cfkg", {}), ("kgplm", {"use_text": False, "graph": "gcn"})):
        model = kgzoo.create_model(name, datamodule=dm, config=False, embedding_dim=8, **kw)
        with pytest.raises(NotImplementedError, match="retrain"):
            update_model(model, dm, interactions=NEW_X)


def test_an_updated_checkpoint_is_rebuilt_from_its_path(tmp_path):
    _, dm = base_checkpoint(tmp_path / "base.ckpt", "bpr", embedding_dim=8)
    (tmp_path / "new").mkdir()
    NEW_X.to_csv(tmp_path / "new" / "interactions.csv", index=False)
    NEW_KG.to_csv(tmp_path / "new" / "kg.csv", index=False)
    path, up = update_checkpoint(tmp_path / "base.ckpt", [tmp_path / "new"], tmp_path / "out", epochs=1)
    pre = kgzoo.load_checkpoint(path)
    assert pre.datamodule.fingerprint == up.datamodule.fingerprint != dm.fingerprint
    assert pre.model.n_users == 14
    assert torch.equal(pre.model.user_emb.weight, up.model.user_emb.weight)
    # a changed update file: refused, naming the file (the checkpoint records its sha256)
    NEW_X.iloc[:3].to_csv(tmp_path / "new" / "interactions.csv", index=False)
    with pytest.raises(ChecksumError, match=r"interactions\.csv \(interactions\) has sha256 .* changed since"):
        kgzoo.load_checkpoint(path)
    # a checkpoint written before the files' sha256 were recorded: the data's fingerprint refuses it
    ckpt = torch.load(path, weights_only=True)
    del ckpt["kgzoo"]["data"]["update"]["sha256"]
    torch.save(ckpt, tmp_path / "old.ckpt")
    with pytest.raises(ValueError, match="fingerprint"):
        kgzoo.load_checkpoint(tmp_path / "old.ckpt")
    # an update file that is gone: named
    NEW_X.to_csv(tmp_path / "new" / "interactions.csv", index=False)
    (tmp_path / "new" / "kg.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"kg\.csv \(triples\).* is gone"):
        kgzoo.load_checkpoint(path)


def pairs_of(dm, part: str) -> set[tuple[int, int]]:
    return set(map(tuple, dm.data.interactions[getattr(dm.split, part)].tolist()))


def test_an_update_keeps_the_base_split_and_its_new_rows_train(tmp_path):
    """A random split is one permutation of all rows: redrawn over the extended rows, it put base
    train pairs into test (ml-100k-kg, 4 new rows: 7,741 of 9,598 test pairs, test NDCG@10 of the
    unchanged BPR 0.376 for 0.297) and base test pairs into the fine-tune's replay."""
    model, dm = base_checkpoint(tmp_path / "base.ckpt", "bpr", embedding_dim=8)
    up = update_model(model, dm, interactions=NEW_X, epochs=0)
    ext = up.datamodule
    assert ext.protocol.split == "given" and dm.protocol.split == "random"
    for part in ("train", "valid", "test"):  # the base's pairs keep their part
        assert pairs_of(dm, part) <= pairs_of(ext, part), part
    assert pairs_of(ext, "valid") == pairs_of(dm, "valid") and pairs_of(ext, "test") == pairs_of(dm, "test")
    added = set(map(tuple, ext.data.interactions[up.growth.new_interactions].tolist()))
    assert added and pairs_of(ext, "train") == pairs_of(dm, "train") | added
    # the fine-tune replays base train pairs only
    new = new_train_pairs(ext, ext.data, up.growth)
    assert set(map(tuple, ext.train_interactions[~new].tolist())) == pairs_of(dm, "train")
    # rebuilt from the checkpoint's path alone: the same split, a second update on top keeps it too
    (tmp_path / "new").mkdir()
    NEW_X.to_csv(tmp_path / "new" / "interactions.csv", index=False)
    path, first = update_checkpoint(tmp_path / "base.ckpt", [tmp_path / "new"], tmp_path / "out")
    again = kgzoo.load_checkpoint(path).datamodule
    again.setup()
    assert pairs_of(again, "test") == pairs_of(first.datamodule, "test") == pairs_of(dm, "test")
    more = pd.DataFrame({"user": ["new-c", "new-c", "u2"], "item": ["i4", "i6", "i9"], "timestamp": [200] * 3})
    (tmp_path / "more").mkdir()
    more.to_csv(tmp_path / "more" / "interactions.csv", index=False)
    path2, second = update_checkpoint(path, [tmp_path / "more"], tmp_path / "out2")
    assert pairs_of(second.datamodule, "test") == pairs_of(dm, "test")
    rebuilt = kgzoo.load_checkpoint(path2).datamodule
    rebuilt.setup()
    assert pairs_of(rebuilt, "test") == pairs_of(dm, "test")


def test_a_cold_item_starts_at_the_mean_of_the_items_sharing_its_kg_entity():
    dm = datamodule()
    model = trained("bpr", dm)
    cold = pd.DataFrame({"head": ["cold"], "relation": ["genre"], "tail": ["g1"]})
    text = pd.DataFrame({"item": ["cold"], "text": ["a cold item"]})
    up = update_model(model, dm, triples=cold, item_text=text)
    assert up.report["new items"] == 1 and up.report["items with a KG prior"] == 1
    g1 = [dm.data.item_ids.index(f"i{k}") for k in range(20) if k % 4 == 1]
    want = model.item_emb.weight[g1].mean(0)
    assert torch.allclose(model.item_emb.weight[20], want, atol=1e-6)


def test_new_train_pairs_follow_the_protocols_rating_threshold():
    """A threshold drops low-rated rows when the extended data is prepared: the fine-tune's new
    pairs are the kept ones (matched on the extended rows, not on positions)."""
    x, kg = frames()
    x["rating"] = np.where(np.arange(len(x)) % 3 == 0, 1.0, 5.0)
    data = build_from_frames(x, triples=kg, name="tiny-rated")
    data.source_checksums = {"in-memory": content_checksum(data)}
    dm = KGRecDataModule.from_data(data, batch_size=32, protocol=kgzoo.EvalProtocol(threshold=4.0))
    model = kgzoo.create_model("bpr", datamodule=dm, config=False, embedding_dim=8)
    new = NEW_X.assign(rating=[5.0, 1.0, 5.0, 5.0, 1.0, 5.0])
    up = update_model(model, dm, interactions=new, epochs=1)
    t = up.datamodule.train_interactions
    ids = up.datamodule.data
    kept = {(ids.user_ids.index(u), ids.item_ids.index(i)) for u, i, r in new[["user", "item", "rating"]].values
            if r >= 4.0}
    train = {tuple(p) for p in t.tolist()}
    assert up.report["new train pairs"] == len(kept & train) > 0


def test_kgplm_with_transe_vectors_grows_them_without_moving_the_old_ones(tmp_path, monkeypatch):
    """kg_encoder="transe": the update's KG vectors are the base's TransE tables grown
    (GrownKGVectors): old entity and relation rows bit for bit at their new ids, the new item, a
    new entity and a new relation fitted; the extended data asks for the same grown vectors again."""
    from kgzoo.api import pretrain_extras
    from kgzoo.pretrain.kg_vectors import GrownKGVectors

    monkeypatch.setenv("KGZOO_HOME", str(tmp_path))
    dm = datamodule()
    model = trained("kgplm", dm, use_text=False, n_layers=1, kg_encoder="transe", kge_dim=8, kge_epochs=3)
    base_vectors = pretrain_extras(model, dm)["kg_vectors"]
    assert int(model.kg_vectors_key) == int(base_vectors.key[:15], 16)
    before = model.kg_vectors.clone()
    kg = pd.concat([NEW_KG, pd.DataFrame({"head": ["fresh"], "relation": ["studio"], "tail": ["s1"]})])
    up = update_model(model, dm, interactions=NEW_X, triples=kg)
    g = up.growth
    assert up.report["new relations"] == 1 and up.report["new entities (not items)"] == 1
    grown = pretrain_extras(model, up.datamodule)["kg_vectors"]
    assert isinstance(grown, GrownKGVectors) and int(model.kg_vectors_key) == int(grown.key[:15], 16)
    old, new = base_vectors.load_tables(), grown.load_tables()
    assert torch.equal(new["entity"][g.entity_map], old["entity"])
    assert torch.equal(new["relation"][: g.n_relations], old["relation"])
    assert torch.equal(model.kg_vectors[: g.n_items], before)
    fresh = up.datamodule.data.item_ids.index("fresh")
    assert bool(model.kg_linked[fresh]) and torch.isfinite(model.kg_vectors[fresh]).all()
    assert torch.equal(model.kg_vectors[fresh], new["entity"][fresh])
    assert torch.allclose(new["entity"][fresh].norm(), torch.tensor(1.0), atol=1e-5)  # TransE's unit entities
    scores = model.score(torch.tensor([12, 13]))
    assert scores.shape == (2, 21) and torch.isfinite(scores).all()


def test_grown_kg_vectors_start_new_rows_from_the_translation_premise():
    """The closed form: a new tail t of (h, r, t) starts at e_h + e_r, a new head at e_t - e_r,
    a new relation at e_t - e_h, each averaged over its triples with old ends (TransE, section 2)."""
    from kgzoo.pretrain.kg_vectors import GrownKGVectors

    ent = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    rel = torch.tensor([[0.5, 0.5], [0.0, 0.0]])
    triples = torch.tensor([[0, 0, 2], [1, 0, 2], [3, 0, 1], [0, 1, 1]])
    old_ent, old_rel = torch.tensor([True, True, False, False]), torch.tensor([True, False])
    GrownKGVectors._closed_form(ent, rel, triples, old_ent, old_rel)
    assert torch.allclose(ent[2], torch.tensor([1.0, 1.0]))        # mean of (1.5, .5) and (.5, 1.5)
    assert torch.allclose(ent[3], torch.tensor([-0.5, 0.5]))       # e_1 - r_0
    assert torch.allclose(rel[1], torch.tensor([-1.0, 1.0]))       # e_1 - e_0
    assert torch.equal(ent[:2], torch.eye(2))


def test_kgplm_with_transr_vectors_still_says_retrain():
    dm = datamodule()
    model = kgzoo.create_model("kgplm", datamodule=dm, config=False, embedding_dim=8, use_text=False,
                               kg_encoder="transr", kge_dim=8, kge_epochs=1)
    with pytest.raises(NotImplementedError, match="transr"):
        model.check_update()


def social_datamodule() -> KGRecDataModule:
    x, kg = frames()
    feats = pd.DataFrame({"user": USERS, "age": ["young", "old"] * 6})
    friends = pd.DataFrame({"user": USERS[:6], "friend": USERS[6:]})
    data = build_from_frames(x, triples=kg, user_features=feats, social=friends, name="tiny-social")
    data.source_checksums = {"in-memory": content_checksum(data)}
    return KGRecDataModule.from_data(data, batch_size=32)


def test_kgplm_update_reads_new_users_attributes_and_social_ties():
    dm = social_datamodule()
    model = trained("kgplm", dm, use_text=False, n_layers=1, kg_encoder="ckg")
    feats = pd.DataFrame({"user": ["new-a", "new-b"], "age": ["old", "young"]})
    friends = pd.DataFrame({"user": ["new-a", "u0"], "friend": ["u0", "new-b"]})
    up = update_model(model, dm, interactions=NEW_X, triples=NEW_KG, user_features=feats, social=friends)
    assert up.report["new users with attributes"] == 2 and up.report["new social ties"] == 2
    data = up.datamodule.data
    a, b, u0 = data.user_ids.index("new-a"), data.user_ids.index("new-b"), data.user_ids.index("u0")
    vocab = data.feature_vocab["age"]
    codes, _ = model.user_attr(torch.tensor([a, b]))
    assert codes is not None                                           # the attribute source is present
    assert data.user_features["age"][[a, b]].tolist() == [vocab.index("old"), vocab.index("young")]
    assert model._has_friend.shape == (14,) and bool(model._has_friend[a]) and not bool(model._has_friend[b])
    scores = model.score(torch.tensor([a, b]))
    assert scores.shape == (2, 21) and torch.isfinite(scores).all()


def test_side_tables_a_model_does_not_read_are_refused_naming_both():
    dm = social_datamodule()
    friends = pd.DataFrame({"user": ["new-a"], "friend": ["u0"]})
    for name, kw in (("bpr", {}), ("kgplm", {"use_text": False, "use_social": False})):
        model = kgzoo.create_model(name, datamodule=dm, config=False, embedding_dim=8, **kw)
        with pytest.raises(ValueError, match=f"{name} does not read the social table"):
            update_model(model, dm, interactions=NEW_X, social=friends)


def test_update_files_of_social_ties_and_attributes_are_read_by_their_columns(tmp_path):
    from kgzoo.hub.update import read_update

    pd.DataFrame({"user": ["new-a"], "friend": ["u0"]}).to_csv(tmp_path / "friends.csv", index=False)
    pd.DataFrame({"user": ["new-a"], "age": ["old"]}).to_csv(tmp_path / "people.csv", index=False)
    NEW_X.to_csv(tmp_path / "rows.csv", index=False)
    frames_, origins, files = read_update([tmp_path])
    assert set(frames_) == {"interactions", "social", "user_features"}
    assert files["social"].endswith("friends.csv") and origins["user_features"].header == 1


def test_an_updated_kgplm_with_transe_vectors_is_rebuilt_from_its_path_without_training_them(tmp_path, monkeypatch):
    """The reload hands the model the grown vectors again (GrownKGVectors from the cache): no
    TransE is trained, and the vectors are the update's."""
    from kgzoo.pretrain.kg_vectors import KGVectors

    monkeypatch.setenv("KGZOO_HOME", str(tmp_path / "home"))
    base_checkpoint(tmp_path / "base.ckpt", "kgplm", embedding_dim=8, use_text=False, n_layers=1,
                    kg_encoder="transe", kge_dim=8, kge_epochs=2)
    (tmp_path / "new").mkdir()
    NEW_X.to_csv(tmp_path / "new" / "interactions.csv", index=False)
    pd.concat([NEW_KG, pd.DataFrame({"head": ["fresh"], "relation": ["studio"], "tail": ["s1"]})]).to_csv(
        tmp_path / "new" / "kg.csv", index=False)
    path, up = update_checkpoint(tmp_path / "base.ckpt", [tmp_path / "new"], tmp_path / "out")

    def no_training(self):
        raise AssertionError("a reload trained TransE")

    monkeypatch.setattr(KGVectors, "train", no_training)
    pre = kgzoo.load_checkpoint(path)
    assert torch.equal(pre.model.kg_vectors, up.model.kg_vectors) and pre.model.n_items == 21
    assert int(pre.model.kg_vectors_key) == int(up.model.kg_vectors_key) != 0
    # kgzoo test --ckpt_path of the update checkpoint: the extended data, registered by name, is
    # the update's extension, so its DataModule grows the base's vectors again (no TransE trained)
    cli = run_lightning("test", ["--ckpt_path", str(path), "--trainer.logger", "false",
                                 "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path)])
    assert cli.datamodule.extended_from is not None and cli.datamodule.fingerprint == up.datamodule.fingerprint
    assert torch.equal(cli.model.kg_vectors, up.model.kg_vectors) and "test/ndcg@10" in cli.trainer.callback_metrics


def test_a_cold_item_split_is_not_updated():
    """A cold-item split is drawn over the items: an update would redraw it (and could train on the
    base's test items), so it is refused before anything is built, naming the split."""
    from kgzoo.data.protocol import EvalProtocol
    from kgzoo.hub.update import check_updatable

    x, kg = frames()
    data = build_from_frames(x, triples=kg, name="tiny")
    dm = KGRecDataModule.from_data(data, batch_size=32, protocol=EvalProtocol(task="topk", split="cold_item"))
    with pytest.raises(ValueError, match="cold-item split is drawn over the items"):
        check_updatable(dm)
    check_updatable(datamodule())  # the random split of the same data is updatable


def test_kgzoo_update_takes_pretrained_weights_as_recommend_and_export_do(tmp_path):
    """``kgzoo update --ckpt_path bpr/ml-100k-kg`` said "checkpoint bpr/ml-100k-kg: no such file":
    weights loaded by name (or a save_pretrained folder) could be recommended from and exported,
    not updated, from the command line. ``--model`` names them as those commands do."""
    from kgzoo.cli import main

    base, dm = base_checkpoint(tmp_path / "base.ckpt", "bpr", embedding_dim=8)
    kgzoo.load_checkpoint(tmp_path / "base.ckpt").save_pretrained(tmp_path / "weights")
    (tmp_path / "new").mkdir()
    NEW_X.to_csv(tmp_path / "new" / "interactions.csv", index=False)
    NEW_KG.to_csv(tmp_path / "new" / "kg.csv", index=False)
    for option, source, out in (("--model", tmp_path / "weights", "a"), ("--ckpt_path", tmp_path / "base.ckpt", "b")):
        assert main(["update", option, str(source), "--data", str(tmp_path / "new"), "--out", str(tmp_path / out)]) == 0
    a, b = (kgzoo.load_checkpoint(tmp_path / out / "update.ckpt") for out in "ab")
    assert a.model.n_users == b.model.n_users == dm.n_users + 2
    assert a.datamodule.fingerprint == b.datamodule.fingerprint != dm.fingerprint
    assert torch.equal(a.model.user_emb.weight, b.model.user_emb.weight)
    assert torch.equal(a.model.item_emb.weight[:dm.n_items], base.item_emb.weight)
