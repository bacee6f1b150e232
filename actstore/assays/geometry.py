"""`actstore analyze geometry`: eigenspectra and power-law exponents (design 6.4) of every complete model's
GRU final state, encoder output and layer spaces over the reference clips -> analysis/geometry.zarr
(`alpha_<space>`, `effective_rank_<space>` per model; `eigenvalues` with a space dim).

The encoder space uses the LAST frame's encoder output per clip (one D-vector per clip, like the GRU); a layer
space holds only the last frame, and only its arch's own units (not the store's padding) enter the spectrum.
Features are read lazily (into memory once when small, IN_MEMORY_BYTES); the spectrum is exact (LAPACK, or a
tall-and-skinny QR on Dask) or a randomized SVD when very wide.
Eigenvalues below `relative_floor` x the largest are stored as NaN: they are rounding noise (values like 1e-300 of
rank-deficient features), not variance, so no reader can fit or plot them; `effective_rank_<space>` counts the rest.
`alpha_<space>_se` is alpha's delete-a-group jackknife SE over the clips (`jackknife_groups` interleaved groups),
`alpha_<space>_n` the clips: every seed is fitted on the same clips, so the seeds' errors are not independent.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from actstore.analysis.geometry import eigenspectrum, jackknife_se, powerlaw_fit
from actstore.assays.base import Assay, Sources, Zoo
from actstore.assays.inputs import model_grid
from actstore.store.ledger import complete_models

VERSION = "geometry/4"  # 4: alpha_<space>_se (jackknife over the clips) and alpha_<space>_n
STORE = "reference_clips"
STEP_DIMS = ("chunk", "frame")  # per-clip dims whose last entry is used
IN_MEMORY_BYTES = 256 * 2**20  # a space's clip features up to this size (float64) are read once into memory for
# its fit and the jackknife's refits (on the demo 2.6 s -> 8.0 s with them, 19 s if each refit re-reads); larger
# ones stay lazy Dask arrays, re-read per refit, so matrices larger than memory still work


def clip_features(ds: xr.Dataset, arch: str, seed: int, space: str) -> xr.DataArray:
    """(trial, features) of one model, lazy: the last chunk's GRU state, the last frame's encoder output, or a
    layer's units (its arch's own width)."""
    var = ds[space].sel(arch=arch, seed=seed)
    var = var.isel({d: -1 for d in STEP_DIMS if d in var.dims})
    if f"{space}_width" in ds.coords:
        var = var.isel({var.dims[-1]: slice(0, int(ds[f"{space}_width"].sel(arch=arch)))})
    return var


class Geometry(Assay):
    """Eigenspectra and power-law exponents of every complete model's spaces over the reference clips."""

    name = "geometry"
    version = VERSION
    summary = "population geometry: eigenspectrum power law (alpha) and effective rank per space"
    position = 40
    stores = (STORE,)
    columns = {"geometry": ("alpha_gru",)}
    errors = {"alpha_gru": False}  # every seed is fitted on the same reference clips
    pairs = (("prediction", "geometry"), ("geometry", "probes"))

    def compute(self, sources: Sources) -> tuple[xr.Dataset, list[str]]:
        models = complete_models(sources.ledgers[STORE], sources.zoo.models)
        return spectra_and_fits(sources.stores[STORE], models, self.params, sources.zoo)

    def report(self, found, sections, figures) -> None:
        from actstore.report import sections as rs

        rs.geometry(found, sections, figures)


def spectra_and_fits(ds: xr.Dataset, models: list[tuple[str, int]], cfg: dict,
                     zoo: Zoo) -> tuple[xr.Dataset, list[str]]:
    """The given models' spectrum and fit per space, on the zoo's (arch, seed) grid, and a summary line."""
    archs, seeds = zoo.archs, zoo.seeds
    ranks = tuple(cfg["ranks"])
    spaces = list(ds.attrs["spaces"])
    spectrum_cfg = {"n_components": cfg["n_components"], "exact_max_features": cfg["randomized_above"],
                    "power_iterations": cfg["power_iterations"]}
    fit_cfg = {key: cfg[key] for key in ("relative_floor", "min_fit_ranks", "min_fit_fraction")}

    def alpha_of(features: xr.DataArray) -> float:
        return powerlaw_fit(eigenspectrum(features, **spectrum_cfg), ranks, **fit_cfg).alpha

    spectra: dict[str, list[np.ndarray]] = {space: [] for space in spaces}
    se: dict[str, list[float]] = {space: [] for space in spaces}
    clips = {space: [] for space in spaces}
    for arch, seed in models:
        for space in spaces:
            features = clip_features(ds, arch, seed, space)
            if features.size * 8 <= IN_MEMORY_BYTES:  # read once for the fit and the jackknife's refits
                features = features.compute()
            spectra[space].append(eigenspectrum(features, **spectrum_cfg))
            se[space].append(jackknife_se(alpha_of, features, cfg["jackknife_groups"]))
            clips[space].append(features.shape[0])
    fits = {space: [powerlaw_fit(s, ranks, **fit_cfg) for s in specs] for space, specs in spectra.items()}
    n_rank = max(len(s) for specs in spectra.values() for s in specs)
    # spectra descend, so the eigenvalues above the floor are the first effective_rank ones; the rest become NaN
    kept = {space: np.stack([np.pad(s[:f.effective_rank], (0, n_rank - f.effective_rank), constant_values=np.nan)
                             for s, f in zip(spectra[space], fits[space])]) for space in spaces}
    alphas = {space: np.array([f.alpha for f in fits[space]]) for space in spaces}
    variables = {"eigenvalues": (("space", "arch", "seed", "rank"),
                                 np.stack([model_grid(kept[s], models, archs, seeds) for s in spaces]))}
    for space in spaces:
        reason = dict(zip(models, (f.reason for f in fits[space])))
        variables[f"alpha_{space}"] = (("arch", "seed"), model_grid(alphas[space], models, archs, seeds))
        variables[f"alpha_{space}_se"] = (("arch", "seed"), model_grid(
            np.where(np.isfinite(alphas[space]), se[space], np.nan), models, archs, seeds))  # no fit, no SE
        variables[f"alpha_{space}_n"] = (("arch", "seed"), model_grid(
            np.array(clips[space], dtype=np.float64), models, archs, seeds))
        variables[f"alpha_{space}_reason"] = (("arch", "seed"), np.array(
            [[reason.get((a, z), "model not complete") for z in seeds] for a in archs], dtype=str))
        variables[f"effective_rank_{space}"] = (("arch", "seed"), model_grid(
            np.array([f.effective_rank for f in fits[space]]), models, archs, seeds))
    out = xr.Dataset(
        variables, coords={"space": spaces, "arch": np.array(archs, dtype=object), "seed": seeds, "rank": np.arange(1, n_rank + 1)},
        attrs={"ranks": list(ranks), "relative_floor": cfg["relative_floor"],
               "jackknife_groups": cfg["jackknife_groups"],
               "below_floor": "eigenvalues below relative_floor x the largest are stored as NaN",
               "encoder_features": "last frame's encoder output per clip",
               "standardized": "each feature across clips; eigenvalues of the covariance (PCA)"})
    return out, [f"geometry: {len(models)} models, alpha_gru mean {np.nanmean(alphas['gru']):.3f}, "
                 f"alpha_encoder mean {np.nanmean(alphas['encoder']):.3f}"]
