"""``kgzoo export``: a trained model's results for serving, with raw ids (DESIGN.md, "Pretrained weights").

:func:`export` writes into one folder:

- ``topk.parquet``: one row per (user, rank): ``user`` / ``item`` (kgzoo ids, int64),
  ``user_id`` / ``item_id`` (the raw ids of the source, strings), ``rank`` (1 = best, int32),
  ``score`` (the model's score, float32); the full ranking of every item by
  :meth:`~kgzoo.models.base.Recommender.recommend` (the evaluation's masked scores, batched),
  every item the user interacted with in any split masked (``exclude="seen"``, the default
  everywhere: :data:`kgzoo.hub.pretrained.DEFAULT_EXCLUDE`), or the train items only
  (``"train"``), or none (``"none"``): :meth:`Pretrained.exclusion`;
- for a model that ranks by inner product (:meth:`~kgzoo.models.base.Recommender.has_final_embeddings`):
  ``embeddings.safetensors`` with ``user`` FloatTensor ``[U, d]`` and ``item`` ``[I, d]``
  (``score(u, i) = user[u] . item[i]``), and ``users.parquet`` / ``items.parquet``, the id maps
  (``user``, ``user_id``; ``item``, ``item_id``, row = kgzoo id); models without embeddings
  (KGCN, RippleNet, PLM rankers) export the top-K lists only;
- with ``ann=True`` (inner-product models, the optional ``faiss-cpu`` package: ``pip install
  kgzoo[ann]``) ``items.faiss``, an HNSW index (Malkov & Yashunin, TPAMI 2020) of the item
  embeddings under inner product, and its recall@K against the exact top-K (no item masked) of
  every exported user;
- ``export.json``: what was exported (model, dataset, fingerprint, source, K, exclusion, users,
  files, embedding size, the ANN's recall@K, kgzoo version).

Why faiss-cpu and not hnswlib: faiss-cpu ships wheels for every platform and current Python
(hnswlib's last release, 0.8.0 of 2023, is a source package that needs a C++ compiler), is
maintained, and holds exact (``IndexFlatIP``) and graph indexes (``IndexHNSWFlat``) behind one API.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch
from safetensors.torch import save

from ..version import __version__
from .pretrained import DEFAULT_EXCLUDE, EXCLUDE, Pretrained

#: HNSW parameters: neighbours per node, build and search beam widths
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 200, 128


def ann_recall(user_emb: torch.Tensor, item_emb: torch.Tensor, exact: torch.Tensor, k: int,
               path: str | Path | None = None) -> tuple[Any, float]:
    """Build an HNSW inner-product index of ``item_emb`` and measure it.

    Args:
        user_emb: FloatTensor ``[B, d]`` (the queries). item_emb: FloatTensor ``[I, d]``.
        exact: LongTensor ``[B, k]``: the exact top-``k`` items of each query (no item masked).
        path: where to write the index (``faiss.write_index``); ``None``: not written.

    Returns:
        ``(faiss index, recall@k)``: the mean over queries of ``|ANN top-k ∩ exact top-k| / k``.

    Raises:
        ImportError: faiss-cpu is not installed (``pip install kgzoo[ann]``).
    """
    try:
        import faiss
    except ImportError as e:
        raise ImportError(f"the ANN index needs faiss-cpu: pip install 'kgzoo[ann]' ({e})") from None
    items = item_emb.detach().float().contiguous().numpy()
    index = faiss.IndexHNSWFlat(items.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.add(items)
    index.hnsw.efSearch = max(HNSW_EF_SEARCH, k)
    _, found = index.search(user_emb.detach().float().contiguous().numpy(), k)
    if path is not None:
        faiss.write_index(index, str(path))
    found = torch.from_numpy(found).long()
    hits = (found.unsqueeze(2) == exact.unsqueeze(1)).any(2).sum(1).double()
    return index, float((hits / k).mean()) if exact.shape[0] else float("nan")


def export(pre: Pretrained, out: str | Path, k: int = 10, users: Sequence[str | int] | None = None,
           exclude: str = DEFAULT_EXCLUDE, ann: bool = False, batch_size: int = 1024, source: str | None = None
           ) -> dict[str, Any]:
    """Write a model's top-``k`` lists (and embeddings) with raw ids into folder ``out`` (see the module docstring).

    Args:
        pre: the model with its data (:func:`kgzoo.hub.checkpoint.open_model`). k: list length.
        users: raw user ids (default: every user of the dataset).
        exclude: ``"seen"`` (default: every item the user interacted with, any split),
            ``"train"`` (the user's train items) or ``"none"`` (:meth:`Pretrained.exclusion`).
        ann: also build the HNSW index (inner-product models only).
        batch_size: users ranked at once. source: what ``pre`` was loaded from, for ``export.json``.

    Returns:
        The summary written as ``export.json`` (``files``, ``users``, ``k``, ``ann_recall@k``, ...).

    Raises:
        KeyError: an unknown raw user id. ValueError: ``k`` outside ``1..I``, a bad ``exclude``,
        ``ann`` for a model without embeddings, a user with fewer than ``k`` candidate items
        (naming the first). ImportError: ``ann`` without faiss-cpu.
    """
    model = pre.model
    if ann and not model.has_final_embeddings():
        raise ValueError(f"{pre.name}: {type(model).__name__} has no embeddings to index (ann=True needs an "
                         "inner-product model)")
    idx = pre.user_index(users) if users is not None else torch.arange(len(pre.user_ids))
    scores, items = pre.top_k(idx, k, exclude, batch_size=batch_size)
    scores, items = scores.cpu(), items.cpu()
    short = torch.isinf(scores).any(1)
    if short.any():
        u = int(idx[short.nonzero()[0, 0]])
        raise ValueError(f"{pre.name}: user {pre.user_ids[u]!r} (and {int(short.sum()) - 1} more) has fewer than "
                         f"k={k} items left after excluding {exclude!r} items; lower k or exclude less")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    user_raw = pd.Series(pre.user_ids, dtype="string")
    item_raw = pd.Series(pre.item_ids, dtype="string")
    flat_users = idx.repeat_interleave(k).numpy()
    flat_items = items.reshape(-1).numpy()
    table = pd.DataFrame({
        "user": flat_users, "user_id": user_raw.to_numpy()[flat_users],
        "rank": torch.arange(1, k + 1, dtype=torch.int32).repeat(idx.numel()).numpy(),
        "item": flat_items, "item_id": item_raw.to_numpy()[flat_items],
        "score": scores.reshape(-1).float().numpy()})
    table.to_parquet(out / "topk.parquet", index=False)
    files = ["topk.parquet"]
    summary: dict[str, Any] = {"model": pre.spec.model, "name": pre.name, "dataset": pre.spec.dataset,
                               "fingerprint": pre.spec.fingerprint, "source": source or pre.name, "k": k,
                               "exclude": exclude, "users": int(idx.numel()), "items": len(pre.item_ids),
                               "kgzoo": __version__}
    if model.has_final_embeddings():
        was_training = model.training
        model.eval()
        with torch.no_grad():
            user_emb, item_emb = (t.detach().float().cpu().contiguous() for t in model.final_embeddings())
        model.train(was_training)
        # bytes written by Python: safetensors' save_file creates its file with mode 0600, not the umask's
        (out / "embeddings.safetensors").write_bytes(save(
            {"user": user_emb, "item": item_emb},
            metadata={"model": pre.spec.model, "dataset": pre.spec.dataset, "fingerprint": pre.spec.fingerprint,
                      "score": "inner_product"}))
        pd.DataFrame({"user": range(len(pre.user_ids)), "user_id": user_raw}).to_parquet(out / "users.parquet",
                                                                                          index=False)
        pd.DataFrame({"item": range(len(pre.item_ids)), "item_id": item_raw}).to_parquet(out / "items.parquet",
                                                                                          index=False)
        files += ["embeddings.safetensors", "users.parquet", "items.parquet"]
        summary["embedding_dim"] = int(item_emb.shape[1])
        if ann:
            _, exact = model.recommend(idx, k, exclude=None, batch_size=batch_size)
            _, recall = ann_recall(user_emb[idx], item_emb, exact.cpu(), k, path=out / "items.faiss")
            files.append("items.faiss")
            summary["ann"] = {"kind": "faiss IndexHNSWFlat, inner product", "M": HNSW_M,
                              "ef_construction": HNSW_EF_CONSTRUCTION, "ef_search": max(HNSW_EF_SEARCH, k),
                              f"recall@{k}": recall}
    summary["files"] = files
    (out / "export.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


__all__ = ["EXCLUDE", "ann_recall", "export"]
