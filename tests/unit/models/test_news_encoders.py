"""The news encoders' fast paths against their padded formulations, on tiny in-memory news.

DKN's KCNN as matrix products over the packed real word pieces (once per distinct entity, and per
distinct word piece without active dropout) with shifted sums, against ``nn.Conv2d`` over the
zero-padded ``[N, 3, L, d]`` input (Wang et al., WWW 2018, eq. 5-9); NRMS's word encoder over
buckets of similar length, against one padded batch of ``title_length`` pieces (Wu et al.,
EMNLP-IJCNLP 2019, eq. 1-6). Same values and parameter gradients (same weights, same news, eval
mode: max abs diff) up to float round-off. And whole batches: the models' scores of a CTR batch
(each distinct news of the batch encoded once) against each row encoded and scored alone with the
reference encoders and torch's ``nn.MultiheadAttention`` (DKN eq. 10-11; NRMS eq. 7-10, section
3.3), scores and every parameter gradient.

``padded_kcnn`` and ``padded_nrms_words`` are the references; ``benchmarks/scripts/news_encoder_speed.py``
times the models against them (``benchmarks/studies/news_speed.md``).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from kgzoo.models.dkn import DKN
from kgzoo.models.layers.news import masked_softmax
from kgzoo.models.nrms import NRMS

#: news of 0 to 12 words (tiny: shorter than DKN's longest window), one naming two entities
TEXTS = ["a", "storm hits the coast", "", "senate passes the budget bill after a long night of votes",
         "team wins", "new phone", "markets fall as oil prices rise sharply in asian trading today",
         "recipe", "the election"] * 3


def padded_kcnn(model: DKN, items: Tensor) -> Tensor:
    """DKN's KCNN (eq. 5-9) as ``nn.Conv2d`` over the padded ``[N, 3, title_length, d]`` input."""
    tok = model.words.tokens[items]
    words, mask = model.words.emb(tok), tok > 0
    ent = model.words.entities[items]
    has = (ent > 0).unsqueeze(-1)
    channels = [model.word_dropout(words), torch.tanh(model.transform(model.entity_vectors[ent])) * has]
    if model.use_context:
        channels.append(torch.tanh(model.transform(model.context_vectors[ent])) * has)
    x = torch.stack(channels, 1) * mask.unsqueeze(1).unsqueeze(-1)
    out = []
    for conv in model.convs:
        c = F.relu(conv(x).squeeze(-1))
        valid = mask[:, conv.kernel_size[0] - 1:]
        out.append(c.masked_fill(~valid.unsqueeze(1), 0.0).amax(-1))
    return torch.cat(out, -1)


def padded_nrms_words(model: NRMS, items: Tensor) -> Tensor:
    """NRMS's word news encoder (eq. 1-6) over one padded batch of ``title_length`` pieces."""
    tok = model.words.tokens[items]
    words, mask = model.words.emb(tok), tok > 0
    words = model.word_proj(model.word_dropout(words))
    return model.word_pool(model.word_attn(words, mask), mask)


def _mentions() -> Tensor:
    """(item, entity, start, end): "storm" and "coast" of news 1, "senate" of news 3, "oil" of news 6."""
    return torch.tensor([[1, 0, 0, 5], [1, 3, 15, 20], [3, 1, 0, 6], [6, 2, 24, 27], [10, 0, 0, 5]])


def _compare(model, fast, reference, items: Tensor) -> None:
    model.eval()
    g = torch.Generator().manual_seed(1)
    for p in model.parameters():
        p.grad = None
    weights = torch.randn(items.numel(), model.dim, generator=g)
    a = fast(items)
    (a * weights).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    for p in model.parameters():
        p.grad = None
    b = reference(model, items)
    (b * weights).sum().backward()
    assert a.shape == b.shape == (items.numel(), model.dim)
    assert (a - b).abs().max().item() < 1e-5
    assert grads and set(grads) == {n for n, p in model.named_parameters() if p.grad is not None}
    for n, p in model.named_parameters():
        if p.grad is not None:
            assert (grads[n] - p.grad).abs().max().item() < 1e-5, n


@pytest.mark.parametrize("use_context", [True, False])
def test_dkn_kcnn_as_shifted_matmul_matches_conv2d_over_padding(use_context):
    torch.manual_seed(0)
    n = len(TEXTS)
    model = DKN(n_users=2, n_items=n, n_entities=4, title_length=8, word_dim=12, entity_dim=6, windows=(1, 2, 4),
                n_filters=5, hidden=7, use_context=use_context)
    model.words.set_texts(TEXTS, _mentions())
    with torch.no_grad():
        model.entity_vectors.normal_()
        model.context_vectors.normal_()
        model.entity_vectors[0].zero_()
    assert int(model.words.entities.count_nonzero()) > 0  # the entity channels are exercised
    lengths = (model.words.tokens > 0).sum(1)
    assert int(lengths.min()) < 4 < int(lengths.max())  # news shorter than the longest window
    items = torch.tensor([i for i in range(n) if TEXTS[i]] + [3, 1])  # repeats, as a batch may hold
    _compare(model, model.text_vectors, padded_kcnn, items)
    # a batch of short news only: trimmed to the longest window, not below it
    short = torch.tensor([0, 5, 7])
    _compare(model, model.text_vectors, padded_kcnn, short)


def test_nrms_words_by_length_buckets_match_one_padded_batch():
    torch.manual_seed(0)
    n = len(TEXTS)
    model = NRMS(n_users=2, n_items=n, heads=2, head_dim=4, query_dim=5, title_length=10, word_dim=12)
    model.words.set_texts(TEXTS)
    items = torch.tensor([i for i in range(n) if TEXTS[i]])
    model.words.bucket_size = 4
    buckets = model.words.by_length(items)
    assert len(buckets) == -(-items.numel() // 4)
    assert sorted(torch.cat([pos for pos, _, _ in buckets]).tolist()) == list(range(items.numel()))
    widths = [m.shape[1] for _, _, m in buckets]
    assert widths == sorted(widths) and widths[0] < widths[-1] == 10  # trimmed per bucket
    assert all(bool(m[:, -1].any()) for _, _, m in buckets)  # each trimmed to its longest news
    _compare(model, model.text_vectors, padded_nrms_words, items)
    model.words.bucket_size = 256  # one bucket
    _compare(model, model.text_vectors, padded_nrms_words, items)


class _Doubling(torch.nn.Dropout):
    """An "active" dropout (``p > 0``) that doubles its input: the same draw at every position,
    so a per-piece encoder and the padded reference see the same input."""

    def forward(self, x: Tensor) -> Tensor:
        return 2.0 * x


def _dkn(use_context: bool = True) -> DKN:
    torch.manual_seed(0)
    model = DKN(n_users=3, n_items=len(TEXTS), n_entities=4, title_length=8, word_dim=12, entity_dim=6,
                windows=(1, 2, 4), n_filters=5, hidden=7, use_context=use_context)
    model.words.set_texts(TEXTS, _mentions())
    model.has_text.copy_(torch.tensor([bool(t) for t in TEXTS]))
    with torch.no_grad():
        model.entity_vectors.normal_()
        model.context_vectors.normal_()
        model.entity_vectors[0].zero_()
    return model


def test_dkn_kcnn_per_piece_path_under_dropout_matches_conv2d():
    """A training step with dropout encodes every word piece (its own dropout draw), not each
    distinct piece once: the same values as the padded convolution under the same draw."""
    model = _dkn()
    model.word_dropout = _Doubling(0.5)
    items = torch.tensor([1, 3, 6, 3, 0, 4])
    model.train()
    a = model.text_vectors(items)
    assert (a - padded_kcnn(model, items)).abs().max().item() < 1e-5
    model.eval()
    assert (model.text_vectors(items) - a / 2).abs().max().item() > 1e-3  # eval: no doubling, another path


def _ctr_batch() -> dict[str, Tensor]:
    """Four rows of three users: histories with repeats across rows, news without text, one row
    without history."""
    history = torch.tensor([[1, 3, 2, 6], [3, 1, 0, 0], [2, 3, 5, 8], [0, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=torch.bool)
    return {"user": torch.tensor([0, 1, 2, 2]), "history": history, "history_mask": mask,
            "item": torch.tensor([4, 6, 2, 1]), "label": torch.tensor([1, 0, 1, 0])}


def _news_alone(model, encode, items: Tensor) -> Tensor:
    """Each news of ``items`` encoded by itself: the reference encoder with text, the id embedding without."""
    return torch.stack([encode(model, i.view(1))[0] if bool(model.has_text[i]) else model.news_id(i)
                        for i in items])


def _dkn_row_scores(model: DKN, batch: dict[str, Tensor]) -> Tensor:
    """DKN eq. 10-11 row by row: ``s_k = softmax_k H(e(t_k), e(t_j))`` over the row's clicks,
    ``e(i) = sum_k s_k e(t_k)``, ``G(e(i), e(t_j))``; each row's news encoded alone (``padded_kcnn``)."""
    out = []
    for b in range(batch["item"].numel()):
        c = _news_alone(model, padded_kcnn, batch["item"][b].view(1))[0]
        hist = batch["history"][b][batch["history_mask"][b]]
        h = _news_alone(model, padded_kcnn, hist) if hist.numel() else torch.zeros(0, model.dim)
        H = model.att_out(torch.relu(model.att_hist(h) + model.att_cand(c))).squeeze(-1)
        user = (torch.softmax(H, 0).unsqueeze(-1) * h).sum(0)
        out.append(model.click(torch.cat([user, c])).squeeze(-1))
    return torch.stack(out)


def _nrms_row_scores(model: NRMS, batch: dict[str, Tensor]) -> Tensor:
    """NRMS row by row: each row's clicks encoded alone (``padded_nrms_words``), the user encoder
    with torch's ``nn.MultiheadAttention`` and the additive attention as a weighted sum (eq. 7-10),
    ``y = u^T r_c`` (section 3.3); a row without clicks has ``u = 0``."""
    out = []
    for b in range(batch["item"].numel()):
        c = _news_alone(model, padded_nrms_words, batch["item"][b].view(1))[0]
        hist = batch["history"][b][batch["history_mask"][b]]
        if not hist.numel():
            out.append(c.sum() * 0.0)
            continue
        h = _news_alone(model, padded_nrms_words, hist).unsqueeze(0)
        enc = model.user_encoder
        h, _ = enc.self_attn.attn(h, h, h, need_weights=False)
        alpha = masked_softmax(torch.tanh(enc.pool.proj(h)) @ enc.pool.query, torch.ones(h.shape[:2], dtype=torch.bool))
        out.append(((alpha.unsqueeze(-1) * h).sum(1)[0] * c).sum())
    return torch.stack(out)


@pytest.mark.parametrize("model_name", ["dkn", "nrms"])
@pytest.mark.parametrize("dropout", ["eval", "train_p0"])
def test_batch_scores_and_gradients_match_each_row_scored_alone(model_name, dropout):
    if model_name == "dkn":
        model, reference = _dkn(), _dkn_row_scores
    else:
        torch.manual_seed(0)
        model = NRMS(n_users=3, n_items=len(TEXTS), heads=2, head_dim=4, query_dim=5, title_length=10, word_dim=12)
        model.words.set_texts(TEXTS)
        model.has_text.copy_(torch.tensor([bool(t) for t in TEXTS]))
        model.words.bucket_size = 3  # several buckets
        reference = _nrms_row_scores
    if dropout == "eval":
        model.eval()
    else:  # a training step with dropout 0 (DKN: each distinct word piece once)
        model.train()
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
    batch = _ctr_batch()
    assert not bool(model.has_text[batch["history"][2, 0]])  # a news without text takes its id embedding

    def scores_and_grads(fn):
        model.zero_grad(set_to_none=True)
        s = fn(batch)
        torch.nn.functional.binary_cross_entropy_with_logits(s, batch["label"].float()).backward()
        return s.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    fast, fast_g = scores_and_grads(model.ctr_scores)
    ref, ref_g = scores_and_grads(lambda b: reference(model, b))
    assert fast.shape == (4,)
    assert (fast - ref).abs().max().item() < 1e-5
    assert set(fast_g) == set(ref_g) and "words.emb.weight" in fast_g
    for n in ref_g:
        assert (fast_g[n] - ref_g[n]).abs().max().item() < 1e-5, n


def test_title_words_are_a_prefix_of_their_row_whichever_side_the_tokenizer_pads():
    """DKN's packed pieces read one news's pieces as consecutive: ``set_texts`` stores them
    first in their row, in text order, with the entity alignment, also under left padding."""
    model = _dkn()
    right_tokens, right_entities = model.words.tokens.clone(), model.words.entities.clone()
    mask = right_tokens > 0
    assert not bool((mask[:, 1:] & ~mask[:, :-1]).any()) and bool((~mask[:, -1] & mask[:, 0]).any())
    model.words.source.tokenizer.padding_side = "left"
    try:
        model.words.set_texts(TEXTS, _mentions())
    finally:
        model.words.source.tokenizer.padding_side = "right"
    assert torch.equal(model.words.tokens, right_tokens)
    assert torch.equal(model.words.entities, right_entities) and int(right_entities.count_nonzero()) > 0
