"""Cross-model statistics (design 6.5): one row per (arch, seed), architecture means/SD, and Pearson r, p
plus an OLS trend for each predefined pair of columns. Missing inputs read as NaN, never as errors."""
from __future__ import annotations

import warnings

import numpy as np
import xarray as xr
from scipy import stats as sps

# column -> (tuning variable, the QC flag a unit must pass to count)
TUNING_SUMMARIES = {
    "gosi_median": ("gosi", "qc_orientation"),
    "f1f0_median": ("f1f0", "qc_phase"),
    "c50_median": ("nr_c50", "qc_contrast"),
    "pref_sf_median": ("pref_sf", "qc_sf"),
}
GROUPS = {
    "prediction": ("neural_r",),
    "probes": ("orientation_ood", "contrast_auc", "rdk_auc"),
    "tuning": tuple(TUNING_SUMMARIES),
    "geometry": ("alpha_gru",),
}
# (x group, y group): prediction vs probes, vs tuning, vs geometry; geometry vs probes; tuning vs probes
PAIR_GROUPS = (("prediction", "probes"), ("prediction", "tuning"), ("prediction", "geometry"),
               ("geometry", "probes"), ("tuning", "probes"))
COLUMNS = tuple(c for cols in GROUPS.values() for c in cols)
MIN_POINTS = 3


def tuning_medians(tuning: xr.Dataset) -> xr.Dataset:
    """Median of gOSI, F1/F0, c50 and preferred SF over the QC-passing units of each model: (arch, seed)."""
    out = {}
    for column, (var, qc) in TUNING_SUMMARIES.items():
        if var in tuning and qc in tuning:
            out[column] = tuning[var].where(tuning[qc].astype(bool)).median("unit", skipna=True)
    return xr.Dataset(out).compute()


def model_table(archs: list[str], seeds: list[int], neural: xr.Dataset | None = None,
                probes: xr.Dataset | None = None, tuning: xr.Dataset | None = None,
                geometry: xr.Dataset | None = None) -> xr.Dataset:
    """Every column of COLUMNS over (arch, seed) for the given models; absent inputs, variables or models are NaN."""
    sources = {
        "neural_r": (neural, "neural_r"),
        "orientation_ood": (probes, "orientation_ood"),
        "contrast_auc": (probes, "contrast_auc"),
        "rdk_auc": (probes, "rdk_auc"),
        "alpha_gru": (geometry, "alpha_gru"),
    }
    medians = tuning_medians(tuning) if tuning is not None else xr.Dataset()
    sources.update({c: (medians, c) for c in TUNING_SUMMARIES})
    coords = {"arch": list(archs), "seed": list(seeds)}
    empty = xr.DataArray(np.full((len(archs), len(seeds)), np.nan), coords=coords, dims=("arch", "seed"))
    table = {}
    for column in COLUMNS:
        ds, var = sources[column]
        if ds is None or var not in ds:
            table[column] = empty
        else:
            table[column] = ds[var].astype(np.float64).reindex(arch=coords["arch"], seed=coords["seed"]).compute()
    return xr.Dataset(table).transpose("arch", "seed")


def arch_summary(table: xr.Dataset) -> xr.Dataset:
    """Architecture means and SDs (ddof 1; NaN with one seed) over seeds: `<column>_mean`, `<column>_sd`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = table.mean("seed", skipna=True)
        sd = table.std("seed", ddof=1, skipna=True)
    return xr.Dataset({**{f"{c}_mean": mean[c] for c in table}, **{f"{c}_sd": sd[c] for c in table}})


def pairs() -> list[tuple[str, str]]:
    """Every predefined (x, y) column pair, in PAIR_GROUPS order."""
    return [(x, y) for gx, gy in PAIR_GROUPS for x in GROUPS[gx] for y in GROUPS[gy]]


def trend(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Pearson r and p and the OLS line y = slope * x + intercept over finite pairs; NaN with fewer than
    MIN_POINTS pairs or a constant side (r undefined)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    out = {"r": np.nan, "p": np.nan, "slope": np.nan, "intercept": np.nan, "n": float(len(x))}
    if len(x) < MIN_POINTS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    fit = sps.linregress(x, y)
    out.update(r=float(fit.rvalue), p=float(fit.pvalue), slope=float(fit.slope), intercept=float(fit.intercept))
    return out


def pair_statistics(table: xr.Dataset) -> xr.Dataset:
    """r, p, slope, intercept and n for every predefined pair, at two levels: over architecture means
    ("arch", the headline) and over every (arch, seed) model ("model"). Dims (level, pair)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        arch_means = table.mean("seed", skipna=True)
    levels = {"arch": arch_means, "model": table.stack(model=("arch", "seed"))}
    plist = pairs()
    rows = {level: [trend(ds[x].values, ds[y].values) for x, y in plist] for level, ds in levels.items()}
    keys = ("r", "p", "slope", "intercept", "n")
    coords = {"level": list(levels), "pair": [f"{x} vs {y}" for x, y in plist],
              "x": ("pair", [x for x, _ in plist]), "y": ("pair", [y for _, y in plist])}
    return xr.Dataset({k: (("level", "pair"), [[row[k] for row in rows[level]] for level in levels]) for k in keys},
                      coords=coords)


def summary(table: xr.Dataset) -> xr.Dataset:
    """The whole cross-model result: the table, architecture means/SDs and the pair statistics."""
    return xr.merge([table, arch_summary(table), pair_statistics(table)])
