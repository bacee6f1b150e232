"""Stimulus generation speed: the vectorized tuning grid against a per-image loop of the same formula
(measured in the same run), and the wall time of every stimulus set of a profile.

Usage: .venv/bin/python bench/stimuli_bench.py [--profile paper]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from actstore.allocator import retain_freed_memory
from actstore.catalog import load_catalog
from actstore.stimuli import generate, gratings
from actstore.stimuli.recipes import axis_values


def per_image_grid(recipe: dict) -> np.ndarray:
    """Baseline: one gratings() call per grid point."""
    ori, sf = axis_values(recipe["orientation_deg"]), axis_values(recipe["sf_cpp"])
    phase, contrast = np.deg2rad(axis_values(recipe["phase_deg"])), axis_values(recipe["contrast"])
    out = np.empty((len(ori), len(sf), len(phase), len(contrast), *recipe["frame_shape"]), np.float32)
    for i, o in enumerate(ori):
        for j, f in enumerate(sf):
            for k, p in enumerate(phase):
                for m, c in enumerate(contrast):
                    out[i, j, k, m] = gratings(recipe["frame_shape"], o, f, p, c, recipe["luminance"])
    return out


def best_of(repeats: int, run):
    """The last result of `run()` and its fastest wall time over `repeats` calls."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t)
    return out, min(times)


def main() -> None:
    retain_freed_memory()  # the allocator setting the command line runs with (actstore/allocator.py)
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="paper")
    cat = load_catalog(profile=ap.parse_args().profile)
    grid = cat.recipe("tuning_grid")
    fast, t_fast = best_of(3, lambda: generate(grid, cat["run_seed"]).stimulus.values)
    slow, t_slow = best_of(3, lambda: per_image_grid(grid))
    assert np.array_equal(fast, slow)
    print(f"tuning_grid {fast.shape[:4]}: vectorized {t_fast:.2f} s, per-image loop {t_slow:.2f} s "
          f"(best of 3), speed-up x{t_slow / t_fast:.1f}")
    movie = np.random.default_rng(0).uniform(0, 1, (6000, *grid["frame_shape"])).astype(np.float32)
    for name in cat["stimuli"]:
        t = time.perf_counter()
        ds = generate(cat.recipe(name), cat["run_seed"], movie)
        print(f"{cat.profile} {name}: {dict(ds.stimulus.sizes)} {ds.stimulus.nbytes / 2**20:.0f} MiB "
              f"in {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
