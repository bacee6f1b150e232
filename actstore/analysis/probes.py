"""Linear probes on frozen features (design 6.3), fitted for every model and L2 strength in one batched solve.

Convention: a probe minimises  mean_i loss(x_i W + b, y_i) + (l2 / 2) * ||W||^2  (bias not penalised),
with softmax cross-entropy for K > 2 classes and one-logit binary cross-entropy for K = 2. With n training
samples this is scikit-learn's LogisticRegression(C=C) for  l2 = 1 / (C * n)  (i.e. C = 1 / (l2 * n)).
All (model, l2) problems share labels and are independent: one batched L-BFGS (`batched_lbfgs`) runs them
together, each with its own curvature history, step size and stop test; every evaluation covers all problems
still converging in one pass (one pair of matmuls per model over all its strengths, analytic gradients,
float32 with a float64 finish).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from actstore.analysis.scores import accuracy, best_strength


@dataclass(frozen=True)
class Probes:
    """Fitted probes: weight (M models, L strengths, F features, K logits), bias (M, L, K); K = 1 when binary."""

    weight: torch.Tensor
    bias: torch.Tensor

    def logits(self, features: np.ndarray) -> torch.Tensor:
        """(M, n, F) features -> (M, L, n, K) logits."""
        return _logits(_tensor(features), self.weight, self.bias)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(M, n, F) features -> (M, L, n) predicted class labels."""
        z = self.logits(features)
        return (z[..., 0] > 0).long().numpy() if z.shape[-1] == 1 else z.argmax(-1).numpy()

    def select(self, index: np.ndarray) -> Probes:
        """Keep one strength per model: index (M,) into L -> probes with L = 1."""
        i = torch.as_tensor(index, dtype=torch.long)
        m = torch.arange(len(i))
        return Probes(self.weight[m, i][:, None], self.bias[m, i][:, None])


def _tensor(x: np.ndarray) -> torch.Tensor:
    a = np.asarray(x, dtype=np.float64)
    if not np.isfinite(a).all():
        raise ValueError("probe features hold NaN or inf (an incomplete model?)")
    return torch.as_tensor(a)


def _logits(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """(M, n, F) x (M, L, F, K) -> (M, L, n, K), one batched matmul per model without copying x."""
    m, l, f, k = weight.shape
    flat = weight.permute(0, 2, 1, 3).reshape(m, f, l * k)
    return (x @ flat).reshape(m, -1, l, k).permute(0, 2, 1, 3) + bias[:, :, None, :]


def _mean_loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over samples of the per-problem data loss: (M, L, n, K) logits, (n,) labels -> (M, L)."""
    if z.shape[-1] == 1:
        z = z[..., 0]
        return (torch.nn.functional.softplus(z) - y.to(z.dtype) * z).mean(-1)
    picked = z.gather(-1, y.expand(*z.shape[:-1])[..., None])[..., 0]
    return (torch.logsumexp(z, -1) - picked).mean(-1)


FLOAT32_FROM = 128  # samples; measured on the demo-shaped orientation sizes (8..1024)


def fit_probes(features: np.ndarray, labels: np.ndarray, n_classes: int, l2: np.ndarray,
               max_iter: int = 200, tolerance: float = 1e-6) -> Probes:
    """Fit M x L probes: features (M, n, F), labels (n,) in 0..n_classes-1 shared by all models, l2 (L,).

    Deterministic (zero start). Features are centred internally for conditioning; the returned bias is for
    the raw features, so the solution equals an uncentred fit. With fewer samples than features the solve
    runs in the basis of the centred samples' span (`_sample_basis`: at most n coordinates instead of F), which
    is exact: the data term sees only that span and the penalty is rotation invariant, so the optimum has no
    weight outside it; the stop test then reads the gradient in that basis. From FLOAT32_FROM samples on,
    evaluations run in float32 (half the matmul time) and every problem is finished, and its stop test
    passed, in float64 (`batched_lbfgs`'s refine); below, an evaluation costs less than the solver's own
    algebra, float32 saves nothing and its noisier line search costs iterations, so all runs in float64.
    Strongly penalised problems start from their exact Hessian at zero (`_StartHessian`).
    """
    x = _tensor(features)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    lam = torch.as_tensor(np.asarray(l2, dtype=np.float64))
    if y.numel() != x.shape[1] or (y < 0).any() or (y >= n_classes).any():
        raise ValueError(f"labels must be {x.shape[1]} integers in 0..{n_classes - 1}")
    m, n, f = x.shape
    k = 1 if n_classes == 2 else n_classes
    mean = x.mean(1, keepdim=True)
    xc = x - mean
    basis = _sample_basis(xc) if n < f else None  # (M, F, q): the solve's coordinates are xc @ basis
    if basis is not None:
        xc = xc @ basis
    q = xc.shape[2]
    x1 = torch.empty(m, n, q + 1, dtype=torch.float64)
    x1[..., :q] = xc  # centred features and a constant feature for the bias
    x1[..., q] = 1.0
    exact = _Design(x1, y, k, lam)
    x32 = x1.to(torch.float32)
    start = _StartHessian(x32[..., :q], k, lam)
    solve = dict(max_iter=max_iter, tolerance=tolerance, precondition=start.inverse)
    theta = torch.zeros(m * len(lam), k * (q + 1), dtype=torch.float64)
    if n >= FLOAT32_FROM:
        theta = batched_lbfgs(_Design(x32, y, k, lam).objective, theta, refine=exact.objective, **solve)
    else:
        theta = batched_lbfgs(exact.objective, theta, **solve)
    theta = theta.reshape(m, len(lam), k, q + 1)
    w = theta[..., :q].transpose(2, 3)
    if basis is not None:
        w = basis[:, None] @ w  # (M, 1, F, q) @ (M, L, q, K): back to the raw features
    b = theta[..., q] - torch.einsum("mf,mlfk->mlk", mean[:, 0], w)
    return Probes(w.contiguous(), b)


def _sample_basis(xc: torch.Tensor) -> torch.Tensor:
    """Orthonormal columns (M, F, n) spanning each model's centred samples xc (M, n, F), n < F (thin SVD);
    directions of a (numerically) zero singular value are zero columns, so their coordinate is the constant
    0 and keeps zero weight. With V these columns, xc = (xc V) V^T, and W = V A for the optimum A of the
    problem on xc V (a weight outside the span changes no logit and only adds penalty)."""
    _, s, vh = torch.linalg.svd(xc, full_matrices=False)
    keep = s > 1e-12 * s.amax(1, keepdim=True).clamp_min(1e-300)
    return vh.mT * keep[:, None, :]


class _Design:
    """The training set of one batched fit in one precision, laid out for the two products of an evaluation.

    A problem's parameters are theta (K, F + 1) = [W^T | b]: with the constant feature of x1 (M, n, F + 1)
    the logits z^T = theta @ x1^T and the data gradient (p - y) @ x1 are one matmul each."""

    def __init__(self, x1: torch.Tensor, y: torch.Tensor, k: int, lam: torch.Tensor):
        self.x1 = x1
        # z^T = theta @ x1^T reads x1 transposed: contiguous in float32, where most evaluations run
        self.x1t = x1.transpose(1, 2).contiguous() if x1.dtype == torch.float32 else x1.transpose(1, 2)
        self.y, self.yf = y.reshape(1, 1, -1), y.to(x1.dtype)
        self.lam, self.k = lam, k
        self.logits: torch.Tensor | None = None

    def objective(self, theta: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss (R,) and gradient (R, D) of problems `rows` (sorted; row = model * L + l2 index) at theta (R, D):
        one pair of matmuls per model over all its rows, on views of its features (no copies)."""
        k, n, d = self.k, self.x1.shape[1], self.x1.shape[2]
        r, n_l2 = len(rows), len(self.lam)
        models, counts = torch.unique_consecutive(rows // n_l2, return_counts=True)
        blocks = list(zip(models.tolist(), (counts * k).tolist()))
        t = theta.reshape(r, k, d)
        if self.logits is None or len(self.logits) < r * k:  # reused: a fresh buffer this size faults its pages in
            self.logits = self.x1.new_empty(r * k, n)
        z = _per_model(t.to(self.x1.dtype).reshape(r * k, d), self.x1t, blocks, self.logits[: r * k]).reshape(r, k, n)
        # exponents are floored at -80 (exp -> 1.8e-35): below that float32 goes subnormal, which is ~50x slower
        # in exp and in the matmul that follows; the loss changes by less than 1e-34
        if k == 1:  # softplus(z) - y z = max(z, 0) - y z - log sigmoid(|z|), logits clipped at +-80 in the sigmoids
            clipped = z.clamp(-80.0, 80.0)
            per_sample = z.clamp_min(0.0).sub_(self.yf * z).sub_(clipped.abs().sigmoid_().log_())
            dz = clipped.sigmoid_().sub_(self.yf)
        else:  # softmax in place over the class axis; the label's logit is read first
            picked = z.gather(1, self.y.expand(r, 1, n))
            low, high = torch.aminmax(z)
            if -80.0 <= low and high <= 80.0:  # no exponent can overflow or go subnormal: no shift needed
                dz = z.exp_()
                total = dz.sum(1, keepdim=True)
                per_sample = total.log().sub_(picked)
            else:
                top = z.amax(1, keepdim=True)
                dz = z.sub_(top).clamp_min_(-80.0).exp_()
                total = dz.sum(1, keepdim=True)
                per_sample = total.log().add_(top).sub_(picked)
            dz.div_(total).scatter_add_(1, self.y.expand(r, 1, n), picked.fill_(-1.0))
        g = _per_model(dz.reshape(r * k, n), self.x1, blocks).reshape(r, k, d).double().div_(n)
        lam = self.lam[rows % n_l2]
        w = t[..., : d - 1]
        g[..., : d - 1] += lam[:, None, None] * w  # the bias is not penalised
        loss = per_sample.sum((1, 2)).double() / n + 0.5 * lam * (w**2).sum((1, 2))
        return loss, g.reshape(r, -1)


def _per_model(a: torch.Tensor, x: torch.Tensor, blocks: list[tuple[int, int]],
               out: torch.Tensor | None = None) -> torch.Tensor:
    """a's consecutive row blocks, each times its model's matrix: [a[block] @ x[model] for (model, size)]."""
    out = a.new_empty(a.shape[0], x.shape[2]) if out is None else out
    if len(blocks) == len(x) and len({size for _, size in blocks}) == 1:  # every model, equal blocks: one bmm
        size = blocks[0][1]
        torch.bmm(a.view(len(x), size, -1), x, out=out.view(len(x), size, -1))
        return out
    start = 0
    for model, size in blocks:
        torch.mm(a[start:start + size], x[model], out=out[start:start + size])
        start += size
    return out


class _StartHessian:
    """Every problem's Hessian at theta = 0, where all samples predict uniformly, as L-BFGS's initial matrix.

    There the data part is c (I - 11^T/K) (x) cov(x) on W and c (I - 11^T/K) on b, with c = 1/K (softmax;
    one logit: c = 1/4, no class centring), plus l2 on W. Where the penalty is strong (l2 >= STRONG * c *
    mean feature variance) its inverse removes the ill-conditioning between the penalised weights and the
    free bias and across feature scales (measured: 2-6x fewer iterations there). With a weak penalty the
    curvature changes too much during the fit: whitening drives low-variance directions far off before it
    pulls them back (demo-shaped orientation features at the iteration cap: test accuracy 0.3 below the
    optimum's), so those softmax problems keep the identity and L-BFGS's usual scaling. One-logit problems
    start from it at every strength (STRONG_BINARY = 0; measured with bench/probes.py --demo: contrast / RDK on 128
    units with 2048 / 1024 train trials 0.78 / 0.57 s -> 0.23 / 0.20 s, and on every binary set test accuracy as
    near the optimum's as before or nearer)."""

    STRONG = 0.01  # measured on the bench and demo-shaped problems against 0.1 and against none
    STRONG_BINARY = 0.0  # one logit: every strength (see above)

    def __init__(self, xc: torch.Tensor, k: int, lam: torch.Tensor):
        """xc: the centred features (M, n, F), in float32: the eigenbasis only preconditions."""
        m, n, f = xc.shape
        self.c = 1.0 / k if k > 1 else 0.25
        gram = xc.mT @ xc if n >= f else xc @ xc.mT  # the smaller of F x F and n x n; both traces = sum x^2
        mean_var = gram.diagonal(0, 1, 2).sum(1).double() / (n * f)
        strong = self.STRONG if k > 1 else self.STRONG_BINARY
        self.exact = (lam[None, :] >= strong * self.c * mean_var[:, None]).flatten()  # (M * L,)
        self.lam, self.k, self.f = lam, k, f
        if not self.exact.any():
            return
        var, vecs = torch.linalg.eigh(gram.double() / n)
        if n < f:  # cov = V diag(var) V^T with V = x^T U / sqrt(n var)
            vecs = xc.mT.double() @ vecs / (n * var.clamp_min(1e-300)).sqrt()[:, None, :]
        keep = var > 1e-10 * var.amax(1, keepdim=True)
        self.vecs = (vecs * keep[:, None, :]).float()  # rank-deficient directions: the data never moves W there
        shrink = 1.0 / (self.c * torch.where(keep, var, 0.0)[:, None, :] + lam[None, :, None])  # (M, L, F)
        self.shrink = shrink.float()

    def inverse(self, v: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The initial inverse Hessian times v (R, D; float32) for problems `rows` (sorted)."""
        out = v.clone()
        strong = self.exact[rows]
        if strong.any():
            idx = strong.nonzero()[:, 0]
            out[idx] = self._exact(v[idx], rows[idx])
        return out

    def _exact(self, v: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        k, f, n_l2 = self.k, self.f, len(self.lam)
        t = v.reshape(len(rows), k, f + 1)
        w, b = t[..., :f], t[..., f]
        if k > 1:  # a class mean of W and b moves no softmax probability; zero-start gradients never have one
            w, b = w - w.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
        models, counts = torch.unique_consecutive(rows // n_l2, return_counts=True)
        blocks = list(zip(models.tolist(), (counts * k).tolist()))
        proj = _per_model(w.reshape(-1, f), self.vecs, blocks).reshape(len(rows), k, -1)
        proj *= self.shrink[rows // n_l2, rows % n_l2][:, None, :]
        back = _per_model(proj.reshape(-1, proj.shape[2]), self.vecs.mT, blocks).reshape(len(rows), k, f)
        return torch.cat([back, (b / self.c)[..., None]], 2).reshape(len(rows), -1)


Objective = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def batched_lbfgs(objective: Objective, theta: torch.Tensor, max_iter: int = 200, tolerance: float = 1e-6,
                  history: int = 10, max_halvings: int = 40, refine: Objective | None = None,
                  precondition: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Minimise P independent smooth convex problems at once: each row of theta (P, D) keeps its own
    L-BFGS history and its own backtracking (Armijo) step, and stops when its max |gradient| <= tolerance.
    `objective(theta[rows], rows)` returns the loss (R,) and gradient (R, D) of the given rows; only rows
    still being optimized are evaluated, and the state of finished rows is dropped.

    `precondition(v, rows)` (optional) applies a fixed initial inverse Hessian (positive definite on the
    directions the gradients span), scaled by s^T y / y^T H0 y after every step; the first step is at most
    of unit length before it. With `refine` (an exact objective; `objective` then a cheaper,
    approximate one, e.g. float32) a row whose approximate gradient passes the test, or whose approximate
    line search fails twice, is re-evaluated with `refine` and continues with it; only `refine`'s gradient
    can stop a row, so the tolerance means the same."""
    p, d = theta.shape
    out = theta.clone()
    rows = torch.arange(p)
    exact = torch.full((p,), refine is None)

    def evaluate(points: torch.Tensor, idx: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and gradient at points of the active rows idx (None: all), each with its own objective."""
        ex = exact if idx is None else exact[idx]
        at = rows if idx is None else rows[idx]
        if refine is None or not ex.any():
            return objective(points, at)
        if ex.all():
            return refine(points, at)
        value, slope_ = points.new_empty(len(points)), torch.empty_like(points)
        for sel, fn in ((~ex, objective), (ex, refine)):
            value[sel], slope_[sel] = fn(points[sel], at[sel])
        return value, slope_

    loss, grad = objective(theta, rows)
    # the direction is computed in float32 (it needs no more; half the two-loop's memory traffic)
    s_hist, y_hist = torch.zeros(2, history, p, d, dtype=torch.float32)
    rho = torch.zeros(history, p, dtype=torch.float32)
    gamma = 1.0 / grad.abs().sum(1).clamp_min(1.0).float()  # first step: at most unit length (before H0)
    stuck = None
    for it in range(max_iter + 1):
        small = grad.abs().amax(1) <= tolerance
        if stuck is not None:
            small |= stuck
        if refine is not None and (small & ~exact).any():  # confirm with the exact objective, then stay exact
            switch = (small & ~exact).nonzero()[:, 0]
            exact[switch] = True
            loss[switch], grad[switch] = refine(theta[switch], rows[switch])
            small[switch] = grad[switch].abs().amax(1) <= tolerance
        done = small & exact if it < max_iter else torch.ones_like(small)
        if done.any():
            out[rows[done]] = theta[done]
            keep = ~done
            rows, theta, loss, grad, gamma, exact = (v[keep] for v in (rows, theta, loss, grad, gamma, exact))
            s_hist, y_hist, rho = s_hist[:, keep], y_hist[:, keep], rho[:, keep]
            if not len(rows):
                break
        # two-loop recursion over the stored pairs, newest first (a pair with rho = 0 is skipped)
        slot = it % history
        order = [(it - 1 - j) % history for j in range(min(it, history))]
        q = grad.to(torch.float32)
        alphas = []
        for j in order:
            a = rho[j] * torch.linalg.vecdot(s_hist[j], q)
            q.addcmul_(a[:, None], y_hist[j], value=-1.0)
            alphas.append(a)
        q = (q if precondition is None else precondition(q, rows)).mul_(gamma[:, None])
        for j, a in zip(reversed(order), reversed(alphas)):
            q.addcmul_((a - rho[j] * torch.linalg.vecdot(y_hist[j], q))[:, None], s_hist[j])
        direction = q.double().neg_()
        slope = torch.linalg.vecdot(grad, direction)
        uphill = slope >= 0  # a stale curvature pair: fall back to steepest descent
        if uphill.any():
            direction[uphill] = -grad[uphill]
            slope = torch.where(uphill, -(grad**2).sum(1), slope)
        # backtracking: every row tries step 1 first; only failing rows are evaluated again
        new_loss, new_grad = evaluate(theta + direction, None)
        fail = _rejected(new_loss, new_grad, loss, slope, 1.0, direction, exact)
        stuck = None
        if fail.any():
            step, pending = theta.new_ones(len(rows)), fail.nonzero()[:, 0]
            tries = torch.zeros(len(rows), dtype=torch.long)
            for _ in range(max_halvings):
                tries[pending] += 1
                noisy = pending[~exact[pending] & (tries[pending] > 1)]
                if len(noisy):  # the approximate objective failed twice: go exact and retry the step
                    exact[noisy] = True
                    loss[noisy], grad[noisy] = refine(theta[noisy], rows[noisy])
                    slope[noisy] = torch.linalg.vecdot(grad[noisy], direction[noisy])
                    up = noisy[slope[noisy] >= 0]
                    direction[up] = -grad[up]
                    slope[up] = -(grad[up] ** 2).sum(1)
                shrink = pending[exact[pending] | (tries[pending] == 1)] if len(noisy) else pending
                # minimiser of the quadratic through loss(0), slope and the failed trial, in [0.1, 0.5] x step
                a, excess = step[shrink], new_loss[shrink] - loss[shrink] - step[shrink] * slope[shrink]
                step[shrink] = (-slope[shrink] * a**2 / (2 * excess)).clamp(0.1 * a, 0.5 * a)
                trial = theta[pending] + step[pending, None] * direction[pending]
                new_loss[pending], new_grad[pending] = evaluate(trial, pending)
                fail = _rejected(new_loss[pending], new_grad[pending], loss[pending], slope[pending], step[pending],
                                 direction[pending], exact[pending])
                pending = pending[fail]
                if not len(pending):
                    break
            direction.mul_(step[:, None])
            if len(pending):  # no decrease even at a tiny step: numerically converged (approximate: go exact)
                stuck = torch.zeros(len(rows), dtype=torch.bool)
                stuck[pending] = True
                direction[pending] = 0
                new_loss[pending], new_grad[pending] = loss[pending], grad[pending]
        dy = new_grad - grad
        s_hist[slot], y_hist[slot] = direction, dy
        sy = torch.linalg.vecdot(direction, dy)
        ok = sy > 1e-10 * (torch.linalg.vecdot(direction, direction) * torch.linalg.vecdot(dy, dy)).sqrt()
        rho[slot] = torch.where(ok, sy, torch.inf).reciprocal_().clamp_max_(1e30)
        # scaling of the initial matrix from the newest pair: s^T y / y^T H0 y
        dy32 = y_hist[slot]
        h0y = dy32 if precondition is None else precondition(dy32, rows)
        gamma = torch.where(ok, sy.float() / torch.linalg.vecdot(dy32, h0y).clamp_min(1e-30), gamma)
        theta, loss, grad = theta + direction, new_loss, new_grad
    return out


def _rejected(new_loss: torch.Tensor, new_grad: torch.Tensor, loss: torch.Tensor, slope: torch.Tensor,
              step: torch.Tensor | float, direction: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """Trials failing the Armijo test. Near convergence the loss change sinks into rounding (float32 sums:
    ~1e-7 relative; float64: ~1e-15), so a trial also passes where the slope fell enough and the loss did
    not rise beyond that noise (Hager and Zhang's approximate Wolfe test)."""
    fail = new_loss > loss + 1e-4 * step * slope
    if fail.any():
        flat = torch.linalg.vecdot(new_grad, direction) <= -(1 - 2e-4) * slope
        near = new_loss <= loss + torch.where(exact, 1e-12, 1e-5) * loss.abs()
        fail &= ~(flat & near)
    return fail


def log_loss(probes: Probes, features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean cross-entropy of every probe on (features, labels): (M, L)."""
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    return _mean_loss(probes.logits(features), y).numpy()


def fit_selected(train: np.ndarray, y_train: np.ndarray, val: np.ndarray, y_val: np.ndarray, n_classes: int,
                 l2_grid: np.ndarray, max_iter: int = 200, tolerance: float = 1e-6) -> tuple[Probes, np.ndarray]:
    """Fit every strength of the grid, keep per model the best validation accuracy (`best_strength`).
    Returns the chosen probes (L = 1) and the chosen l2 per model (M,)."""
    grid = np.asarray(l2_grid, dtype=np.float64)
    probes = fit_probes(train, y_train, n_classes, grid, max_iter=max_iter, tolerance=tolerance)
    best = best_strength(accuracy(probes.predict(val), y_val), log_loss(probes, val, y_val), grid)
    return probes.select(best), grid[best]
