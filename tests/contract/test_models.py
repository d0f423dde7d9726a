"""The contract every registered model keeps, on a tiny in-memory dataset (DESIGN.md, "Recommender").

Parametrised over :func:`kgzoo.list_models` (a newly registered or renamed model is covered
without editing this file; the habit of timm's ``tests/test_models.py``), on a
:class:`~kgzoo.data.kgdata.KGRecData` of tens of users, items and entities built here: three
KG relations, item text (some items without), user and item attributes, social ties, 0/1
labels (the top-K protocol keeps the positives, the CTR one all rows). For each model:

- built by ``kgzoo.create_model(name, datamodule=dm)`` (its zoo config; a KG-vector
  pre-training shortened to one epoch), one Lightning training step with a finite loss;
- ``score(users)`` FloatTensor ``[B, I]`` and ``predict(users, items)`` FloatTensor ``[B]`` (top-K
  and CTR), ``score_triples(head, relation)`` ``[B, E]`` (link prediction, on the model's triple
  DataModule);
- the same seed trains bit-identical parameters (two steps, built and trained twice);
- a run killed after two epochs and resumed from its resume point ends as the run never killed;
- a checkpoint round trip (save, load into a fresh model, join it to the data: same scores);
- joined to its data twice: no effect (same parameters, same scores);
- evaluation sharded over a world of 2 (rank ``r`` evaluates its share of users / rows /
  queries, ``r::2``): the two metric states merged give the single-process metrics.

Models are tested on CTR as well where a zoo config of theirs names a CTR dataset (the news
models on ``dkn-news``: ``ctr_scores`` of rows with the users' train clicks as history). Models of the
``impression`` task (news models) and Pop are tested on impressions built from the same rows
(:func:`tiny_impressions`: four days, each user's clicks as history, shown news with labels), on
:class:`~kgzoo.data.impressions.ImpressionDataModule`. A text model uses the real PLM
(all-MiniLM-L6-v2, offline), frozen.
"""
from __future__ import annotations

import copy
import sys
import warnings
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch

import kgzoo
from kgzoo.api import attach, create_datamodule_for, model_hparams, pretrain_extras
from kgzoo.config import ZooConfig
from kgzoo.data.datamodule import KGRecDataModule
from kgzoo.data.datasets import dataset_spec
from kgzoo.data.impression_log import ImpressionLog
from kgzoo.data.impressions import ImpressionDataModule
from kgzoo.data.kgdata import KGRecData
from kgzoo.hub import export
from kgzoo.registry import MODELS

U, I, E = 24, 30, 48
RELATIONS = ["genre", "director", "related_to"]
#: shorter runs of pre-computations a model makes on attach (same code path, less time)
SHORT = {"kge_epochs": 1, "init_epochs": 1}  # pre-training epochs (KGPLM's KG vectors, TransR's TransE)


def tiny_data() -> KGRecData:
    """24 users, 30 items, 48 entities (items first), 3 relations, text, attributes, social ties.

    Every user has 8 positive and 4 negative (label 0) rows on distinct items, at random.
    """
    g = torch.Generator().manual_seed(0)
    rows, labels = [], []
    for u in range(U):
        items = torch.randperm(I, generator=g)[:12]
        rows += [(u, int(i)) for i in items]
        labels += [1] * 8 + [0] * 4
    items = torch.arange(I)
    triples = torch.cat([
        torch.stack([items, torch.zeros(I, dtype=torch.long), I + items % 10], 1),       # item -genre-> 30..39
        torch.stack([items, torch.ones(I, dtype=torch.long), I + 10 + items % 8], 1),    # item -director-> 40..47
        torch.stack([I + torch.arange(10), torch.full((10,), 2), I + 10 + torch.arange(10) % 8], 1),
        torch.stack([items[:12], torch.full((12,), 2), items[12:24]], 1),                # item -related_to-> item
    ])
    friends = torch.tensor([(u, (u + d) % U) for u in range(U) for d in (1, 5)])
    texts = ["" if i % 7 == 3 else f"film {i}: a story about {['ships', 'cats', 'trains', 'rain'][i % 4]}"
             for i in range(I)]
    # the topic word of each text names the item's genre entity (DKN aligns words with entities)
    topic = [(i, t.rfind(" ") + 1, len(t)) for i, t in enumerate(texts) if t]
    mentions = torch.tensor([(i, I + i % 10, s, e) for i, s, e in topic])
    return KGRecData(
        name="contract-tiny", n_users=U, n_items=I, n_entities=E,
        interactions=torch.tensor(rows), label=torch.tensor(labels), triples=triples, relation_names=RELATIONS,
        social=torch.cat([friends, friends.flip(1)]),
        item_text=texts, mentions=mentions,
        user_features={"gender": torch.tensor([0 if u % 9 == 0 else 1 + u % 2 for u in range(U)])},
        item_features={"genre": torch.stack([1 + items % 4, (items % 3 == 0).long() * (1 + (items + 1) % 4)], 1)},
        feature_vocab={"gender": ["[UNK]", "f", "m"], "genre": ["[UNK]", "drama", "comedy", "noir", "western"]},
        user_ids=[f"u{u}" for u in range(U)], item_ids=[f"i{i}" for i in range(I)],
        entity_ids=[f"i{i}" for i in range(I)] + [f"e{e}" for e in range(I, E)],
    )


DATA = tiny_data()


def tiny_impressions(data: KGRecData) -> ImpressionLog:
    """Two impressions per user on days ``(2u + j) % 4``: history the user's first 3 positive
    items, shown 2 positive and 3 negative items (labels 1, 0), a different slice per impression."""
    x, y = data.interactions, data.label
    hist, cand, lab, user, day = [], [], [], [], []
    for u in range(data.n_users):
        pos = x[(x[:, 0] == u) & (y == 1), 1].tolist()
        neg = x[(x[:, 0] == u) & (y == 0), 1].tolist()
        for j in range(2):
            hist.append(pos[:3])
            cand.append([pos[3 + 2 * j], neg[j], pos[4 + 2 * j], neg[j + 1], neg[(j + 2) % 4]])
            lab.append([1, 0, 1, 0, 0])
            user.append(u)
            day.append((2 * u + j) % 4)

    def ptr(lists):
        return torch.tensor([0] + [len(v) for v in lists]).cumsum(0)

    return ImpressionLog([f"imp{i}" for i in range(len(user))], torch.tensor(user), torch.tensor(day) * 86_400,
                         ptr(hist), torch.tensor(sum(hist, [])), ptr(cand), torch.tensor(sum(cand, [])),
                         torch.tensor(sum(lab, [])))


LOG = tiny_impressions(DATA)


def ctr_models() -> list[str]:
    """Models with a zoo config of their own for a dataset whose default protocol is CTR."""
    ctr = [d for d in kgzoo.list_datasets() if dataset_spec(d).protocol.task == "ctr"]
    out = []
    for name in kgzoo.list_models():
        for d in ctr:
            cfg = ZooConfig.load(name, d)
            if cfg.inherited_from is None and cfg.path is not None and cfg.path.stem == d:
                out.append(name)
                break
    return out


def impression_models() -> list[str]:
    """Models whose class runs the impression task (the news models' ``tasks``)."""
    return [n for n in kgzoo.list_models() if "impression" in (getattr(MODELS.get(n), "tasks", None) or ())]


CASES = [pytest.param(n, "topk", id=n) for n in kgzoo.list_models() if n not in impression_models()] + \
        [pytest.param(n, "ctr", id=f"{n}-ctr") for n in ctr_models()] + \
        [pytest.param(n, "impression", id=f"{n}-impression") for n in impression_models() + ["pop"]]


def build(name: str, task: str, **over) -> tuple[torch.nn.Module, L.LightningDataModule]:
    """``kgzoo.create_model(name, datamodule=dm, **over)`` on the tiny data, and the DataModule the
    model trains on (a link model's triple DataModule)."""
    if task == "impression":
        dm = ImpressionDataModule.from_data(DATA, LOG, batch_size=8, eval_batch_size=5)
    else:
        dm = KGRecDataModule.from_data(DATA, protocol=kgzoo.EvalProtocol(task=task, ratios=(0.6, 0.2, 0.2)),
                                       batch_size=64, eval_batch_size=5)
    known = model_hparams(MODELS.get(name))
    model = kgzoo.create_model(name, datamodule=dm, **{k: v for k, v in SHORT.items() if k in known}, **over)
    if model.task == "link":  # the task decides the DataModule
        dm = create_datamodule_for(model, dm)
        dm.batch_size, dm.eval_batch_size = 64, 5
        dm.setup()
    return model, dm


def trainer(**kw) -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, **kw)


def fit_one_step(model, dm) -> L.Trainer:
    """One training batch through a Lightning Trainer (the model's own training_step)."""
    t = trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t.fit(model, datamodule=dm)
    return t


@torch.no_grad()
def outputs(model, dm) -> torch.Tensor:
    """What the model ranks with, in eval mode: ``score`` for users ``0..7`` (top-K), ``predict``
    of the first test rows (CTR), ``score_triples`` of the first test queries (link),
    ``impression_scores`` of the first test impressions (impression)."""
    model.eval()
    model.prepare_scoring()
    try:
        if model.task == "impression":
            return model.impression_scores(next(iter(dm.test_dataloader())))
        if model.task == "link":
            q = dm.eval_queries["test"][0][:6]
            return model.score_triples(q[:, 0], q[:, 1], "tail")
        if model.task == "ctr":  # the first test rows (with the users' train clicks for a news model)
            return model.ctr_scores(next(iter(dm.test_dataloader())))
        return model.score(torch.arange(8))
    finally:
        model.end_scoring()


def test_the_tiny_data_covers_every_source():
    s = DATA.stats()
    assert (s["users"], s["items"], s["entities"], s["relations"]) == (U, I, E, 3)
    assert s["social"] > 0 and 0 < s["text_coverage"] < 1 and s["user_features"] and s["item_features"]
    assert len(CASES) >= len(kgzoo.list_models()) and "ctr" in {c.values[1] for c in CASES}


@pytest.mark.parametrize("name, task", CASES)
def test_builds_and_trains_one_step(name, task, text_home):
    model, dm = build(name, task)
    assert isinstance(model, kgzoo.models.Recommender) and model.model_name == name
    assert model.task in (task, "link")
    model.train()
    loss = model.loss(next(iter(dm.train_dataloader())))
    assert loss.shape == () and loss.dtype == torch.float32 and torch.isfinite(loss), f"{name}: loss {loss}"
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit_one_step(model, dm)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    if trainable:  # one optimiser step moved some parameter
        after = model.state_dict()
        assert any(not torch.equal(before[n], after[n]) for n in trainable if n in before), f"{name}: nothing trained"


@pytest.fixture
def deterministic():
    """torch's deterministic algorithms on, as :func:`kgzoo.bench.experiment.run_experiment` runs a
    cell (with more than one thread, some backward kernels, e.g. those of the news models'
    gathers, add in another order from run to run without them), then as they were."""
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])


@pytest.mark.parametrize("name, task", CASES)
def test_the_same_seed_trains_the_same_model(name, task, text_home, deterministic):
    """A published row's command, rerun, gives its number: built and trained two steps after the
    same ``seed_everything`` with deterministic algorithms (as ``run_experiment`` runs a cell),
    two models have bit-identical parameters, whatever the number of threads. Initialisation, negative sampling, dropout and the KG neighbour sampling must all
    draw from the seeded generators, and the kernels used must be deterministic on CPU."""
    states = []
    for _ in range(2):
        L.seed_everything(0, verbose=False)
        model, dm = build(name, task)
        t = trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t.fit(model, datamodule=dm)
        states.append(model.state_dict())
    differ = [k for k in states[0] if not torch.equal(states[0][k], states[1][k])]
    assert not differ, f"{name}: the same seed trained other values of {differ}"


class _Killed(BaseException):  # as a kill: no Exception
    pass


class _KillAt(L.Callback):
    """Stands in for a kill: raises when epoch ``epoch`` starts."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise _Killed()


@pytest.mark.parametrize("name, task", CASES)
def test_a_killed_run_resumes_to_the_same_model(name, task, text_home, tmp_path, deterministic):
    """A run killed after its second epoch and resumed from its resume point
    (:class:`kgzoo.bench.experiment.ResumePoint`, as ``kgzoo bench --resume`` resumes a cell) ends
    with the parameters of the run that was never killed, bit for bit: the optimiser state, the
    epoch and the global generators (dropout) are restored, the training batches draw by epoch.
    Whole epochs (no ``limit_train_batches``): a limit gives Lightning the training set's length,
    which hid that a set without one (the triple set) is prefetched before the resumed epoch counts."""
    from kgzoo.bench.experiment import ResumePoint

    def run(*callbacks, ckpt=None):
        L.seed_everything(0, verbose=False)
        model, dm = build(name, task)
        t = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, max_epochs=3,
                      limit_val_batches=0, callbacks=[ResumePoint(tmp_path / "last.ckpt", "k", every=0), *callbacks])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t.fit(model, datamodule=dm, ckpt_path=ckpt)
        return model.state_dict()

    whole = run()
    with pytest.raises(_Killed):
        run(_KillAt(2))
    resumed = run(ckpt=tmp_path / "last.ckpt")
    differ = [k for k in whole if not torch.equal(whole[k], resumed[k])]
    assert not differ, f"{name}: the resumed run ended with other values of {differ}"


@pytest.mark.parametrize("name, task", CASES)
def test_output_shapes_and_dtypes(name, task, text_home):
    model, dm = build(name, task)
    model.eval()
    model.prepare_scoring()
    with torch.no_grad():
        if model.task == "link":
            h = torch.tensor([0, 3, 31])
            r = torch.tensor([0, 1, 2])
            for side in ("tail", "head"):
                s = model.score_triples(h, r, side)
                assert s.shape == (3, dm.n_entities) and s.dtype == torch.float32
        elif model.task == "impression":
            batch = next(iter(dm.test_dataloader()))
            s = model.impression_scores(batch)
            assert s.shape == batch["candidates"].shape and s.dtype == torch.float32
            assert torch.isfinite(s[batch["candidate_mask"]]).all()
        elif model.uses_history:  # a news model on CTR rows: scored against the user's train clicks
            batch = next(iter(dm.test_dataloader()))
            assert batch["history"].shape == batch["history_mask"].shape and batch["history"].shape[0] == 5
            s = model.ctr_scores(batch)
            assert s.shape == (5,) and s.dtype == torch.float32 and torch.isfinite(s).all()
        else:
            users = torch.tensor([0, 5, 23])
            s = model.score(users)
            assert s.shape == (3, I) and s.dtype == torch.float32 and torch.isfinite(s).all()
            p = model.predict(users, torch.tensor([1, 2, 29]))
            assert p.shape == (3,) and p.dtype == torch.float32 and torch.isfinite(p).all()
    model.end_scoring()


@pytest.mark.parametrize("name, task", CASES)
def test_checkpoint_round_trip(name, task, text_home, tmp_path):
    model, dm = build(name, task)
    t = fit_one_step(model, dm)
    path = tmp_path / "model.ckpt"
    t.save_checkpoint(path)
    fresh = type(model).load_from_checkpoint(path, map_location="cpu", weights_only=False)
    attach(fresh, dm)
    assert torch.allclose(outputs(model, dm), outputs(fresh, dm), atol=1e-6), f"{name}: scores differ after a load"
    # self-describing: the registered name, hyper-parameters and data identity are in the file
    meta = torch.load(path, weights_only=True)["kgzoo"]
    assert meta["model"] == name and meta["data"]["fingerprint"] == dm.fingerprint == meta["fingerprint"]
    pre = kgzoo.load_checkpoint(path, datamodule=dm)  # no class, no hyper-parameters given
    assert type(pre.model) is type(model) and not pre.model.training
    assert torch.allclose(outputs(model, dm), outputs(pre.model, dm), atol=1e-6), f"{name}: load_checkpoint differs"


@pytest.mark.parametrize("name, task", CASES)
def test_joining_the_data_twice_has_no_effect(name, task, text_home):
    model, dm = build(name, task)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    first = outputs(model, dm)
    model.attach(dm.graphs(), pretrain_extras(model, dm))  # the model's own verb: the base owns idempotency
    attach(model, dm)  # and the API's
    again = model.state_dict()
    assert state.keys() == again.keys() and all(torch.equal(state[k], again[k]) for k in state), \
        f"{name}: a second attach changed parameters or buffers"
    assert torch.equal(first, outputs(model, dm)), f"{name}: a second attach changed the scores"


def _as_rank(monkeypatch, rank: int, world: int) -> None:
    """Make every kgzoo module see process ``rank`` of ``world`` (whichever name it imported)."""
    for mod in list(sys.modules.values()):
        if getattr(mod, "__name__", "").startswith("kgzoo"):
            for fn in ("rank_world",):
                if callable(getattr(mod, fn, None)):
                    monkeypatch.setattr(mod, fn, lambda: (rank, world))


def _evaluate(model, dm):
    """One validation pass over this rank's batches; returns the model's metric state (a copy)."""
    model.eval()
    model.on_validation_epoch_start()
    with torch.no_grad():
        for i, batch in enumerate(dm.val_dataloader()):
            model.validation_step(batch, i)
    model.end_scoring()
    state = copy.deepcopy(model.valid_metrics)
    model.valid_metrics.reset()
    return state


def _state(metric, attr: str) -> torch.Tensor:
    """A metric state as one tensor (a list state concatenated and sorted: order is free)."""
    v = getattr(metric, attr)
    if isinstance(v, list):
        return torch.cat([t.flatten() for t in v]).sort().values if v else torch.zeros(0)
    return v


def _n_evaluated(metric) -> int:
    return sum(_state(metric, a).numel() if isinstance(getattr(metric, a), list) else int(_state(metric, a).abs().sum() > 0)
               for a in metric._defaults)


@pytest.mark.parametrize("name, task", CASES)
def test_evaluation_sharded_over_two_ranks(name, task, text_home, monkeypatch):
    model, dm = build(name, task)
    fit_one_step(model, dm)
    whole = _evaluate(model, dm)
    single = whole.compute()
    shards = []
    for rank in (0, 1):
        with monkeypatch.context() as m:
            _as_rank(m, rank, 2)
            shards.append(_evaluate(model, dm))
    assert all(_n_evaluated(s) > 0 for s in shards), f"{name}: a rank evaluated nothing"
    merged = shards[0]
    merged.merge_state(shards[1])
    for attr in whole._defaults:  # every user / row / query once: the states add up exactly
        a, b = _state(whole, attr), _state(merged, attr)
        assert a.shape == b.shape and torch.allclose(a.double(), b.double(), atol=1e-6), \
            f"{name}: metric state {attr!r} differs between one process and two ranks"
    sharded = merged.compute()
    assert single.keys() == sharded.keys() and single
    for k in single:
        assert torch.allclose(single[k].double(), sharded[k].double(), atol=1e-6), \
            f"{name}: {k} is {float(single[k])} in one process, {float(sharded[k])} over two ranks"


@pytest.mark.parametrize("name", [n for n in kgzoo.list_models() if MODELS.get(n).task != "link"
                                  and n not in impression_models()])
def test_export_lists_are_the_models_own_top_k(name, text_home, tmp_path):
    """``kgzoo export`` of every top-K model (string raw ids): the Parquet lists equal
    ``recommend`` with every seen item masked (the default ``exclude="seen"``); embeddings only where
    the model ranks by them."""
    model, dm = build(name, "topk")
    t = fit_one_step(model, dm)
    t.save_checkpoint(tmp_path / "m.ckpt")
    pre = kgzoo.load_checkpoint(tmp_path / "m.ckpt", datamodule=dm)
    summary = export(pre, tmp_path / "out", k=4, users=["u3", "u0", "u17"], batch_size=2)
    top = pd.read_parquet(tmp_path / "out" / "topk.parquet")
    _, items = model.recommend(torch.tensor([3, 0, 17]), 4, exclude=pre.seen())
    assert top["user_id"].tolist() == ["u3"] * 4 + ["u0"] * 4 + ["u17"] * 4
    assert top["item_id"].tolist() == [f"i{i}" for i in items.flatten().tolist()], name
    assert ("embeddings.safetensors" in summary["files"]) == model.has_final_embeddings()


@pytest.mark.parametrize("name, over", [pytest.param(n, {}, id=n) for n in kgzoo.list_models()
                                        if MODELS.get(n).task != "link" and n not in impression_models()]
                         + [pytest.param("kgplm", {"kg_encoder": "ckg"}, id="kgplm-ckg")])
def test_update_grows_the_model_or_says_to_retrain(name, over, text_home):
    """``update_model`` (issue 15, part 7) with a new user, a new item (text, a KG link) and a new
    triple: a model either grows (the new user scores every item, parameters that did not grow
    unchanged) or raises ``NotImplementedError`` naming it and saying to retrain (KGPLM's zoo
    config, a TransE ``kg_encoder``, says so; with the KG in the graph it grows)."""
    from kgzoo.hub.update import update_model

    model, dm = build(name, "topk", **over)
    fit_one_step(model, dm)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    new = pd.DataFrame({"user": ["new", "new", "new", "u1"], "item": ["i1", "i2", "fresh", "fresh"]})
    kg = pd.DataFrame({"head": ["fresh"], "relation": ["genre"], "tail": ["e31"]})
    text = pd.DataFrame({"item": ["fresh"], "text": ["film 99: a story about cats"]})
    try:
        up = update_model(model, dm, interactions=new, triples=kg, item_text=text)
    except NotImplementedError as e:
        assert "retrain" in str(e) and type(model).__name__ in str(e) and not over, str(e)
        return
    assert (up.model.n_users, up.model.n_items) == (U + 1, I + 1)
    with torch.no_grad():
        up.model.prepare_scoring()
        scores = up.model.score(torch.tensor([U, 0]))
        up.model.end_scoring()
    assert scores.shape == (2, I + 1) and bool(torch.isfinite(scores).all())
    after = up.model.state_dict()
    for k, v in before.items():
        if k in after and after[k].shape == v.shape and v.is_floating_point():
            assert torch.equal(after[k], v), f"{name}: {k} changed"
