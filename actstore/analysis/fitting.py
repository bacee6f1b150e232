"""Batched least-squares curve fitting: many curves, many starts, one vectorized solver.

A box-constrained Levenberg-Marquardt runs on every (curve, start) pair at once as numpy
tensors (no per-curve Python loop, no per-curve scipy call). Bounds hold by projection:
each step is clipped into the box and parameters sitting on a bound the gradient pushes
against are frozen for that step. Curves that converge leave the working set, so the
cost of an iteration shrinks as the batch settles. Two models are provided: the
difference of Gaussians (sf tuning in ln f) and the signed Naka-Rushton function.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

# (x (M,), params (B, P)) -> (prediction (B, M), jacobian (B, M, P))
Model = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


# A fitted parameter this close to a bound of its box, relative to the bound (|p - b| <= BOUND_RTOL |b|), sits on
# it: the box, not the data, set it. The projected solver puts a fit that pushes against a bound exactly on it;
# 1% also catches one that stopped just short (a c50 of 0.99 in [0.005, 1] is no estimate of the unit's c50).
BOUND_RTOL = 1e-2


@dataclass(frozen=True)
class Fit:
    """Best-of-starts fit per curve: params (..., P), r2 (...), success (...) bool (NaN / False where unfit),
    and the box each curve was fitted in, lower and upper (..., P)."""

    params: np.ndarray
    r2: np.ndarray
    success: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def at_bound(fit: Fit, rtol: float = BOUND_RTOL) -> np.ndarray:
    """(..., P) bool: each fitted parameter within `rtol` (relative to the bound) of a finite bound of its box.

    False where the curve was not fitted (NaN parameter) and on infinite bounds; a bound of 0 needs p == 0.
    """
    near = [np.isfinite(b) & (np.abs(fit.params - b) <= rtol * np.abs(b)) for b in (fit.lower, fit.upper)]
    return near[0] | near[1]


def least_squares(model: Model, x: np.ndarray, y: np.ndarray, p0: np.ndarray, lower: np.ndarray,
                  upper: np.ndarray, max_iter: int = 200, ftol: float = 1e-8,
                  xtol: float = 1e-8, lam0: float = 3.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimise sum (model(x, p) - y)^2 for every row of y (B, M) from p0 (B, P) inside [lower, upper].

    Returns (params (B, P), cost (B,), converged (B,) bool). Stops like scipy's defaults (relative
    cost drop or step below ftol / xtol). `lam0`, the initial damping, is cautious on purpose: a
    small first step keeps starts from jumping onto the bounds.
    """
    lower, upper = np.broadcast_to(lower, p0.shape), np.broadcast_to(upper, p0.shape)
    p = np.clip(np.asarray(p0, dtype=np.float64), lower, upper)
    pred, jac = model(x, p)
    r = pred - y
    cost = np.einsum("bm,bm->b", r, r)
    lam = np.full(len(p), float(lam0))
    converged = np.zeros(len(p), dtype=bool)
    exact = 1e-20 * np.einsum("bm,bm->b", y, y) + 1e-300  # a fit at rounding level needs no more steps
    active = np.flatnonzero(np.isfinite(cost))
    eye = np.eye(p.shape[1], dtype=bool)
    for _ in range(max_iter):
        if active.size == 0:
            break
        pa, ra, ja, lo, hi = p[active], r[active], jac[active], lower[active], upper[active]
        jt = ja.transpose(0, 2, 1)
        grad = (jt @ ra[..., None])[..., 0]
        hess = jt @ ja
        frozen = ((pa <= lo) & (grad > 0)) | ((pa >= hi) & (grad < 0))
        diag = np.einsum("bpp->bp", hess)
        d = np.sqrt(np.maximum(diag, 1e-12 * diag.max(axis=1, keepdims=True) + 1e-300))  # Marquardt scaling
        keep = ~frozen
        system = hess / (d[:, :, None] * d[:, None, :]) + lam[active, None, None] * eye
        system = system * (keep[:, :, None] & keep[:, None, :]) + eye * frozen[:, :, None]
        step = _solve(system, -(grad * keep) / d) / d
        trial = np.clip(pa + step, lo, hi)
        pred_t, jac_t = model(x, trial)
        r_t = pred_t - y[active]
        cost_t = np.einsum("bm,bm->b", r_t, r_t)
        better = np.isfinite(cost_t) & (cost_t < cost[active])
        idx = active[better]
        small_drop = (cost[idx] - cost_t[better]) <= ftol * cost[idx]
        small_step = np.all(np.abs(trial[better] - pa[better]) <= xtol * (np.abs(pa[better]) + xtol), axis=1)
        p[idx], r[idx], jac[idx], cost[idx] = trial[better], r_t[better], jac_t[better], cost_t[better]
        lam[idx] = np.maximum(lam[idx] * 0.2, 1e-9)
        worse = active[~better]
        lam[worse] *= 8.0
        converged[idx[small_drop | small_step]] = True
        converged[worse[lam[worse] > 1e12]] = True
        converged[active[cost[active] <= exact[active]]] = True
        active = active[~converged[active]]
    return p, cost, converged


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched a x = b; the pseudo-inverse where a stack is numerically singular (rank-deficient fits)."""
    try:
        return np.linalg.solve(a, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return (np.linalg.pinv(a) @ b[..., None])[..., 0]


def best_fit(model: Model, x: np.ndarray, y: np.ndarray, starts: np.ndarray, lower: np.ndarray,
             upper: np.ndarray, max_iter: int = 200) -> Fit:
    """Fit every curve y (B, M) from each of its starts (B, S, P); keep the start with the best R^2.

    Curves that are not finite or are constant are not fitted (NaN params and R^2, success False).
    """
    b, s, n_par = starts.shape
    with np.errstate(all="ignore"):
        ok = np.all(np.isfinite(y), axis=1) & (np.ptp(np.nan_to_num(y), axis=1) > 0)
        params = np.full((b, n_par), np.nan)
        r2 = np.full(b, np.nan)
        success = np.zeros(b, dtype=bool)
        if not ok.any():
            return Fit(params, r2, success, lower, upper)
        yv = y[ok]
        p, cost, conv = least_squares(  # one row per (curve, start)
            model, x, np.repeat(yv, s, axis=0), starts[ok].reshape(-1, n_par),
            np.repeat(lower[ok], s, axis=0), np.repeat(upper[ok], s, axis=0), max_iter=max_iter)
        sst = np.sum((yv - yv.mean(axis=1, keepdims=True)) ** 2, axis=1)
        r2_all = (1.0 - cost.reshape(-1, s) / sst[:, None])
        r2_all = np.where(np.isfinite(r2_all), r2_all, -np.inf)
        best = np.argmax(r2_all, axis=1)
        rows = np.arange(len(best))
        best_p = p.reshape(-1, s, n_par)[rows, best]
        best_r2 = r2_all[rows, best]
        fine = np.isfinite(best_r2) & np.all(np.isfinite(best_p), axis=1)
        params[ok] = np.where(fine[:, None], best_p, np.nan)
        r2[ok] = np.where(fine, best_r2, np.nan)
        success[ok] = fine & conv.reshape(-1, s)[rows, best]
    return Fit(params, r2, success, lower, upper)


# ----------------------------------------------------------------------- difference of Gaussians
DOG_PARAMS = ("b", "ae", "me", "se", "ai", "mi", "si")


def dog(x: np.ndarray, params: np.ndarray) -> np.ndarray:
    """R = b + ae exp(-(x-me)^2 / 2se^2) - ai exp(-(x-mi)^2 / 2si^2); params (..., 7) -> (..., M)."""
    return _dog(x, np.reshape(params, (-1, 7)))[0].reshape(*np.shape(params)[:-1], len(x))


def _dog(x: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b, ae, me, se, ai, mi, si = (p[:, i, None] for i in range(7))
    de, di = x - me, x - mi
    ge, gi = np.exp(-de**2 / (2 * se**2)), np.exp(-di**2 / (2 * si**2))
    pred = b + ae * ge - ai * gi
    jac = np.stack([np.ones_like(pred), ge, ae * ge * de / se**2, ae * ge * de**2 / se**3,
                    -gi, -ai * gi * di / si**2, -ai * gi * di**2 / si**3], axis=-1)
    return pred, jac


def dog_setup(x: np.ndarray, y: np.ndarray, starts: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Starts (B, S, 7) and bounds (B, 7) for curves y (B, M) sampled at x (M,) (x = ln f).

    Amplitudes lie in [0, 3 * peak-to-peak]; centres within half the sampled span beyond its ends;
    widths between half a sample step and twice the span. Start 0 sits on the sampled peak; the
    others spread their centres evenly over the sampled range.
    """
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        span = float(x.max() - x.min())
        step = span / max(len(x) - 1, 1)
        ptp = np.maximum(np.nan_to_num(np.ptp(y, axis=1)), 1e-12)
        ymin = np.nan_to_num(np.min(y, axis=1))
        peak = x[np.argmax(np.nan_to_num(y, nan=-np.inf), axis=1)]
    b = len(y)
    lo_c, hi_c = x.min() - span / 2, x.max() + span / 2
    lower = np.tile([-np.inf, 0.0, lo_c, step / 2, 0.0, lo_c, step / 2], (b, 1))
    upper = np.stack([np.full(b, np.inf), 3 * ptp, np.full(b, hi_c), np.full(b, 2 * span),
                      3 * ptp, np.full(b, hi_c), np.full(b, 2 * span)], axis=1)
    spread = np.broadcast_to(np.linspace(x.min(), x.max(), starts - 1), (b, starts - 1))
    centres = np.concatenate([peak[:, None], spread], axis=1)
    width = span / 4
    p0 = np.empty((b, starts, 7))
    p0[..., 0] = ymin[:, None]
    p0[..., 1] = ptp[:, None]
    p0[..., 2] = centres
    p0[..., 3] = width
    p0[..., 4] = 0.25 * ptp[:, None]
    p0[..., 5] = centres
    p0[..., 6] = 2 * width
    return p0, lower, upper


def fit_dog(x: np.ndarray, y: np.ndarray, starts: int = 5, max_iter: int = 200) -> Fit:
    """Fit the difference of Gaussians to every curve y (..., M) at x (M,), `starts` starts each, best R^2."""
    y2 = np.asarray(y, dtype=np.float64).reshape(-1, len(x))
    p0, lower, upper = dog_setup(x, y2, starts)
    fit = best_fit(_dog, np.asarray(x, dtype=np.float64), y2, p0, lower, upper, max_iter)
    return _reshape(fit, np.shape(y)[:-1])


# ----------------------------------------------------------------------- signed Naka-Rushton
NR_PARAMS = ("r0", "gain", "c50", "n")


def naka_rushton(c: np.ndarray, params: np.ndarray) -> np.ndarray:
    """R = r0 + g c^n / (c^n + c50^n); params (..., 4) -> (..., M)."""
    return _nr(np.asarray(c, dtype=np.float64), np.reshape(params, (-1, 4)))[0].reshape(*np.shape(params)[:-1], len(c))


def _nr(c: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r0, g, c50, n = (p[:, i, None] for i in range(4))
    with np.errstate(divide="ignore", invalid="ignore"):
        cn = c**n
        h = cn / (cn + c50**n)
        slope = h * (1 - h)
        log_ratio = np.where(c > 0, np.log(np.where(c > 0, c, 1.0)) - np.log(c50), 0.0)
    pred = r0 + g * h
    jac = np.stack([np.ones_like(pred), h, -g * n * slope / c50, g * slope * log_ratio], axis=-1)
    return pred, jac


def naka_rushton_setup(c: np.ndarray, y: np.ndarray, starts: int, c50_bounds: tuple[float, float],
                       n_bounds: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Starts (B, S, 4) and bounds (B, 4) for contrast curves y (B, M) at contrasts c (M,).

    r0 is free; the gain, of either sign, within 10 peak-to-peaks; c50 and n within the given
    bounds. Starts: r0 at the lowest contrast's response, gain the highest minus the lowest,
    n = 2, c50 spread geometrically inside its bounds.
    """
    order = np.argsort(c)
    with np.errstate(all="ignore"):
        ptp = np.maximum(np.nan_to_num(np.ptp(y, axis=1)), 1e-12)
        first, last = np.nan_to_num(y[:, order[0]]), np.nan_to_num(y[:, order[-1]])
    gain = np.where(last != first, last - first, ptp)
    b = len(y)
    lower = np.stack([np.full(b, -np.inf), -10 * ptp, np.full(b, c50_bounds[0]), np.full(b, n_bounds[0])], axis=1)
    upper = np.stack([np.full(b, np.inf), 10 * ptp, np.full(b, c50_bounds[1]), np.full(b, n_bounds[1])], axis=1)
    p0 = np.empty((b, starts, 4))
    p0[..., 0] = first[:, None]
    p0[..., 1] = gain[:, None]
    p0[..., 2] = np.geomspace(*c50_bounds, starts + 2)[1:-1]
    p0[..., 3] = np.clip(2.0, *n_bounds)
    return p0, lower, upper


def fit_naka_rushton(c: np.ndarray, y: np.ndarray, starts: int = 4, c50_bounds: tuple[float, float] = (0.005, 1.0),
                     n_bounds: tuple[float, float] = (0.5, 6.0), max_iter: int = 200) -> Fit:
    """Fit the signed Naka-Rushton function to every curve y (..., M) at contrasts c (M,), best R^2 of `starts`."""
    c = np.asarray(c, dtype=np.float64)
    y2 = np.asarray(y, dtype=np.float64).reshape(-1, len(c))
    p0, lower, upper = naka_rushton_setup(c, y2, starts, c50_bounds, n_bounds)
    return _reshape(best_fit(_nr, c, y2, p0, lower, upper, max_iter), np.shape(y)[:-1])


def _reshape(fit: Fit, lead: tuple[int, ...]) -> Fit:
    return Fit(fit.params.reshape(*lead, -1), fit.r2.reshape(lead), fit.success.reshape(lead),
               fit.lower.reshape(*lead, -1), fit.upper.reshape(*lead, -1))
