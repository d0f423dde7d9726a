"""DKN's and NRMS's training step and evaluation pass, main's code against this branch's, side by
side in one process (issue 17, fourth round; ``benchmarks/studies/news_speed.md``).

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/scripts/news_step_speed.py \
        [--pairs dkn:dkn-news nrms:dkn-news dkn:mind-sample nrms:mind-sample] [--steps 4] [--rounds 2]

Each model is built as a bench cell builds it (``news_encoder_speed.build``: the zoo config's
data section, the dataset's protocol for the model; :func:`kgzoo.create_model`), trained by the
optimiser Lightning would use (:meth:`~kgzoo.models.base.Recommender.configure_optimizers`: fused
Adam). "main" is the code before this round, kept below as a copy (DKN's KCNN as
main computes it, over every word piece of the batch with the padded ``[N, L, l x F]`` shares;
NRMS's word and user attention through ``nn.MultiheadAttention``, additive attention's weighted
sum as a product and a sum, buckets of 256 news), swapped in per variant on the same model and
weights; "new" is the model's own code.

Checks, on the first training batch, before any step: the scores in eval mode (max abs diff), and
the gradient of every parameter of the training loss with dropout off, both ways: dropout's
probability set to 0 (DKN then encodes each distinct word piece once) and dropout kept but made
the identity (the per-piece path of a training step). Timing, ``--rounds`` times alternating the
order: ``--steps`` training steps on the same first batches (forward, backward, optimiser step)
and one evaluation pass over the valid split (``prepare_scoring``, every batch's scores,
``end_scoring``), in process CPU seconds (``time.process_time``, one thread). The machine is
shared: compare the ratios, which interleaving protects, not the absolute seconds.
"""
from __future__ import annotations

import os
import sys

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kgzoo.models.layers.news import AdditiveAttention, SelfAttention, TitleWords, masked_softmax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from news_encoder_speed import build, cli, side_by_side  # noqa: E402


def main_dkn_text_vectors(model, items: Tensor) -> Tensor:
    """main's ``DKN.text_vectors`` (commit 85ad57d), with ``TitleWords.forward`` inlined."""
    tok = model.words.tokens[items]
    tok = tok[:, :model.words._longest(tok > 0, max(conv.kernel_size[0] for conv in model.convs))]
    words, mask = model.words.emb(tok), tok > 0
    real = mask.nonzero(as_tuple=True)
    ent = model.words.entities[items][:, :mask.shape[1]][real]
    linked = torch.nonzero(ent).flatten()
    words = model.word_dropout(words[real])
    tables = [model.entity_vectors] + ([model.context_vectors] if model.use_context else [])
    ents = torch.cat([torch.tanh(model.transform(t[ent[linked]])) for t in tables], -1)
    N, L, d = mask.shape[0], mask.shape[1], words.shape[1]
    out = []
    for conv in model.convs:
        w, n_f = conv.kernel_size[0], conv.out_channels
        slices = conv.weight.permute(1, 3, 2, 0).reshape(-1, w * n_f)
        share = (words @ slices[:d]).index_add(0, linked, ents @ slices[d:])
        share = share.new_zeros(N, L, w * n_f).index_put(real, share)
        c = sum(share[:, j:L - w + 1 + j, j * n_f:(j + 1) * n_f] for j in range(w)) + conv.bias
        valid = mask[:, w - 1:]
        out.append(F.relu(c).masked_fill(~valid.unsqueeze(-1), 0.0).amax(1))
    return torch.cat(out, -1)


def main_self_attention(layer: SelfAttention, x: Tensor, mask: Tensor) -> Tensor:
    """main's ``SelfAttention.forward``: torch's ``nn.MultiheadAttention`` with a key padding mask."""
    empty = ~mask.any(1)
    key_pad = ~mask.clone()
    key_pad[empty, 0] = False
    x = layer.dropout(x)
    out, _ = layer.attn(x, x, x, key_padding_mask=key_pad, need_weights=False)
    return out * mask.unsqueeze(-1)


def main_additive_attention(layer: AdditiveAttention, h: Tensor, mask: Tensor) -> Tensor:
    """main's ``AdditiveAttention.forward``: the weighted sum as a product and a sum."""
    a = torch.tanh(layer.proj(h)) @ layer.query
    return (masked_softmax(a, mask).unsqueeze(-1) * h).sum(1)


#: main's forward of each layer class this round changed
MAIN_FORWARD = {SelfAttention: main_self_attention, AdditiveAttention: main_additive_attention}
#: main's news per bucket of ``TitleWords.by_length`` (NRMS's word encoder)
MAIN_BUCKET_SIZE = 256


def use(model, variant: str) -> None:
    """Point the model at main's code (``"main"``) or its own (``"new"``)."""
    model.__dict__.pop("text_vectors", None)
    for layer in model.modules():
        if type(layer) in MAIN_FORWARD:
            layer.__dict__.pop("forward", None)
            if variant == "main":
                layer.forward = (lambda lay: lambda x, mask: MAIN_FORWARD[type(lay)](lay, x, mask))(layer)
        if isinstance(layer, TitleWords):
            layer.bucket_size = MAIN_BUCKET_SIZE if variant == "main" else TitleWords.bucket_size
    if variant == "main" and type(model).__name__ == "DKN":
        model.text_vectors = lambda items: main_dkn_text_vectors(model, items)


def scores(model, batch) -> Tensor:
    return model.impression_scores(batch) if "candidates" in batch else model.ctr_scores(batch)


def dropouts(model) -> list[nn.Dropout]:
    return [m for m in model.modules() if isinstance(m, nn.Dropout)]


def gradients(model, batch, variant: str, dropout: str) -> dict[str, Tensor]:
    """Every parameter's gradient of the training loss, train mode, dropout off (``"p0"``: its
    probability 0; ``"identity"``: kept, but the identity)."""
    use(model, variant)
    model.train()
    saved = [(m, m.p) for m in dropouts(model)]
    for m, _ in saved:
        if dropout == "p0":
            m.p = 0.0
        else:
            m.forward = lambda x: x
    model.zero_grad(set_to_none=True)
    model.loss(batch).backward()
    for m, p in saved:
        m.p = p
        m.__dict__.pop("forward", None)
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def check(model, batch) -> dict:
    """Max abs diff of main's and the new code's eval scores and training gradients."""
    out = {}
    model.eval()
    with torch.no_grad():
        use(model, "main")
        ref = scores(model, batch)
        use(model, "new")
        out["scores"] = (scores(model, batch) - ref).abs().max().item()
    for dropout in ("p0", "identity"):
        a, b = gradients(model, batch, "main", dropout), gradients(model, batch, "new", dropout)
        assert set(a) == set(b), set(a) ^ set(b)
        out[f"grad_{dropout}"] = max((a[n] - b[n]).abs().max().item() for n in a)
    use(model, "new")
    return out


def measure(name: str, dataset: str, steps: int, rounds: int) -> dict:
    model, dm, per_epoch, batches = build(name, dataset, steps)
    diffs = check(model, batches[0])
    opt = model.configure_optimizers()
    return {"model": name, "dataset": dataset, "batches_per_epoch": per_epoch, "steps": steps, "rounds": rounds,
            "max_abs_diff": diffs, "load_avg_1m": round(os.getloadavg()[0], 2),
            **side_by_side(model, dm, batches, opt, use, ("main", "new"), rounds)}


def main() -> None:
    cli(__doc__, measure, ["dkn:dkn-news", "nrms:dkn-news", "dkn:mind-sample", "nrms:mind-sample"])


if __name__ == "__main__":
    main()
