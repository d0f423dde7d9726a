"""KG-embedding models on real ml-100k-kg data: TransE, TransR (link prediction), CFKG, CKE (recommenders)."""
from __future__ import annotations

import pytest
import torch

import kgzoo
from kgzoo.data.link import KGLinkDataModule, split_triples
from kgzoo.models.layers.translational import clamp_norm, transr_project
from kgzoo.ops.grouped import relation_matmul
from kgzoo.registry import MODELS


@pytest.fixture(scope="module")
def dm(data_dir):
    d = kgzoo.create_datamodule("ml-100k-kg", batch_size=1024, eval_batch_size=128)
    d.setup()
    return d


@pytest.fixture(scope="module")
def link_dm(dm):
    ldm = KGLinkDataModule(dm)
    ldm.setup()
    return ldm


def _train(model, batches, steps: int, lr: float = 0.01, rows: int = 256):
    """``steps`` Adam steps over ``batches`` (cycled, each cut to its first ``rows`` rows); the
    loss of ``batches[0]`` before and after."""
    batches = [{k: v[:rows] for k, v in b.items()} for b in batches]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    with torch.no_grad():
        before = model.loss(batches[0]).item()
    for s in range(steps):
        loss = model.loss(batches[s % len(batches)])
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if hasattr(model, "normalize_"):
            model.normalize_()
    with torch.no_grad():
        after = model.loss(batches[0]).item()
    return before, after


def test_registry():
    assert kgzoo.list_models("trans*") == ["transe", "transr"]
    assert kgzoo.list_models(family="kge") == ["transe", "transr"]
    assert {"cfkg", "cke"} <= set(kgzoo.list_models())
    assert MODELS.entry("cfkg").meta["paper"] == "Zhang et al., Algorithms 2018"
    assert MODELS.entry("cke").meta["paper"] == "Zhang et al., KDD 2016"


# ---------------------------------------------------------------------- triple split
def test_split_triples_partition_and_cleanup(dm):
    triples = dm.data.triples
    tr, va, te = split_triples(triples, (0.9, 0.05, 0.05), seed=3)
    allp = torch.cat([tr, va, te])
    assert allp.shape == triples.shape
    key = lambda x: torch.sort(x[:, 0] * 10**10 + x[:, 1] * 10**5 + x[:, 2]).values  # noqa: E731
    assert torch.equal(key(allp), key(triples))  # a partition of the triples
    assert 0.03 * len(triples) < len(va) <= 0.05 * len(triples) + 1
    seen = torch.zeros(dm.n_entities, dtype=torch.bool)
    seen[tr[:, 0]] = True
    seen[tr[:, 2]] = True
    for part in (va, te):  # cleanup: every evaluated entity has train triples
        assert seen[part[:, 0]].all() and seen[part[:, 2]].all()
    again = split_triples(triples, (0.9, 0.05, 0.05), seed=3)
    assert all(torch.equal(a, b) for a, b in zip((tr, va, te), again))
    other = split_triples(triples, (0.9, 0.05, 0.05), seed=4)
    assert not torch.equal(va, other[1])


def test_split_triples_errors():
    t = torch.tensor([[0, 0, 1], [1, 0, 2]])
    with pytest.raises(ValueError, match="ratios"):
        split_triples(t, (0.9, 0.2, 0.05))
    with pytest.raises(ValueError, match=r"\[M, 3\]"):
        split_triples(t[:, :2])
    with pytest.raises(ValueError, match=r"\[M, 3\]"):
        split_triples(t.float())


def test_link_train_batches(link_dm):
    b = next(iter(link_dm.train_dataloader()))
    assert set(b) == {"head", "relation", "tail", "neg_head", "neg_tail"}
    changed_h, changed_t = b["neg_head"] != b["head"], b["neg_tail"] != b["tail"]
    assert not (changed_h & changed_t).any()  # exactly one side corrupted
    assert (changed_h | changed_t).all()
    assert 0.4 < changed_h.float().mean() < 0.6  # head or tail with probability 1/2
    # corrupted triples are never known train triples
    R, E = link_dm.n_relations, link_dm.n_entities
    known = set(((link_dm.train_triples[:, 0] * R + link_dm.train_triples[:, 1]) * E
                 + link_dm.train_triples[:, 2]).tolist())
    neg = ((b["neg_head"] * R + b["relation"]) * E + b["neg_tail"]).tolist()
    assert not known.intersection(neg)


# ---------------------------------------------------------------------- TransE / TransR
@pytest.mark.parametrize("name", ["transe", "transr"])
def test_distance_all_matches_distance(dm, link_dm, name):
    model = kgzoo.create_model(name, dm, embedding_dim=16, **({"relation_dim": 8, "init": "uniform"}
                                                              if name == "transr" else {}))
    batch = next(iter(link_dm.train_dataloader()))
    h, r, t = batch["head"][:64], batch["relation"][:64], batch["tail"][:64]
    model.eval()
    with torch.no_grad():
        d = model.distance(h, r, t)
        model.prepare_scoring()
        tails = model.distance_all(h, r, "tail")
        heads = model.distance_all(t, r, "head")
        model.end_scoring()
    assert tails.shape == heads.shape == (64, dm.n_entities)
    torch.testing.assert_close(tails.gather(1, t[:, None]).squeeze(1), d, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(heads.gather(1, h[:, None]).squeeze(1), d, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["transe", "transr"])
def test_kge_trains_and_keeps_constraints(dm, link_dm, name):
    model = kgzoo.create_model(name, dm, **({"init": "uniform"} if name == "transr" else {}))
    assert model.task == "link" and model.main_metric == "mrr"
    batches = [b for _, b in zip(range(3), link_dm.train_dataloader())]
    before, after = _train(model, batches, steps=6, lr=0.01)
    assert after < before
    norms = model.entity.weight.norm(dim=-1)
    if name == "transe":  # entities on the unit sphere (Bordes et al., Algorithm 1)
        torch.testing.assert_close(norms, torch.ones_like(norms))
    else:  # TransR: ||e|| <= 1, ||r|| <= 1
        assert norms.max() <= 1 + 1e-5 and model.relation.weight.norm(dim=-1).max() <= 1 + 1e-5


def test_transr_starts_from_transe_trained_on_the_train_triples_only(dm, link_dm, tmp_path, monkeypatch):
    """Lin et al. 2015, section 4.2: TransR's entities and relations start from a trained TransE;
    that TransE sees the split's train triples only (no held-out triple leaks into the init)."""
    from kgzoo.api import pretrain_extras
    from kgzoo.pretrain.kg_vectors import KGVectors

    monkeypatch.setenv("KGZOO_HOME", str(tmp_path))
    model = kgzoo.create_model("transr", link_dm, embedding_dim=8, init_epochs=1)
    vectors = pretrain_extras(model, link_dm)["kg_vectors"]
    assert isinstance(vectors, KGVectors) and vectors.link is link_dm
    assert torch.equal(vectors._triples(), link_dm.train_triples)
    assert vectors.key != KGVectors(dm, "transe", MODELS.get("transe"), vectors.hparams, epochs=1, seed=vectors.seed,
                                    batch_size=vectors.batch_size).key  # all triples: another TransE
    tables = vectors.load_tables()  # cached by create_model's attach: read, not trained again
    torch.testing.assert_close(model.entity.weight, clamp_norm(tables["entity"]))
    torch.testing.assert_close(model.relation.weight, clamp_norm(tables["relation"]))
    assert int(model.init_key) == int(vectors.key[:15], 16)
    # a model restored from a checkpoint keeps its own weights when attached again
    other = kgzoo.create_model("transr", link_dm, embedding_dim=8, init="uniform")
    restored = kgzoo.create_model("transr", link_dm, embedding_dim=8, init_epochs=1)
    with torch.no_grad():
        other.entity.weight.mul_(0.5)
    restored.load_state_dict({**other.state_dict(), "init_key": model.init_key})
    restored._attached_fingerprint = None
    kgzoo.api.attach(restored, link_dm)
    torch.testing.assert_close(restored.entity.weight, other.entity.weight)
    with pytest.raises(ValueError, match="init"):
        kgzoo.create_model("transr", link_dm, init="transh")


def test_kge_errors(dm):
    with pytest.raises(ValueError, match="p_norm"):
        kgzoo.create_model("transe", dm, p_norm=3)
    with pytest.raises(ValueError, match="margin"):
        kgzoo.create_model("transe", dm, margin=0)
    with pytest.raises(ValueError, match="no hyper-parameter"):
        kgzoo.create_model("transe", dm, relation_dim=3)
    model = kgzoo.create_model("transe", dm)
    with pytest.raises(NotImplementedError, match="link"):
        model.score(torch.arange(3))
    with pytest.raises(KeyError, match="KGLinkDataModule"):
        model.loss(next(iter(dm.train_dataloader())))  # a recommendation batch
    with pytest.raises(ValueError, match="side"):
        model.score_triples(torch.tensor([0]), torch.tensor([0]), side="relation")
    with pytest.raises(ValueError, match="max_valid_triples"):
        KGLinkDataModule(dm, max_valid_triples=0)


def test_clamp_norm():
    x = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    torch.testing.assert_close(clamp_norm(x), torch.tensor([[0.6, 0.8], [0.3, 0.4]]))


# ---------------------------------------------------------------------- CFKG / CKE
@pytest.mark.parametrize("name", ["cfkg", "cke"])
def test_kg_recommenders_train(dm, name):
    dmr = dm
    model = kgzoo.create_model(name, dmr, kg_batch_size=512)
    assert model.uses_kg_batches and dmr.kg_batch_size == 512
    batches = [b for _, b in zip(range(3), dmr.train_dataloader())]
    assert {"user", "pos_item", "neg_item", "head", "relation", "pos_tail", "neg_tail"} <= set(batches[0])
    assert batches[0]["head"].shape == (512,) and batches[0]["user"].shape == (1024,)
    before, after = _train(model, batches, steps=6, lr=0.01)
    assert after < before
    users = torch.arange(7)
    with torch.no_grad():
        s = model.score(users)
    assert s.shape == (7, dmr.n_items) and torch.isfinite(s).all()


def test_cfkg_score_is_translation_distance(dm):
    model = kgzoo.create_model("cfkg", dm)
    users, items = torch.tensor([0, 5, 942]), torch.tensor([3, 0, 1681])
    with torch.no_grad():
        got = model.predict(users, items)
        u = model.node.weight[users + dm.n_entities]
        want = -(u + model.relation.weight[0] - model.node.weight[items]).norm(dim=-1)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_cke_item_vector_and_kg_relations(dm):
    model = kgzoo.create_model("cke", dm)
    with torch.no_grad():
        s = model.score(torch.tensor([1]))
        want = model.user.weight[1] @ (model.item.weight[4] + model.entity.weight[4])
    torch.testing.assert_close(s[0, 4], want)
    assert model.relation.weight.shape[0] == dm.n_relations  # item-KG relations 0..R-1


def test_kg_recommender_errors(dm):
    with pytest.raises(ValueError, match="loss"):
        kgzoo.create_model("cfkg", dm, loss="softmax")
    with pytest.raises(ValueError, match="kg_batch_size"):
        kgzoo.create_model("cke", dm, kg_batch_size=0)
    model = kgzoo.create_model("cfkg", dm)
    batch = {"user": torch.tensor([0]), "pos_item": torch.tensor([1]), "neg_item": torch.tensor([2])}
    with pytest.raises(KeyError, match="KG batches"):
        model.loss(batch)


def test_cfkg_margin_variant(dm):
    dmr = dm
    model = kgzoo.create_model("cfkg", dmr, loss="margin", kg_batch_size=256)
    batches = [b for _, b in zip(range(3), dmr.train_dataloader())]
    before, after = _train(model, batches, steps=6, lr=0.01)
    assert after < before


def test_transr_project_matches_gathered_bmm(dm):
    """The grouped-by-relation projection equals the plain ``e @ M_r`` per row (values and gradients)."""
    g = torch.Generator().manual_seed(0)
    r = dm.data.triples[torch.randint(dm.data.triples.shape[0], (500,), generator=g), 1]  # real relation mix
    e = torch.randn(500, 8, generator=g, requires_grad=True)
    proj = torch.randn(dm.n_relations, 8, 6, generator=g, requires_grad=True)
    got = transr_project(e, proj, r)
    want = clamp_norm(torch.bmm(e.unsqueeze(1), proj[r]).squeeze(1))
    torch.testing.assert_close(got, want)
    assert got.norm(dim=-1).max() <= 1 + 1e-5
    for a, b in zip(torch.autograd.grad(got.pow(2).sum(), [e, proj]), torch.autograd.grad(want.pow(2).sum(), [e, proj])):
        torch.testing.assert_close(a, b)
    # without the clamp (KGAT's TransR term): relation_matmul alone
    torch.testing.assert_close(relation_matmul(e, proj, r), torch.bmm(e.unsqueeze(1), proj[r]).squeeze(1))


@pytest.mark.parametrize("name", ["cke", "cfkg"])
def test_kg_models_train_on_an_empty_kg(data_dir, name):
    """The robustness study's ``kg_ablation="none"``: KG keys arrive empty, the KG term drops out."""
    dm = kgzoo.create_datamodule("ml-100k-kg", kg_ablation="none")
    model = kgzoo.create_model(name, datamodule=dm)
    batch = next(iter(dm.train_dataloader()))
    assert batch["head"].numel() == 0 and batch["user"].numel() > 0
    loss = model.loss(batch)
    assert torch.isfinite(loss)
    loss.backward()
