"""Profiles along each twin's hierarchy: per model and static space (encoder layers and output), at the space's
relative depth, the orientation probe's accuracy, the median gOSI and F1/F0 of the QC-passing units, and the
eigenspectrum's alpha; each with a standard error where one exists (binomial, bootstrap over units)."""
from __future__ import annotations

import numpy as np
import xarray as xr

from actstore.analysis.stats import median_and_se

MEDIANS = {"gosi_median": ("gosi", "qc_orientation"), "f1f0_median": ("f1f0", "qc_phase")}


def hierarchy_profiles(tuning: xr.Dataset, probes: xr.Dataset | None = None,
                       geometry: xr.Dataset | None = None) -> xr.Dataset:
    """(arch, seed, space) profiles on tuning's spaces: `depth`; `gosi_median`, `f1f0_median` with `_se` and
    `_n` (units); `orientation_id`/`_ood` with `_se` (binomial) where probes has them by space; `alpha` with
    `_se` (jackknife over the clips) where geometry has it. Absent inputs or models are NaN."""
    spaces = [str(s) for s in tuning["space"].values]
    out = xr.Dataset(coords={"arch": tuning["arch"].values, "seed": tuning["seed"].values, "space": spaces})
    out["depth"] = tuning["depth"].transpose("arch", "space").broadcast_like(out["seed"]).transpose(
        "arch", "seed", "space")
    for name, (var, qc) in MEDIANS.items():
        passing = tuning[var].where(tuning[qc].astype(bool)).transpose("arch", "seed", "space", "unit").values
        stats = np.array([[[median_and_se(passing[i, j, k]) for k in range(len(spaces))]
                           for j in range(passing.shape[1])] for i in range(passing.shape[0])])
        for suffix, m in zip(("", "_se", "_n"), np.moveaxis(stats, -1, 0)):
            out[name + suffix] = (("arch", "seed", "space"), m)
    if probes is not None:
        for test in ("id", "ood"):
            for suffix in ("", "_se"):
                name = f"orientation_{test}_by_space{suffix}"
                if name in probes:
                    out[f"orientation_{test}{suffix}"] = probes[name].reindex_like(out).astype(np.float64)
    if geometry is not None:
        for suffix in ("", "_se"):
            if suffix and "alpha_gru_se" not in geometry:  # a geometry result older than its SEs
                continue
            alpha = [geometry[f"alpha_{s}{suffix}"] if f"alpha_{s}{suffix}" in geometry
                     else xr.full_like(geometry["alpha_gru"], np.nan) for s in spaces]
            out[f"alpha{suffix}"] = xr.concat(alpha, dim="space").assign_coords(space=spaces).reindex_like(
                out).transpose("arch", "seed", "space").astype(np.float64)
    return out
