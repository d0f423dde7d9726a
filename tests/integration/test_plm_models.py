"""Fusion layers, PLMRec and KGPLM on real ml-100k-kg titles, genres and user attributes.

Models run on the 70-core of ml-100k-kg (347 users, 360 items with their real titles, the
full KG) so the one-time frozen text encode stays short; the cache lives in a session
temp dir shared with test_text_encoder.py.
"""
from __future__ import annotations

import dataclasses
import os
import re

import pytest
import torch

import kgzoo
from kgzoo.models.layers import fusion as fusion_mod
from kgzoo.models.layers.fusion import FUSIONS, FusionLayer, create_fusion, list_fusions, register_fusion
from kgzoo.bench.experiment import run_experiment

SLICE = {"k_core": 70}



@pytest.fixture(scope="module")
def dm(data_dir, text_home):
    d = kgzoo.create_datamodule("ml-100k-kg", protocol=SLICE, batch_size=512)
    d.setup()
    return d


def train_steps(model, dm, steps=2):
    opt = model.configure_optimizers()
    model.train()
    losses = []
    for i, batch in enumerate(dm.train_dataloader()):
        if i == steps:
            break
        loss = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert all(torch.isfinite(torch.tensor(losses)))
    return losses


# ---------------------------------------------------------------------- fusion
BUILTIN = ["attention", "concat", "dot", "gate", "max", "mean"]


def test_registry_lists_builtins():
    assert set(BUILTIN) <= set(list_fusions())
    with pytest.raises(KeyError, match="did you mean 'attention'"):
        create_fusion("atention", 8, 2)
    with pytest.raises(TypeError, match="not a FusionLayer"):
        register_fusion("bad")(torch.nn.Linear)


@pytest.mark.parametrize("name", BUILTIN)
def test_fusion_shapes_missing_sources_and_masks(name):
    torch.manual_seed(0)
    f = create_fusion(name, 16, 3)
    a, b, c = (torch.randn(5, 16, requires_grad=True) for _ in range(3))
    out = f([a, b, c])
    assert out.shape == (5, 16) and out.dtype == torch.float32
    out.sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    # a None source equals a source masked off on every row
    mask = torch.tensor([[True, False, True]] * 5)
    assert torch.allclose(f([a, None, c]), f([a, b, c], mask), atol=1e-6)
    # a masked-off entry does not influence its row
    m = torch.ones(5, 3, dtype=torch.bool)
    m[2, 0] = False
    a2 = a.detach().clone()
    a2[2] += 100.0
    assert torch.allclose(f([a, b, c], m)[2], f([a2, b, c], m)[2], atol=1e-5)
    with pytest.raises(ValueError, match="every source is None"):
        f([None, None, None])
    with pytest.raises(ValueError, match="expected 3 sources"):
        f([a, b])
    with pytest.raises(ValueError, match="shape"):
        f([a, b, torch.randn(5, 8)])
    with pytest.raises(ValueError, match="no present source"):
        f([a, b, c], torch.zeros(5, 3, dtype=torch.bool))


def test_fusion_math():
    torch.manual_seed(0)
    x = [torch.randn(4, 8) for _ in range(3)]
    assert torch.equal(create_fusion("max", 8, 3)([x[0], None, x[2]]), torch.maximum(x[0], x[2]))
    att = create_fusion("attention", 8, 3)
    mask = torch.tensor([[True, True, False]] * 4)
    w = att.attention(torch.stack(x, 1), mask)
    assert torch.allclose(w.sum(1), torch.ones(4)) and bool((w[:, 2] == 0).all())
    assert torch.allclose(att(x, mask), w[:, :1] * x[0] + w[:, 1:2] * x[1], atol=1e-6)
    # dot: softmax of q^T x_s over present sources; q = 0 at the start: the mean
    dot = create_fusion("dot", 8, 3)
    torch.testing.assert_close(dot(x, mask), (x[0] + x[1]) / 2)
    with torch.no_grad():
        dot.query.normal_()
    w = torch.softmax(torch.stack([xs @ dot.query for xs in x[:2]], 1), 1)
    torch.testing.assert_close(dot.attention(torch.stack(x, 1), mask)[:, :2], w)
    torch.testing.assert_close(dot(x, mask), w[:, :1] * x[0] + w[:, 1:] * x[1])
    # one present source: gate and attention return it unchanged
    for name in ("gate", "attention", "dot", "mean", "max"):
        assert torch.allclose(create_fusion(name, 8, 3)([None, x[1], None]), x[1], atol=1e-5)


def _han(f, xs, mask):
    """HAN's semantic attention (Wang et al., WWW 2019, eq. 7-9) by autograd: the reference."""
    x = torch.stack(xs, 1) * mask.unsqueeze(-1)
    a = f.query(torch.tanh(f.proj(x))).squeeze(-1).masked_fill(~mask, float("-inf")).softmax(-1)
    return (a.unsqueeze(-1) * x).sum(1)


def test_attention_fusion_backward_matches_autograd_on_hans_formula():
    """AttentionFusion's hand-written forward and backward (tanh through a sigmoid, no
    zeroing of absent slots) against autograd on HAN's eq. 7-9, in float64."""
    torch.manual_seed(0)
    f = create_fusion("attention", 6, 3, hidden=5).double()
    xs = [torch.randn(9, 6, dtype=torch.double, requires_grad=True) for _ in range(3)]
    mask = torch.rand(9, 3) > 0.4
    mask[:, 1] = True
    mask[0] = torch.tensor([False, True, False])  # a row with one present source
    g = torch.randn(9, 6, dtype=torch.double)
    params = [*xs, *f.parameters()]
    out = f(xs, mask)
    assert torch.allclose(out, _han(f, xs, mask), atol=1e-12)
    got, want = torch.autograd.grad(out, params, g), torch.autograd.grad(_han(f, xs, mask), params, g)
    for name, a, b in zip(["x0", "x1", "x2", "W", "b", "q"], got, want):
        assert torch.allclose(a, b, atol=1e-12), name
    assert bool((got[0][~mask[:, 0]] == 0).all()) and got[3].abs().sum() > 0  # absent slots: no gradient
    assert torch.autograd.gradcheck(lambda *t: f(list(t), mask), tuple(xs))
    # float32, as models train
    f32, x32 = create_fusion("attention", 64, 4), [torch.randn(300, 64) for _ in range(4)]
    m32 = torch.rand(300, 4) > 0.3
    m32[:, 0] = True
    assert torch.allclose(f32(x32, m32), _han(f32, x32, m32), atol=1e-5)


def test_absent_invariant_fusions_see_only_present_sources():
    seen = []

    class Spy(FusionLayer):
        def fuse(self, x, mask):
            seen.append((x.shape[1], mask.shape[1]))
            return x.sum(1)

    x = [torch.randn(4, 8) for _ in range(3)]
    mask = torch.tensor([[True, False, True]] * 4)
    Spy(8, 3)([x[0], None, x[2]], mask)  # default: every slot, the absent one as zeros
    Spy.absent_invariant = True
    Spy(8, 3)([x[0], None, x[2]], mask)
    assert seen == [(3, 3), (2, 2)]
    assert [n for n in BUILTIN if FUSIONS.get(n).absent_invariant] == ["attention", "dot", "max", "mean"]


def test_docstring_example_runs():
    code = re.search(r"::\n\n(.*?)\n\"\"\"|::\n\n(.*)", fusion_mod.__doc__, re.S)
    src = "\n".join(line[4:] for line in (code.group(1) or code.group(2)).splitlines())
    scope: dict = {}
    exec(compile(src, "fusion-docstring", "exec"), scope)
    assert scope["out"].shape == (8, 64)
    assert "weighted" in list_fusions() and issubclass(fusion_mod.FUSIONS.get("weighted"), FusionLayer)


# ---------------------------------------------------------------------- models
def test_plmrec_trains_and_scores_from_text(dm):
    for tower in ("id", "mean"):
        m = kgzoo.create_model("plmrec", dm, user_tower=tower)
        assert not hasattr(m.tower.text, "input_ids")  # frozen: no token buffers, no PLM weights
        assert not any("model." in k for k in m.state_dict())
        losses = train_steps(m, dm, 3)
        assert losses[-1] < losses[0] + 0.05
        m.eval()
        m.prepare_scoring()
        s = m.score(torch.arange(4))
        m.end_scoring()
        assert s.shape == (4, dm.n_items) and torch.isfinite(s).all()
    with pytest.raises(ValueError, match="user_tower"):
        kgzoo.create_model("plmrec", dm, user_tower="gru")


def test_kgplm_fit_and_test_with_checkpoint(dm, tmp_path):
    row = run_experiment("kgplm", "ml-100k-kg", protocol=kgzoo.data.protocol.EvalProtocol(**SLICE),
                         max_epochs=1, out_dir=tmp_path, progress=False)
    assert row.status == "ok" and row.epochs == 1
    assert 0.0 <= row.metrics["test/ndcg@10"] <= 1.0 and row.metrics["test/recall@20"] > 0.0
    # attribute vocabularies went into the hyper-parameters: the checkpoint rebuilds alone
    assert row.hparams["item_feature_sizes"] == {"genre": 20, "year": 74}
    assert set(row.hparams["user_feature_sizes"]) == {"age", "gender", "occupation"}
    ckpt = torch.load(tmp_path / row.checkpoint, weights_only=True)
    assert ckpt["hyper_parameters"]["item_feature_sizes"]["genre"] == 20
    m = kgzoo.models.kgplm.KGPLM.load_from_checkpoint(tmp_path / row.checkpoint)
    assert m.item_attr is not None and m.tower.text.cache.abs().sum() > 0  # text vectors restored


@pytest.mark.parametrize("kw", [
    {"use_kg": False}, {"use_text": False}, {"use_attributes": False},
    # no content source: graph dropout (tuned to 0.27 on ml-100k-kg) has nothing to drop to, so it goes too
    {"use_text": False, "use_attributes": False, "use_kg": False, "graph_dropout": 0.0},
    {"graph": "gcn", "fusion": "gate", "kg_encoder": "ckg"}, {"graph": "gat", "fusion": "concat", "kg_encoder": "ckg"},
    {"graph": "none", "fusion": "max"}, {"graph": "kgat", "use_kg": False}, {"kg_encoder": "ckg"},
    {"fusion_hidden": 8},
])
def test_kgplm_ablations_and_encoders(dm, kw):
    m = kgzoo.create_model("kgplm", dm, **kw)
    assert (m.tower is None) == (kw.get("use_text") is False)
    assert (m.item_attr is None) == (kw.get("use_attributes") is False)
    ckg = kw.get("use_kg", True) and m.kg_encoder == "ckg"  # else the KG is a source of its own
    assert m.graph.n_nodes == (dm.n_entities if ckg else dm.n_items) + dm.n_users
    train_steps(m, dm, 1)
    m.prepare_scoring()
    assert m.score(torch.arange(3)).shape == (3, dm.n_items)
    m.end_scoring()


@pytest.mark.slow
def test_kgplm_kgat_encoder_over_full_ckg(dm):
    m = kgzoo.create_model("kgplm", dm, graph="kgat", kg_encoder="ckg")
    assert m.graph.rel_proj.shape[0] == 2 * dm.n_relations + 2
    train_steps(m, dm, 1)
    assert m.graph.rel_proj.grad is not None and m.graph.rel_proj.grad.abs().sum() > 0


def test_kgplm_lora_updates_adapters_only(dm):
    m = kgzoo.create_model("kgplm", dm, text_mode="lora", grad_items=8, lora_r=4, text_max_length=32)
    names = [n for n, p in m.named_parameters() if p.requires_grad and ".text.encoder." in n]
    assert names and all("lora_" in n for n in names)
    base = {n: p.detach().clone() for n, p in m.named_parameters() if ".text.encoder." in n}
    dm.batch_size = 16
    try:
        train_steps(m, dm, 2)
    finally:
        dm.batch_size = 512
    after = dict(m.named_parameters())
    changed = {n for n in base if not torch.equal(base[n], after[n])}
    assert changed and all("lora_" in n for n in changed)


def test_text_whitening(dm):
    """BERT-whitening (Su et al. 2021): the whitened text vectors of the items with text have
    mean 0 and covariance I; the map is saved and restored, not refitted; the frozen table
    follows a load; LoRA at its start (B = 0) whitens to the same vectors."""
    m = kgzoo.create_model("kgplm", dm, text_whiten=16)
    tower, has = m.tower, m.tower.text.has_text
    w = tower._lookup(None)[0][has].double()
    assert w.shape == (int(has.sum()), 16) and tower.proj.in_features == 16
    torch.testing.assert_close(w.mean(0), torch.zeros(16, dtype=torch.double), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.cov(w.T, correction=0), torch.eye(16, dtype=torch.double), atol=1e-4, rtol=0)
    train_steps(m, dm, 2)
    m.eval()
    m.prepare_scoring()
    ref = m.score(torch.arange(4))
    m.end_scoring()
    state = m.state_dict()
    assert {"tower.whiten_mean", "tower.whiten_map"} <= set(state)
    state["tower.whiten_map"] = state["tower.whiten_map"] * 2
    m2 = kgzoo.create_model("kgplm", dm, text_whiten=16).eval()
    m2.load_state_dict(state)
    m2._attach(dm.graphs(), {})  # the model's attach work again: a restored map is kept
    torch.testing.assert_close(m2.tower.whiten_map, state["tower.whiten_map"])
    torch.testing.assert_close(m2.tower._lookup(None)[0], 2 * m.tower._lookup(None)[0])  # the table of that map
    m2.load_state_dict(m.state_dict())  # the whitened table is recomputed after a load
    m2.prepare_scoring()
    torch.testing.assert_close(m2.score(torch.arange(4)), ref)
    items = torch.arange(10)
    lora = kgzoo.create_model("plmrec", dm, text_whiten=16, text_mode="lora", lora_r=2, text_max_length=32)
    frozen = kgzoo.create_model("plmrec", dm, text_whiten=16)
    torch.testing.assert_close(lora.tower._lookup(items)[0], frozen.tower._lookup(items)[0], atol=1e-4, rtol=1e-4)
    # items without text start at the centre of the whitened text (their learned vector is mu)
    fresh = kgzoo.create_model("plmrec", dm, text_whiten=16)
    torch.testing.assert_close(fresh.tower._whitened(fresh.tower.text.no_text.detach()), torch.zeros(16),
                               atol=1e-5, rtol=0)
    for bad in (0, 385):
        with pytest.raises(ValueError, match=f"text_whiten={bad!r} must be an integer in 1..384"):
            kgzoo.create_model("plmrec", dm, text_whiten=bad)
    for bad in (True, 8.0, "16"):  # a value of another type: refused by create_model, naming it (check_hparams)
        with pytest.raises(ValueError, match=f"hyper-parameter 'text_whiten' takes int \\| None, got {bad!r}"):
            kgzoo.create_model("plmrec", dm, text_whiten=bad)
    with pytest.raises(ValueError, match="more than 384 items with text"):
        kgzoo.create_model("plmrec", dm, text_whiten=384)  # the slice has 360 items
    # repeated texts lower the rank: 41 distinct titles span at most 40 centred directions
    from kgzoo.pretrain.text_vectors import TextVectors

    texts = dm.data.item_text
    repeated = dataclasses.replace(dm.graphs(), item_text=[texts[i % 41] for i in range(len(texts))],
                                   fingerprint="ml-100k-kg slice with 41 distinct titles")

    def attach(model):
        model.attach(repeated, {"text_vectors": TextVectors(repeated.item_text, **model.tower.vectors_request())})
        return model

    with pytest.raises(ValueError, match="text_whiten=64 exceeds the rank 40 of the text vectors of the 360"):
        attach(kgzoo.create_model("plmrec", sizes=dm.model_kwargs(), text_whiten=64))
    w = attach(kgzoo.create_model("plmrec", sizes=dm.model_kwargs(), text_whiten=40)).tower._lookup(None)[0].double()
    torch.testing.assert_close(torch.cov(w.T, correction=0), torch.eye(40, dtype=torch.double), atol=1e-3, rtol=0)


def test_kgplm_content_for_unseen_items(dm, text_home):
    cold = kgzoo.create_datamodule("ml-100k-kg", protocol={**SLICE, "split": "cold_item"}, batch_size=512)
    m = kgzoo.create_model("kgplm", cold, content_for_unseen=True, graph_dropout=0.5, graph="none")
    seen = torch.bincount(cold.train_interactions[:, 1], minlength=cold.n_items) > 0
    unseen_item, seen_item = int(torch.nonzero(~seen)[0]), int(torch.nonzero(seen)[0])
    train_steps(m, cold, 1)
    m.eval()
    with torch.no_grad():
        before = m._all_items(m.graph())
        m.graph.embedding.weight[[unseen_item, seen_item]] += 1.0  # move both items' graph vectors
        after = m._all_items(m.graph())
    assert torch.allclose(before[unseen_item], after[unseen_item])  # scored from its text and genres only
    assert not torch.allclose(before[seen_item], after[seen_item])
    with pytest.raises(ValueError, match="graph_dropout"):
        kgzoo.create_model("kgplm", cold, graph_dropout=1.0)


def test_kgplm_kg_from_a_kg_embedding_model(dm, text_home):
    """kg_encoder="transe": user-item graph only, a fourth item source from frozen, cached TransE vectors."""
    from kgzoo.api import attach
    from kgzoo.config import ZooConfig
    from kgzoo.paths import cache_dir
    from kgzoo.pretrain.kg_vectors import KGVectors

    state = torch.get_rng_state()
    transe, cfg = kgzoo.models.kge.TransE, ZooConfig.load("transe", dm.dataset)
    hp = {**cfg.model, "embedding_dim": 16}  # what api.attach asks for kge_dim=16, kge_epochs=1
    vec = KGVectors(dm, "transe", transe, hp, epochs=1, seed=dm.seed, batch_size=cfg.data["batch_size"]).load()
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random state is untouched
    assert vec.shape == (dm.n_entities, 16) and torch.allclose(vec.norm(dim=1), torch.ones(dm.n_entities), atol=1e-4)
    files = sorted(cache_dir("kge").glob("transe-*.safetensors"))
    m = kgzoo.create_model("kgplm", dm, kg_encoder="transe", kge_dim=16, kge_epochs=1)
    assert sorted(cache_dir("kge").glob("transe-*.safetensors")) == files  # read from the cache, not retrained
    assert torch.equal(m.kg_vectors, vec[: dm.n_items])
    assert m.graph.n_nodes == dm.n_items + dm.n_users and m.item_fusion.n_sources == 4
    t = dm.data.triples
    linked = torch.zeros(dm.n_items, dtype=torch.bool)
    linked[t[:, 0][t[:, 0] < dm.n_items]] = True
    linked[t[:, 2][t[:, 2] < dm.n_items]] = True
    assert torch.equal(m.kg_linked, linked) and 0 < int(linked.sum()) < dm.n_items
    before = m.kg_vectors.clone()
    train_steps(m, dm, 2)
    assert torch.equal(m.kg_vectors, before)  # frozen
    assert m.kg_proj.weight.grad is not None and m.kg_proj.weight.grad.abs().sum() > 0
    assert "kg_vectors" in m.state_dict() and int(m.kg_vectors_key) != 0
    # a restored model attached to the same KG keeps its saved vectors: no cache read, no training
    restored = kgzoo.models.kgplm.KGPLM(**dict(m.hparams))
    restored.load_state_dict(m.state_dict())
    for f in cache_dir("kge").glob("transe-*.safetensors"):
        f.rename(f.with_suffix(".moved"))
    try:
        attach(restored, dm)
        assert sorted(cache_dir("kge").glob("transe-*.safetensors")) == []
        assert torch.equal(restored.kg_vectors, m.kg_vectors)
    finally:
        for f in cache_dir("kge").glob("transe-*.moved"):
            f.rename(f.with_suffix(".safetensors"))
    m.prepare_scoring()
    assert torch.isfinite(m.score(torch.arange(3))).all()
    m.end_scoring()
    with pytest.raises(ValueError, match="kg_encoder"):
        kgzoo.create_model("kgplm", dm, kg_encoder="lightgcn")
    # a cache file of an earlier kgzoo (entity table only) serves the entity vectors as it is; the
    # relation table (TransR's start) trains it again
    from safetensors.torch import save_file

    kv = KGVectors(dm, "transe", transe, hp, epochs=1, seed=dm.seed, batch_size=cfg.data["batch_size"])
    save_file({"entity": vec.contiguous()}, str(kv.path))
    trained = []
    real_train = kv.train
    kv.train = lambda: trained.append(1) or real_train()
    assert torch.equal(kv.load(), vec) and not trained
    assert kv.load_tables()["relation"].shape[0] == max(1, dm.n_relations) and trained == [1]
    with pytest.raises(ValueError, match="epochs"):
        KGVectors(dm, "transe", transe, hp, epochs=0)
    empty = kgzoo.create_datamodule("ml-100k-kg", protocol=SLICE, kg_ablation="none", batch_size=512)
    with pytest.raises(ValueError, match="no triples"):
        KGVectors(empty, "transe", transe, hp, epochs=1)
    with pytest.warns(UserWarning, match="KG source is absent"):
        m = kgzoo.create_model("kgplm", empty, kg_encoder="transe", kge_dim=16)
    assert not m.kg_linked.any()
    train_steps(m, empty, 1)


def test_feature_embedding_on_real_attributes(dm):
    """One weighted embedding_bag equals the per-feature mean of known codes, then the mean over
    the features a row has (ml-100k-kg: item year and multi-valued genres; user age, gender,
    occupation), values and gradients; a row with no known code gets zeros."""
    from kgzoo.models.layers.features import FeatureEmbedding, feature_sizes

    torch.manual_seed(0)
    for kind in ("item", "user"):
        feats = {k: v.clone() for k, v in getattr(dm.data, f"{kind}_features").items()}
        for v in feats.values():
            v[0] = 0  # row 0: no known attribute
        fe = FeatureEmbedding(feature_sizes(feats, dm.data.feature_vocab), 8).double()
        fe.set_codes(feats)
        ids = torch.cat([torch.tensor([0]), torch.randperm(feats[next(iter(feats))].shape[0])[:40]])
        out, has = fe(ids)
        rows = []
        for n in ids.tolist():
            per_feature = []
            for k, table in fe.tables.items():
                c = feats[k][n].reshape(-1)
                if bool((c > 0).any()):
                    per_feature.append(table.weight[c[c > 0]].mean(0))
            rows.append(torch.stack(per_feature).mean(0) if per_feature else torch.zeros(8, dtype=torch.double))
        ref = torch.stack(rows)
        assert torch.allclose(out, ref, atol=1e-12) and torch.equal(has, ref.abs().sum(1) > 0) and not has[0]
        g = torch.randn_like(out)
        got = torch.autograd.grad(out, list(fe.parameters()), g)
        want = torch.autograd.grad(ref, list(fe.parameters()), g)
        assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(got, want))
        assert all(bool((t[0] == 0).all()) for t in got)  # the unknown code 0 gets no gradient
    with pytest.raises(ValueError, match="no attribute"):
        fe.set_codes({"age": feats["age"]})
    with pytest.raises(ValueError, match="outside"):
        fe.set_codes({**feats, "age": feats["age"] + 1000})
    with pytest.raises(ValueError, match="integer codes"):
        fe.set_codes({**feats, "age": feats["age"].double()})
    # the weights are exact in the tables' dtype whenever the model is cast
    fe32 = FeatureEmbedding(fe.sizes, 8)
    fe32.set_codes(feats)
    fe32.load_state_dict(fe.state_dict())
    out64 = fe32.double()(ids)[0]
    assert torch.allclose(out64, fe(ids)[0], atol=1e-15, rtol=0)
    with pytest.raises(RuntimeError, match="set_codes"):
        FeatureEmbedding({"a": 3}, 4)(torch.tensor([0]))


def test_optimizer_is_fused_adam_over_trainable_parameters(dm):
    m = kgzoo.create_model("kgplm", dm, lr=3e-3, weight_decay=1e-6)
    opt = m.configure_optimizers()
    assert isinstance(opt, torch.optim.Adam) and opt.defaults["fused"] is True
    assert opt.defaults["lr"] == 3e-3 and opt.defaults["weight_decay"] == 1e-6
    ids = {id(p) for g in opt.param_groups for p in g["params"]}
    assert ids == {id(p) for p in m.parameters() if p.requires_grad} and ids
    # a Trainer that clips gradients gets the per-tensor Adam (Lightning cannot clip a fused
    # optimizer's gradients under mixed precision): one bf16-mixed step with clipping runs
    import lightning as L

    bpr = kgzoo.create_model("bpr", dm)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        precision="bf16-mixed", gradient_clip_val=1.0)
    trainer.fit(bpr, datamodule=dm)
    assert not trainer.optimizers[0].defaults["fused"] and trainer.global_step == 1


def test_kgplm_bad_hyperparameters(dm):
    with pytest.raises(KeyError, match="unknown fusion"):
        kgzoo.create_model("kgplm", dm, fusion="sum-of-all")
    with pytest.raises(ValueError, match="unknown graph encoder"):
        kgzoo.create_model("kgplm", dm, graph="kgat-v2")
    with pytest.raises(ValueError, match="^kgplm: fusion_hidden=8 with fusion='dot': fusion 'dot' takes no "
                                         "argument 'hidden' \\(it takes: none\\)"):
        kgzoo.create_model("kgplm", dm, fusion="dot", fusion_hidden=8)
    with pytest.raises(ValueError, match="AttentionFusion: hidden=0 must be an integer >= 1"):
        kgzoo.create_model("kgplm", dm, fusion_hidden=0)
    for bad in (8.5, True):  # another type: refused by create_model (check_hparams), and by the fusion itself
        with pytest.raises(ValueError, match=f"hyper-parameter 'fusion_hidden' takes int \\| None, got {bad!r}"):
            kgzoo.create_model("kgplm", dm, fusion_hidden=bad)
        with pytest.raises(ValueError, match=f"AttentionFusion: hidden={bad!r} must be an integer >= 1"):
            create_fusion("attention", 8, 2, hidden=bad)
    with pytest.raises(ValueError, match="ConcatFusion: hidden=-1"):
        create_fusion("concat", 8, 2, hidden=-1)
    assert kgzoo.create_model("kgplm", dm, fusion_hidden=8).user_fusion.proj.out_features == 8


@pytest.mark.skipif("lastfm-social" not in kgzoo.list_datasets(), reason="lastfm-social not yet in the catalogue")
def test_kgplm_social_friends(data_dir):
    d = kgzoo.create_datamodule("lastfm-social", batch_size=2048)
    d.setup()
    m = kgzoo.create_model("kgplm", d, use_text=False)
    assert m.social_adj is not None and bool(m._has_friend.any())
    train_steps(m, d, 1)
