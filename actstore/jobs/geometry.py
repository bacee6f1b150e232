"""`actstore analyze geometry`: eigenspectra and power-law exponents (design 6.4) of every complete model's
GRU final state and encoder output over the reference clips -> analysis/geometry.zarr.

The encoder space uses the LAST frame's encoder output per clip (one D-vector per clip, like the GRU).
Features stay lazy Dask arrays; the spectrum is a tall-and-skinny QR (or randomized SVD when very wide).
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from actstore.analysis.geometry import eigenspectrum, powerlaw_exponent
from actstore.catalog import Catalog
from actstore.jobs.inputs import (as_json, complete_models, model_grid, open_input_store, store_fingerprint,
                                  text_as_objects, up_to_date)
from actstore.store.analysis import write_analysis

VERSION = "geometry/1"
STORE = "reference_clips"
SPACES = {"gru": "chunk", "encoder": "frame"}  # feature space -> the per-clip dim whose last entry is used


def clip_features(ds: xr.Dataset, arch: str, seed: int, space: str) -> xr.DataArray:
    """(trial, features) of one model, lazy: the last chunk's GRU state, or the last frame's encoder output."""
    var = ds[space].sel(arch=arch, seed=seed)
    last = SPACES[space]
    return var.isel({last: -1}) if last in var.dims else var


def run(catalog: Catalog, root: str) -> list[str]:
    """Spectra and alphas for every complete model; 'up to date' when the store and settings are unchanged."""
    cfg = catalog["analysis"]["geometry"]
    ds = open_input_store(root, STORE)
    if ds is None:
        return [f"geometry: no {STORE}.zarr under {root}; skipped"]
    inputs = {"version": VERSION, "config": cfg, "models": catalog.models, "store": store_fingerprint(ds)}
    if up_to_date(root, "geometry", inputs):
        return ["geometry: up to date"]
    models = complete_models(ds, catalog.models)
    if not models:
        return [f"geometry: no complete models in {STORE}.zarr; skipped"]
    archs, seeds = list(catalog["zoo"]["archs"]), list(catalog["zoo"]["seeds"])
    ranks = tuple(cfg["ranks"])
    spectra: dict[str, list[np.ndarray]] = {space: [] for space in SPACES}
    for arch, seed in models:
        for space in SPACES:
            spectra[space].append(eigenspectrum(
                clip_features(ds, arch, seed, space), cfg["n_components"],
                exact_max_features=cfg["randomized_above"], power_iterations=cfg["power_iterations"]))
    n_rank = max(len(s) for specs in spectra.values() for s in specs)
    padded = {space: np.stack([np.pad(s, (0, n_rank - len(s)), constant_values=np.nan) for s in specs])
              for space, specs in spectra.items()}
    alphas = {space: np.array([powerlaw_exponent(s, ranks) for s in specs]) for space, specs in spectra.items()}
    out = xr.Dataset(
        {"eigenvalues": (("space", "arch", "seed", "rank"),
                         np.stack([model_grid(padded[s], models, archs, seeds) for s in SPACES])),
         **{f"alpha_{s}": (("arch", "seed"), model_grid(alphas[s], models, archs, seeds)) for s in SPACES}},
        coords={"space": list(SPACES), "arch": archs, "seed": seeds, "rank": np.arange(1, n_rank + 1)},
        attrs={"ranks": list(ranks), "encoder_features": "last frame's encoder output per clip",
               "standardized": "each feature across clips; eigenvalues of the covariance (PCA)"})
    path = write_analysis(text_as_objects(out), root, "geometry", as_json(inputs))
    return [f"geometry: {len(models)} models, alpha_gru mean {np.nanmean(alphas['gru']):.3f}, "
            f"alpha_encoder mean {np.nanmean(alphas['encoder']):.3f}", f"geometry: wrote {path}"]
