"""Batched fitting engine vs a per-curve scipy.optimize.curve_fit loop, and the wall time of tuning.measure.

Both fit the same noisy curves from the same starts inside the same bounds (fitting.dog_setup /
naka_rushton_setup), keeping the best R^2 per curve. The scipy loop is timed on a sample of the
curves and scaled to all of them. Prints throughput ratio (target: DoG x5 >= 300x, N-R no slower)
and the median R^2 of both on the sampled curves (target: batched not lower than scipy); then times
`measure` on 24 models x 128 units over the design's grid (lazy dask, one chunk per model).
Usage: python bench/fitting.py [--curves 10000] [--sample 200] [--models 24] [--units 128]
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import xarray as xr
from scipy.optimize import curve_fit

from actstore.allocator import retain_freed_memory
from actstore.analysis import fitting
from actstore.analysis.tuning import measure
from actstore.catalog import load_catalog
from actstore.stimuli.recipes import axis_values


def noisy_dog(n: int, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    lo, hi = x.min(), x.max()
    true = np.stack([rng.normal(0, 0.2, n), rng.uniform(0.5, 2, n), rng.uniform(lo, hi, n), rng.uniform(0.3, 1.2, n),
                     rng.uniform(0, 0.8, n), rng.uniform(lo, hi, n), rng.uniform(0.8, 2.5, n)], axis=1)
    return fitting.dog(x, true) + rng.normal(0, 0.1, (n, len(x)))


def noisy_naka_rushton(n: int, c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    true = np.stack([rng.normal(0, 0.2, n), rng.choice([-1, 1], n) * rng.uniform(0.5, 2, n),
                     np.exp(rng.uniform(np.log(0.02), np.log(0.6), n)), rng.uniform(1, 4, n)], axis=1)
    return fitting.naka_rushton(c, true) + rng.normal(0, 0.05, (n, len(c)))


def scipy_best_r2(f, x: np.ndarray, y: np.ndarray, starts: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Best R^2 over the starts of one curve, one curve_fit (trf, bounded) per start."""
    best = -np.inf
    sst = np.sum((y - y.mean()) ** 2)
    for p0 in starts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p, _ = curve_fit(lambda xx, *q: f(xx, np.array(q)), x, y, p0=p0, bounds=(lower, upper), maxfev=5000)
        except RuntimeError:  # no convergence within maxfev from this start
            continue
        best = max(best, 1 - np.sum((f(x, p) - y) ** 2) / sst)
    return best


def compare(name: str, f, x: np.ndarray, y: np.ndarray, batched, setup, sample: int) -> str:
    t0 = time.perf_counter()
    fit = batched(x, y)
    t_batched = time.perf_counter() - t0
    starts, lower, upper = setup(x, y)
    t0 = time.perf_counter()
    ref = np.array([scipy_best_r2(f, x, y[i], starts[i], lower[i], upper[i]) for i in range(sample)])
    t_scipy = (time.perf_counter() - t0) / sample * len(y)
    mine, theirs = np.median(fit.r2[:sample]), np.median(ref)
    return (f"{name:<13} {len(y):>7} {t_batched:>10.2f} {t_scipy:>14.1f} {t_scipy / t_batched:>8.0f}x "
            f"{mine:>12.4f} {theirs:>12.4f} {mine - theirs:>+9.4f} {fit.success.mean():>8.3f}")


def zoo_responses(models: int, units: int, axes: dict[str, np.ndarray], rng: np.random.Generator) -> xr.DataArray:
    """Separable model cells (von Mises x log-Gaussian sf x rectified phase x Naka-Rushton) plus noise."""
    n = models * units
    ori, sf, phase, c = (axes[k] for k in ("orientation", "sf", "phase", "contrast"))
    th0, kappa = rng.uniform(0, 180, n), rng.uniform(0.2, 3, n)
    f0, simple = np.exp(rng.uniform(np.log(0.02), np.log(0.15), n)), rng.uniform(0, 1, n)
    c50, expo = np.exp(rng.uniform(np.log(0.03), np.log(0.5), n)), rng.uniform(1, 4, n)
    o = np.exp(kappa[:, None] * np.cos(2 * np.deg2rad(ori[None] - th0[:, None])))
    s = np.exp(-np.log(sf[None] / f0[:, None]) ** 2 / (2 * 0.6**2))
    p = 1 + simple[:, None] * (np.maximum(np.sin(phase[None] + rng.uniform(0, 6.3, (n, 1))), 0) * 2 - 1)
    h = c[None] ** expo[:, None] / (c[None] ** expo[:, None] + c50[:, None] ** expo[:, None])
    r = o[:, :, None, None, None] * s[:, None, :, None, None] * p[:, None, None, :, None] * h[:, None, None, None, :]
    r = (r + rng.normal(0, 0.05, r.shape)).astype(np.float32).reshape(models, units, *r.shape[1:])
    return xr.DataArray(np.moveaxis(r, 1, -1), dims=("model", *axes, "unit"),
                        coords={**axes, "model": np.arange(models), "unit": np.arange(units)})


def main() -> None:
    retain_freed_memory()  # the allocator setting the command line runs with (actstore/allocator.py)
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--curves", type=int, default=10000)
    ap.add_argument("--sample", type=int, default=200, help="curves timed in the scipy loop (then scaled)")
    ap.add_argument("--models", type=int, default=24)
    ap.add_argument("--units", type=int, default=128)
    args = ap.parse_args()
    catalog = load_catalog(profile="paper")
    cfg, recipe = catalog["analysis"]["tuning"], catalog.recipe("tuning_grid")
    axes = {"orientation": axis_values(recipe["orientation_deg"]), "sf": axis_values(recipe["sf_cpp"]),
            "phase": np.deg2rad(axis_values(recipe["phase_deg"])), "contrast": axis_values(recipe["contrast"])}
    rng = np.random.default_rng(0)
    x = np.log(axes["sf"])
    c = axes["contrast"]
    print(f"{'fit':<13} {'curves':>7} {'batched s':>10} {'scipy s (est)':>14} {'ratio':>9} "
          f"{'R2 batched':>12} {'R2 scipy':>12} {'diff':>9} {'success':>8}")
    print(compare(f"DoG x{cfg['dog_starts']}", fitting.dog, x, noisy_dog(args.curves, x, rng),
                  lambda xx, y: fitting.fit_dog(xx, y, cfg["dog_starts"]),
                  lambda xx, y: fitting.dog_setup(xx, y, cfg["dog_starts"]), args.sample))
    nr = dict(c50_bounds=tuple(cfg["nr_c50_bounds"]), n_bounds=tuple(cfg["nr_n_bounds"]))
    print(compare(f"N-R x{cfg['nr_starts']}", fitting.naka_rushton, c, noisy_naka_rushton(args.curves, c, rng),
                  lambda cc, y: fitting.fit_naka_rushton(cc, y, cfg["nr_starts"], **nr),
                  lambda cc, y: fitting.naka_rushton_setup(cc, y, cfg["nr_starts"], **nr), args.sample))
    print("(R2 columns: median over the scipy-sampled curves; success: fraction converged, batched)")
    resp = zoo_responses(args.models, args.units, axes, rng).chunk({"model": 1})
    t0 = time.perf_counter()
    out = measure(resp, **cfg, main_contrast=float(recipe["main_contrast"])).compute()
    wall = time.perf_counter() - t0
    print(f"measure: {args.models} models x {args.units} units over a {'x'.join(str(len(v)) for v in axes.values())} "
          f"grid (dask, one chunk per model): {wall:.2f} s; qc_sf {float(out.qc_sf.mean()):.2f}, "
          f"qc_contrast {float(out.qc_contrast.mean()):.2f} of units")


if __name__ == "__main__":
    main()
