"""Checks shared by the readers: each bad array ends in one UserError naming the file and key."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from actstore.errors import UserError


def checked_array(value: object, where: str, shape: Sequence[int | str], *,
                  nonnegative: bool = False, allow_nan: bool = False) -> np.ndarray:
    """`value` as a numeric array of `shape` (ints fixed, strings free) with only finite values.

    `nonnegative` also rejects values below zero (spike counts); `allow_nan` lets NaN through
    (a neuron without a ceiling). Raises UserError naming `where`.
    """
    a = np.asarray(value)
    want = "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    if a.dtype.kind not in "biuf":
        raise UserError(f"{where}: dtype {a.dtype} is not numeric; expected numbers of shape {want}")
    if a.ndim != len(shape) or any(isinstance(d, int) and n != d for n, d in zip(a.shape, shape)):
        raise UserError(f"{where}: shape {a.shape}; expected {want}")
    bad = int((np.isinf(a) if allow_nan else ~np.isfinite(a)).sum()) if a.dtype.kind == "f" else 0
    if bad:
        what, valid = ("infinite", "finite numbers or NaN") if allow_nan else ("NaN or infinite", "finite numbers")
        raise UserError(f"{where}: {bad} {what} value(s); expected {valid}")
    if nonnegative and (a < 0).any():
        raise UserError(f"{where}: negative value {float(a[a < 0].min()):g}; expected counts >= 0")
    return a


def interpolated(trace: np.ndarray, where: str) -> np.ndarray:
    """A behaviour trace (float64) with each NaN linearly interpolated over bins, edge NaNs holding the
    nearest finite value (session.BEHAVIOUR_NAN); UserError naming `where` when no value is finite."""
    x = np.array(trace, dtype=np.float64)
    nan = np.isnan(x)
    if nan.all() and x.size:
        raise UserError(f"{where}: all {x.size} values are NaN; expected at least one finite value to interpolate from")
    if nan.any():
        at = np.arange(len(x))
        x[nan] = np.interp(at[nan], at[~nan], x[~nan])
    return x


def same_length(arrays: dict[str, np.ndarray], where: dict[str, str]) -> int:
    """The common first-axis length of `arrays`; else UserError naming (via `where`) the first that differs."""
    (ref, a), *rest = arrays.items()
    for key, b in rest:
        if len(b) != len(a):
            raise UserError(f"{where[key]}: {len(b)} bins but {ref} has {len(a)}; "
                            f"frames, counts and behaviour must have equal lengths")
    return len(a)
