"""Tuning assay on static full-field gratings (design 6.2): curves, indices and fits per unit.

`measure` takes responses over the grating grid (orientation deg, sf cycles/px, phase rad,
contrast, unit, plus any carried dims such as arch and seed) and returns one value per unit.
Two stages: (1) per unit chunk, reduce the grid to four tuning curves; (2) over all units
of all models in one block, compute the indices and run the batched fits. Works on numpy-
and dask-backed input (dask stays lazy). Units that are NaN or constant get NaN metrics and
False flags, without warnings. `model_summaries` reduces the units of each model to the
per-model numbers the tuning result carries beside them.
"""
from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from actstore.analysis import fitting
from actstore.errors import UserError

GRID_DIMS = ("orientation", "sf", "phase", "contrast")
CURVES = ("orientation_curve", "sf_curve", "phase_curve", "contrast_curve")
METRICS = ("gosi", "pref_ori", "f1f0", "pref_phase", "pref_sf", "pref_sf_sampled", "pref_sf_fit", "sf_bandwidth",
           "dog_r2", "nr_r0", "nr_gain", "nr_c50", "nr_n", "nr_r2")
# nr_at_bound: the Naka-Rushton c50 sits on a bound of its fit box (fitting.at_bound), so it is no estimate;
# qc_phase_written: design 6.2's phase QC as written (the phase curve's own range), beside qc_phase as applied
FLAGS = ("responsive", "qc_orientation", "qc_phase", "qc_sf", "qc_contrast", "nr_at_bound", "qc_phase_written")
UNITS = {"pref_ori": "deg", "pref_phase": "rad", "pref_sf": "cycles/px", "pref_sf_sampled": "cycles/px",
         "pref_sf_fit": "cycles/px", "sf_bandwidth": "octaves"}
SUMMARY_DESCRIPTIONS = {
    "c50_median": "median nr_c50 over units passing qc_contrast, c50 at a fit bound (nr_at_bound) left out",
    "nr_at_bound_fraction": "fraction of the units passing qc_contrast whose c50 is at a fit bound (NaN: none pass)",
    "f1f0_median_applied_qc": "median f1f0 over qc_phase as applied: phase or contrast curve range > min_curve_range",
    "f1f0_median_written_qc": "median f1f0 over qc_phase_written, design 6.2 as written: phase curve range > "
                              "min_curve_range",
}
DENSE_SF_POINTS = 512  # resolution of the grid on which the DoG fit's peak and half-height points are read


def measure(responses: xr.DataArray, *, responsive_ptp: float = 1e-3, min_curve_range: float = 1e-3,
            min_fit_r2: float = 0.5, dog_starts: int = 5, nr_starts: int = 4,
            nr_c50_bounds: tuple[float, float] | list[float] = (0.005, 1.0),
            nr_n_bounds: tuple[float, float] | list[float] = (0.5, 6.0), main_contrast: float = 1.0) -> xr.Dataset:
    """Tuning metrics, QC flags and the four tuning curves of every unit (defaults = catalog analysis.tuning)."""
    missing = [d for d in (*GRID_DIMS, "unit") if d not in responses.dims]
    if missing:
        raise UserError(f"tuning responses: missing dims {', '.join(missing)}; got dims {', '.join(map(str, responses.dims))}")
    contrast = responses["contrast"].values.astype(np.float64)
    main = np.flatnonzero(np.isclose(contrast, main_contrast))
    if main.size != 1:
        raise UserError(f"tuning responses: main contrast {main_contrast} not on the contrast axis {contrast.tolist()}")
    if np.any(responses["sf"].values <= 0):
        raise UserError(f"tuning responses: sf must be positive (cycles/px); got {responses['sf'].values.tolist()}")
    lazy = responses.chunks is not None
    grid = responses.transpose(..., *GRID_DIMS)
    if lazy:
        grid = grid.chunk({d: -1 for d in GRID_DIMS})
    curves = xr.apply_ufunc(
        _curves, grid, kwargs={"main": int(main[0])}, input_core_dims=[list(GRID_DIMS)],
        output_core_dims=[[d] for d in GRID_DIMS], dask="parallelized", output_dtypes=[np.float64] * 4)
    loop = [d for d in grid.dims if d not in GRID_DIMS]
    if lazy:
        curves = tuple(c.chunk({d: -1 for d in loop}) for c in curves)
    options = dict(
        axes=tuple(responses[d].values.astype(np.float64) for d in GRID_DIMS), responsive_ptp=responsive_ptp,
        min_curve_range=min_curve_range, min_fit_r2=min_fit_r2, dog_starts=dog_starts, nr_starts=nr_starts,
        nr_c50_bounds=tuple(nr_c50_bounds), nr_n_bounds=tuple(nr_n_bounds))
    stacked = xr.apply_ufunc(
        _metrics, *curves, kwargs=options, input_core_dims=[[d] for d in GRID_DIMS],
        output_core_dims=[["metric"]], dask="parallelized", output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"metric": len(METRICS) + len(FLAGS)}})
    out = {name: stacked.isel(metric=i) for i, name in enumerate(METRICS)}
    out |= {name: stacked.isel(metric=len(METRICS) + i).astype(bool) for i, name in enumerate(FLAGS)}
    out |= dict(zip(CURVES, curves))
    ds = xr.Dataset(out)
    for name, unit in UNITS.items():
        ds[name].attrs["units"] = unit
    ds.attrs.update(main_contrast=float(main_contrast), responsive_ptp=responsive_ptp, min_curve_range=min_curve_range,
                    min_fit_r2=min_fit_r2, dog_starts=dog_starts, nr_starts=nr_starts,
                    nr_c50_bounds=list(nr_c50_bounds), nr_n_bounds=list(nr_n_bounds), nr_bound_rtol=fitting.BOUND_RTOL)
    return ds


def c50_estimates(ds: xr.Dataset) -> xr.DataArray:
    """Each unit's c50 where it is an estimate: the unit passes qc_contrast and its fit is off the box's bounds."""
    return ds["nr_c50"].where(ds["qc_contrast"].astype(bool) & ~ds["nr_at_bound"].astype(bool))


def model_summaries(ds: xr.Dataset) -> xr.Dataset:
    """Per model (every dim of `ds` but unit), the SUMMARY_DESCRIPTIONS variables from `measure`'s result.

    A c50 on a bound of the fit box is the box's value, not the unit's (a linear curve fits 1, a step 0.005,
    both with R^2 near 1), so c50_median leaves it out and nr_at_bound_fraction says how many that was. F1/F0
    has two medians because the code's phase QC is not design 6.2's as written: the written rule (the phase
    curve's own range) can drop driven phase-invariant (complex) units, biasing that median upwards.
    """
    contrast_ok = ds["qc_contrast"].astype(bool)
    at_bound = ds["nr_at_bound"].astype(bool)
    passing = contrast_ok.sum("unit")
    out = xr.Dataset({
        "c50_median": c50_estimates(ds).median("unit", skipna=True),
        "nr_at_bound_fraction": (contrast_ok & at_bound).sum("unit") / passing.where(passing > 0),
        "f1f0_median_applied_qc": ds["f1f0"].where(ds["qc_phase"].astype(bool)).median("unit", skipna=True),
        "f1f0_median_written_qc": ds["f1f0"].where(ds["qc_phase_written"].astype(bool)).median("unit", skipna=True),
    })
    for name, text in SUMMARY_DESCRIPTIONS.items():
        out[name].attrs["description"] = text
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a model without passing units: an all-NaN median
        return out.compute()


def _curves(grid: np.ndarray, main: int) -> tuple[np.ndarray, ...]:
    """(..., O, S, P, C) responses -> orientation (..., O), sf (..., S), phase (..., P), contrast (..., C) curves."""
    grid = grid.astype(np.float64)
    at_main = grid[..., main]
    ori = at_main.mean(axis=(-2, -1))
    o = _argmax(ori)[..., None, None, None]
    sf_plane = np.take_along_axis(at_main, o, axis=-3)[..., 0, :, :]
    sf = sf_plane.mean(axis=-1)
    s = _argmax(sf)[..., None, None]
    phase = np.take_along_axis(sf_plane, s, axis=-2)[..., 0, :]
    at_pref = np.take_along_axis(np.take_along_axis(grid, o[..., None], axis=-4)[..., 0, :, :, :],
                                 s[..., None], axis=-3)[..., 0, :, :]
    return ori, sf, phase, at_pref.mean(axis=-2)


def _argmax(curve: np.ndarray) -> np.ndarray:
    """Index of the largest value along the last axis; 0 where the curve is not finite."""
    return np.argmax(np.where(np.isfinite(curve), curve, -np.inf), axis=-1)


def _usable(curve: np.ndarray) -> np.ndarray:
    """Curves that carry information: finite everywhere and not constant."""
    with np.errstate(invalid="ignore"):
        return np.all(np.isfinite(curve), axis=-1) & (np.ptp(curve, axis=-1) > 0)


def _metrics(ori: np.ndarray, sf: np.ndarray, phase: np.ndarray, contrast: np.ndarray, *,
             axes: tuple[np.ndarray, ...], responsive_ptp: float, min_curve_range: float, min_fit_r2: float,
             dog_starts: int, nr_starts: int, nr_c50_bounds: tuple[float, float],
             nr_n_bounds: tuple[float, float]) -> np.ndarray:
    """The four curves (..., n_i) -> (..., METRICS + FLAGS) per unit; flags as 0/1."""
    lead = ori.shape[:-1]
    ori, sf, phase, contrast = (c.reshape(-1, c.shape[-1]) for c in (ori, sf, phase, contrast))
    theta, f, phi, c = axes
    m: dict[str, np.ndarray] = {}
    with np.errstate(all="ignore"):
        ok = _usable(ori)
        shifted = ori - ori.min(axis=1, keepdims=True)
        vector = shifted @ np.exp(2j * np.deg2rad(theta))
        m["gosi"] = np.where(ok, np.abs(vector) / shifted.sum(axis=1), np.nan)
        m["pref_ori"] = np.where(ok, np.rad2deg(np.angle(vector) / 2) % 180.0, np.nan)

        ok = _usable(phase)
        first = phase @ np.exp(1j * phi)  # X_1 with the sign that points at the response peak
        f0 = np.abs(phase.mean(axis=1))
        # an exactly flat phase curve has F1 = 0 (not the DFT's rounding), so f1f0 = 0: a phase-invariant unit,
        # and QC judges whether it is driven; only its preferred phase is undefined
        f1 = np.where(np.ptp(phase, axis=1) == 0, 0.0, 2 * np.abs(first) / phase.shape[1])
        m["f1f0"] = np.where(np.all(np.isfinite(phase), axis=1), f1 / (f0 + 1e-8), np.nan)
        m["pref_phase"] = np.where(ok, np.angle(first) % (2 * np.pi), np.nan)

        m["pref_sf_sampled"] = np.where(_usable(sf), f[_argmax(sf)], np.nan)
        x = np.log(f)
        dog = fitting.fit_dog(x, sf, starts=dog_starts)
        m["dog_r2"] = dog.r2
        m["pref_sf_fit"], m["sf_bandwidth"] = _peak_and_bandwidth(x, dog.params)
        fit_ok = np.isfinite(m["pref_sf_fit"]) & (dog.r2 >= min_fit_r2)
        m["pref_sf"] = np.where(fit_ok, m["pref_sf_fit"], m["pref_sf_sampled"])
        m["sf_bandwidth"] = np.where(fit_ok, m["sf_bandwidth"], np.nan)

        nr = fitting.fit_naka_rushton(c, contrast, starts=nr_starts, c50_bounds=nr_c50_bounds, n_bounds=nr_n_bounds)
        m["nr_r0"], m["nr_gain"], m["nr_c50"], m["nr_n"] = nr.params.T
        m["nr_r2"] = nr.r2

        ranges = {k: np.nan_to_num(np.ptp(v, axis=1), nan=-np.inf)
                  for k, v in dict(orientation=ori, phase=phase, sf=sf, contrast=contrast).items()}
        responsive = np.max(np.stack(list(ranges.values())), axis=0) > responsive_ptp
        flags = {
            "responsive": responsive,
            "qc_orientation": responsive & np.isfinite(m["gosi"]) & (ranges["orientation"] > min_curve_range),
            # Driven at its preferred grating by modulation (phase curve) or by its mean (contrast
            # curve, same ori/sf): a flat phase curve is a complex cell's answer, not a failed measurement.
            "qc_phase": responsive & np.isfinite(m["f1f0"])
            & (np.maximum(ranges["phase"], ranges["contrast"]) > min_curve_range),
            "qc_phase_written": responsive & np.isfinite(m["f1f0"]) & (ranges["phase"] > min_curve_range),
            "qc_sf": responsive & np.isfinite(m["pref_sf"]) & (ranges["sf"] > min_curve_range)
            & (dog.r2 >= min_fit_r2),
            "qc_contrast": responsive & np.isfinite(m["nr_c50"]) & (ranges["contrast"] > min_curve_range)
            & (nr.r2 >= min_fit_r2),
            "nr_at_bound": fitting.at_bound(nr)[:, fitting.NR_PARAMS.index("c50")],
        }
    out = np.stack([m[k] for k in METRICS] + [flags[k].astype(np.float64) for k in FLAGS], axis=-1)
    return out.reshape(*lead, out.shape[-1])


def _peak_and_bandwidth(x: np.ndarray, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Peak sf of each DoG fit on a dense grid over the sampled ln-f range, and its bandwidth in octaves.

    The bandwidth spans the two points where the fit crosses half height (halfway between its
    peak and its lowest value over the sampled range); NaN where either lies outside the range.
    """
    dense = np.linspace(x.min(), x.max(), DENSE_SF_POINTS)
    curve = fitting.dog(dense, params)
    fine = np.all(np.isfinite(curve), axis=1)
    peak = _argmax(curve)
    level = (curve.max(axis=1) + curve.min(axis=1)) / 2
    below = curve < level[:, None]
    at = np.arange(len(dense))
    left = below & (at < peak[:, None])
    right = below & (at > peak[:, None])
    j_left = len(dense) - 1 - np.argmax(left[:, ::-1], axis=1)  # last point below, left of the peak
    j_right = np.argmax(right, axis=1)  # first point below, right of the peak
    x_left = _crossing(dense, curve, level, j_left, j_left + 1)
    x_right = _crossing(dense, curve, level, j_right - 1, j_right)
    bandwidth = np.where(left.any(axis=1) & right.any(axis=1), (x_right - x_left) / np.log(2), np.nan)
    return np.where(fine, np.exp(dense[peak]), np.nan), np.where(fine, bandwidth, np.nan)


def _crossing(x: np.ndarray, curve: np.ndarray, level: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Where the curve crosses `level` between dense points i and j (linear interpolation)."""
    i, j = np.clip(i, 0, len(x) - 1), np.clip(j, 0, len(x) - 1)
    rows = np.arange(len(curve))
    yi, yj = curve[rows, i], curve[rows, j]
    t = np.where(yj != yi, (level - yi) / (yj - yi), 0.0)
    return x[i] + t * (x[j] - x[i])


def encoder_units(tuning: xr.Dataset) -> xr.Dataset:
    """The encoder output's units of a tuning result: what the cross-model endpoints summarize (design 6.5)."""
    return tuning.sel(space="encoder", drop=True) if "space" in tuning.dims else tuning
