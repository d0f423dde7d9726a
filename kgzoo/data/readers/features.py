"""Categorical and multi-valued attribute encoding shared by readers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor


def encode_categorical(values: np.ndarray) -> tuple[Tensor, list[str]]:
    """Codes for one categorical attribute.

    Args:
        values: raw values ``[rows]`` (``""`` means unknown).

    Returns:
        ``(LongTensor [rows] with 0 = unknown and 1..V, vocabulary list of V+1 names)``.
    """
    vals = np.asarray(values).astype(str)
    uniq = sorted(set(vals.tolist()) - {""})
    index = pd.Index(uniq)
    codes = index.get_indexer(vals) + 1  # -1 (unknown/"") -> 0
    return torch.from_numpy(codes.astype(np.int64)), ["[UNK]"] + uniq


def encode_multi(values: np.ndarray, sep: str | None = None) -> tuple[Tensor, list[str]]:
    """Codes for a multi-valued attribute (e.g. genres ``"Action Comedy"``).

    Returns:
        ``(LongTensor [rows, L] padded with 0, vocabulary)`` with ``L`` the most values of a row.
    """
    lists = [v.split(sep) if v else [] for v in np.asarray(values).astype(str).tolist()]
    uniq = sorted({x for row in lists for x in row})
    index = {v: i + 1 for i, v in enumerate(uniq)}
    width = max(1, max((len(r) for r in lists), default=1))
    out = torch.zeros(len(lists), width, dtype=torch.long)
    flat = [(i, j, index[x]) for i, row in enumerate(lists) for j, x in enumerate(row)]
    if flat:
        t = torch.tensor(flat, dtype=torch.long)
        out[t[:, 0], t[:, 1]] = t[:, 2]
    return out, ["[UNK]"] + uniq
