"""Linear probes on frozen features (design 6.3), fitted for every model and L2 strength in one batched solve.

Convention: a probe minimises  mean_i loss(x_i W + b, y_i) + (l2 / 2) * ||W||^2  (bias not penalised),
with softmax cross-entropy for K > 2 classes and one-logit binary cross-entropy for K = 2. With n training
samples this is scikit-learn's LogisticRegression(C=C) for  l2 = 1 / (C * n)  (i.e. C = 1 / (l2 * n)).
All (model, l2) problems share labels and are independent: one batched L-BFGS (`batched_lbfgs`) runs them
together, each with its own curvature history, step size and stop test; every evaluation covers all problems
still converging in one pass (batched matmuls over models, analytic gradients).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


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
    t = torch.as_tensor(np.asarray(x, dtype=np.float64))
    if not torch.isfinite(t).all():
        raise ValueError("probe features hold NaN or inf (an incomplete model?)")
    return t


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


def fit_probes(features: np.ndarray, labels: np.ndarray, n_classes: int, l2: np.ndarray,
               max_iter: int = 200, tolerance: float = 1e-6) -> Probes:
    """Fit M x L probes: features (M, n, F), labels (n,) in 0..n_classes-1 shared by all models, l2 (L,).

    Deterministic (zero start, float64). Features are centred internally for conditioning; the
    returned bias is for the raw features, so the solution equals an uncentred fit.
    """
    x = _tensor(features)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    lam = torch.as_tensor(np.asarray(l2, dtype=np.float64))
    if y.numel() != x.shape[1] or (y < 0).any() or (y >= n_classes).any():
        raise ValueError(f"labels must be {x.shape[1]} integers in 0..{n_classes - 1}")
    mean = x.mean(1, keepdim=True)
    xc = x - mean
    m, n, f = x.shape
    k = 1 if n_classes == 2 else n_classes
    n_l2 = len(lam)

    onehot = torch.nn.functional.one_hot(y, k).to(torch.float64) if k > 1 else y.to(torch.float64)[:, None]

    def objective(theta: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss (R,) and analytic gradient (R, D) of problems `rows` (sorted; row = model * L + l2 index)
        at theta (R, D) = flattened [W (F*K), b (K)]. Each model is evaluated with as many strengths as
        its most-populated one; when at most half of the models still have rows, only those are read."""
        mi, li = rows // n_l2, rows % n_l2
        if 2 * len(torch.unique_consecutive(mi)) > m:
            models, group = torch.arange(m), mi
        else:
            models, group = torch.unique_consecutive(mi, return_inverse=True)
        counts = torch.bincount(group, minlength=len(models))
        pos = torch.arange(len(rows)) - (torch.cumsum(counts, 0) - counts)[group]
        w = theta[:, : f * k].reshape(-1, f, k)
        wpad = torch.zeros(len(models), int(counts.max()), f, k, dtype=theta.dtype)
        wpad[group, pos] = w
        bpad = torch.zeros(len(models), int(counts.max()), k, dtype=theta.dtype)
        bpad[group, pos] = theta[:, f * k:]
        xs = xc if len(models) == m else xc[models]
        z = _logits(xs, wpad, bpad)  # (models, slots, n, K)
        if k == 1:
            data = (torch.nn.functional.softplus(z) - onehot * z).mean((2, 3))
            dz = (torch.sigmoid(z) - onehot) / n
        else:
            data = (torch.logsumexp(z, -1) - (z * onehot).sum(-1)).mean(-1)
            dz = (torch.softmax(z, -1) - onehot) / n
        # dL/dW = x^T dz, computed as (dz^T x)^T: the contiguous side leads (much faster for narrow dz)
        slots = dz.shape[1]
        dz_flat = dz.permute(0, 1, 3, 2).reshape(len(models), slots * k, n)
        grad_w = (dz_flat @ xs).reshape(len(models), slots, k, f).transpose(2, 3)[group, pos]
        grad_b = dz.sum(2)[group, pos]
        loss = data[group, pos] + 0.5 * lam[li] * (w**2).sum((1, 2))
        grad = torch.cat([(grad_w + lam[li, None, None] * w).reshape(len(rows), -1), grad_b], 1)
        return loss, grad

    theta = batched_lbfgs(objective, torch.zeros(m * n_l2, (f + 1) * k, dtype=torch.float64),
                          max_iter=max_iter, tolerance=tolerance)
    w = theta[:, : f * k].reshape(m, n_l2, f, k)
    b = theta[:, f * k:].reshape(m, n_l2, k) - torch.einsum("mf,mlfk->mlk", mean[:, 0], w)
    return Probes(w, b)


def batched_lbfgs(objective, theta: torch.Tensor, max_iter: int = 200, tolerance: float = 1e-6,
                  history: int = 10, max_halvings: int = 40) -> torch.Tensor:
    """Minimise P independent smooth convex problems at once: each row of theta (P, D) keeps its own
    L-BFGS history and its own backtracking (Armijo) step, and stops when its max |gradient| <= tolerance.
    `objective(theta[rows], rows)` returns the loss (R,) and gradient (R, D) of the given rows; only rows
    still being optimized are evaluated."""
    p, d = theta.shape
    s_hist = torch.zeros(history, p, d, dtype=theta.dtype)
    y_hist = torch.zeros(history, p, d, dtype=theta.dtype)
    rho = torch.zeros(history, p, dtype=theta.dtype)
    loss, grad = objective(theta, torch.arange(p))
    active = grad.abs().amax(1) > tolerance
    for it in range(max_iter):
        if not active.any():
            break
        order = [(it - 1 - j) % history for j in range(min(it, history))]  # newest first
        q = grad.clone()
        alphas = []
        for j in order:
            a = rho[j] * (s_hist[j] * q).sum(1)
            q -= a[:, None] * y_hist[j]
            alphas.append(a)
        if order:
            sy, yy = (s_hist[order[0]] * y_hist[order[0]]).sum(1), (y_hist[order[0]] ** 2).sum(1)
            q *= torch.where(rho[order[0]] > 0, sy / yy.clamp_min(1e-300), 1.0)[:, None]
        else:
            q /= grad.abs().sum(1).clamp_min(1.0)[:, None]  # first step: at most unit length
        for j, a in zip(reversed(order), reversed(alphas)):
            q += s_hist[j] * (a - rho[j] * (y_hist[j] * q).sum(1))[:, None]
        direction = -q
        slope = (grad * direction).sum(1)
        uphill = slope >= 0  # a stale curvature pair: fall back to steepest descent
        direction[uphill] = -grad[uphill]
        slope = torch.where(uphill, -(grad**2).sum(1), slope)
        direction[~active] = 0
        step = torch.ones(p, dtype=theta.dtype)
        new_loss, new_grad = loss.clone(), grad.clone()
        pending = active.clone()
        for _ in range(max_halvings):
            rows = pending.nonzero()[:, 0]
            trial_loss, trial_grad = objective(theta[rows] + step[rows, None] * direction[rows], rows)
            new_loss[rows], new_grad[rows] = trial_loss, trial_grad
            pending[rows[trial_loss <= loss[rows] + 1e-4 * step[rows] * slope[rows]]] = False
            if not pending.any():
                break
            step[pending] /= 2
        stuck = pending  # no decrease even at a tiny step: numerically converged
        change = step[:, None] * direction
        change[stuck] = 0
        new_loss[stuck], new_grad[stuck] = loss[stuck], grad[stuck]
        slot = it % history
        s_hist[slot], y_hist[slot] = change, new_grad - grad
        sy = (change * (new_grad - grad)).sum(1)
        rho[slot] = torch.where(sy > 1e-12, 1.0 / sy.clamp_min(1e-12), 0.0)
        theta, loss, grad = theta + change, new_loss, new_grad
        active = active & ~stuck & (grad.abs().amax(1) > tolerance)
    return theta


def log_loss(probes: Probes, features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean cross-entropy of every probe on (features, labels): (M, L)."""
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    return _mean_loss(probes.logits(features), y).numpy()


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Fraction correct over the last axis; predicted (..., n), labels (n,)."""
    return (np.asarray(predicted) == np.asarray(labels)).mean(-1)


def fit_selected(train: np.ndarray, y_train: np.ndarray, val: np.ndarray, y_val: np.ndarray, n_classes: int,
                 l2_grid: np.ndarray, max_iter: int = 200, tolerance: float = 1e-6) -> tuple[Probes, np.ndarray]:
    """Fit every strength of the grid, keep per model the best validation accuracy (ties: lower validation
    cross-entropy, then the stronger L2). Returns the chosen probes (L = 1) and the chosen l2 per model (M,)."""
    grid = np.asarray(l2_grid, dtype=np.float64)
    probes = fit_probes(train, y_train, n_classes, grid, max_iter=max_iter, tolerance=tolerance)
    acc = accuracy(probes.predict(val), y_val)
    loss = log_loss(probes, val, y_val)
    best = np.array([np.lexsort((-grid, loss[i], -acc[i]))[0] for i in range(len(acc))])
    return probes.select(best), grid[best]


def standardized(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Standardize (M, n, F) feature sets per model and feature with the train set's mean and SD
    (SD 0 -> 1), so validation and test use training statistics only."""
    mean = train.mean(1, keepdims=True)
    sd = train.std(1, keepdims=True)
    sd = np.where(sd > 0, sd, 1.0)
    return [(x - mean) / sd for x in (train, *others)]


def balanced_subsets(labels: np.ndarray, sizes: list[int], n_classes: int, seed: int) -> list[np.ndarray]:
    """Nested class-balanced training subsets (size/n_classes per class), one per size, drawn with `seed`."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in range(n_classes)]
    available = min(len(p) for p in per_class)
    out = []
    for size in sizes:
        if size % n_classes or size // n_classes > available:
            raise ValueError(f"train size {size}: needs a multiple of {n_classes} with at most "
                             f"{available} per class (the pool has {available * n_classes} balanced)")
        out.append(np.sort(np.concatenate([p[: size // n_classes] for p in per_class])))
    return out


def feasible_sizes(labels: np.ndarray, sizes: list[int], n_classes: int) -> list[int]:
    """The sizes of `sizes` that a class-balanced draw from `labels` can supply."""
    available = min(int((np.asarray(labels) == c).sum()) for c in range(n_classes))
    return [s for s in sizes if s % n_classes == 0 and s // n_classes <= available]


def accuracy_by_level(predicted: np.ndarray, labels: np.ndarray, level: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Accuracy among the trials at each grid level (e.g. coherence): (..., n) -> (..., G); NaN if none."""
    correct = np.asarray(predicted) == np.asarray(labels)
    return np.stack([_mean_where(correct, np.isclose(level, g)) for g in grid], -1)


def level_counts(level: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Number of trials at each grid level (matched as accuracy_by_level matches them): (n,) -> (G,)."""
    return np.array([int(np.isclose(level, g).sum()) for g in grid])


def detection_rates(predicted: np.ndarray, labels: np.ndarray, level: np.ndarray,
                    grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Hit rate (..., G) among the targets (label 1) at each grid level, correct-rejection rate (...) over the
    blanks (label 0), and the trials they rest on: targets per level (G,) and blanks.

    A grid level with no target trials uses the false-alarm rate as its hit rate, so its balanced
    accuracy is exactly 0.5."""
    predicted, labels, level = np.asarray(predicted), np.asarray(labels), np.asarray(level)
    blank = labels == 0
    rejection = _mean_where(predicted == 0, blank)
    targets = [(labels == 1) & np.isclose(level, g) for g in grid]
    hit = np.stack([_mean_where(predicted == 1, t) if t.any() else 1.0 - rejection for t in targets], -1)
    return hit, rejection, np.array([int(t.sum()) for t in targets]), int(blank.sum())


def balanced_accuracy_by_level(predicted: np.ndarray, labels: np.ndarray, level: np.ndarray,
                               grid: np.ndarray) -> np.ndarray:
    """(hit rate on targets at level c + correct-rejection rate on blanks) / 2 for each c of the grid.

    Blanks are label 0; a grid level with no target trials (c = 0: a zero-contrast target is a blank)
    uses the false-alarm rate as its hit rate, which gives exactly 0.5. (..., n) -> (..., G)."""
    hit, rejection, _, _ = detection_rates(predicted, labels, level, grid)
    return (hit + rejection[..., None]) / 2


def _mean_where(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    n = mask.sum()
    return values[..., mask].mean(-1) if n else np.full(values.shape[:-1], np.nan)


def trapezoid_weights(x: np.ndarray) -> np.ndarray:
    """Weights w (G,) with normalized_auc(values, x) = values @ w: the trapezoid rule's weights over x
    divided by the x range (they sum to 1), so an AUC is a weighted mean of its levels."""
    x = np.asarray(x, dtype=np.float64)
    half = np.diff(x) / 2
    return (np.append(half, 0.0) + np.insert(half, 0, 0.0)) / (x[-1] - x[0])


def normalized_auc(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Trapezoid area of values (..., G) over x (G,), divided by the x range: a mean level in [0, 1]."""
    return np.asarray(values, dtype=np.float64) @ trapezoid_weights(x)


def chance_adjusted(value: np.ndarray, chance: float) -> np.ndarray:
    """(value - chance) / (1 - chance): 0 at chance, 1 at perfect."""
    return (np.asarray(value) - chance) / (1.0 - chance)


# Standard errors of the endpoints above. Every one is the plug-in binomial SE of fractions over
# independent test trials (the models are fixed; only the finite test set is random), so a fraction
# of 0 or 1 has SE 0.


def binomial_se(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """SE of a fraction p of n independent trials: sqrt(p (1 - p) / n); NaN where n = 0."""
    p, n = np.asarray(p, dtype=np.float64), np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, np.sqrt(p * (1 - p) / n), np.nan)


def balanced_accuracy_se(hit: np.ndarray, n_target: np.ndarray, rejection: np.ndarray,
                         n_blank: np.ndarray) -> np.ndarray:
    """SE of (hit + rejection) / 2, targets and blanks being different trials: 0.5 sqrt(se_hit^2 + se_cr^2).
    0 where there are no targets (the value is then exactly 0.5, see detection_rates). Broadcasts."""
    se = 0.5 * np.hypot(binomial_se(hit, n_target), binomial_se(rejection, n_blank))
    return np.where(np.asarray(n_target) > 0, se, 0.0)


def trapezoid_se(se: np.ndarray, x: np.ndarray) -> np.ndarray:
    """SE of normalized_auc(values, x) when the G levels rest on disjoint trials (independent errors, e.g.
    accuracy per coherence): sqrt(sum_g (w_g se_g)^2) with the trapezoid weights w. (..., G) -> (...)."""
    return np.sqrt((np.asarray(se, dtype=np.float64) ** 2) @ trapezoid_weights(x) ** 2)


def balanced_auc_se(hit: np.ndarray, n_target: np.ndarray, rejection: np.ndarray, n_blank: int,
                    x: np.ndarray) -> np.ndarray:
    """SE of normalized_auc(balanced accuracy, x) over detection_rates' output: hit (..., G), rejection (...).

    Every level shares the blanks, so the levels are not independent: with the weights w over the
    levels that have targets, AUC = 0.5 sum_g w_g hit_g + 0.5 (sum_g w_g) CR + const, whose variance is
    0.25 (sum_g w_g^2 se_hit_g^2 + (sum_g w_g)^2 se_cr^2) (hits at different levels are different trials)."""
    has = np.asarray(n_target) > 0
    w = trapezoid_weights(x) * has
    se_hit = np.where(has, binomial_se(hit, n_target), 0.0)
    return 0.5 * np.sqrt((se_hit**2) @ w**2 + (w.sum() * binomial_se(rejection, n_blank)) ** 2)


def paired_auc_se(correct: np.ndarray, x: np.ndarray) -> np.ndarray:
    """SE of normalized_auc(correct.mean(-1), x) when every level is scored on the same n test trials
    (orientation: one test set for every train size), correct (..., G, n) booleans.

    The AUC is then the mean over trials of a_i = sum_g w_g correct_gi, so its SE is SD(a) / sqrt(n)
    (ddof 0, as binomial_se: with one level it is sqrt(p (1 - p) / n)); this keeps the levels' covariance."""
    a = np.moveaxis(np.asarray(correct, dtype=np.float64), -1, -2) @ trapezoid_weights(x)
    return a.std(-1) / np.sqrt(a.shape[-1])
