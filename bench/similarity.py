"""Batched debiased linear CKA over every pair of models against per-pair numpy loops, on demo-shaped features.

    .venv/bin/python bench/similarity.py [--models 24] [--stimuli 1000] [--features 128] [--repeats 3]

Baselines, measured in the same run: `loop` computes each pair's CKA from the two models' features as a
per-pair function does (Gram matrices formed per call); `loop, cached Grams` forms every Gram matrix once and
loops over pairs only for the HSIC terms. The batched path is actstore.analysis.similarity.cka_matrix over the
stacked Grams (numpy; Dask gives the same values blockwise). Printed: wall times (minimum over repeats), the
ratios, and the largest difference between the matrices (equal values: <= 1e-10).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from actstore.allocator import retain_freed_memory
from actstore.analysis.similarity import centred_gram, cka_matrix


def unbiased_hsic(k: np.ndarray, l_: np.ndarray) -> float:
    """Song et al. (2012) for one pair of centred Gram matrices."""
    n = len(k)
    k, l_ = k.copy(), l_.copy()
    np.fill_diagonal(k, 0)
    np.fill_diagonal(l_, 0)
    kl1 = k @ l_.sum(axis=1)
    return float((np.sum(k * l_) + k.sum() * l_.sum() / ((n - 1) * (n - 2)) - 2 / (n - 2) * kl1.sum())
                 / (n * (n - 3)))


def pair_cka(x: np.ndarray, y: np.ndarray) -> float:
    k, l_ = centred_gram(x), centred_gram(y)
    return unbiased_hsic(k, l_) / np.sqrt(unbiased_hsic(k, k) * unbiased_hsic(l_, l_))


def loop(feats: list[np.ndarray]) -> np.ndarray:
    m = len(feats)
    out = np.eye(m)
    for i in range(m):
        for j in range(i + 1, m):
            out[i, j] = out[j, i] = pair_cka(feats[i], feats[j])
    return out


def loop_cached(feats: list[np.ndarray]) -> np.ndarray:
    grams = [centred_gram(f) for f in feats]
    self_h = [unbiased_hsic(g, g) for g in grams]
    m = len(feats)
    out = np.eye(m)
    for i in range(m):
        for j in range(i + 1, m):
            out[i, j] = out[j, i] = unbiased_hsic(grams[i], grams[j]) / np.sqrt(self_h[i] * self_h[j])
    return out


def batched(feats: list[np.ndarray]) -> np.ndarray:
    return cka_matrix(np.stack([centred_gram(f) for f in feats]), debiased=True)


def best(fn, feats, repeats: int) -> tuple[float, np.ndarray]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(feats)
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    retain_freed_memory()  # the allocator setting the command line runs with (actstore/allocator.py)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=24, help="8 archs x 3 seeds")
    parser.add_argument("--stimuli", type=int, default=1000, help="the demo's reference clips")
    parser.add_argument("--features", type=int, default=128, help="the encoder output's width")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    shared = rng.normal(size=(args.stimuli, 16))
    feats = [shared @ rng.normal(size=(16, args.features)) + rng.normal(size=(args.stimuli, args.features))
             for _ in range(args.models)]
    t_batch, c_batch = best(batched, feats, args.repeats)
    t_cached, c_cached = best(loop_cached, feats, args.repeats)
    t_loop, c_loop = best(loop, feats, 1 if args.repeats > 1 else args.repeats)
    pairs = args.models * (args.models - 1) // 2
    print(f"{args.models} models ({pairs} pairs), {args.stimuli} stimuli x {args.features} features, debiased CKA")
    print(f"{'method':<24}{'wall s':>9}{'ratio':>9}{'max |diff|':>12}")
    for name, t, c in (("loop", t_loop, c_loop), ("loop, cached Grams", t_cached, c_cached),
                       ("batched", t_batch, c_batch)):
        print(f"{name:<24}{t:>9.3f}{t / t_batch:>9.1f}{np.abs(c - c_batch).max():>12.2e}")


if __name__ == "__main__":
    main()
