"""Cross-model statistics (design 6.5): one row per (arch, seed), architecture means/SD, and Pearson r, p
plus an OLS trend for each predefined pair of columns. Missing inputs read as NaN, never as errors.

Only usable twins enter the pair statistics: a twin that predicts too little of the predictable response
(its mean fraction of the noise ceiling below a catalog threshold) is an untrained network, and lining it
up against trained ones turns "trained or not" into a spurious correlation."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import xarray as xr

from actstore.analysis.tuning import c50_estimates, encoder_units

# column -> (tuning variable, the QC flag a unit must pass to count)
TUNING_SUMMARIES = {
    "gosi_median": ("gosi", "qc_orientation"),
    "f1f0_median": ("f1f0", "qc_phase"),
    "c50_median": ("nr_c50", "qc_contrast"),
    "pref_sf_median": ("pref_sf", "qc_sf"),
}


@dataclass(frozen=True)
class TableSpec:
    """The cross-model table's shape: its columns by group, the endpoints with a standard error `<c>_se` and an n
    `<c>_n` per model (test trials; neurons for neural_r) with whether the seeds' errors are independent (yes for
    the probes, each seed drawing its own test stimuli; no for neural_r, every seed scored on the same neurons),
    and the (x group, y group) pairs the statistics relate. The assays declare it (actstore.assays.stats)."""

    groups: dict[str, tuple[str, ...]]
    errors: dict[str, bool]
    pair_groups: tuple[tuple[str, str], ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c for cols in self.groups.values() for c in cols)

    @property
    def error_columns(self) -> tuple[str, ...]:
        return tuple(f"{c}_{k}" for c in self.errors for k in ("se", "n"))

    def pairs(self) -> list[tuple[str, str]]:
        """Every (x, y) column pair, in pair_groups order."""
        return [(x, y) for gx, gy in self.pair_groups for x in self.groups[gx] for y in self.groups[gy]]

    def attrs(self) -> dict:
        """The spec as Zarr attrs (plain JSON), so a reader of summary.zarr needs no registry."""
        return {"groups": {g: list(c) for g, c in self.groups.items()}, "errors": dict(self.errors),
                "pair_groups": [list(p) for p in self.pair_groups]}

    @classmethod
    def from_attrs(cls, attrs: dict) -> TableSpec:
        return cls({g: tuple(c) for g, c in attrs["groups"].items()}, {c: bool(v) for c, v in attrs["errors"].items()},
                   tuple((gx, gy) for gx, gy in attrs["pair_groups"]))


MIN_POINTS = 3
DESCRIPTIVE_POINTS = 8  # r over this many points or fewer describes the zoo; it is not a finding
ALPHA = 0.05


def tuning_medians(tuning: xr.Dataset) -> xr.Dataset:
    """Median of gOSI, F1/F0, c50 and preferred SF over the QC-passing encoder units of each model: (arch, seed),
    each with its bootstrap SE over those units (`<c>_se`) and their count (`<c>_n`). A median the tuning job
    already stores per model is taken as it is (c50_median: fits at a bound left out, as in its SE and n)."""
    tuning, out = encoder_units(tuning), {}
    for column, (var, qc) in TUNING_SUMMARIES.items():
        if var not in tuning or qc not in tuning:
            continue
        bounded = column == "c50_median" and "nr_at_bound" in tuning
        values = c50_estimates(tuning) if bounded else tuning[var].where(tuning[qc].astype(bool))
        out[column] = tuning[column] if column in tuning else values.median("unit", skipna=True)
        out[f"{column}_se"] = median_se(values, "unit")
        out[f"{column}_n"] = values.notnull().sum("unit")
    return xr.Dataset(out).compute()


def usable(fraction: float | xr.DataArray, threshold: float) -> bool | xr.DataArray:
    """Whether a twin with this mean fraction of the noise ceiling is usable: not below `threshold`. Without a
    known ceiling (NaN) a twin cannot be judged and counts as usable."""
    return np.logical_not(fraction < threshold)


def neural_r_error(neural: xr.Dataset) -> xr.Dataset:
    """`neural_r_se` and `neural_r_n` per model from each mouse's SE of the per-neuron r over its neurons
    (`r_neuron_se`) and neuron count (`n_neurons`): neural_r is the mean over the scored mice of their mean r,
    so its SE is sqrt(sum_m se_m^2) / mice (mice are different neurons) and n the neurons summed."""
    scored = np.isfinite(neural["r_neuron"])
    n = neural["n_neurons"].where(scored, 0.0).sum("mouse", skipna=False)
    return xr.Dataset({"neural_r_se": mean_se(neural["r_neuron"], neural["r_neuron_se"], True, "mouse"),
                       "neural_r_n": n.where(scored.any("mouse"))})


BOOTSTRAP = 200  # resamples (of units, of neurons) for a median's SE


def median_and_se(values: np.ndarray, n_boot: int = BOOTSTRAP, seed: int = 0) -> tuple[float, float, int]:
    """Median of the finite values, its bootstrap SE (SD of the medians of `n_boot` resamples; NaN below 2
    values) and how many values it rests on."""
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return np.nan, np.nan, 0
    if len(v) < 2:
        return float(v[0]), np.nan, 1
    draws = np.random.default_rng(seed).choice(v, size=(n_boot, len(v)), replace=True)
    return float(np.median(v)), float(np.median(draws, axis=1).std(ddof=1)), len(v)


def median_se(values: xr.DataArray, dim: str) -> xr.DataArray:
    """The bootstrap SE of the median of `values` along `dim` (median_and_se), at every other index; lazy for
    Dask-backed values."""
    return xr.apply_ufunc(lambda v: median_and_se(v)[1], values, input_core_dims=[[dim]], vectorize=True,
                          dask="parallelized", output_dtypes=[np.float64],
                          dask_gufunc_kwargs={"allow_rechunk": True})


def mean_se(values: xr.DataArray, se: xr.DataArray, independent: bool, dim: str = "seed") -> xr.DataArray:
    """SE of the mean of `values` over `dim` (finite values only, as the means here) from each value's own SE:
    sqrt(sum se^2) / k for independent errors, else the mean SE (the bound for fully correlated ones).
    NaN where no value is finite or a used value has no SE."""
    used = np.isfinite(values)
    k = used.sum(dim)
    s = se.where(used, 0.0)
    total = np.sqrt((s**2).sum(dim, skipna=False)) if independent else s.sum(dim, skipna=False)
    return total / k.where(k > 0)


def model_table(archs: list[str], seeds: list[int], values: xr.Dataset, spec: TableSpec, *,
                usable_fraction: float) -> xr.Dataset:
    """Every column of the spec over (arch, seed) for the given models, then `ceiling_fraction` (the mean over
    mice), the error columns and `usable` (see `usable`, threshold `usable_fraction`), from the per-model
    `values` the assays give; absent variables or models are NaN. The spec travels in the attrs."""
    coords = {"arch": list(archs), "seed": list(seeds)}
    empty = xr.DataArray(np.full((len(archs), len(seeds)), np.nan), coords=coords, dims=("arch", "seed"))
    table = {}
    for column in (*spec.columns, "ceiling_fraction", *spec.error_columns):
        table[column] = (empty if column not in values else
                         values[column].astype(np.float64).reindex(arch=coords["arch"], seed=coords["seed"]).compute())
    table["usable"] = usable(table["ceiling_fraction"], usable_fraction)
    return xr.Dataset(table, attrs={"usable_ceiling_fraction": usable_fraction, **spec.attrs()}).transpose(
        "arch", "seed")


def arch_summary(table: xr.Dataset) -> xr.Dataset:
    """Architecture means and SDs (ddof 1; NaN with one seed) over seeds: `<column>_mean`, `<column>_sd`,
    over every seed (usable or not) and every column but the `usable` flag; for the ERRORS endpoints
    `<column>_mean_se`, the mean's SE from the models' own (see mean_se) in place of means of SEs and n."""
    spec = TableSpec.from_attrs(table.attrs)
    se = {f"{c}_mean_se": mean_se(table[c], table[f"{c}_se"], independent) for c, independent in spec.errors.items()}
    table = table.drop_vars(["usable", *spec.error_columns])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = table.mean("seed", skipna=True)
        sd = table.std("seed", ddof=1, skipna=True)
    return xr.Dataset({**{f"{c}_mean": mean[c] for c in table}, **{f"{c}_sd": sd[c] for c in table}, **se})


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """(r, p, slope, intercept) of finite x, y; NaN with fewer than MIN_POINTS points or a constant side."""
    if len(x) < MIN_POINTS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan, np.nan, np.nan, np.nan
    from scipy import (
        stats as sps,  # 0.3 s to import: only when a table is computed, not to check one
    )

    fit = sps.linregress(x, y)
    return float(fit.rvalue), float(fit.pvalue), float(fit.slope), float(fit.intercept)


def trend(x: np.ndarray, y: np.ndarray) -> dict[str, float | bool]:
    """Pearson r and p and the OLS line y = slope * x + intercept over the n finite pairs (NaN as in `_fit`).
    `descriptive`: n <= DESCRIPTIVE_POINTS, too few points for r to be a finding. `carried_by_one`: r is
    significant (p < ALPHA) but leaving out some single point flips its sign or takes p to ALPHA or above
    (or leaves r undefined): one model carries the correlation."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    r, p, slope, intercept = _fit(x, y)
    carried = False
    if p < ALPHA:
        drops = (_fit(np.delete(x, i), np.delete(y, i)) for i in range(len(x)))
        carried = any(not (q < ALPHA and np.sign(rq) == np.sign(r)) for rq, q, _, _ in drops)
    return {"r": r, "p": p, "slope": slope, "intercept": intercept, "n": float(len(x)),
            "descriptive": len(x) <= DESCRIPTIVE_POINTS, "carried_by_one": carried}


def pair_statistics(table: xr.Dataset) -> xr.Dataset:
    """r, p, slope, intercept, n, descriptive and carried_by_one (see `trend`) for every predefined pair over
    usable twins only, at two levels: over architecture means of their usable seeds ("arch", the headline)
    and over every usable (arch, seed) model ("model"). Dims (level, pair)."""
    spec = TableSpec.from_attrs(table.attrs)
    kept = table[list(spec.columns)].where(table["usable"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        arch_means = kept.mean("seed", skipna=True)
    levels = {"arch": arch_means, "model": kept.stack(model=("arch", "seed"))}
    plist = spec.pairs()
    rows = {level: [trend(ds[x].values, ds[y].values) for x, y in plist] for level, ds in levels.items()}
    keys = ("r", "p", "slope", "intercept", "n", "descriptive", "carried_by_one")
    coords = {"level": list(levels), "pair": [f"{x} vs {y}" for x, y in plist],
              "x": ("pair", [x for x, _ in plist]), "y": ("pair", [y for _, y in plist])}
    threshold = table.attrs["usable_ceiling_fraction"]
    attrs = {"pair_statistics": f"over usable twins only (mean fraction of the noise ceiling over mice >= "
                                f"{threshold:g}, or no ceiling known); n = points used; descriptive: n <= "
                                f"{DESCRIPTIVE_POINTS}; carried_by_one: p < {ALPHA:g} but leaving out one point "
                                f"flips the sign of r or takes p to {ALPHA:g} or above"}
    return xr.Dataset({k: (("level", "pair"), [[row[k] for row in rows[level]] for level in levels]) for k in keys},
                      coords=coords, attrs=attrs)


def summary(table: xr.Dataset) -> xr.Dataset:
    """The whole cross-model result: the table, architecture means/SDs and the pair statistics."""
    return xr.merge([table, arch_summary(table), pair_statistics(table)], combine_attrs="no_conflicts")
