"""Population geometry (design 6.4): PCA eigenspectra of standardized features and their power-law exponent.

Inputs may be numpy, dask or xarray (samples x features, features last). Dask inputs never load whole:
the spectrum comes from a tall-and-skinny QR (exact) or, for very wide matrices, a randomized SVD.
Eigenvalues below a relative floor of the largest are rounding noise of rank-deficient features: never fitted.
alpha's standard error over the samples is a delete-a-group jackknife (`jackknife_se`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr


def _matrix(features: Any) -> np.ndarray | da.Array:
    """A 2-D float64 numpy or dask array (samples, features) from numpy, dask or a 2-D DataArray."""
    data = features.data if isinstance(features, xr.DataArray) else features
    data = data if isinstance(data, da.Array) else np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"features must be 2-D (samples, features); got shape {data.shape}")
    return data.astype(np.float64)


def eigenspectrum(features: Any, n_components: int = 256, standardize: bool = True,
                  exact_max_features: int = 4096, power_iterations: int = 4, seed: int = 0) -> np.ndarray:
    """Descending PCA eigenvalues (covariance of the features, each standardized across samples when
    `standardize`), min(n_components, features, samples - 1) of them.

    Dask input with more than `exact_max_features` columns uses a randomized SVD (svd_compressed with
    `power_iterations` and `seed`); otherwise the exact singular values (tsqr for dask, LAPACK for numpy)."""
    x = _matrix(features)
    n, f = x.shape
    k = min(n_components, f, n - 1)
    if k < 1:
        raise ValueError(f"need at least 2 samples and 1 feature; got shape {x.shape}")
    x = x - x.mean(axis=0)
    if standardize:
        sd = x.std(axis=0, ddof=1)
        x = x / da.where(sd > 0, sd, 1.0) if isinstance(x, da.Array) else x / np.where(sd > 0, sd, 1.0)
    if not isinstance(x, da.Array):
        s = np.linalg.svd(x, compute_uv=False)
    elif f <= exact_max_features:
        x = x.rechunk({0: max(x.chunks[0][0], f), 1: -1})
        _, r = da.linalg.tsqr(x, compute_svd=False)
        s = np.linalg.svd(r.compute(), compute_uv=False)
    else:
        _, s, _ = da.linalg.svd_compressed(x, k, n_power_iter=power_iterations, seed=seed, compute=False)
        s = s.compute()
    return np.sort(s**2 / (n - 1))[::-1][:k]


RELATIVE_FLOOR = 1e-8  # eigenvalues below this fraction of the largest are numerical noise
MIN_FIT_RANKS = 10  # fewest usable ranks an alpha is fitted on
MIN_FIT_FRACTION = 0.5  # and the least fraction of the window's ranks (capped by components kept) they cover


@dataclass(frozen=True)
class PowerLawFit:
    """alpha (NaN when not fitted), the count of eigenvalues above the noise floor, why alpha is NaN ('' if fitted)."""
    alpha: float
    effective_rank: int
    reason: str


def powerlaw_fit(spectrum: Any, ranks: tuple[int, int] = (20, 200), *, relative_floor: float = RELATIVE_FLOOR,
                 min_fit_ranks: int = MIN_FIT_RANKS, min_fit_fraction: float = MIN_FIT_FRACTION) -> PowerLawFit:
    """OLS power law over the usable (finite, >= relative_floor x the largest) eigenvalues of 1-based ranks lo..hi
    (capped by the spectrum's length); NaN unless they number >= min_fit_ranks and >= min_fit_fraction of the window."""
    values = spectrum.values if isinstance(spectrum, xr.DataArray) else spectrum
    values = np.asarray(values.compute() if isinstance(values, da.Array) else values, dtype=np.float64).ravel()
    finite = np.isfinite(values) & (values > 0)
    usable = finite & (values >= relative_floor * values[finite].max()) if finite.any() else finite
    lo, hi = ranks[0], min(ranks[1], len(values))
    rank = np.arange(1, len(values) + 1)
    window = (rank >= lo) & (rank <= hi)
    use = window & usable
    need = max(min_fit_ranks, 2, int(np.ceil(min_fit_fraction * window.sum())))
    if use.sum() < need:
        return PowerLawFit(float("nan"), int(usable.sum()),
                           f"{use.sum()} of {window.sum()} ranks in {lo}-{hi} above noise floor (need {need})")
    slope = np.polyfit(np.log(rank[use]), np.log(values[use]), 1)[0]
    return PowerLawFit(float(-slope), int(usable.sum()), "")


def powerlaw_exponent(spectrum: Any, ranks: tuple[int, int] = (20, 200), *, relative_floor: float = RELATIVE_FLOOR,
                      min_fit_ranks: int = MIN_FIT_RANKS, min_fit_fraction: float = MIN_FIT_FRACTION) -> float:
    """alpha = minus the OLS slope of ln(eigenvalue) on ln(rank), or NaN: `powerlaw_fit(...).alpha`."""
    return powerlaw_fit(spectrum, ranks, relative_floor=relative_floor, min_fit_ranks=min_fit_ranks,
                        min_fit_fraction=min_fit_fraction).alpha


def jackknife_se(estimate: Callable[[Any], float], samples: Any, groups: int = 10) -> float:
    """Delete-a-group jackknife SE of estimate(samples) over the rows: the estimate recomputed with each of
    `groups` interleaved row groups (row i in group i mod groups) left out, SE = sqrt((g - 1) / g * sum_k
    (e_k - mean e)^2). NaN with fewer than 2 groups or when a left-out estimate is NaN (not stable under
    resampling). Rows are indexed positionally, so numpy, dask and (first-dim) DataArray samples all work."""
    n = samples.shape[0]
    if groups < 2 or n < groups:
        return float("nan")
    group = np.arange(n) % groups
    e = np.array([estimate(samples[np.flatnonzero(group != k)]) for k in range(groups)], dtype=np.float64)
    if not np.isfinite(e).all():
        return float("nan")
    return float(np.sqrt((groups - 1) / groups * ((e - e.mean()) ** 2).sum()))
