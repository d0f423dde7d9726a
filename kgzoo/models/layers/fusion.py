"""Fusion layers: combine several source embeddings of the same rows into one.

A :class:`FusionLayer` takes a list of ``S`` source embeddings, each FloatTensor ``[B, d]``
or ``None`` (a source switched off or absent for the whole batch), and optionally a
BoolTensor ``mask`` ``[B, S]`` (``False`` = this row has no value for that source, e.g. an
item without text or KG links), and returns FloatTensor ``[B, d]``. Every row needs at least
one present source.

Built in (:func:`list_fusions`):

* ``attention``: learned attention over sources per row, ``a_s = q^T tanh(W x_s + b)``,
  ``alpha = softmax_s(a)``, ``out = sum_s alpha_s x_s`` (the semantic-level attention of HAN,
  Wang et al., WWW 2019, eq. 7-9, computed per row instead of averaged over nodes).
* ``dot``: attention with one learned query ``q``, ``a_s = q^T x_s`` (the "dot" score of
  Luong et al., EMNLP 2015, eq. 8, with ``q`` in place of the decoder state), ``alpha =
  softmax_s(a)``, ``out = sum_s alpha_s x_s``: ``attention`` without its ``[S, B, d]``
  hidden layer (``q = 0`` at the start, i.e. the mean of present sources).
* ``concat``: ``MLP([x_1; ...; x_S])`` with absent sources as zeros.
* ``gate``: sigmoid gates from all sources, ``z_s = sigmoid(W_s [x_1; ...; x_S] + b_s)``,
  ``out = sum_s z_s * x_s / sum_s z_s`` over present sources (the gated multimodal unit of
  Arevalo et al., ICLR-W 2017, generalised to ``S`` sources).
* ``max``: element-wise max over present sources.
* ``mean``: mean over present sources (no parameters; a baseline).

A new method is one subclass and one decorator; :func:`create_fusion` then builds it by
name and every model with a ``fusion`` hyper-parameter can use it::

    import torch
    from torch import nn
    from kgzoo.models.layers.fusion import FusionLayer, create_fusion, register_fusion

    @register_fusion("weighted")
    class WeightedSum(FusionLayer):
        '''A learned scalar weight per source, softmax-normalised over present sources.'''

        def __init__(self, dim: int, n_sources: int) -> None:
            super().__init__(dim, n_sources)
            self.logit = nn.Parameter(torch.zeros(n_sources))

        def fuse(self, x, mask):            # x [B, S, d] (absent = 0), mask [B, S] bool
            w = self.logit.expand_as(mask).masked_fill(~mask, float("-inf")).softmax(-1)
            return (w.unsqueeze(-1) * x).sum(1)

    fuse = create_fusion("weighted", dim=64, n_sources=3)
    out = fuse([torch.randn(8, 64), None, torch.randn(8, 64)])    # [8, 64]
    # kgzoo.create_model("kgplm", dm, fusion="weighted")
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from ...registry import Registry

FUSIONS: Registry[type] = Registry("fusion")


def register_fusion(name: str, **meta: Any) -> Callable[[type], type]:
    """Class decorator registering a :class:`FusionLayer` subclass under ``name``.

    Raises:
        TypeError: the class is not a :class:`FusionLayer`. ValueError: the name is taken.
    """

    def wrap(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, FusionLayer)):
            raise TypeError(f"register_fusion({name!r}): {cls!r} is not a FusionLayer subclass")
        FUSIONS.register(name, cls, **meta)
        cls.fusion_name = name
        return cls

    return wrap


def create_fusion(name: str, dim: int, n_sources: int, **kwargs: Any) -> "FusionLayer":
    """Build the fusion layer registered as ``name`` for ``n_sources`` sources of width ``dim``,
    with the layer's own keyword arguments ``kwargs`` (``hidden`` for ``attention`` and ``concat``).

    Raises:
        KeyError: unknown name (with the nearest names). ValueError: a keyword argument the
            layer does not take, or a bad value (the layer's own check).
    """
    cls = FUSIONS.get(name)
    takes = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "dim", "n_sources")]
    unknown = sorted(set(kwargs) - set(takes))
    if unknown:
        raise ValueError(f"fusion {name!r} takes no argument {', '.join(map(repr, unknown))} "
                         f"(it takes: {', '.join(takes) or 'none'})")
    return cls(dim, n_sources, **kwargs)


def _hidden_width(layer: str, hidden: int | None, dim: int) -> int:
    """``hidden``, or ``dim`` for ``None``: the hidden width of a fusion layer.

    Raises:
        ValueError: ``hidden`` is not an integer >= 1.
    """
    if hidden is None:
        return dim
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
        raise ValueError(f"{layer}: hidden={hidden!r} must be an integer >= 1 (or None: dim)")
    return hidden


def list_fusions(pattern: str = "*") -> list[str]:
    """Registered fusion names matching a shell-style pattern."""
    return FUSIONS.list(pattern)


class FusionLayer(nn.Module):
    """Base class: validates and stacks the sources, then calls :meth:`fuse`.

    Args:
        dim: ``d``, the width of every source and of the output.
        n_sources: ``S``, the number of source slots.

    Subclasses implement :meth:`fuse`; they never see ``None``. A subclass whose result does
    not depend on the slots of absent sources (a weighted sum or a pooling over present
    sources, not a concatenation) sets ``absent_invariant = True``: :meth:`forward` then
    passes :meth:`fuse` only the sources present in the batch (``S' <= S`` slots, in order),
    which saves the work on all-zero slots (e.g. KGPLM's social source on a dataset without
    social ties). :meth:`fuse_sources` stacks the sources to ``[B, S, d]`` and zeroes the slots
    of rows whose mask is ``False``; a subclass whose result and gradients ignore those slots
    exactly (a weight of exactly 0, a masked max) sets ``zero_absent = False`` and is spared
    that pass (the slots then hold the sources' own values). A subclass that can work on the
    ``[B, d]`` sources without stacking them overrides :meth:`fuse_sources` instead of
    :meth:`fuse` (the attention fusions, through :class:`_WeightedSources`).

    Raises (in :meth:`forward`):
        ValueError: a list of the wrong length, a source not ``[B, d]`` or with another
            ``B``, all sources absent, a row with no present source, a bad mask.
    """

    fusion_name = "base"
    absent_invariant = False
    zero_absent = True

    def __init__(self, dim: int, n_sources: int) -> None:
        super().__init__()
        if dim < 1 or n_sources < 1:
            raise ValueError(f"{type(self).__name__}: dim={dim} and n_sources={n_sources} must be >= 1")
        self.dim, self.n_sources = int(dim), int(n_sources)

    def forward(self, sources: Sequence[Tensor | None], mask: Tensor | None = None) -> Tensor:
        """FloatTensor ``[B, d]`` from ``S`` sources ``[B, d]`` (or ``None``) and an optional mask ``[B, S]``."""
        name = type(self).__name__
        if len(sources) != self.n_sources:
            raise ValueError(f"{name}: expected {self.n_sources} sources, got {len(sources)}")
        present = [s for s in sources if s is not None]
        if not present:
            raise ValueError(f"{name}: every source is None; switch at least one source on")
        ref = present[0]
        B = ref.shape[0]
        for i, s in enumerate(sources):
            if s is not None and (s.dim() != 2 or s.shape != (B, self.dim)):
                raise ValueError(f"{name}: source {i} has shape {tuple(s.shape)}, expected [{B}, {self.dim}]")
        if mask is not None and (mask.shape != (B, self.n_sources) or mask.dtype != torch.bool):
            raise ValueError(f"{name}: mask must be a BoolTensor [{B}, {self.n_sources}], got "
                             f"{mask.dtype} {tuple(mask.shape)}")
        if self.absent_invariant:  # fuse only the sources present in the batch
            keep = [i for i, s in enumerate(sources) if s is not None]
            sources = [sources[i] for i in keep]
            if mask is not None and len(keep) < self.n_sources:
                mask = mask[:, keep]
        m = torch.tensor([s is not None for s in sources], device=ref.device).expand(B, -1)
        if mask is not None:
            m = m & mask.to(ref.device)
        if not bool(m.any(1).all()):
            raise ValueError(f"{name}: {int((~m.any(1)).sum())} rows have no present source")
        return self.fuse_sources([s if s is not None else ref.new_zeros(B, self.dim) for s in sources], m)

    def fuse_sources(self, sources: list[Tensor], mask: Tensor) -> Tensor:
        """FloatTensor ``[B, d]`` from ``S`` sources FloatTensor ``[B, d]`` (a source off for the
        whole batch as zeros) and ``mask`` BoolTensor ``[B, S]`` as :meth:`fuse` takes it: stacks
        them to ``[B, S, d]``, zeroes absent slots if ``zero_absent``, calls :meth:`fuse`."""
        x = torch.stack(sources, 1)
        if self.zero_absent and not bool(mask.all()):
            x = x * mask.unsqueeze(-1).to(x.dtype)
        return self.fuse(x, mask)

    def fuse(self, x: Tensor, mask: Tensor) -> Tensor:
        """FloatTensor ``[B, d]`` from ``x`` ``[B, S, d]`` (absent entries are zeros, unless
        ``zero_absent`` is ``False``) and ``mask`` BoolTensor ``[B, S]`` (``True`` = present;
        every row has one); ``S`` is the number of sources present in the batch if
        ``absent_invariant``."""
        raise NotImplementedError


@register_fusion("mean")
class MeanFusion(FusionLayer):
    """Mean over present sources (no parameters)."""

    absent_invariant = True

    def fuse(self, x: Tensor, mask: Tensor) -> Tensor:
        return x.sum(1) / mask.sum(1, keepdim=True).to(x.dtype)


@register_fusion("max")
class MaxFusion(FusionLayer):
    """Element-wise max pooling over present sources."""

    absent_invariant = True
    zero_absent = False  # absent slots are filled with -inf below

    def fuse(self, x: Tensor, mask: Tensor) -> Tensor:
        return x.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)


class _WeightedSources(FusionLayer):
    """Base of the fusions whose output is a weighted sum of the present sources,
    ``out = sum_s alpha_s x_s`` with ``alpha`` FloatTensor ``[B, S]`` (0 on absent sources,
    rows summing to 1) from :meth:`_attend`, which gets the ``[B, d]`` sources unstacked. Absent
    slots get a weight of exactly 0 and are neither zeroed nor stacked, so they must hold
    finite values (``0 * inf`` is NaN); one present source is returned as it is (its weight
    is 1 and its gradient 0).
    """

    absent_invariant = True
    zero_absent = False

    def _attend(self, sources: Sequence[Tensor], mask: Tensor) -> tuple[Tensor, Tensor]:
        """``(out [B, d], alpha [B, S])`` of ``S`` sources FloatTensor ``[B, d]`` under ``mask``
        BoolTensor ``[B, S]``."""
        raise NotImplementedError

    def attention(self, x: Tensor, mask: Tensor) -> Tensor:
        """FloatTensor ``[B, S]``: the attention weights of ``x`` ``[B, S, d]`` under ``mask``
        BoolTensor ``[B, S]`` (0 on absent sources, rows sum to 1)."""
        return self._attend(x.unbind(1), mask)[1]

    def fuse_sources(self, sources: list[Tensor], mask: Tensor) -> Tensor:
        if len(sources) == 1:
            return sources[0]
        return self._attend(sources, mask)[0]

    def fuse(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.fuse_sources(list(x.unbind(1)), mask)


class _SourceAttention(torch.autograd.Function):
    """``(out [B, d], alpha [B, S])`` of :class:`AttentionFusion` from ``S`` sources ``[B, d]``,
    with a hand-written backward.

    Forward: ``z_s = x_s W^T + b`` (``S`` matmuls into one source-major ``[S, B, H]`` buffer, no
    ``[B, S, d]`` stack); ``a_s = q^T tanh(z_s)`` with ``tanh(z) = 2 sigmoid(2z) - 1`` (one
    in-place sigmoid; this CPU wheel's ``tanh`` costs about 4x a ``sigmoid``), so the logits are
    ``2 q^T s - sum(q)`` with ``s = sigmoid(2z)``; ``alpha`` the softmax over present sources;
    ``out = sum_s alpha_s x_s``. Backward: the same chain rule as autograd, with
    ``d tanh(z) / dz = 4 s (1 - s)``, in fewer passes and temporaries than autograd's, each
    source's gradient a contiguous ``[B, d]``. Saved: the sources, ``s``, ``alpha``. Absent
    slots get ``alpha = 0`` exactly, so their values touch neither the output nor any gradient
    as long as their projection ``z`` is finite (a source's embedding values; an absent slot
    near the float limit can make ``z`` NaN, and NaN reaches ``W``'s gradient). ``alpha`` is
    not differentiable; no double backward and no ``torch.func`` transforms.
    """

    @staticmethod
    def forward(ctx: Any, mask: Tensor, weight: Tensor, bias: Tensor, query: Tensor,
                *xs: Tensor) -> tuple[Tensor, Tensor]:
        S, (B, _), H = len(xs), xs[0].shape, weight.shape[0]
        q = query.reshape(-1)
        s = xs[0].new_empty(S, B, H)
        for k, x in enumerate(xs):  # over the few sources, not rows
            torch.addmm(bias, x, weight.t(), beta=2, alpha=2, out=s[k])
        s.sigmoid_()
        logits = torch.mv(s.view(S * B, H), q).view(S, B).t().mul(2).sub_(q.sum())
        alpha = logits.masked_fill_(~mask, float("-inf")).softmax(-1)
        out = xs[0] * alpha[:, :1]
        for k in range(1, S):
            out.addcmul_(xs[k], alpha[:, k:k + 1])
        ctx.save_for_backward(weight, q, s, alpha, *xs)
        ctx.mark_non_differentiable(alpha)
        return out, alpha

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: Tensor, _g_alpha: Tensor | None) -> tuple[Tensor | None, ...]:
        weight, q, s, alpha, *xs = ctx.saved_tensors
        S, B, H = s.shape
        g_alpha = torch.stack([torch.linalg.vecdot(x, g) for x in xs], 1)  # <g, x_s>  [B, S]
        g_logits = alpha * (g_alpha - (alpha * g_alpha).sum(-1, keepdim=True))  # softmax backward
        gl = g_logits.t().reshape(-1)  # source-major, as s
        # d logits / d z = q * 4 s (1 - s); sigmoid_backward(g, s) = g s (1 - s)
        g_z = torch.ops.aten.sigmoid_backward(torch.outer(gl, q * 4), s.view(S * B, H)).view(S, B, H)
        need = ctx.needs_input_grad
        g_w = g_b = g_q = None
        if need[1]:
            g_w = g_z[0].t() @ xs[0]
            for k in range(1, S):
                g_w.addmm_(g_z[k].t(), xs[k])
        if need[2]:
            g_b = g_z.view(S * B, H).sum(0)
        if need[3]:
            g_q = torch.mv(s.view(S * B, H).t(), gl).mul_(2).sub_(gl.sum()).view(1, -1)
        g_xs = [torch.addmm(g * alpha[:, k:k + 1], g_z[k], weight) if need[4 + k] else None for k in range(S)]
        return None, g_w, g_b, g_q, *g_xs


@register_fusion("attention")
class AttentionFusion(_WeightedSources):
    """Per-row attention over sources (HAN semantic attention, Wang et al., WWW 2019, eq. 7-9):
    ``a_s = q^T tanh(W x_s + b)``, ``alpha = softmax_s(a)`` over present sources,
    ``out = sum_s alpha_s x_s``; forward and backward in one autograd function on the
    unstacked sources (:class:`_SourceAttention`; gradients checked against autograd in the
    tests; :meth:`attention`'s weights carry no gradient).

    Args:
        hidden: width of the attention projection ``W`` (default ``d``).
    """

    def __init__(self, dim: int, n_sources: int, hidden: int | None = None) -> None:
        super().__init__(dim, n_sources)
        h = _hidden_width(type(self).__name__, hidden, dim)
        self.proj = nn.Linear(dim, h)
        self.query = nn.Linear(h, 1, bias=False)

    def _attend(self, sources: Sequence[Tensor], mask: Tensor) -> tuple[Tensor, Tensor]:
        return _SourceAttention.apply(mask, self.proj.weight, self.proj.bias, self.query.weight, *sources)


@register_fusion("dot")
class DotFusion(_WeightedSources):
    """Attention over sources with one learned query ``q`` ``[d]``: ``a_s = q^T x_s``,
    ``alpha = softmax_s(a)`` over present sources, ``out = sum_s alpha_s x_s`` (the dot score
    of Luong et al., EMNLP 2015, eq. 8), by autograd. ``q`` starts at 0, so training starts
    from the mean of the present sources. Per row it costs ``S`` dot products, against ``S``
    ``d x hidden`` products and a ``tanh`` for :class:`AttentionFusion`.
    """

    def __init__(self, dim: int, n_sources: int) -> None:
        super().__init__(dim, n_sources)
        self.query = nn.Parameter(torch.zeros(dim))

    def _attend(self, sources: Sequence[Tensor], mask: Tensor) -> tuple[Tensor, Tensor]:
        logits = torch.stack([torch.mv(x, self.query) for x in sources], 1)
        alpha = logits.masked_fill(~mask, float("-inf")).softmax(-1)
        out = sources[0] * alpha[:, :1]
        for k in range(1, len(sources)):  # over the few sources, not rows
            out = torch.addcmul(out, sources[k], alpha[:, k:k + 1])
        return out, alpha


@register_fusion("concat")
class ConcatFusion(FusionLayer):
    """``MLP([x_1; ...; x_S])``: Linear(S*d, hidden), ReLU, dropout, Linear(hidden, d).

    Args:
        hidden: MLP width (default ``d``). dropout: after the ReLU.
    """

    def __init__(self, dim: int, n_sources: int, hidden: int | None = None, dropout: float = 0.0) -> None:
        super().__init__(dim, n_sources)
        h = _hidden_width(type(self).__name__, hidden, dim)
        self.mlp = nn.Sequential(nn.Linear(n_sources * dim, h), nn.ReLU(), nn.Dropout(dropout), nn.Linear(h, dim))

    def fuse(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.mlp(x.flatten(1))


@register_fusion("gate")
class GateFusion(FusionLayer):
    """Sigmoid gating (gated multimodal unit, Arevalo et al., ICLR-W 2017, generalised):
    ``z_s = sigmoid(W_s [x_1; ...; x_S] + b_s)`` ``[B, d]``, ``out = sum_s z_s x_s / sum_s z_s``
    over present sources."""

    def __init__(self, dim: int, n_sources: int) -> None:
        super().__init__(dim, n_sources)
        self.gates = nn.Linear(n_sources * dim, n_sources * dim)

    def fuse(self, x: Tensor, mask: Tensor) -> Tensor:
        B, S, d = x.shape
        z = torch.sigmoid(self.gates(x.flatten(1))).view(B, S, d) * mask.unsqueeze(-1).to(x.dtype)
        return (z * x).sum(1) / z.sum(1).clamp_min(1e-6)
