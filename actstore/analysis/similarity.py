"""Representational similarity between models over the same stimuli: linear CKA (debiased and biased) and RSA,
each computed for every pair of models at once, and a Mantel permutation test between two model x model matrices.

Linear CKA compares Gram matrices K = X X^T of column-centred features (n stimuli x features; the feature
counts may differ): CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)). The biased HSIC is tr(K L); the debiased
one is the unbiased estimator of Song et al. (2012), which does not inflate CKA at small n (Kornblith et al.
2019; Davari et al. 2022). All pairs come from two products over the stacked Grams (M, n, n): tr(K_i K_j) as
one contraction over both stimulus axes, and the row sums' outer products; with Dask arrays the contraction
runs blockwise, so M Gram matrices need not fit in memory together.

RSA: per model a representational dissimilarity matrix, 1 - Pearson r between the feature patterns of two
stimuli, and between models the Spearman r of their RDMs' upper triangles (Pearson r of the ranks, again as
one product for all pairs).
"""
from __future__ import annotations

from typing import Any

import numpy as np


def centred_gram(x: Any) -> Any:
    """K = Xc Xc^T of features centred over stimuli (numpy or Dask; n x n), float64."""
    x = x.astype(np.float64)
    xc = x - x.mean(axis=0, keepdims=True)
    return xc @ xc.T


def hsic_matrix(grams: Any, debiased: bool = True) -> np.ndarray:
    """HSIC between every pair of the stacked centred Gram matrices (M, n, n) -> (M, M); the unbiased estimator
    (Song et al. 2012) when `debiased`, else tr(K_i K_j) / (n - 1)^2."""
    n = grams.shape[-1]
    if not debiased:
        return np.asarray(_contract(grams, grams)) / (n - 1) ** 2
    if n < 4:
        raise ValueError(f"debiased HSIC needs at least 4 stimuli, got {n}")
    # the estimator uses the Gram matrices with zero diagonals, K~ = K - diag(K); its terms from K without a copy
    diag = np.diagonal(grams, axis1=1, axis2=2)  # (M, n); Dask dispatches its own
    trace = _contract(grams, grams) - diag @ diag.T  # tr(K~_i K~_j)
    sums = grams.sum(axis=(1, 2)) - diag.sum(axis=1)  # 1' K~ 1
    rows = grams.sum(axis=2) - diag  # K~ 1
    out = trace + np.outer(sums, sums) / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (rows @ rows.T)
    return np.asarray(_computed(out)) / (n * (n - 3))


def _contract(a: Any, b: Any) -> Any:
    """sum_ij a[m, i, j] b[k, i, j] for every m, k: one tensordot (blockwise under Dask)."""
    if hasattr(a, "dask"):
        import dask.array as da

        return da.tensordot(a, b, axes=([1, 2], [1, 2]))
    m = a.shape[0]
    return a.reshape(m, -1) @ b.reshape(b.shape[0], -1).T


def _computed(x: Any) -> np.ndarray:
    return np.asarray(x.compute() if hasattr(x, "dask") else x)


def cka_matrix(grams: Any, debiased: bool = True) -> np.ndarray:
    """Linear CKA between every pair of models from their stacked centred Gram matrices (M, n, n) -> (M, M)."""
    h = _computed(hsic_matrix(grams, debiased))
    scale = np.sqrt(np.clip(np.diag(h), 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        return h / np.outer(scale, scale)


def rdm_vector(x: np.ndarray) -> np.ndarray:
    """The upper triangle (i < j) of the correlation-distance RDM of stimuli x features: 1 - Pearson r between the
    two stimuli's feature patterns. A stimulus whose pattern is constant has NaN distances."""
    x = np.asarray(x, dtype=np.float64)
    z = x - x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(z, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = z / norm
    i, j = np.triu_indices(len(x), k=1)
    return 1.0 - (z @ z.T)[i, j]


def spearman_matrix(vectors: np.ndarray) -> np.ndarray:
    """Spearman r between every pair of rows of (M, p) (ties ranked by their average), as the Pearson r of
    the ranks in one product; a row with a NaN gives NaN."""
    from scipy.stats import rankdata

    v = np.asarray(vectors, dtype=np.float64)
    ranks = rankdata(v, axis=1)
    ranks[~np.isfinite(v).all(axis=1)] = np.nan
    z = ranks - ranks.mean(axis=1, keepdims=True)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    return z @ z.T


def mantel(a: np.ndarray, b: np.ndarray, permutations: int = 9999, seed: int = 0) -> tuple[float, float, int]:
    """Pearson r between the off-diagonal upper triangles of two symmetric (M, M) matrices, its two-sided
    permutation p (the models' labels of `b` permuted jointly over rows and columns; p = (1 + #|r_perm| >= |r|)
    / (1 + permutations)), and the number of pairs; NaN r and p with fewer than 3 finite pairs."""
    m = len(a)
    i, j = np.triu_indices(m, k=1)
    x = a[i, j]

    def r_of(bb: np.ndarray) -> tuple[float, int]:
        y = bb[i, j]
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
            return np.nan, int(ok.sum())
        return float(np.corrcoef(x[ok], y[ok])[0, 1]), int(ok.sum())

    r, pairs = r_of(b)
    if not np.isfinite(r):
        return np.nan, np.nan, pairs
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(permutations):
        order = rng.permutation(m)
        rp, _ = r_of(b[np.ix_(order, order)])
        hits += bool(np.isfinite(rp) and abs(rp) >= abs(r) - 1e-12)
    return r, (1 + hits) / (1 + permutations), pairs
