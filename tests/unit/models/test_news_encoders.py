"""The news encoders' fast paths against their padded formulations, on tiny in-memory news.

DKN's KCNN as one matrix product over the real word pieces with shifted sums, against
``nn.Conv2d`` over the zero-padded ``[N, 3, L, d]`` input (Wang et al., WWW 2018, eq. 5-9); NRMS's
word encoder over buckets of similar length, against one padded batch of ``title_length`` pieces
(Wu et al., EMNLP-IJCNLP 2019, eq. 1-6). Same values and parameter gradients (same weights, same
news, eval mode: max abs diff) up to float round-off.

``padded_kcnn`` and ``padded_nrms_words`` are the references; ``benchmarks/scripts/news_encoder_speed.py``
times the models against them (``benchmarks/studies/news_speed.md``).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from kgzoo.models.dkn import DKN
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
