"""GCN, GAT, KGAT and KGIN on real ml-100k-kg data: propagation layers, attention, training steps."""
from __future__ import annotations

import pytest
import torch

from kgzoo import create_datamodule, create_model
from kgzoo.models.kgin import distance_correlation, independence_loss
from kgzoo.models.layers.propagation import KGATConv, RelationalMean, SparseAdj, kgat_attention, keep_mask

# small widths keep a full-graph step (35,655 CKG nodes, 344,878 edges) cheap on 2 cores
SMALL = {
    "gcn": {"embedding_dim": 16, "n_layers": 2},
    "gat": {"embedding_dim": 16, "n_layers": 2, "heads": 2},
    "kgat": {"embedding_dim": 16, "layer_sizes": [16, 8], "dropout": 0.0, "kg_batch_size": 512},
    "kgin": {"embedding_dim": 16, "n_hops": 2, "mess_dropout": 0.0, "node_dropout": 0.0},
}


@pytest.fixture(scope="module")
def dm(data_dir):
    d = create_datamodule("ml-100k-kg", batch_size=1024)
    d.setup()
    return d


@pytest.fixture(scope="module")
def ckg(dm):
    return dm.graphs().ckg_relational()


def test_ckg_relational_ids(dm, ckg):
    edge_index, edge_type, n_nodes, n_rel = ckg
    E, R = dm.n_entities, dm.n_relations
    assert n_nodes == E + dm.n_users and n_rel == 2 * R + 2
    assert int(edge_type.min()) == 0 and int(edge_type.max()) == 2 * R + 1
    inter = edge_type == 0
    assert bool((edge_index[0, inter] >= E).all()) and bool((edge_index[1, inter] < dm.n_items).all())
    back = edge_type == 2 * R + 1
    assert bool((edge_index[0, back] < dm.n_items).all()) and int(back.sum()) == int(inter.sum())


def test_kgat_attention_is_softmax_over_each_heads_edges(dm, ckg):
    torch.manual_seed(0)
    edge_index, edge_type, n_nodes, n_rel = ckg
    d = 8
    x, proj, rel = torch.randn(n_nodes, d), torch.randn(n_rel, d, d) / d**0.5, torch.randn(n_rel, d)
    att = kgat_attention(x, edge_index, edge_type, proj, rel, n_nodes)
    assert att.shape == edge_type.shape and bool((att > 0).all())
    sums = torch.zeros(n_nodes).index_add_(0, edge_index[0], att)
    has_edges = torch.bincount(edge_index[0], minlength=n_nodes) > 0
    torch.testing.assert_close(sums[has_edges], torch.ones(int(has_edges.sum())))
    # eq. 4-5 by hand for one user (interact and interacted-by relations have their own W_r)
    h = dm.n_entities + 3
    sel = torch.nonzero(edge_index[0] == h).flatten()
    hh, tt, rr = edge_index[0, sel], edge_index[1, sel], edge_type[sel]
    logits = torch.stack([(x[t] @ proj[r]) @ torch.tanh(x[h] @ proj[r] + rel[r]) for h, t, r in zip(hh, tt, rr)])
    torch.testing.assert_close(att[sel], torch.softmax(logits, 0), rtol=1e-4, atol=1e-6)


def test_kgatconv_sparse_path_matches_message_passing(ckg):
    torch.manual_seed(0)
    edge_index, edge_type, n_nodes, _ = ckg
    conv = KGATConv(8, 4, dropout=0.0)
    att = torch.rand(edge_index.shape[1])
    x1 = torch.randn(n_nodes, 8, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    out_mp = conv(x1, edge_index, att)  # gather / scatter (PyG propagate)
    out_sp = conv(x2, SparseAdj(edge_index, att, n_nodes))  # cached sparse matmul
    assert out_sp.shape == (n_nodes, 4)
    torch.testing.assert_close(out_sp, out_mp, rtol=1e-4, atol=1e-5)
    g = torch.randn_like(out_mp)
    (out_mp * g).sum().backward()
    (out_sp * g).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # a plain torch.sparse attention matrix goes through PyG's message_and_aggregate
        out_ts = conv(x1, SparseAdj(edge_index, att, n_nodes).adj)
    torch.testing.assert_close(out_ts, out_mp.detach(), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="attention"):
        conv(x1, edge_index)


def test_relational_mean_is_mean_of_relation_products(dm):
    # KGIN eq. 7 on real triples (with inverses), against the per-edge gather / product / scatter mean
    from torch_geometric.utils import scatter

    torch.manual_seed(0)
    h, r, t = dm.data.triples[:3000].unbind(1)
    R = dm.n_relations
    ei, et = torch.stack([torch.cat([h, t]), torch.cat([t, h])]), torch.cat([r, r + R])
    agg = RelationalMean(ei, et, dm.n_entities, 2 * R)
    x = torch.randn(dm.n_entities, 8, dtype=torch.float64, requires_grad=True)
    rel = torch.randn(2 * R, 8, dtype=torch.float64, requires_grad=True)
    for keep in (None, torch.rand(ei.shape[1]) >= 0.5):
        e, y = (ei, et) if keep is None else (ei[:, keep], et[keep])
        want = scatter(rel[y] * x[e[1]], e[0], dim=0, dim_size=dm.n_entities, reduce="mean")
        got = agg(x, rel, keep)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(torch.autograd.grad(got.pow(2).sum(), [x, rel]),
                                   torch.autograd.grad(want.pow(2).sum(), [x, rel]))
    node = int(h[0])
    torch.testing.assert_close(agg(x, rel)[node], (rel[et[ei[0] == node]] * x[ei[1][ei[0] == node]]).mean(0))
    assert bool((agg(x, rel)[~torch.isin(torch.arange(dm.n_entities), ei[0])] == 0).all())
    with pytest.raises(ValueError, match="keep"):
        agg(x, rel, torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="BoolTensor"):  # 0/1 integers would index, not mask
        agg(x, rel, torch.ones(ei.shape[1], dtype=torch.long))
    with pytest.raises(ValueError, match="edge_type"):
        RelationalMean(ei, et, dm.n_entities, R)
    # the cached matrices follow the features' dtype
    torch.testing.assert_close(agg(x.float(), rel.float()), agg(x, rel).float())


def test_keep_mask_rate_and_switches():
    torch.manual_seed(0)
    keep = keep_mask(0.3, 10_000)
    assert keep.dtype == torch.bool and keep.shape == (10_000,) and abs(float(keep.float().mean()) - 0.7) < 0.03
    assert keep_mask(0.5, 10, training=False) is None and keep_mask(0.0, 10) is None
    with pytest.raises(ValueError):
        keep_mask(1.0, 10)


def test_distance_correlation_and_independence():
    torch.manual_seed(0)
    x = torch.randn(64)
    torch.testing.assert_close(distance_correlation(x, 2 * x + 1), torch.tensor(1.0))
    assert float(distance_correlation(x, torch.randn(64))) < 0.5
    batched = distance_correlation(torch.stack([x, x]), torch.stack([-x, torch.randn(64)]))
    assert batched.shape == (2,) and abs(float(batched[0]) - 1.0) < 1e-5 and float(batched[1]) < 0.5
    intents = torch.randn(4, 64, requires_grad=True)
    for kind in ("distance", "cosine", "mi"):
        v = independence_loss(intents, kind)
        assert v.dim() == 0 and torch.isfinite(v)
        v.backward()
    with pytest.raises(ValueError, match="independence"):
        independence_loss(intents, "pearson")


@pytest.mark.parametrize("name", ["gcn", "gat", "kgat", "kgin"])
def test_model_trains_on_real_batches(dm, name):
    torch.manual_seed(0)
    model = create_model(name, datamodule=dm, lr=1e-2, **SMALL[name])
    batch = next(iter(dm.train_dataloader()))
    if name == "kgat":  # alternating: the epoch's CF batches, then its KG batches (the same CF rows)
        assert model.uses_kg_batches and model.kg_phase and dm.kg_phase and dm.kg_batch_size == 512
        batches = list(dm.train_dataloader())
        n = len(batches) // 2
        assert "head" not in batches[0] and torch.equal(batches[n]["user"], batches[0]["user"])
        kg = batches[n]
        assert kg["head"].shape == (512,) and int(kg["relation"].max()) < dm.n_relations
        # the KG phase's loss moves the embeddings and TransR's tables only
        loss = model.loss(kg)
        loss.backward()
        assert {k for k, p in model.named_parameters() if p.grad is not None} == {"embedding.weight",
                                                                                    "rel_emb.weight", "rel_proj"}
        model.zero_grad(set_to_none=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(3):
        loss = model.loss(batch)
        assert loss.dim() == 0 and torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0], losses
    model.eval()
    model.prepare_scoring()
    users = torch.tensor([0, 5, dm.n_users - 1])
    scores = model.score(users)
    model.end_scoring()
    assert scores.shape == (3, dm.n_items) and scores.dtype == torch.float32 and bool(torch.isfinite(scores).all())
    torch.testing.assert_close(model.score(users), scores)  # cache == recomputation (eval mode)


def test_kgat_attention_updated_once_per_epoch_after_training(dm):
    # as the authors' code: the attention is recomputed after the epoch's last step, and the
    # validation right after reuses it (it is counted as training time, not evaluation time)
    import lightning as L

    torch.manual_seed(0)
    model = create_model("kgat", datamodule=dm, **SMALL["kgat"])
    steps = []
    compute = model.attention
    model.attention = lambda: (steps.append((model.trainer.global_step, model.trainer.training)), compute())[1]
    trainer = L.Trainer(max_epochs=2, limit_train_batches=2, limit_val_batches=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, num_sanity_val_steps=0,
                        enable_model_summary=False)
    trainer.fit(model, datamodule=dm)
    # the first epoch's start, then after each epoch's 2nd step, in training; none in validation
    assert steps == [(0, True), (2, True), (4, True)]


@pytest.mark.parametrize("name", ["gcn", "gat", "kgat", "kgin"])
def test_model_needs_a_graph(name):
    sizes = {"n_users": 10, "n_items": 20, "n_entities": 30, "n_relations": 2, "task": "topk"}
    model = create_model(name, sizes=sizes, config=False)
    with pytest.raises(RuntimeError, match="no graph"):
        model.score(torch.tensor([0]))


def test_bad_hyperparameters_are_rejected(dm):
    with pytest.raises(ValueError, match="heads"):
        create_model("gat", datamodule=dm, embedding_dim=10, heads=3)
    with pytest.raises(ValueError, match="combine"):
        create_model("gcn", datamodule=dm, combine="sum")
    with pytest.raises(ValueError, match="layer_sizes"):
        create_model("kgat", datamodule=dm, layer_sizes=[])
    with pytest.raises(ValueError, match="independence"):
        create_model("kgin", datamodule=dm, independence="hsic")


@pytest.mark.slow
def test_gcn_one_epoch_through_run_experiment(tmp_path, data_dir):
    from kgzoo.bench.experiment import run_experiment

    row = run_experiment("gcn", max_epochs=1, out_dir=tmp_path, model_overrides={"embedding_dim": 16},
                         data_overrides={"batch_size": 8192, "eval_batch_size": 1024})
    assert row.status == "ok" and row.epochs >= 1
    assert 0.0 < row.metrics["test/ndcg@10"] <= 1.0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gcn", "gat", "kgat", "kgin"])
def test_bench_budget_beats_pop(tmp_path, data_dir, name):
    """The default bench schedule (config ``bench`` section) beats Pop (test NDCG@10 ~0.145)."""
    from kgzoo.bench.experiment import run_experiment

    row = run_experiment(name, quick=True, out_dir=tmp_path)
    assert row.metrics["test/ndcg@10"] > 0.15, row.metrics


def test_sparse_adj_matches_dense_forward_and_backward(ckg):
    """SparseAdj (cached transpose) against dense autograd: square gcn_norm and rectangular row means."""
    torch.manual_seed(0)
    edge_index, _, n_nodes, _ = ckg
    sub = edge_index[:, (edge_index < 300).all(0)]  # a 300-node slice of the real CKG
    for adj, n_cols in ((SparseAdj.gcn_normalized(sub, 300, self_loops=True), 300),
                        (SparseAdj.row_mean(sub[0] % 50, sub[1], 50, 300), 300)):
        x1 = torch.randn(n_cols, 4, requires_grad=True)
        x2 = x1.detach().clone().requires_grad_(True)
        g = torch.randn(adj.n_nodes, 4)
        (adj.matmul(x1) * g).sum().backward()
        (adj.to_dense() @ x2 * g).sum().backward()
        torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-5, atol=1e-6)
    dense = SparseAdj.row_mean(sub[0] % 50, sub[1], 50, 300).to_dense()
    has = torch.bincount(sub[0] % 50, minlength=50) > 0
    torch.testing.assert_close(dense.sum(1)[has], torch.ones(int(has.sum())))  # rows average their neighbours
    with pytest.raises(ValueError, match="300 columns"):
        adj.matmul(torch.randn(299, 4))
    # the matrices follow the features' dtype, each cast from the float32 originals: a trip
    # through bfloat16 (whose CPU sparse product torch lacks) does not round the weights
    x, values = torch.randn(300, 4), adj.adj.values().clone()
    want = adj.matmul(x)
    assert adj.matmul(x.double()).dtype == torch.float64
    try:
        adj.matmul(x.bfloat16())
    except (RuntimeError, NotImplementedError):
        pass
    assert adj.adj.dtype == torch.bfloat16
    assert torch.equal(adj.matmul(x), want) and torch.equal(adj.adj.values(), values)


@pytest.mark.parametrize("name,kw", [("lightgcn", {}), ("gcn", SMALL["gcn"]), ("kgat", SMALL["kgat"]),
                                     ("kgplm", {}), ("plmrec", {"user_tower": "mean"})])
def test_models_with_a_sparse_graph_deepcopy_and_cast(dm, text_home, name, kw):
    """copy.deepcopy (what Lightning's StochasticWeightAveraging and torch's AveragedModel do)
    copies each SparseAdj, and .double() runs the sparse products in float64."""
    import copy

    torch.manual_seed(0)
    m = create_model(name, dm, **kw).eval()
    users = torch.arange(5)
    m.prepare_scoring()  # kgat: builds its attention matrix
    ref = m.score(users)
    m.end_scoring()
    c = copy.deepcopy(m)
    c.prepare_scoring()
    torch.testing.assert_close(c.score(users), ref)
    c.end_scoring()
    with torch.no_grad():
        for p in c.parameters():
            p.add_(1.0)
    m.prepare_scoring()
    torch.testing.assert_close(m.score(users), ref)  # the copy is independent
    m.end_scoring()
    d = copy.deepcopy(m).double()
    d.prepare_scoring()
    out = d.score(users)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out.float(), ref, rtol=1e-4, atol=1e-4)


def test_stochastic_weight_averaging_trains_lightgcn(dm, tmp_path):
    import lightning as L
    from lightning.pytorch.callbacks import StochasticWeightAveraging

    m = create_model("lightgcn", dm)
    trainer = L.Trainer(max_epochs=2, limit_train_batches=2, limit_val_batches=0, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[StochasticWeightAveraging(swa_lrs=1e-3, swa_epoch_start=1)],
                        default_root_dir=tmp_path)
    trainer.fit(m, datamodule=dm)
    assert trainer.global_step == 4


def test_kgat_tests_the_best_checkpoint_with_its_own_attention(dm, tmp_path):
    """trainer.test(ckpt_path=...) loads other weights but keeps the trainer's step count: the
    attention must be recomputed from the loaded weights, not reused from the last epoch's
    (the converged KGAT rows were tested with the last epoch's attention)."""
    import lightning as L

    torch.manual_seed(0)
    model = create_model("kgat", datamodule=dm, **SMALL["kgat"])
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, num_sanity_val_steps=0,
                        enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=dm)
    path = tmp_path / "first.ckpt"
    trainer.save_checkpoint(path)
    first = {k: v.clone() for k, v in model.state_dict().items()}
    trainer.fit_loop.max_epochs = 2
    trainer.fit(model, datamodule=dm)  # the weights and the attention move on
    trainer.test(model, datamodule=dm, ckpt_path=str(path), verbose=False, weights_only=True)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in first.items())  # the first epoch's weights
    x = torch.randn(model.n_nodes, 3, generator=torch.Generator().manual_seed(0))
    fresh = SparseAdj(model.edge_index, model.attention(), model.n_nodes, pattern=model._groups.adjacency)
    torch.testing.assert_close(model._adj.matmul(x), fresh.matmul(x))
