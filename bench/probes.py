"""Batched probes vs one scikit-learn LogisticRegression per (model, L2) in a Python loop.

Same features, labels, L2 grid, iteration cap and gradient tolerance (catalog analysis.probes; both stop
when max |gradient| of the same mean-loss objective is below it); prints both times, their
ratio and the largest test-accuracy difference. Usage: python bench/probes.py [--models 8] [--features 128]
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from actstore.analysis.probes import accuracy, fit_probes
from actstore.catalog import load_catalog


def features(models: int, n: int, f: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Model m encodes the label linearly with gain growing over models, plus unit noise and an offset."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    proto = rng.normal(size=(models, k, f)) / np.sqrt(f)
    gain = np.linspace(0.5, 4.0, models)[:, None, None]
    return gain * proto[:, y] * 3 + rng.normal(size=(models, n, f)) + 1.0, y


def main() -> None:
    """Parse the problem size, pin threads, compare."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", type=int, default=8)
    ap.add_argument("--features", type=int, default=128)
    ap.add_argument("--train", type=int, default=4096)
    ap.add_argument("--test", type=int, default=2048)
    ap.add_argument("--classes", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for both sides (torch and BLAS)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's ConvergenceWarning at the shared iteration cap
        compare(args)


def compare(args: argparse.Namespace) -> None:
    """Time both on the same data; print the times, their ratio and the accuracy difference."""
    cfg = load_catalog(profile="paper")["analysis"]["probes"]
    grid = np.asarray(cfg["l2_grid"], dtype=np.float64)
    n, k = args.train, args.classes
    x, y = features(args.models, n + args.test, args.features, k, seed=0)
    train, test, y_train, y_test = x[:, :n], x[:, n:], y[:n], y[n:]

    t0 = time.perf_counter()
    probes = fit_probes(train, y_train, k, grid, max_iter=cfg["max_iter"], tolerance=cfg["tolerance"])
    ours = accuracy(probes.predict(test), y_test)  # (models, L)
    t_batched = time.perf_counter() - t0

    t0 = time.perf_counter()
    theirs = np.zeros_like(ours)
    for m in range(args.models):
        for i, l2 in enumerate(grid):
            clf = LogisticRegression(C=1.0 / (l2 * n), max_iter=cfg["max_iter"], tol=cfg["tolerance"])
            clf.fit(train[m], y_train)
            theirs[m, i] = (clf.predict(test[m]) == y_test).mean()
    t_loop = time.perf_counter() - t0

    diff = np.abs(ours - theirs)
    print(f"problem: {args.models} models x {len(grid)} L2 = {args.models * len(grid)} probes; "
          f"{n} train / {args.test} test samples, {args.features} features, {k} classes, {args.threads} thread(s)")
    print(f"batched torch L-BFGS : {t_batched:8.2f} s")
    print(f"sklearn loop ({args.models * len(grid)} fits): {t_loop:8.2f} s")
    print(f"speed-up (loop / batched): {t_loop / t_batched:.2f}x")
    print(f"test accuracy |batched - sklearn|: max {diff.max():.4f}, mean {diff.mean():.4f}")
    print("accuracy per model at the best L2 (batched / sklearn):",
          " ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(ours.max(1), theirs.max(1))))


if __name__ == "__main__":
    main()
