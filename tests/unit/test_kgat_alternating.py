"""KGAT's alternating optimisation (Wang et al., KDD 2019, section 3.4.2; issue 16, part 4) on
tiny in-memory data: through a Lightning Trainer it equals a plain PyTorch loop with two Adams
(the CF steps, then the KG steps over the same batches, then the attention update); the
DataModule's phase order and its DDP shards; the attention recomputed once per epoch; a run
resumed from a checkpoint equals an uninterrupted one (both optimisers' states restored);
fine-tuning batches in the same order; the joint mode as before (one Adam, summed loss)."""
from __future__ import annotations

import warnings

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from kgzoo.data.datamodule import KG_KEYS, KGRecDataModule, kg_phase_order
from kgzoo.data.kgdata import KGRecData
from kgzoo.models.kgat import KGAT

U, I, E, R = 12, 15, 25, 2
KGB = 8  # KG triples per batch


def tiny_datamodule(seed: int = 1) -> KGRecDataModule:
    """12 users with 6 random positives each of 15 items (48 train rows), 25 entities, 40 triples over 2 relations."""
    g = torch.Generator().manual_seed(3)
    rows = torch.tensor([(u, int(i)) for u in range(U) for i in torch.randperm(I, generator=g)[:6]])
    triples = torch.unique(torch.stack([torch.randint(E, (40,), generator=g), torch.randint(R, (40,), generator=g),
                                        torch.randint(E, (40,), generator=g)], 1), dim=0)
    data = KGRecData(name="kgat-alt-tiny", n_users=U, n_items=I, n_entities=E, interactions=rows, triples=triples,
                     relation_names=["r0", "r1"])
    return KGRecDataModule.from_data(data, batch_size=12, kg_batch_size=KGB, seed=seed)


def build(dm: KGRecDataModule, optimization: str = "alternating") -> KGAT:
    torch.manual_seed(0)
    dm.setup()
    m = KGAT(**dm.model_kwargs(), embedding_dim=6, layer_sizes=(5, 4), dropout=0.0, reg_weight=0.01, kg_weight=0.5,
             kg_batch_size=KGB, lr=0.02, ks=(5,), optimization=optimization)
    m.attach(dm.graphs())
    dm.adapt_to(m)
    return m


def trainer(epochs: int, **kw) -> L.Trainer:
    kw = {"logger": False, "enable_checkpointing": False, **kw}
    return L.Trainer(max_epochs=epochs, enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                     num_sanity_val_steps=0, accelerator="cpu", **kw)


def fit(t: L.Trainer, m: KGAT, dm: KGRecDataModule, **kw) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t.fit(m, datamodule=dm, **kw)


def joint_batches(dm: KGRecDataModule, epoch: int) -> list[dict[str, torch.Tensor]]:
    """The epoch's batches drawn as a plain loop would: BPR triples, then the KG triples, one generator."""
    g = torch.Generator().manual_seed(dm.seed * 1_000_003 + epoch)
    full = dm.bpr_sampler.epoch(g)
    n = full["user"].numel()
    starts = range(0, n, dm.batch_size)
    kg = dm.kg_sampler.sample(KGB * len(starts), g)
    return [{**{k: v[s:s + dm.batch_size] for k, v in full.items()},
             **{k: v[i * KGB:(i + 1) * KGB] for k, v in kg.items()}} for i, s in enumerate(starts)]


def test_alternating_trainer_equals_a_plain_loop_with_two_adams():
    dm = tiny_datamodule()
    model = build(dm)
    assert model.kg_phase and not model.automatic_optimization and dm.kg_phase
    fit(trainer(2), model, dm)

    ref = build(tiny_datamodule())
    params = [p for p in ref.parameters() if p.requires_grad]
    adam_cf = torch.optim.Adam(params, lr=ref.lr, fused=True)
    adam_kg = torch.optim.Adam(params, lr=ref.lr, fused=True)
    start = {k: v.clone() for k, v in ref.state_dict().items()}
    kg_moved = {"embedding.weight", "rel_emb.weight", "rel_proj"}
    for epoch in range(2):
        ref.update_attention()  # eq. 4-5 from the weights after the previous epoch (outside a Trainer: always)
        batches = joint_batches(dm, epoch)
        for b in batches:  # the CF phase: L_CF + its L2
            adam_cf.zero_grad()
            ref.loss({k: b[k] for k in ("user", "pos_item", "neg_item")}).backward()
            adam_cf.step()
        for b in batches:  # the KG phase: L_KG + its L2 over the KG triples and the batch's (u, interact, i, j)
            adam_kg.zero_grad()
            ref.loss(b).backward()
            assert {n for n, p in ref.named_parameters() if p.grad is not None} == kg_moved
            adam_kg.step()
    got, want = model.state_dict(), ref.state_dict()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-6, msg=k)
    assert any(not torch.equal(start[k], want[k]) for k in want)
    # both phases count: the plain loop with one shared Adam (RecBole's) ends elsewhere
    one = build(tiny_datamodule())
    adam = torch.optim.Adam([p for p in one.parameters() if p.requires_grad], lr=one.lr, fused=True)
    for epoch in range(2):
        one.update_attention()
        batches = joint_batches(dm, epoch)
        for b in kg_phase_order(batches):
            adam.zero_grad()
            one.loss(b).backward()
            adam.step()
    assert not torch.allclose(one.embedding.weight, model.embedding.weight, atol=1e-4)


def test_the_datamodule_yields_the_cf_phase_then_the_kg_phase_with_the_joint_draws(monkeypatch):
    alt, joint = tiny_datamodule(), tiny_datamodule()
    build(alt, "alternating")
    build(joint, "joint")
    assert alt.kg_phase and not joint.kg_phase
    a, j = list(alt.train_dataloader()), list(joint.train_dataloader())
    n = len(j)  # 48 train rows (8:1:1 split of 6 per user) in batches of 12
    assert n == 4 and len(a) == len(alt.train_dataloader()) == 2 * n and len(joint.train_dataloader()) == n
    for cf, kg, b in zip(a[:n], a[n:], j):
        assert set(cf) == {"user", "pos_item", "neg_item"} and all(torch.equal(cf[k], b[k]) for k in cf)
        assert set(kg) == set(b) and all(torch.equal(kg[k], b[k]) for k in b)
        assert kg["head"].shape == (KGB,)
    with pytest.raises(KeyError, match="batch 0 has no KG triples"):
        kg_phase_order([{"user": torch.zeros(2, dtype=torch.long)}])
    # DDP: each rank gets its CF shard, then the same shard's KG batches; equal counts on both ranks
    shards = []
    for rank in (0, 1):
        monkeypatch.setattr("kgzoo.data.datamodule.rank_world", lambda r=rank: (r, 2))
        d = tiny_datamodule()
        build(d)
        shards.append(list(d.train_dataloader()))
        assert len(d.train_dataloader()) == len(shards[-1]) == 4
    for rank, mine in enumerate(shards):
        assert ["head" in b for b in mine] == [False, False, True, True]
        for cf, kg, b in zip(mine[:2], mine[2:], j[rank::2]):
            assert torch.equal(cf["user"], b["user"]) and torch.equal(kg["head"], b["head"])


def test_attention_is_updated_once_per_epoch_with_two_optimizers():
    dm = tiny_datamodule()
    model = build(dm)
    steps = []
    compute = model.attention
    model.attention = lambda: (steps.append((model.trainer.global_step, model.trainer.training)), compute())[1]
    t = trainer(2)
    fit(t, model, dm)
    # one optimiser step per batch (4 CF + 4 KG an epoch): the first epoch's start, then each epoch's last step
    assert t.global_step == 16 and steps == [(0, True), (8, True), (16, True)]


def three_epochs_and_a_resumed_run(tmp_path, drop_kg_adam_state: bool = False) -> tuple[KGAT, KGAT, dict]:
    """``(3 epochs uninterrupted, 2 epochs + checkpoint + resumed to 3 in a fresh model and
    DataModule, the checkpoint)``; ``drop_kg_adam_state``: the KG Adam's moments removed from the file."""
    dm = tiny_datamodule()
    whole = build(dm)
    fit(trainer(3), whole, dm)
    dm1 = tiny_datamodule()
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)
    fit(trainer(2, enable_checkpointing=True, callbacks=[ckpt]), build(dm1), dm1)
    state = torch.load(tmp_path / "last.ckpt", weights_only=True)  # a checkpoint never runs code
    if drop_kg_adam_state:
        state["optimizer_states"][1]["state"] = {}
    torch.save(state, tmp_path / "resume.ckpt")
    dm2 = tiny_datamodule()  # a fresh process: fresh model, fresh DataModule
    resumed = build(dm2)
    with torch.no_grad():
        for p in resumed.parameters():
            p.add_(1.0)  # weights from the checkpoint, not from the constructor
    fit(trainer(3), resumed, dm2, ckpt_path=str(tmp_path / "resume.ckpt"))
    return whole, resumed, state


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path):
    whole, resumed, state = three_epochs_and_a_resumed_run(tmp_path)
    assert len(state["optimizer_states"]) == 2  # the CF and the KG Adam
    assert all(s["state"] for s in state["optimizer_states"])
    for k, v in whole.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=1e-6, atol=1e-7, msg=k)


def test_resuming_without_the_kg_adams_state_ends_elsewhere(tmp_path):
    """The resume test above fails when the KG Adam's state is not restored."""
    whole, resumed, _ = three_epochs_and_a_resumed_run(tmp_path, drop_kg_adam_state=True)
    assert not torch.allclose(resumed.embedding.weight, whole.embedding.weight, atol=1e-5)


def test_joint_mode_is_one_adam_over_the_summed_loss():
    dm = tiny_datamodule()
    model = build(dm, "joint")
    assert not model.kg_phase and model.automatic_optimization and not dm.kg_phase
    fit(trainer(1), model, dm)
    ref = build(tiny_datamodule(), "joint")
    adam = torch.optim.Adam([p for p in ref.parameters() if p.requires_grad], lr=ref.lr, fused=True)
    ref.update_attention()
    for b in joint_batches(dm, 0):
        assert all(k in b for k in KG_KEYS)
        adam.zero_grad()
        ref.loss(b).backward()
        adam.step()
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=1e-5, atol=1e-6, msg=k)


def test_train_loss_is_the_summed_objective_per_interaction():
    """``train/loss`` of the alternating run: (sum of the CF and KG steps' losses x rows) / rows,
    each interaction counted once (as the joint loss's ``L_CF + L_KG`` per row)."""
    dm = tiny_datamodule()
    model = build(dm)
    seen = []
    loss = model.loss
    model.loss = lambda b: (seen.append((float(v := loss(b)), b["user"].numel(), "head" in b)), v)[1]
    t = trainer(1)
    fit(t, model, dm)
    rows = sum(n for _, n, kg in seen if not kg)
    want = sum(v * n for v, n, _ in seen) / rows
    assert len(seen) == 8 and rows == 48
    assert float(t.callback_metrics["train/loss"]) == pytest.approx(want, rel=1e-5)


def test_fine_tune_batches_follow_the_phases():
    from kgzoo.hub.update import FineTuneBatches

    dm = tiny_datamodule()
    build(dm)
    new = torch.zeros(dm.train_interactions.shape[0], dtype=torch.bool)
    new[:20] = True
    joint = list(FineTuneBatches(dm, new, 1.0, 0, kg=True))
    phased = FineTuneBatches(dm, new, 1.0, 0, kg=True, kg_phase=True)
    got = list(phased)
    n = len(joint)  # 20 new + 20 replayed rows in batches of 12
    assert n == 4 and len(phased) == len(got) == 2 * n
    assert ["head" in b for b in got] == [False] * n + [True] * n
    for cf, kg, b in zip(got[:n], got[n:], joint):
        assert all(torch.equal(cf[k], b[k]) for k in cf) and all(torch.equal(kg[k], b[k]) for k in b)


def test_bad_optimization_is_rejected():
    with pytest.raises(ValueError, match="optimization='alternate'"):
        KGAT(U, I, n_entities=E, n_relations=R, ks=(5,), optimization="alternate")


def test_ddp_strategies_detect_the_parameters_a_phase_leaves_unused():
    from kgzoo.bench.experiment import strategy_for

    alt, joint = build(tiny_datamodule()), build(tiny_datamodule(), "joint")
    assert strategy_for(alt, "ddp") == "ddp_find_unused_parameters_true"
    assert strategy_for(alt, "ddp_spawn") == "ddp_spawn_find_unused_parameters_true"
    assert strategy_for(alt, "auto") == "auto" and strategy_for(joint, "ddp") == "ddp"


class StepsPerRank(L.Callback):
    """Writes each rank's optimiser step count at the end of training to ``folder/rank<r>.txt``."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_train_end(self, trainer, pl_module):
        with open(f"{self.folder}/rank{trainer.global_rank}.txt", "w") as f:
            f.write(str(trainer.global_step))


@pytest.mark.slow  # two spawned processes (gloo)
def test_alternating_trains_under_ddp(tmp_path):
    """Two CPU ranks: each takes its CF shard, then the same shard's KG batches (2 + 2 per epoch), one
    optimiser step per batch; plain DDP refuses the parameters a phase leaves without a gradient."""
    from kgzoo.bench.experiment import strategy_for

    def fit_ddp(strategy: str) -> KGAT:
        dm = tiny_datamodule()
        model = build(dm)
        t = trainer(2, devices=2, strategy=strategy_for(model, strategy) if strategy == "ddp_spawn" else strategy,
                    default_root_dir=tmp_path, callbacks=[StepsPerRank(str(tmp_path))])
        fit(t, model, dm)
        return model

    model = fit_ddp("ddp_spawn")  # rank 0's weights come back to this process
    assert [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)] == ["8", "8"]
    assert not torch.equal(model.embedding.weight, build(tiny_datamodule()).embedding.weight)
    with pytest.raises(Exception, match="find_unused_parameters"):
        fit_ddp("ddp_spawn_find_unused_parameters_false")
