"""Checks shared by the readers: each bad array ends in one UserError naming the file and key."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from actstore.errors import UserError


def checked_array(value: object, where: str, shape: Sequence[int | str], *,
                  nonnegative: bool = False) -> np.ndarray:
    """`value` as a numeric array of `shape` (ints fixed, strings free) with only finite values.

    `nonnegative` also rejects values below zero (spike counts). Raises UserError naming `where`.
    """
    a = np.asarray(value)
    want = "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    if a.dtype.kind not in "biuf":
        raise UserError(f"{where}: dtype {a.dtype} is not numeric; expected numbers of shape {want}")
    if a.ndim != len(shape) or any(isinstance(d, int) and n != d for n, d in zip(a.shape, shape)):
        raise UserError(f"{where}: shape {a.shape}; expected {want}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).sum())
        raise UserError(f"{where}: {bad} NaN or infinite value(s); expected finite numbers")
    if nonnegative and a.size and a.min() < 0:
        raise UserError(f"{where}: negative value {a.min()!r}; expected counts >= 0")
    return a


def same_length(arrays: dict[str, np.ndarray], where: str) -> int:
    """The common first-axis length of `arrays` (keys name them), or UserError listing the lengths."""
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{k} {n}" for k, n in lengths.items())
        raise UserError(f"{where}: frames, counts and behaviour differ in length ({listed}); expected equal lengths")
    return next(iter(lengths.values()))
