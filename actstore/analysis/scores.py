"""What fitted probes score, in numpy alone: accuracies per level, balanced accuracy, normalized AUCs, their
binomial standard errors, the validation choice of L2, and the train subsets and standardization the probes
are fitted on. The torch solver is in analysis/probes.py; scoring and checking results never load it.
"""
from __future__ import annotations

import numpy as np


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Fraction correct over the last axis; predicted (..., n), labels (n,)."""
    return (np.asarray(predicted) == np.asarray(labels)).mean(-1)


def best_strength(val_accuracy: np.ndarray, val_loss: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Per model (row) the index into grid of the best validation accuracy; ties: lower validation
    cross-entropy, then the stronger L2. (M, L), (M, L), (L,) -> (M,)."""
    return np.array([np.lexsort((-grid, val_loss[i], -val_accuracy[i]))[0] for i in range(len(val_accuracy))])


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
