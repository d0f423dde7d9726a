"""DKN (Wang et al., "DKN: Deep Knowledge-Aware Network for News Recommendation", WWW 2018).

Knowledge-aware CNN (KCNN, section 4.3) over a news title of words ``w_1..w_n`` with
embeddings ``w_{1:n}`` ``[d, n]`` and the KG entities they name, aligned word by word
(``e_i`` the entity of word ``i``, 0 where it names none; section 4.1):

- entity context (eq. 3): ``ebar_i = 1/|context(e_i)| sum_{e in context(e_i)} e``, the mean of the
  entity's one-hop neighbours in the KG;
- transformation into the word space (eq. 5): ``g(e) = tanh(M e + b)``;
- multi-channel input (eq. 6): ``W = [[w_1 g(e_1) g(ebar_1)] ... [w_n g(e_n) g(ebar_n)]]``
  ``[d, n, 3]``;
- for each filter ``h`` ``[d, l, 3]`` of window ``l``: ``c^h_i = f(h * W_{i:i+l-1} + b)``, max
  over time ``c~^h = max_i c^h_i`` (eq. 7-8); ``e(t) = [c~^{h_1} ... c~^{h_m}]`` (eq. 9).

Entity vectors: TransE (Bordes et al., NeurIPS 2013), trained on the dataset's KG by
:mod:`kgzoo.pretrain.kg_vectors` and frozen, as DKN's pre-trained entity embeddings (section 4.1).

Attention-based user interest (section 4.4): for candidate news ``t_j`` and clicked news
``t^i_1..t^i_N``, ``s_{t^i_k, t_j} = softmax_k(H(e(t^i_k), e(t_j)))`` with ``H`` a two-layer DNN on
the concatenation (eq. 10), ``e(i) = sum_k s_{t^i_k, t_j} e(t^i_k)`` (eq. 11), and the click
probability ``p_{i, t_j} = G(e(i), e(t_j))`` with ``G`` another DNN; log loss on the clicks and
the sampled non-clicks of each impression. ``scorer="inner"`` takes the authors' code's inner
products instead (github.com/hwwang55/DKN, ``src/dkn.py``): ``H(a, b) = a^T b``, ``G(u, r) = u^T r``.

kgzoo's choices: word pieces of all-MiniLM-L6-v2's tokenizer with its input embeddings
(:class:`~kgzoo.models.layers.news.TitleWords`) in place of DKN's word2vec; ``f`` = ReLU; news
without text take a news id embedding (:class:`~kgzoo.models.news.NewsRecommender`); ``H``'s first
layer ``W [a; b] = W_a a + W_b b`` is applied to each half separately (the same function, so that a
batch of ``C`` candidates and ``N`` clicks needs ``[B, C, N, hidden]``, not ``[B, C, N, 2D]``).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_model
from .layers.news import TitleWords, masked_softmax
from .news import NewsRecommender

SCORERS = ("dnn", "inner")


@register_model("dkn", family="news", paper="Wang et al., DKN: Deep Knowledge-Aware Network for News "
                                           "Recommendation, WWW 2018")
class DKN(NewsRecommender):
    """DKN: the knowledge-aware CNN news encoder and candidate-aware attention over the clicked news.

    Args:
        n_entities: ``E`` (entity vectors and their KG context for every entity).
        title_length: word pieces per news (DKN: 10 title words; MIND titles are longer: 30).
        word_dim: ``d`` (384: the PLM's input embeddings). entity_dim: ``k``, the TransE width (DKN: 100).
        windows: filter windows ``l`` (DKN: 1, 2, 3, 4). n_filters: filters per window (DKN: 100).
        hidden: width of the hidden layers of ``H`` and ``G``. dropout: on the word input.
        use_context: add the entity-context channel ``g(ebar)``. scorer: ``"dnn"`` (the paper's
            ``H`` and ``G``, eq. 10-11) or ``"inner"`` (the authors' code, github.com/hwwang55/DKN
            ``src/dkn.py``: ``H(a, b) = a^T b`` and ``G(u, r) = u^T r``). kge_model, kge_epochs: the KG
            embedding model of :mod:`kgzoo.pretrain.kg_vectors` and its epochs.
        text_model: tokenizer and PLM of the words (``None``: all-MiniLM-L6-v2).

    Buffers (saved): ``entity_vectors``, ``context_vectors`` FloatTensor ``[E + 1, k]`` (row 0: no
    entity), ``kg_vectors_key`` (which pre-training they came from; 0: none).

    Raises:
        ValueError: an empty ``windows``, a window longer than ``title_length``, an unknown ``scorer``.
    """

    def __init__(self, n_users: int, n_items: int, n_entities: int = 0, title_length: int = 30,
                 word_dim: int = 384, entity_dim: int = 100, windows: Sequence[int] = (1, 2, 3, 4),
                 n_filters: int = 100, hidden: int = 100, dropout: float = 0.2, use_context: bool = True,
                 scorer: str = "dnn", kge_model: str = "transe", kge_epochs: int = 50, text_model: str | None = None,
                 **kwargs: Any) -> None:
        windows = tuple(int(w) for w in windows)
        if not windows or min(windows) < 1 or max(windows) > int(title_length):
            raise ValueError(f"dkn: windows {windows} must be non-empty, each in 1..title_length={title_length}")
        if scorer not in SCORERS:
            raise ValueError(f"dkn: scorer must be one of {SCORERS}, got {scorer!r}")
        super().__init__(n_users, n_items, dim=len(windows) * int(n_filters), n_entities=n_entities, **kwargs)
        self.save_hyperparameters()
        self.scorer = scorer
        self.kge_model, self.kge_epochs, self.use_context = kge_model, int(kge_epochs), bool(use_context)
        self.words = TitleWords(self.n_items, int(title_length), int(word_dim), text_model)
        self.word_dropout = nn.Dropout(dropout)
        self.transform = nn.Linear(int(entity_dim), int(word_dim))  # g(e) = tanh(M e + b), eq. 5
        channels = 3 if self.use_context else 2
        self.convs = nn.ModuleList(nn.Conv2d(channels, int(n_filters), (w, int(word_dim))) for w in windows)
        self.register_buffer("entity_vectors", torch.zeros(self.n_entities + 1, int(entity_dim)))
        self.register_buffer("context_vectors", torch.zeros(self.n_entities + 1, int(entity_dim)))
        self.register_buffer("kg_vectors_key", torch.zeros((), dtype=torch.long))
        D = self.dim
        if scorer == "inner":
            return
        self.att_hist = nn.Linear(D, int(hidden), bias=False)  # H's first layer on [e(t_k); e(t_j)], by halves
        self.att_cand = nn.Linear(D, int(hidden))
        self.att_out = nn.Linear(int(hidden), 1)
        self.click = nn.Sequential(nn.Linear(2 * D, int(hidden)), nn.ReLU(), nn.Linear(int(hidden), 1))  # G

    def pretrain_requests(self) -> dict[str, dict[str, Any]]:
        """``"kg_vectors"``: the KG embedding model ``kge_model`` trained ``kge_epochs`` epochs with
        entity width ``entity_dim``."""
        return {"kg_vectors": {"model": self.kge_model, "epochs": self.kge_epochs,
                               "overrides": {"embedding_dim": int(self.entity_vectors.shape[1])}}}

    def _attach(self, graphs: Any, extras: dict[str, Any]) -> None:
        """Word pieces aligned with the entity mentions; the entity vectors (read only when the
        pre-training's key differs from the one held) and their KG context (eq. 3).

        Raises:
            RuntimeError: a KG with triples but no ``extras["kg_vectors"]`` on a fresh model.
        """
        super()._attach(graphs, extras)
        texts = graphs.item_text if graphs.item_text is not None else [""] * graphs.n_items
        self.words.set_texts(texts, graphs.mentions)
        t = graphs.triples
        if t.shape[0] == 0:  # no KG (kg_ablation="none"): every word names no known entity
            self.entity_vectors.zero_()
            self.context_vectors.zero_()
            self.kg_vectors_key.zero_()
            return
        tables = self._new_kg_tables(extras, self.kg_vectors_key)
        if tables is not None:
            self.entity_vectors[1:].copy_(tables["entity"])
        # context(e): one-hop neighbours over the KG's triples, both directions (eq. 3)
        src = torch.cat([t[:, 0], t[:, 2]]).to(self.entity_vectors.device) + 1
        dst = torch.cat([t[:, 2], t[:, 0]]).to(self.entity_vectors.device) + 1
        k = self.entity_vectors.shape[1]
        total = torch.zeros_like(self.entity_vectors).index_add_(0, src, self.entity_vectors[dst])
        count = torch.bincount(src, minlength=self.n_entities + 1).clamp(min=1).unsqueeze(1).to(total.dtype)
        self.context_vectors.copy_(total / count.expand(-1, k))

    def text_vectors(self, items: Tensor) -> Tensor:
        """``e(t)`` FloatTensor ``[N, D]`` (KCNN, eq. 5-9) of news ``items`` LongTensor ``[N]``.

        The convolution of eq. 7 over the real word pieces only, packed row-major (``T`` pieces,
        :meth:`~kgzoo.models.layers.news.TitleWords.pieces`: the pieces of a news are consecutive):
        a filter ``h`` of window ``l`` is ``l`` slices ``h_j`` ``[3, d]`` and ``h * W_{i:i+l-1} =
        sum_j <h_j, W_{i+j}>``, so one matrix product of the pieces' channels with every slice of
        a window's filters gives each piece's share ``[T, l x filters]``, and ``c^h_i`` is the sum
        of slice ``j``'s share of piece ``i + j`` (``l`` shifted views of the packed shares, no
        copy per shift). A window that runs past its news's last piece is not a window of eq. 7
        and takes no part in the max (eq. 8; ReLU makes every ``c^h_i >= 0``, so a news without a
        whole window gets 0, the padded convolution's value).

        Shared work, same function: the entity channels ``g(e)``, ``g(ebar)`` are zero at a piece
        naming no entity (eq. 6 with ``e_i = 0``) and the same at every piece naming the same
        entity, so their product runs once per distinct entity of ``items`` and is added at the
        pieces naming it; without active dropout on the words (evaluation, or ``dropout=0``) the
        word channel's product likewise runs once per distinct word piece. The values and
        gradients of ``nn.Conv2d`` (``self.convs``, whose weights these are) over the zero-padded
        ``[N, 3, L, d]`` input, without its work on zeros and repeats.
        """
        pad = max(conv.kernel_size[0] for conv in self.convs) - 1  # rows after the last piece
        tok, ent, mask = self.words.pieces(items, min_length=pad + 1)
        real = mask.nonzero(as_tuple=True)  # (news, position) of each of the T pieces
        length = mask.sum(1)[real[0]]  # [T]: the length of each piece's news
        T, d = tok.numel(), self.words.emb.embedding_dim
        per_piece = self.training and self.word_dropout.p > 0  # dropout draws a mask per piece
        if per_piece:
            words, at = self.word_dropout(self.words.emb(tok)), None
            words = torch.cat([words, words.new_zeros(pad, d)])  # [T + pad, d]
        else:  # one row per distinct piece, then a zero row for the rows after the last piece
            uniq, at = torch.unique(tok, return_inverse=True)
            words, at = self.words.emb(uniq), torch.cat([at, at.new_full((pad,), uniq.numel())])
        linked = torch.nonzero(ent).flatten()  # the pieces naming an entity
        named, which = torch.unique(ent[linked], return_inverse=True)
        tables = [self.entity_vectors] + ([self.context_vectors] if self.use_context else [])
        ents = torch.cat([torch.tanh(self.transform(t[named])) for t in tables], -1)  # [E_u, (C-1) d]
        out = []
        for conv in self.convs:
            w, n_f = conv.kernel_size[0], conv.out_channels
            slices = conv.weight.permute(1, 3, 2, 0).reshape(-1, w * n_f)  # [C d, l x F]: channel-major rows
            share = words @ slices[:d]
            if at is not None:
                share = torch.cat([share, share.new_zeros(1, w * n_f)])[at]
            share.index_add_(0, linked, (ents @ slices[d:])[which])  # [T + pad, l x F]
            parts = share.view(T + pad, w, n_f).unbind(1)  # slice j's share of every piece
            c = parts[0][:T] + conv.bias
            for j in range(1, w):
                c = c + parts[j][j:j + T]  # [T, F]: c^h of the window starting at each piece
            whole = real[1] + w - 1 < length  # the window ends on a piece of its news
            c = F.relu(c).masked_fill(~whole.unsqueeze(1), 0.0)
            out.append(c.new_zeros(*mask.shape, n_f).index_put(real, c).amax(1))
        return torch.cat(out, -1)

    def user_vectors(self, history: Tensor, mask: Tensor) -> Tensor:
        """Not defined alone: DKN's user vector depends on the candidate (eq. 10-11; see
        :meth:`impression_scores`).

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError("dkn's user vector is candidate-aware: use impression_scores")

    def impression_scores(self, batch: dict[str, Tensor]) -> Tensor:
        """FloatTensor ``[B, C]``: ``G(e(i), e(t_j))`` logits, ``e(i)`` attending over the clicked
        news with ``H`` for each candidate ``t_j`` (eq. 10-11)."""
        hist, cand, hmask = batch["history"], batch["candidates"], batch["history_mask"]
        vec, inv = self._vectors_of(torch.cat([hist.flatten(), cand.flatten()]))
        h = vec[inv[:hist.numel()]].view(*hist.shape, -1)  # [B, N, D]
        c = vec[inv[hist.numel():]].view(*cand.shape, -1)  # [B, C, D]
        if self.scorer == "inner":
            s = masked_softmax(c @ h.transpose(1, 2), hmask.unsqueeze(1))  # [B, C, N]
            return ((s @ h) * c).sum(-1)
        a = torch.relu(self.att_hist(h).unsqueeze(1) + self.att_cand(c).unsqueeze(2))  # [B, C, N, hidden]
        s = masked_softmax(self.att_out(a).squeeze(-1), hmask.unsqueeze(1))  # [B, C, N]
        user = s @ h  # [B, C, D]
        return self.click(torch.cat([user, c], -1)).squeeze(-1)

    def impression_loss(self, batch: dict[str, Tensor]) -> Tensor:
        """Log loss (binary cross-entropy) of the click and its sampled non-clicks (section 4.4)."""
        logits, m = self.impression_scores(batch), batch["candidate_mask"]
        return F.binary_cross_entropy_with_logits(logits[m], batch["label"][m].float())
