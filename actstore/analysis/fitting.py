"""Batched least-squares curve fitting: many curves, many starts, one vectorized solver.

A box-constrained Levenberg-Marquardt runs on every (curve, start) pair at once as numpy
tensors (no per-curve Python loop, no per-curve scipy call). Bounds hold by projection:
each step is clipped into the box and parameters sitting on a bound the gradient pushes
against are frozen for that step. The solver works on a cache-sized block of rows: a row
that converges leaves and the next waiting row takes its place, so no step is spent on
settled rows. The models return their analytic Jacobian with the prediction (shared
exponentials); the batched 7x7 (4x4) normal equations are solved by an unrolled Cholesky.
Two models are provided: the difference of Gaussians (sf tuning in ln f) and the signed
Naka-Rushton function.
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


# Rows in the solver's working set. Small enough that its arrays stay in the CPU cache (per-row cost grows
# ~3x from 2k to 50k rows), large enough that numpy's per-call overhead is spread over many rows.
BLOCK = 2048
# A frozen parameter's damping, relative to its diag(J'J): it decouples the parameter from the others' step
# (to ~1e-20) without rewriting the system; its own step is then set to 0.
FREEZE = 1e20


@dataclass
class _Rows:
    """The solver's working set: one entry per row being fitted (idx: its row in the batch)."""

    idx: np.ndarray
    p: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    y: np.ndarray
    cost: np.ndarray
    exact: np.ndarray
    lam: np.ndarray
    nu: np.ndarray
    it: np.ndarray
    hess: np.ndarray
    descent: np.ndarray
    damp: np.ndarray

    def take(self, rows: np.ndarray | slice) -> _Rows:
        return _Rows(*(a[rows] for a in vars(self).values()))

    def put(self, at: np.ndarray | slice, other: _Rows) -> None:
        for a, b in zip(vars(self).values(), vars(other).values()):
            a[at] = b

    def empty(self, n: int) -> _Rows:
        """Uninitialised rows shaped like these, n of them."""
        return _Rows(*(np.empty((n, *a.shape[1:]), a.dtype) for a in vars(self).values()))


def least_squares(model: Model, x: np.ndarray, y: np.ndarray, p0: np.ndarray, lower: np.ndarray,
                  upper: np.ndarray, max_iter: int = 200, ftol: float = 1e-8,
                  xtol: float = 1e-8, lam0: float = 3.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimise sum (model(x, p) - y)^2 for every row of y (B, M) from p0 (B, P) inside [lower, upper].

    Returns (params (B, P), cost (B,), converged (B,) bool). Stops like scipy's defaults (relative
    cost drop or step below ftol / xtol). `lam0`, the initial damping, is cautious on purpose: a
    small first step keeps starts from jumping onto the bounds; then the damping follows the gain
    ratio (Nielsen's rule), fewer steps than fixed up / down factors. At most BLOCK rows are worked
    on at once: a row leaves as it converges (or after max_iter steps) and waiting rows take the
    freed places. Every row is solved on its own: its fit does not depend on the other rows (to rounding).
    """
    lower, upper = np.broadcast_to(lower, p0.shape), np.broadcast_to(upper, p0.shape)
    p_out = np.clip(np.asarray(p0, dtype=np.float64), lower, upper)
    cost_out = np.full(len(p_out), np.nan)
    converged = np.zeros(len(p_out), dtype=bool)
    with np.errstate(all="ignore"):
        if max_iter < 1:
            _start(model, x, y, p_out, lower, upper, np.arange(len(p_out)), lam0, cost_out)
            return p_out, cost_out, converged
        rows, used, waiting = None, 0, 0  # rows: BLOCK slots, the first `used` of them in work
        while True:
            if waiting < len(p_out) and (used == 0 or BLOCK - used >= BLOCK // 8):  # top up in batches
                start = np.arange(waiting, min(len(p_out), waiting + BLOCK - used))
                new = _start(model, x, y, p_out, lower, upper, start, lam0, cost_out)
                waiting = start[-1] + 1
                rows = new.empty(BLOCK) if rows is None else rows
                rows.put(slice(used, used + len(new.idx)), new)
                used += len(new.idx)
            if used == 0:
                if waiting == len(p_out):
                    break
                continue
            w = rows.take(slice(0, used))
            frozen = ((w.p <= w.lo) & (w.descent < 0)) | ((w.p >= w.hi) & (w.descent > 0))
            rhs = np.where(frozen, 0.0, w.descent)
            diag = w.damp * np.where(frozen, FREEZE, w.lam[:, None])
            step = _cholesky_solve(w.hess, diag, rhs)
            np.copyto(step, 0.0, where=frozen)
            trial = np.clip(w.p + step, w.lo, w.hi)
            pred, jac = model(x, trial)
            r = pred - w.y
            cost = np.einsum("bm,bm->b", r, r)
            better = np.isfinite(cost) & (cost < w.cost)
            drop = w.cost - cost
            small_step = np.all(np.abs(trial - w.p) <= xtol * (np.abs(w.p) + xtol), axis=1)
            done = better & ((drop <= ftol * w.cost) | small_step)
            # gain ratio: the drop over the one the linearised model predicts for the solved (unclipped) step
            ratio = np.clip(drop / np.einsum("bp,bp->b", step, rhs + diag * step), 0.0, 1.0)
            w.lam[:] = np.where(better, np.maximum(w.lam * np.maximum(1 / 3, 1 - (2 * ratio - 1) ** 3), 1e-9),
                                w.lam * w.nu)
            w.nu[:] = np.where(better, 2.0, 2.0 * w.nu)
            np.copyto(w.p, trial, where=better[:, None])
            np.copyto(w.cost, cost, where=better)
            w.hess[better], w.descent[better], w.damp[better] = _normal(jac.transpose(0, 2, 1)[better], r[better])
            done |= (~better & (w.lam > 1e12)) | (w.cost <= w.exact)
            w.it += 1
            leave = done | (w.it >= max_iter)
            if leave.any():
                out = w.idx[leave]
                p_out[out], cost_out[out], converged[out] = w.p[leave], w.cost[leave], done[leave]
                used = _close_gaps(rows, leave)
    return p_out, cost_out, converged


def _close_gaps(rows: _Rows, leave: np.ndarray) -> int:
    """Move the last rows in work into the slots of those that `leave` (O(rows leaving), not O(rows in
    work)); returns how many stay."""
    keep = len(leave) - int(leave.sum())
    rows.put(np.flatnonzero(leave[:keep]), rows.take(keep + np.flatnonzero(~leave[keep:])))
    return keep


def _start(model: Model, x: np.ndarray, y: np.ndarray, p: np.ndarray, lower: np.ndarray, upper: np.ndarray,
           idx: np.ndarray, lam0: float, cost_out: np.ndarray) -> _Rows:
    """Working-set entries for rows idx at their (clipped) starts p[idx]; writes their cost into cost_out and
    leaves out rows whose start has no finite cost."""
    pred, jac = model(x, p[idx])
    r = pred - y[idx]
    cost = np.einsum("bm,bm->b", r, r)
    cost_out[idx] = cost
    ok = np.isfinite(cost)
    idx, yr, n = idx[ok], y[idx][ok], int(ok.sum())
    hess, descent, damp = _normal(jac.transpose(0, 2, 1)[ok], r[ok])
    exact = 1e-20 * np.einsum("bm,bm->b", yr, yr) + 1e-300  # a fit at rounding level needs no more steps
    return _Rows(idx, p[idx], lower[idx], upper[idx], yr, cost[ok], exact, np.full(n, float(lam0)),
                 np.full(n, 2.0), np.zeros(n, dtype=np.int64), hess, descent, damp)


def _normal(jt: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gauss-Newton normal equations from the transposed Jacobian jt (B, P, M) and residual r (B, M):
    J'J (B, P, P), the descent direction -J'r (B, P) and Marquardt's damping scale, diag(J'J) floored
    (a parameter the data do not move, e.g. a centre under a zero amplitude, is still damped)."""
    hess = jt @ jt.transpose(0, 2, 1)
    diag = np.diagonal(hess, axis1=1, axis2=2)
    return hess, -(jt @ r[..., None])[..., 0], np.maximum(diag, 1e-12 * diag.max(axis=1, keepdims=True) + 1e-300)


def _cholesky_solve(a: np.ndarray, diag: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve (a + diag(diag)) x = b for every stack (B, P, P) by Cholesky, one (B,) column op at a time.

    Unrolled over the P x P entries so each numpy call works on all B systems at once (far cheaper than
    B LAPACK calls for P = 4 or 7). A system that is not positive definite gives NaN, a step the solver rejects.
    """
    n = a.shape[1]
    low: list[list[np.ndarray]] = [[] for _ in range(n)]  # low[i][j]: L_ij (j < i); inv[i]: 1 / L_ii
    inv: list[np.ndarray] = []
    for j in range(n):
        s = a[:, j, j] + diag[:, j]
        for k in range(j):
            s -= low[j][k] ** 2
        inv.append(1.0 / np.sqrt(s))
        for i in range(j + 1, n):
            v = a[:, i, j].copy()
            for k in range(j):
                v -= low[i][k] * low[j][k]
            low[i].append(v * inv[j])
    z: list[np.ndarray] = []
    for i in range(n):
        v = b[:, i].copy()
        for k in range(i):
            v -= low[i][k] * z[k]
        z.append(v * inv[i])
    out = np.empty_like(b)
    for i in reversed(range(n)):
        v = z[i]
        for k in range(i + 1, n):
            v = v - low[k][i] * out[:, k]
        out[:, i] = v * inv[i]
    return out


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
    """Prediction and analytic Jacobian together, the two Gaussians stacked (2, B, M) so that every numpy call
    does both. The Jacobian is a (B, M, 7) view of (7, B, M) storage: each of its columns is one contiguous
    block, so the products that fill it run as single long loops instead of B loops over M."""
    n, m = len(p), len(x)
    inv = 1.0 / p[:, 3::3].T  # (2, B): 1 / se, 1 / si
    z = np.stack([inv, -p[:, 2::3].T * inv], axis=-1) @ np.stack([x, np.ones(m)])  # (x - centre) / width
    jac = np.empty((7, n, m))
    jac[0] = 1.0
    g = jac[1::3]  # d/dae, d/dai
    np.exp(-0.5 * z * z, out=g)
    np.negative(g[1], out=g[1])
    amp_g = p[:, 1::3].T[:, :, None] * g  # ae ge, -ai gi
    np.multiply(amp_g, z * inv[:, :, None], out=jac[2::3])  # d/dme, d/dmi
    np.multiply(jac[2::3], z, out=jac[3::3])  # d/dse, d/dsi
    return amp_g[0] + amp_g[1] + p[:, :1], jac.transpose(1, 2, 0)


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
