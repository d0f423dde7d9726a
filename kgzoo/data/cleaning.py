"""Cleaning steps over :class:`~kgzoo.data.kgdata.KGRecData`; each one counts what it removes.

Every step returns a new ``KGRecData`` whose ``cleaning`` report has one more entry
(``"step description" -> rows removed``), also when nothing was removed, so the report
says which steps ran. All steps are vectorised (sorting, ``torch.unique``, ``bincount``,
SciPy's connected components); none loops over users, items or triples in Python.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components
from torch import Tensor

from .kgdata import KGRecData


def _report(data: KGRecData, step: str, removed: int) -> dict[str, int]:
    rep = dict(data.cleaning)
    rep[step] = rep.get(step, 0) + int(removed)
    return rep


def first_occurrence(keys: Tensor) -> Tensor:
    """BoolTensor ``[N]``: True at the first row of each distinct value of ``keys`` (LongTensor ``[N]``)."""
    if keys.numel() == 0:
        return torch.zeros(0, dtype=torch.bool)
    _, inverse = torch.unique(keys, return_inverse=True)
    pos = torch.arange(keys.numel())
    first = torch.full((int(inverse.max()) + 1,), keys.numel(), dtype=torch.long)
    first.scatter_reduce_(0, inverse, pos, reduce="amin")
    keep = torch.zeros(keys.numel(), dtype=torch.bool)
    keep[first] = True
    return keep


def dedup_interactions(data: KGRecData) -> KGRecData:
    """Drop repeated (user, item) rows, keeping the first; counted as "interactions: duplicate (user, item)"."""
    key = data.interactions[:, 0] * data.n_items + data.interactions[:, 1]
    keep = first_occurrence(key)
    return data.replace(**data.select_interactions(keep),
                        cleaning=_report(data, "interactions: duplicate (user, item)", (~keep).sum()))


def dedup_triples(data: KGRecData) -> KGRecData:
    """Drop repeated (head, relation, tail) triples; counted as "triples: duplicate"."""
    t = data.triples
    key = (t[:, 0] * max(1, data.n_relations) + t[:, 1]) * data.n_entities + t[:, 2]
    keep = first_occurrence(key)
    return data.replace(triples=t[keep], cleaning=_report(data, "triples: duplicate", (~keep).sum()))


def drop_self_loops(data: KGRecData) -> KGRecData:
    """Drop triples whose head equals their tail; counted as "triples: self-loop"."""
    keep = data.triples[:, 0] != data.triples[:, 2]
    return data.replace(triples=data.triples[keep], cleaning=_report(data, "triples: self-loop", (~keep).sum()))


def dedup_social(data: KGRecData) -> KGRecData:
    """Drop self-ties and repeated (user, user) rows of :attr:`social`.

    Ties stay directed as the source lists them (sources list each friendship in both
    directions); graph builders add reverse edges where a model wants them. Counted as
    "social: self-tie" and "social: duplicate".
    """
    if data.social is None:
        return data
    s = data.social
    self_tie = s[:, 0] == s[:, 1]
    s = s[~self_tie]
    keep = first_occurrence(s[:, 0] * data.n_users + s[:, 1])
    rep = _report(data, "social: self-tie", self_tie.sum())
    rep["social: duplicate"] = rep.get("social: duplicate", 0) + int((~keep).sum())
    return data.replace(social=s[keep], cleaning=rep)


def reaches_items(triples: Tensor, n_entities: int, n_items: int) -> Tensor:
    """BoolTensor ``[M]``: whether each triple (LongTensor ``[M, 3]``) lies in a connected component
    of the undirected KG that holds an item (entities ``0..n_items-1``); components from
    :func:`scipy.sparse.csgraph.connected_components`."""
    if not triples.numel():
        return torch.zeros(0, dtype=torch.bool)
    h, tl = triples[:, 0].numpy(), triples[:, 2].numpy()
    adj = sp.coo_matrix((np.ones(len(h), dtype=np.int8), (h, tl)), shape=(n_entities, n_entities))
    _, comp = connected_components(adj, directed=False)
    comp = torch.from_numpy(comp.astype(np.int64))
    item_comp = torch.zeros(int(comp.max()) + 1, dtype=torch.bool)
    item_comp[comp[:n_items]] = True
    return item_comp[comp[triples[:, 0]]]


def drop_unused_entities(triples: Tensor, n_entities: int, n_fixed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Renumber entities so that those in no triple go, except the first ``n_fixed`` (which keep
    their ids; the others keep their order).

    Returns:
        ``(triples LongTensor [M, 3] renumbered, used BoolTensor [E], new_id LongTensor [E])``
        (``new_id`` is meaningful where ``used``).
    """
    used = torch.zeros(n_entities, dtype=torch.bool)
    used[:n_fixed] = True
    used[triples[:, 0]] = True
    used[triples[:, 2]] = True
    new_id = torch.cumsum(used.long(), 0) - 1
    return torch.stack([new_id[triples[:, 0]], triples[:, 1], new_id[triples[:, 2]]], 1), used, new_id


def drop_unreachable(data: KGRecData) -> KGRecData:
    """Drop triples and entities not connected to any item in the (undirected) KG.

    A KG gathered from several sources holds islands that no item reaches; they cost
    memory and never inform a recommendation. Connected components come from
    :func:`scipy.sparse.csgraph.connected_components`. Entities left in no triple (and not
    items) are removed and the other entities re-indexed (items keep ``0..I-1``).
    Counted as "triples: unreachable from any item" and "entities: unreachable or unused".
    """
    E, I = data.n_entities, data.n_items
    t = data.triples
    keep_t = reaches_items(t, E, I)
    t = t[keep_t]
    t, used, new_id = drop_unused_entities(t, E, I)
    ent_ids = None if data.entity_ids is None else [e for e, u in zip(data.entity_ids, used.tolist()) if u]
    rep = _report(data, "triples: unreachable from any item", (~keep_t).sum())
    rep["entities: unreachable or unused"] = rep.get("entities: unreachable or unused", 0) + int((~used).sum())
    mentions = _remap_mentions(data.mentions, torch.ones(I, dtype=torch.bool), used, new_id, rep,
                               "mentions: entity unreachable or unused")
    return data.replace(triples=t, n_entities=int(used.sum()), entity_ids=ent_ids, cleaning=rep, mentions=mentions)


def _remap_mentions(mentions: Tensor | None, keep_items: Tensor, keep_ent: Tensor, new_ent: Tensor,
                    rep: dict[str, int], step: str) -> Tensor | None:
    """``mentions`` ``[Mn, 4]`` whose item and entity are kept, both re-indexed (items are entities
    ``0..I-1``, so ``new_ent`` maps both); the removed ones counted in ``rep[step]``."""
    if mentions is None:
        return None
    keep = keep_items[mentions[:, 0]] & keep_ent[mentions[:, 1]]
    rep[step] = rep.get(step, 0) + int((~keep).sum())
    m = mentions[keep].clone()
    m[:, 0], m[:, 1] = new_ent[m[:, 0]], new_ent[m[:, 1]]
    return m


def drop_unused_relations(data: KGRecData) -> KGRecData:
    """Re-index relations so that every relation id ``0..R-1`` occurs in a triple.

    Counted as "relations: unused".
    """
    R = data.n_relations
    used = torch.zeros(R, dtype=torch.bool)
    used[data.triples[:, 1]] = True
    if bool(used.all()):
        return data.replace(cleaning=_report(data, "relations: unused", 0))
    new_id = torch.cumsum(used.long(), 0) - 1
    t = data.triples.clone()
    t[:, 1] = new_id[t[:, 1]]
    names = [n for n, u in zip(data.relation_names, used.tolist()) if u]
    return data.replace(triples=t, relation_names=names, cleaning=_report(data, "relations: unused", (~used).sum()))


def rating_threshold(data: KGRecData, threshold: float) -> KGRecData:
    """Keep interactions with ``rating >= threshold`` (explicit to implicit feedback).

    Counted as ``"interactions: rating < {threshold}"``.

    Raises:
        ValueError: the dataset has no ratings.
    """
    if data.rating is None:
        raise ValueError(f"{data.name}: rating threshold {threshold} asked for, but the dataset has no ratings")
    keep = data.rating >= threshold
    return data.replace(**data.select_interactions(keep),
                        cleaning=_report(data, f"interactions: rating < {threshold:g}", (~keep).sum()))


def remap_users_items(data: KGRecData, keep_users: Tensor, keep_items: Tensor, step: str) -> KGRecData:
    """Remove users and items (BoolTensors ``[U]``, ``[I]``) with their rows, re-indexing ids.

    Items are entities ``0..I-1``, so removing an item removes its entity and shifts the
    other entity ids; triples touching a removed item are removed. Counts go into the
    report as ``"{step}: users"``, ``"{step}: items"``, ``"{step}: interactions"``,
    ``"{step}: triples"``.
    """
    U, I, E = data.n_users, data.n_items, data.n_entities
    u_new = torch.cumsum(keep_users.long(), 0) - 1
    keep_ent = torch.ones(E, dtype=torch.bool)
    keep_ent[:I] = keep_items
    e_new = torch.cumsum(keep_ent.long(), 0) - 1
    x = data.interactions
    keep_rows = keep_users[x[:, 0]] & keep_items[x[:, 1]]
    kw = data.select_interactions(keep_rows)
    kw["interactions"] = torch.stack([u_new[kw["interactions"][:, 0]], e_new[kw["interactions"][:, 1]]], 1)
    t = data.triples
    keep_t = keep_ent[t[:, 0]] & keep_ent[t[:, 2]]
    t = t[keep_t]
    kw["triples"] = torch.stack([e_new[t[:, 0]], t[:, 1], e_new[t[:, 2]]], 1)
    if data.social is not None:
        s = data.social
        s = s[keep_users[s[:, 0]] & keep_users[s[:, 1]]]
        kw["social"] = u_new[s]
    ku, ki = keep_users.tolist(), keep_items.tolist()
    if data.item_text is not None:
        kw["item_text"] = [x for x, k in zip(data.item_text, ki) if k]
    kw["user_features"] = {k: v[keep_users] for k, v in data.user_features.items()}
    kw["item_features"] = {k: v[keep_items] for k, v in data.item_features.items()}
    if data.user_ids is not None:
        kw["user_ids"] = [x for x, k in zip(data.user_ids, ku) if k]
    if data.item_ids is not None:
        kw["item_ids"] = [x for x, k in zip(data.item_ids, ki) if k]
    if data.entity_ids is not None:
        kw["entity_ids"] = [x for x, k in zip(data.entity_ids, keep_ent.tolist()) if k]
    rep = dict(data.cleaning)
    for what, n in (("users", (~keep_users).sum()), ("items", (~keep_items).sum()),
                    ("interactions", (~keep_rows).sum()), ("triples", (~keep_t).sum())):
        rep[f"{step}: {what}"] = rep.get(f"{step}: {what}", 0) + int(n)
    kw["mentions"] = _remap_mentions(data.mentions, keep_items, keep_ent, e_new, rep, f"{step}: mentions")
    return data.replace(n_users=int(keep_users.sum()), n_items=int(keep_items.sum()),
                        n_entities=int(keep_ent.sum()), cleaning=rep, **kw)


def k_core(data: KGRecData, k_user: int, k_item: int) -> KGRecData:
    """Iteratively keep users with >= ``k_user`` and items with >= ``k_item`` positive interactions.

    Standard k-core filtering (e.g. He & McAuley, WWW 2016). Each round is two ``bincount``
    calls; rounds repeat until nothing changes. Removed users, items, rows and triples are
    counted under ``"k-core (user {k_user}, item {k_item})"``.
    """
    step = f"k-core (user {k_user}, item {k_item})"
    x = data.interactions[data.positives()]
    keep_u = torch.ones(data.n_users, dtype=torch.bool)
    keep_i = torch.ones(data.n_items, dtype=torch.bool)
    while True:
        alive = keep_u[x[:, 0]] & keep_i[x[:, 1]]
        du = torch.bincount(x[alive, 0], minlength=data.n_users)
        di = torch.bincount(x[alive, 1], minlength=data.n_items)
        new_u = keep_u & (du >= k_user)
        new_i = keep_i & (di >= k_item)
        if torch.equal(new_u, keep_u) and torch.equal(new_i, keep_i):
            break
        keep_u, keep_i = new_u, new_i
    return remap_users_items(data, keep_u, keep_i, step)


def standard_clean(data: KGRecData) -> KGRecData:
    """The cleaning every catalogue dataset gets: duplicate interactions, duplicate triples,
    self-loops, unreachable triples and entities, unused relations, social duplicates."""
    data = dedup_interactions(data)
    data = dedup_triples(data)
    data = drop_self_loops(data)
    data = drop_unreachable(data)
    data = drop_unused_relations(data)
    data = dedup_social(data)
    return data
