"""NRMS (Wu et al., "Neural News Recommendation with Multi-Head Self-Attention", EMNLP-IJCNLP
2019) and its PLM variant (Wu et al., "Empowering News Recommendation with Pre-trained Language
Models", SIGIR 2021: PLM-NR).

News encoder (NRMS, section 3.1), over the title words ``w_1..w_M`` with embeddings ``e_i``:

- multi-head self-attention, head ``k``: ``alpha^k_ij = exp(e_i^T Q^w_k e_j) / sum_m exp(e_i^T Q^w_k e_m)``,
  ``h^w_ik = V^w_k (sum_j alpha^k_ij e_j)``; ``h^w_i = [h^w_i1; ...; h^w_ih]`` (eq. 1-3);
- additive attention: ``a^w_i = q_w^T tanh(V_w h^w_i + v_w)``, ``alpha^w_i = softmax_i(a^w_i)``,
  ``r = sum_i alpha^w_i h^w_i`` (eq. 4-6).

User encoder (section 3.2): the same two steps over the clicked news vectors ``r_1..r_N``
(eq. 7-10) give ``u``. Click predictor (section 3.3): ``y = u^T r_c``. Training (section 3.4):
each click with ``K`` non-clicked news of its impression, ``L = -sum log(exp(y+) / (exp(y+) +
sum_k exp(y-_k)))``.

PLM-NR (Wu et al., SIGIR 2021, section 3): the news encoder is a pre-trained language model
with a pooling layer, ``r = P(PLM(title))``; here kgzoo's shared text tower
(:class:`~kgzoo.models.layers.text_tower.TextTower`: mean pooling, a projection ``P``) in
``frozen`` mode (each news encoded once, cached on disk), ``lora`` or ``full``; the user encoder
is NRMS's.

kgzoo's choices: the words are the PLM tokenizer's word pieces (all-MiniLM-L6-v2's, 30,522) of
the news text (MIND: title then abstract, the first ``title_length`` pieces), their embeddings
initialised from the PLM's input embeddings when ``word_dim`` is its width (NRMS used GloVe);
a linear map takes them to the attention width ``heads * head_dim`` (torch's multi-head
attention keeps its width); news without text take a news id embedding
(:class:`~kgzoo.models.news.NewsRecommender`).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..registry import register_model
from .layers.news import AdditiveAttention, SelfAttention, TitleWords, UserEncoder
from .layers.text_tower import TextConfig, TextTower
from .news import NewsRecommender

NEWS_ENCODERS = ("words", "plm")


@register_model("nrms", family="news", paper="Wu et al., Neural News Recommendation with Multi-Head Self-Attention, "
                                            "EMNLP-IJCNLP 2019")
class NRMS(NewsRecommender):
    """NRMS: multi-head self-attention news and user encoders with additive attention (see the module).

    Args:
        heads, head_dim: self-attention heads and their width (``d = heads * head_dim``; NRMS: 16, 16).
        query_dim: additive attention width (200). dropout: on word and news vectors (0.2).
        news_encoder: ``"words"`` (NRMS) or ``"plm"`` (PLM-NR: the text tower).
        title_length: word pieces per news (30). word_dim: word embedding width (384 = the PLM's:
            initialised from its input embeddings).
        text_model, text_mode, text_pooling, text_max_length, text_batch_size, lora_r, lora_alpha,
            lora_dropout, lora_target_modules, grad_items, text_cache_dir, proj_hidden: the text
            tower (:class:`~kgzoo.models.layers.text_tower.TextConfig`; ``news_encoder="plm"``), and
            ``text_model`` also gives the tokenizer of ``"words"``.

    Raises:
        ValueError: an unknown ``news_encoder``; ``heads * head_dim`` not a valid width.
    """

    def __init__(self, n_users: int, n_items: int, heads: int = 16, head_dim: int = 16, query_dim: int = 200,
                 dropout: float = 0.2, news_encoder: str = "words", title_length: int = 30, word_dim: int = 384,
                 text_model: str | None = None, text_mode: str = "frozen", text_pooling: str = "mean",
                 text_max_length: int = 32, text_batch_size: int = 64, lora_r: int = 8, lora_alpha: int = 16,
                 lora_dropout: float = 0.1, lora_target_modules: Sequence[str] | None = None, grad_items: int = 256,
                 text_cache_dir: str | None = None, proj_hidden: int = 0, **kwargs: Any) -> None:
        if news_encoder not in NEWS_ENCODERS:
            raise ValueError(f"nrms: news_encoder must be one of {NEWS_ENCODERS}, got {news_encoder!r}")
        super().__init__(n_users, n_items, dim=int(heads) * int(head_dim), **kwargs)
        self.save_hyperparameters()
        self.news_encoder, self.title_length = news_encoder, int(title_length)
        d = self.dim
        if news_encoder == "plm":
            self.tower = TextTower(self.n_items, d, TextConfig.from_hparams(dict(self.hparams)))
        else:
            self.words = TitleWords(self.n_items, self.title_length, int(word_dim), text_model)
            self.word_proj = nn.Linear(int(word_dim), d)
            self.word_dropout = nn.Dropout(dropout)
            self.word_attn = SelfAttention(d, int(heads), dropout=0.0)
            self.word_pool = AdditiveAttention(d, int(query_dim))
        self.user_encoder = UserEncoder(d, int(heads), int(query_dim), dropout)

    def pretrain_requests(self) -> dict[str, dict[str, Any]]:
        """``"text_vectors"`` of the item texts for the text tower (``news_encoder="plm"``), else nothing."""
        return {"text_vectors": self.tower.vectors_request()} if self.news_encoder == "plm" else {}

    def _attach(self, graphs: Any, extras: dict[str, Any]) -> None:
        super()._attach(graphs, extras)
        texts = graphs.item_text if graphs.item_text is not None else [""] * graphs.n_items
        if self.news_encoder == "plm":
            self.tower.set_texts(texts, extras.get("text_vectors"))
            return
        self.words.set_texts(texts)

    def text_vectors(self, items: Tensor) -> Tensor:
        """FloatTensor ``[N, d]``: the news encoder (words: eq. 1-6; plm: the text tower) of ``items``
        LongTensor ``[N]``. Words: the news in buckets of similar length, each trimmed to its
        longest title (:meth:`~kgzoo.models.layers.news.TitleWords.by_length`; the masked
        self-attention and pooling give the values of one padded batch)."""
        if self.news_encoder == "plm":
            return self.tower(items)
        parts, positions = [], []
        for pos, words, mask in self.words.by_length(items):
            words = self.word_proj(self.word_dropout(words))
            parts.append(self.word_pool(self.word_attn(words, mask), mask))
            positions.append(pos)
        return torch.cat(parts)[torch.argsort(torch.cat(positions))]

    def user_vectors(self, history: Tensor, mask: Tensor) -> Tensor:
        """NRMS's user encoder (eq. 7-10) over the clicked news vectors ``[B, H, d]``."""
        return self.user_encoder(history, mask)

    def prepare_scoring(self) -> None:
        if self.news_encoder == "plm":
            with torch.no_grad():
                self.tower.text.refresh()  # trainable modes: re-encode the texts with the current PLM
        super().prepare_scoring()


@register_model("nrms-plm", family="news", paper="Wu et al., Empowering News Recommendation with Pre-trained "
                                                "Language Models, SIGIR 2021 (PLM-NR over NRMS)")
class NRMSPLM(NRMS):
    """PLM-NR: NRMS with the PLM text tower as news encoder (``news_encoder="plm"``; see the module)."""

    def __init__(self, n_users: int, n_items: int, news_encoder: str = "plm", **kwargs: Any) -> None:
        super().__init__(n_users, n_items, news_encoder=news_encoder, **kwargs)
