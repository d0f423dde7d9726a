"""KGCN and RippleNet on real data: receptive fields and ripple sets against slow references,
pairwise vs full-ranking scores, a few training steps in ctr (lastfm-kg) and top-K (ml-100k-kg)."""
from __future__ import annotations

from collections import Counter, defaultdict

import pytest
import torch

from kgzoo import create_datamodule, create_model
from kgzoo.models.kgcn import KGCN, kg_csr, sample_fixed_size
from kgzoo.models.ripplenet import RippleNet, build_ripple_sets
from kgzoo.bench.experiment import run_experiment


@pytest.fixture(scope="module")
def ml100k(data_dir):
    dm = create_datamodule("ml-100k-kg", batch_size=512)
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def lastfm(data_dir):
    dm = create_datamodule("lastfm-kg", batch_size=256)
    dm.setup()
    return dm


# ---------------------------------------------------------------- samplers vs references
def test_sample_fixed_size_rules(ml100k):
    """Rows with >= n entries: n distinct positions; fewer: draws with replacement; none: flagged."""
    indptr, _, _ = kg_csr(ml100k.data.triples, ml100k.n_entities, undirected=True)
    n = 8
    pos, empty = sample_fixed_size(indptr, n, torch.Generator().manual_seed(1))
    deg = indptr.diff()
    assert pos.shape == (ml100k.n_entities, n)
    assert torch.equal(empty, deg == 0)
    lo, hi = indptr[:-1, None], indptr[1:, None]
    full = deg > 0
    assert bool(((pos >= lo) & (pos < hi))[full].all())
    big = torch.nonzero(deg >= n).flatten()
    srt = pos[big].sort(1).values
    assert bool((srt[:, 1:] != srt[:, :-1]).all()), "rows with >= n entries must be drawn without replacement"
    small = torch.nonzero((deg > 0) & (deg < n)).flatten()
    assert small.numel() > 0 and big.numel() > 0  # both regimes occur on the real KG
    # a different seed gives a different draw; the same seed the same
    pos2, _ = sample_fixed_size(indptr, n, torch.Generator().manual_seed(1))
    pos3, _ = sample_fixed_size(indptr, n, torch.Generator().manual_seed(2))
    assert torch.equal(pos, pos2) and not torch.equal(pos, pos3)
    with pytest.raises(ValueError):
        sample_fixed_size(indptr, 0, torch.Generator())


def test_kgcn_receptive_field_matches_reference(ml100k):
    """Each entity's K sampled (neighbour, relation) pairs come from its undirected adjacency
    list (KGCN's construct_kg/construct_adj, built here with a Python dict), without
    replacement when it has >= K neighbours, and isolated entities point to the padding."""
    model = create_model("kgcn", ml100k, n_neighbors=4)
    trip = ml100k.data.triples
    adj = defaultdict(list)  # slow reference on a slice of heads/tails
    deg = torch.bincount(trip[:, [0, 2]].flatten(), minlength=ml100k.n_entities)
    check = set(range(0, ml100k.n_entities, 97)) | set(range(60)) | set(torch.nonzero(deg == 0).flatten()[:10].tolist())
    for h, r, t in trip.tolist():
        if h in check:
            adj[h].append((t, r))
        if t in check:
            adj[t].append((h, r))
    E, R = ml100k.n_entities, ml100k.n_relations
    isolated = 0
    for e in sorted(check):
        got = list(zip(model.adj_entity[e].tolist(), model.adj_relation[e].tolist()))
        ref = Counter(adj[e])
        if not ref:
            isolated += 1
            assert got == [(E, R)] * 4
            continue
        assert all(p in ref for p in got), (e, got)
        if len(adj[e]) >= 4:
            assert all(Counter(got)[p] <= ref[p] for p in got), (e, got)
    assert isolated > 0  # ml-100k has items without KG links
    assert model.adj_entity[E].eq(E).all()


def test_ripple_sets_match_reference(ml100k):
    """Hop h draws n_memory triples from those headed by the seeds (train positives, then the
    previous hop's tails), without replacement when there are enough; an empty hop copies the
    previous one (RippleNet's get_ripple_set, as a Python reference on a slice of users)."""
    m, H = 16, 2
    indptr, items = ml100k.csr["train"]
    E, R = ml100k.n_entities, ml100k.n_relations
    rs = build_ripple_sets(indptr, items, ml100k.data.triples, E, R, H, m, torch.Generator().manual_seed(0))
    assert rs.shape == (ml100k.n_users, H, 3, m)
    out_edges = defaultdict(list)
    for h, r, t in ml100k.data.triples.tolist():
        out_edges[h].append((h, r, t))
    for u in range(0, ml100k.n_users, 37):
        seeds = items[indptr[u]:indptr[u + 1]].tolist()
        for hop in range(H):
            cand = Counter(tr for s in seeds for tr in out_edges[s])
            got = [tuple(x) for x in rs[u, hop].T.tolist()]
            if not cand:
                expect = [tuple(x) for x in rs[u, hop - 1].T.tolist()] if hop else [(E, R, E)] * m
                assert got == expect
            else:
                assert all(g in cand for g in got)
                if sum(cand.values()) >= m:
                    assert all(Counter(got)[g] <= cand[g] for g in got)
            seeds = rs[u, hop, 2].tolist()


def test_ripple_sets_without_history_are_padding(ml100k):
    indptr = torch.zeros(4, dtype=torch.long)  # three users with no seed
    rs = build_ripple_sets(indptr, torch.zeros(0, dtype=torch.long), ml100k.data.triples, ml100k.n_entities,
                           ml100k.n_relations, 2, 4, torch.Generator().manual_seed(0))
    assert bool((rs[:, :, 0] == ml100k.n_entities).all()) and bool((rs[:, :, 1] == ml100k.n_relations).all())


# ---------------------------------------------------------------- pairwise == full ranking
@pytest.mark.parametrize("name,kw", [
    ("kgcn", {"n_iter": 2, "n_neighbors": 4, "aggregator": "sum", "embedding_dim": 8}),
    ("kgcn", {"n_iter": 2, "n_neighbors": 3, "aggregator": "concat", "embedding_dim": 8, "score_budget": 200_000}),
    ("kgcn", {"n_iter": 1, "aggregator": "neighbor"}),
    ("kgcn", {"n_iter": 1, "n_neighbors": 4, "aggregator": "sum", "embedding_dim": 64}),  # the tuned ml-100k-kg shape
    ("kgcn", {"n_iter": 1, "aggregator": "concat", "dropout": 0.3}),
    ("ripplenet", {"n_hop": 2, "n_memory": 8, "item_update_mode": "plus_transform"}),
    ("ripplenet", {"n_hop": 3, "n_memory": 4, "item_update_mode": "replace", "score_budget": 200_000}),
])
def test_score_equals_predict(ml100k, name, kw):
    """score(users)[b, i] == predict(user_b, i): the chunked/deduplicated full ranking is exact."""
    torch.manual_seed(0)
    model = create_model(name, ml100k, **kw).eval()
    users = torch.arange(0, ml100k.n_users, 40)
    with torch.no_grad():
        s = model.score(users)
        assert s.shape == (users.numel(), ml100k.n_items) and s.dtype == torch.float32
        items = torch.randint(ml100k.n_items, (users.numel(), 25), generator=torch.Generator().manual_seed(0))
        p = model.predict(users.repeat_interleave(25), items.flatten()).view_as(items)
    torch.testing.assert_close(p, s.gather(1, items), rtol=1e-4, atol=1e-5)
    assert torch.isfinite(s).all() and s.std() > 0
    if name == "kgcn":  # the projected first iteration (no grad) equals the unprojected path (grad recorded)
        torch.testing.assert_close(model.score(users[:5]).detach(), s[:5], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("n_iter,aggregator", [(1, "sum"), (2, "concat")])
def test_kgcn_scores_once_for_all_users_where_every_neighbourhood_has_one_relation(ml100k, n_iter, aggregator,
                                                                                   monkeypatch):
    """With one relation per sampled neighbourhood (a KG of one relation: lastfm-social's tags),
    eq. 2's softmax is 1/K for every user: score() computes the items once and takes U V^T. It
    equals predict() and the per-user path; ml-100k-kg's many relations keep the per-user path."""
    torch.manual_seed(0)
    model = create_model("kgcn", ml100k, n_iter=n_iter, n_neighbors=4, aggregator=aggregator, embedding_dim=8).eval()
    assert not model._uniform_attention(model._level_sets())
    with torch.no_grad():
        model.adj_relation.copy_(torch.where(model.adj_relation == model.adj_relation.max(), model.adj_relation, 0))
    levels = model._level_sets()
    assert model._uniform_attention(levels)
    users = torch.arange(0, ml100k.n_users, 30)
    with torch.no_grad():
        once = model.score(users)
        items = torch.randint(ml100k.n_items, (users.numel(), 20), generator=torch.Generator().manual_seed(1))
        pairs = model.predict(users.repeat_interleave(20), items.flatten()).view_as(items)
        monkeypatch.setattr(model, "_uniform_attention", lambda levels: False)
        per_user = model.score(users)
    torch.testing.assert_close(pairs, once.gather(1, items), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(per_user, once, rtol=1e-5, atol=1e-6)
    assert once.std() > 0
    monkeypatch.undo()
    model.prepare_scoring()  # an evaluation pass computes the items once, for all its batches
    assert model._shared is not None and model._shared.shape == (ml100k.n_items, 8)
    with torch.no_grad():
        torch.testing.assert_close(model.score(users), once, rtol=0, atol=0)
    model.end_scoring()
    assert model._shared is None


@pytest.mark.parametrize("n_iter,aggregator,n_neighbors", [(1, "sum", 4), (1, "neighbor", 8), (2, "concat", 3)])
def test_kgcn_first_iteration_grouped_by_relation_is_exact(ml100k, n_iter, aggregator, n_neighbors, monkeypatch):
    """Where the neighbourhoods hold at most K distinct relations (yelp-social's category and
    city), the first iteration's user-weighted mean is summed per relation (one [b, R'] x
    [R', n d] product) and, with one iteration, tanh is folded into the score: it equals
    predict(), the K-term path, and the plain softmax where a user's scores span more than 80."""
    torch.manual_seed(0)
    model = create_model("kgcn", ml100k, n_iter=n_iter, n_neighbors=n_neighbors, aggregator=aggregator,
                         embedding_dim=16).eval()
    with torch.no_grad():  # two relations (and the padding relation) instead of ml-100k-kg's many
        pad = model.adj_relation.max()
        model.adj_relation.copy_(torch.where(model.adj_relation == pad, pad, model.adj_relation % 2))
    users = torch.arange(0, ml100k.n_users, 25)
    with torch.no_grad():
        model.prepare_scoring()
        first = model._first
        assert first is not None and first.present is not None and first.present.numel() <= n_neighbors
        assert model._shared is None  # two relations: the weights depend on the user
        grouped = model.score(users)
        model.end_scoring()
        assert model._first is None
        items = torch.randint(ml100k.n_items, (users.numel(), 20), generator=torch.Generator().manual_seed(2))
        pairs = model.predict(users.repeat_interleave(20), items.flatten()).view_as(items)
        monkeypatch.setattr(first, "present", None)  # the K-term form on the same tables
        monkeypatch.setattr(model, "_first_projection", lambda levels: first)
        k_terms = model.score(users)
        monkeypatch.undo()
        r = model.relation_emb.weight
        model.user_emb.weight[users[0]] = (r[0] - r[1]) * 300 * model.dim / (r[0] - r[1]).pow(2).sum()
        span = (model.user_emb.weight[users[0]] @ r[:2].T / model.dim).diff().abs()
        assert span > 250  # this user's relation scores span far more than 80: exp would underflow to 0
        wide = model.score(users)
        pairs_wide = model.predict(users.repeat_interleave(20), items.flatten()).view_as(items)
    torch.testing.assert_close(pairs, grouped.gather(1, items), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(k_terms, grouped, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pairs_wide, wide.gather(1, items), rtol=1e-4, atol=1e-3)
    assert torch.isfinite(wide).all() and grouped.std() > 0
    with pytest.raises(ValueError, match="do not agree"):
        type(first).build(first.base[:3], first.nbr, first.relations)


def test_kgcn_attention_without_softmax_rows(ml100k):
    """KGCN's scoring attention (exponentials of the R + 1 relation scores gathered) equals the
    softmax over each entity's K neighbours, also where a user's scores span more than 80."""
    model = create_model("kgcn", ml100k, n_neighbors=4)
    rel = model.adj_relation[:50]
    scores = torch.randn(3, model.relation_emb.num_embeddings)
    wide = scores.clone()
    wide[0, 0] = 200.0
    for s in (scores, wide):
        torch.testing.assert_close(model._attention(s, rel), torch.softmax(s[:, rel], -1))


# ---------------------------------------------------------------- training
def _steps(model, batches, n):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for b in batches[:n]:
        opt.zero_grad()
        loss = model.loss(b)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return losses


@pytest.mark.parametrize("name", ["kgcn", "ripplenet"])
def test_ctr_training_on_lastfm(lastfm, name):
    """A few steps in ctr mode with the paper config: finite BCE losses, gradients reach the
    embeddings, predictions are [B] logits, and repeated steps on one real batch fit it."""
    torch.manual_seed(0)
    model = create_model(name, lastfm)
    assert model.task == "ctr"
    batch = next(iter(lastfm.train_dataloader()))
    assert set(batch) >= {"user", "item", "label"}
    loss = model.loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert model.entity_emb.weight.grad.abs().sum() > 0
    losses = _steps(model, [batch] * 8, 8)
    assert all(map(lambda x: x == x, losses)) and losses[-1] < losses[0]
    model.eval()
    with torch.no_grad():
        p = model.predict(batch["user"], batch["item"])
    assert p.shape == batch["user"].shape and torch.isfinite(p).all()


@pytest.mark.parametrize("name", ["kgcn", "ripplenet"])
def test_topk_one_epoch_ml100k(ml100k, name, tmp_path):
    """One epoch of BPR training and full-ranking evaluation on ml-100k-kg via run_experiment."""
    small = {"embedding_dim": 8} | ({"n_memory": 4} if name == "ripplenet" else {})
    row = run_experiment(name, "ml-100k-kg", max_epochs=1, out_dir=tmp_path, progress=False,
                         model_overrides=small, data_overrides={"batch_size": 8192})
    assert row.status == "ok" and row.epochs >= 0
    for k in ("test/ndcg@10", "test/recall@20"):
        assert 0.0 <= row.metrics[k] <= 1.0
    assert row.metrics["test/recall@20"] > 0.0


@pytest.mark.parametrize("topk_loss", ["bpr", "bce"])
def test_kgcn_topk_losses(ml100k, topk_loss):
    import torch.nn.functional as F

    from kgzoo.models.layers.losses import bpr_loss

    model = create_model("kgcn", ml100k, topk_loss=topk_loss)
    batch = next(iter(ml100k.train_dataloader()))
    assert {"user", "pos_item", "neg_item"} <= set(batch)
    loss = model.loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and model.user_emb.weight.grad.abs().sum() > 0
    with torch.no_grad():  # the loss is the named one (plus the L2 term)
        pos, neg = model.predict(batch["user"], batch["pos_item"]), model.predict(batch["user"], batch["neg_item"])
        want = (bpr_loss(pos, neg) if topk_loss == "bpr" else F.binary_cross_entropy_with_logits(
            torch.cat([pos, neg]), torch.cat([torch.ones_like(pos), torch.zeros_like(neg)])))
        torch.testing.assert_close(model.loss(batch), want + model.l2_weight * model.l2())


# ---------------------------------------------------------------- errors
def test_bad_hyper_parameters(ml100k):
    with pytest.raises(ValueError, match="aggregator"):
        create_model("kgcn", ml100k, aggregator="max")
    with pytest.raises(ValueError, match="topk_loss"):
        create_model("kgcn", ml100k, topk_loss="softmax")
    with pytest.raises(ValueError, match="item_update_mode"):
        create_model("ripplenet", ml100k, item_update_mode="concat")
    with pytest.raises(ValueError, match="n_hop"):
        create_model("ripplenet", ml100k, n_hop=0)
    bare = KGCN(n_users=3, n_items=4, n_entities=5, n_relations=1, task="ctr")
    with pytest.raises(RuntimeError, match="no KG"):
        bare.sample_neighbors(0)
    rn = RippleNet(n_users=3, n_items=4, n_entities=5, n_relations=1, task="ctr")
    with pytest.raises(RuntimeError, match="ripple sets"):
        rn.loss({"user": torch.tensor([0]), "item": torch.tensor([1]), "label": torch.tensor([1])})


def test_ripplenet_refuses_an_empty_kg(data_dir):
    dm = create_datamodule("ml-100k-kg", kg_ablation="none")
    with pytest.raises(ValueError, match="needs a KG"):
        create_model("ripplenet", datamodule=dm)


def test_ripplenet_relation_products_match_gathered_matrices(ml100k):
    """``R h``, ``h^T R t`` and the L2 of ``R``, computed once per distinct triple of the batch
    and grouped by relation, equal the paper's per-memory ``d x d`` matrices (eq. 3, 10)."""
    torch.manual_seed(0)
    m = create_model("ripplenet", ml100k, embedding_dim=8, n_memory=4)
    users = torch.arange(50)
    inv, counts, rel, h, t = m._memories(users)
    assert int(counts.sum()) == inv.numel() == 50 * m.H * m.m and bool((rel[1:] >= rel[:-1]).all())
    rs = m.ripple[users]
    hm, rm, tm = m.entity_emb(rs[:, :, 0]), rs[:, :, 1], m.entity_emb(rs[:, :, 2])  # per memory [B, H, m, ...]
    torch.testing.assert_close(h[inv].view_as(hm), hm)
    torch.testing.assert_close(rel[inv].view_as(rm), rm)
    R = m.relation_emb(rm).view(*rm.shape, 8, 8)  # the authors' gathered matrices [B, H, m, d, d]
    Rht = m._apply_relation(torch.stack([h, t], 1), rel)
    torch.testing.assert_close(Rht[:, 0][inv].view_as(hm), (R @ hm[..., None]).squeeze(-1))
    hRt = (hm[..., None, :] @ R @ tm[..., None]).squeeze(-1).squeeze(-1)
    want = (-m.kge_weight * torch.sigmoid(hRt).mean((0, 2)).sum()
            + m.l2_weight * (hm.pow(2).sum() + tm.pow(2).sum() + R.pow(2).sum() + m.transform.pow(2).sum() / 2))
    torch.testing.assert_close(m._regularisers(inv, counts, rel, h, t, Rht[:, 1]), want)


@pytest.mark.parametrize("batch_kind", ["ctr", "topk"])
def test_kgcn_loss_with_one_lookup_per_table_equals_the_plain_loss(ml100k, lastfm, batch_kind):
    """KGCN's training loss looks each embedding table up once with its whole-table L2
    (``predict_with_l2``): the same loss and gradients as ``predict`` plus ``l2()`` apart (the
    authors' per-lookup form), in float64, on a real batch of each task."""
    dm = lastfm if batch_kind == "ctr" else ml100k
    model = create_model("kgcn", dm, n_iter=2, n_neighbors=4, embedding_dim=8, l2_weight=1e-3,
                         topk_loss="bpr").double()
    batch = next(iter(dm.train_dataloader()))
    model.train()
    loss = model.loss(batch)
    loss.backward()
    fast = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    if batch_kind == "ctr":
        base = torch.nn.functional.binary_cross_entropy_with_logits(model.predict(batch["user"], batch["item"]),
                                                                    batch["label"].float())
    else:
        u = batch["user"]
        both = model.predict(torch.cat([u, u]), torch.cat([batch["pos_item"], batch["neg_item"]]))
        base = -torch.nn.functional.logsigmoid(both[: u.numel()] - both[u.numel():]).mean()
    plain = base + model.l2_weight * model.l2()
    plain.backward()
    assert loss.item() == pytest.approx(plain.item(), rel=1e-12)
    slow = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert fast.keys() == slow.keys() and "entity_emb.weight" in fast
    for n in fast:
        torch.testing.assert_close(fast[n], slow[n], rtol=1e-10, atol=1e-12, msg=n)
