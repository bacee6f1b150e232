"""The tuning assay on analytic cells with known answers, rendered on the design's grating grid (design 6.2)."""
import warnings

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from scipy.special import iv

from actstore.analysis import fitting
from actstore.analysis.tuning import CURVES, FLAGS, METRICS, measure, model_summaries
from actstore.catalog import load_catalog
from actstore.stimuli import generate, pixel_coordinates

GRID = generate(load_catalog(profile="paper").recipe("tuning_grid"), seed=0)  # the design's full grid
ORI, SF, PHASE, CONTRAST = (GRID[d].values for d in ("orientation", "sf", "phase", "contrast"))
H, W = GRID.sizes["y"], GRID.sizes["x"]
THETA0, F0 = 60.0, SF[6]  # the Gabor cells' preferred orientation and sf, both on the grid
C50, N, GAIN, R0 = 0.15, 2.5, 2.0, 0.5


def _xy():
    """Pixel coordinates as the grating generator uses them (px from the frame centre)."""
    x, y = pixel_coordinates((H, W))
    return np.broadcast_to(x, (H, W)), np.broadcast_to(y, (H, W))


def _gabor(phase: float, sigma: float = 10.0) -> np.ndarray:
    x, y = _xy()
    th = np.deg2rad(THETA0)
    g = np.exp(-(x**2 + y**2) / (2 * sigma**2)) * np.cos(2 * np.pi * F0 * (x * np.cos(th) + y * np.sin(th)) + phase)
    return g.ravel()


def _center_surround(sc: float = 1.0, ss: float = 2.0) -> np.ndarray:
    """A radially symmetric ON-centre cell at the frame centre: its only anisotropy is the square pixel
    lattice's, which is 4-fold (90 deg) symmetric and so has no 2-theta component."""
    x, y = _xy()
    r2 = x**2 + y**2
    return (np.exp(-r2 / (2 * sc**2)) / sc**2 - np.exp(-r2 / (2 * ss**2)) / ss**2).ravel()


@pytest.fixture(scope="module")
def cells() -> xr.DataArray:
    """Responses of analytic cells on the full grid: simple, complex, Naka-Rushton (energy-driven), isotropic."""
    filters = np.stack([_gabor(0.0), _gabor(np.pi / 2), _center_surround()], axis=1)
    images = GRID["stimulus"].values  # (O, S, P, C, H, W), rendered by actstore.stimuli
    drive = np.stack([(img.reshape(-1, H * W) - 0.5) @ filters for img in images]).reshape(*images.shape[:4], 3)
    simple = np.maximum(drive[..., 0], 0)
    energy = np.hypot(drive[..., 0], drive[..., 1])
    e = energy / energy[..., -1].max()
    h = e**N / (e**N + C50**N)
    isotropic = np.maximum(drive[..., 2], 0)
    resp = np.stack([simple, energy, R0 + GAIN * h, isotropic], axis=-1)
    coords = {"orientation": ORI, "sf": SF, "phase": PHASE, "contrast": CONTRAST,
              "unit": ["simple", "complex", "naka_rushton", "isotropic"]}
    return xr.DataArray(resp.astype(np.float32), dims=list(coords), coords=coords)


@pytest.fixture(scope="module")
def result(cells) -> xr.Dataset:
    return measure(cells).compute()


def test_output_has_every_metric_flag_and_curve(result):
    assert set(METRICS) | set(FLAGS) | set(CURVES) <= set(result.data_vars)
    assert result["gosi"].dims == ("unit",) and result["orientation_curve"].dims == ("unit", "orientation")
    assert all(result[f].dtype == bool for f in FLAGS)


def test_simple_cell_is_phase_modulated_and_recovers_orientation_and_sf(result):
    cell = result.sel(unit="simple")
    assert float(cell.f1f0) > 1.3  # a half-wave-rectified sine gives pi/2
    assert float(cell.pref_ori) == pytest.approx(THETA0, abs=1.0)
    assert float(cell.pref_sf_sampled) == pytest.approx(F0)
    assert float(cell.pref_sf) == pytest.approx(F0, rel=0.1)
    assert float(cell.dog_r2) > 0.9 and 0.3 < float(cell.sf_bandwidth) < 4
    assert bool(cell.qc_orientation) and bool(cell.qc_phase) and bool(cell.qc_sf) and bool(cell.responsive)


def test_complex_cell_is_phase_invariant_and_recovers_orientation_and_sf(result):
    cell = result.sel(unit="complex")
    assert float(cell.f1f0) < 0.1
    # Its flat phase curve is a measurement, not a failure: phase QC keeps it (else f1f0 stats favour simple cells).
    assert bool(cell.qc_phase)
    assert float(cell.pref_ori) == pytest.approx(THETA0, abs=1.0)
    assert float(cell.pref_sf) == pytest.approx(F0, rel=0.1)
    assert float(cell.gosi) > 0.3


def test_rectified_sine_phase_curve_peaks_at_pi_over_two():
    tuned = (1 + np.linspace(0, 1, 12))[:, None, None, None, None] * np.ones((12, 12, 1, 9, 1))
    resp = np.maximum(np.sin(PHASE), 0)[None, None, :, None, None] * tuned
    coords = {"orientation": ORI, "sf": SF, "phase": PHASE, "contrast": CONTRAST, "unit": [0]}
    out = measure(xr.DataArray(resp, dims=list(coords), coords=coords))
    assert float(out.pref_phase[0]) == pytest.approx(np.pi / 2, abs=1e-9)
    # 8 samples of max(sin, 0): F1 = 1/2, F0 = (1 + sqrt 2) / 8 (pi / 2 in the continuous limit)
    assert float(out.f1f0[0]) == pytest.approx(4 / (1 + np.sqrt(2)), rel=1e-6)


def test_naka_rushton_cell_recovers_c50_exponent_and_gain_sign(result):
    cell = result.sel(unit="naka_rushton")
    assert float(cell.nr_r2) > 0.99 and bool(cell.qc_contrast)
    assert float(cell.nr_c50) == pytest.approx(C50, rel=0.1)
    assert float(cell.nr_n) == pytest.approx(N, rel=0.1)
    assert float(cell.nr_gain) == pytest.approx(GAIN, rel=0.1)


def test_contrast_suppressed_cell_has_a_negative_gain():
    ori_tuning = np.exp(2 * np.cos(2 * np.deg2rad(ORI - 30)))[:, None, None, None]
    sf_tuning = np.exp(-np.log(SF / 0.05) ** 2 / 2)[None, :, None, None]
    h = CONTRAST**1.5 / (CONTRAST**1.5 + 0.3**1.5)
    resp = 1 + ori_tuning * sf_tuning + (-1.5 * h)[None, None, None, :] + 0 * PHASE[None, None, :, None]
    coords = {"orientation": ORI, "sf": SF, "phase": PHASE, "contrast": CONTRAST}
    out = measure(xr.DataArray(resp, dims=list(coords), coords=coords).expand_dims(unit=[0], axis=-1))
    assert float(out.nr_gain[0]) == pytest.approx(-1.5, rel=0.02)
    assert float(out.nr_c50[0]) == pytest.approx(0.3, rel=0.02) and float(out.nr_n[0]) == pytest.approx(1.5, rel=0.02)
    assert float(out.pref_sf_fit[0]) == pytest.approx(0.05, rel=0.03)


def test_isotropic_cell_has_gosi_near_zero(result):
    assert float(result.gosi.sel(unit="isotropic")) < 0.01
    assert not bool(result.qc_orientation.sel(unit="isotropic"))  # its curve range is far below min_curve_range
    assert float(result.gosi.sel(unit="simple")) > 0.3


@pytest.mark.parametrize("kappa", [0.5, 1.0, 2.0, 4.0])
def test_von_mises_gosi_equals_its_integral_value(kappa):
    resp = np.exp(kappa * np.cos(2 * np.deg2rad(ORI - 45.0)))[:, None, None, None, None] * np.ones((1, 12, 8, 9, 1))
    coords = {"orientation": ORI, "sf": SF, "phase": PHASE, "contrast": CONTRAST, "unit": [0]}
    out = measure(xr.DataArray(resp, dims=list(coords), coords=coords))
    # continuous r~ = exp(k cos 2u) - exp(-k): |int r~ e^{2iu}| / int r~ = I1(k) / (I0(k) - e^{-k})
    assert float(out.gosi[0]) == pytest.approx(iv(1, kappa) / (iv(0, kappa) - np.exp(-kappa)), rel=1e-4)
    assert float(out.pref_ori[0]) == pytest.approx(45.0, abs=1e-6)


def test_nan_and_constant_units_give_nan_metrics_and_false_flags_without_warnings(cells):
    bad = xr.concat([cells.isel(unit=[0]) * np.nan, cells.isel(unit=[0]) * 0 + 2.0], dim="unit")
    bad["unit"] = ["nan", "constant"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = measure(bad).compute()
    for name in METRICS:
        values = out[name].values if name != "f1f0" else out[name].values[:1]
        assert np.isnan(values).all(), name
    assert float(out.f1f0.sel(unit="constant")) == 0.0  # a flat phase curve has F1 = 0; QC rejects the unit
    for name in FLAGS:
        assert not out[name].values.any(), name


def test_exactly_flat_phase_curve_has_f1f0_zero_like_a_tiny_ripple():
    tuned = (1 + np.linspace(0, 1, 12))[:, None, None, None, None] * np.linspace(0, 1, 9)[None, None, None, :, None]
    flat = tuned * np.ones((12, 12, 8, 9, 1))
    ripple = flat + 1e-12 * np.sin(PHASE)[None, None, :, None, None]
    coords = {"orientation": ORI, "sf": SF, "phase": PHASE, "contrast": CONTRAST, "unit": ["flat", "ripple"]}
    out = measure(xr.DataArray(np.concatenate([flat, ripple], axis=-1), dims=list(coords), coords=coords))
    assert float(out.f1f0.sel(unit="flat")) == 0.0
    assert float(out.f1f0.sel(unit="ripple")) == pytest.approx(0.0, abs=1e-9)
    assert out.qc_phase.values.all()  # both are driven by contrast at their preferred grating


def test_dask_input_is_lazy_carries_extra_dims_and_matches_numpy(cells, result):
    zoo = xr.concat([cells, cells * 2], dim="arch").assign_coords(arch=["a", "b"]).expand_dims(seed=[0])
    lazy = zoo.chunk({"unit": 2, "arch": 1, "seed": 1})
    out = measure(lazy)
    assert isinstance(out["gosi"].data, da.Array) and isinstance(out["orientation_curve"].data, da.Array)
    out = out.compute()
    assert out["gosi"].dims == ("seed", "arch", "unit")
    np.testing.assert_allclose(out.gosi.sel(arch="a", seed=0).values, result.gosi.values, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(out.pref_sf.sel(arch="b", seed=0).values, result.pref_sf.values, rtol=1e-3)
    np.testing.assert_array_equal(out.qc_sf.sel(arch="a", seed=0).values, result.qc_sf.values)


def test_defaults_are_the_catalogs_thresholds():
    import inspect

    params = inspect.signature(measure).parameters
    for key, value in load_catalog(profile="paper")["analysis"]["tuning"].items():
        default = params[key].default
        assert (list(default) if isinstance(default, tuple) else default) == value, key


def test_missing_dims_and_main_contrast_are_user_errors(cells):
    from actstore.errors import UserError

    with pytest.raises(UserError, match="missing dims phase"):
        measure(cells.isel(phase=0))
    with pytest.raises(UserError, match="main contrast 0.9"):
        measure(cells, main_contrast=0.9)


def _separable(sf: np.ndarray | None = None, contrast: np.ndarray | None = None,
               phase: np.ndarray | None = None) -> xr.DataArray:
    """One unit on the grid whose response is ori(th) sf(f) phase(phi) contrast(c): its sf, phase and contrast
    curves are the given factors up to a positive scale (flat where not given; von Mises orientation tuning)."""
    ori = np.exp(2 * np.cos(2 * np.deg2rad(ORI - 30)))
    factors = [ori, *(np.ones(n) if v is None else v for v, n in ((sf, 12), (phase, 8), (contrast, 9)))]
    resp = np.einsum("o,s,p,c->ospc", *factors)
    coords = {"orientation": ORI, "sf": SF, "phase": PHASE, "contrast": CONTRAST}
    return xr.DataArray(resp, dims=list(coords), coords=coords)


def _units(**units: xr.DataArray) -> xr.DataArray:
    """The given one-unit grids stacked along `unit`, named by their keywords."""
    return xr.concat(list(units.values()), dim="unit").assign_coords(unit=list(units))


def test_fitted_sf_peak_is_the_true_dog_maximum_not_the_sampled_one():
    """pref_sf_fit of a noise-free DoG sf curve is the continuous maximum of the generating DoG (found here by
    scipy, independently of the assay's dense grid), which lies between two samples."""
    from scipy.optimize import minimize_scalar

    true = np.array([0.3, 2.0, np.log(0.06), 0.5, 0.6, np.log(0.05), 1.4])
    x = np.log(SF)
    best = minimize_scalar(lambda v: -fitting.dog(np.array([v]), true)[0], bounds=(x.min(), x.max()),
                           method="bounded", options={"xatol": 1e-10})
    peak = float(np.exp(best.x))
    out = measure(_separable(sf=fitting.dog(x, true)).expand_dims(unit=[0], axis=-1)).isel(unit=0)
    assert float(out.dog_r2) > 0.9999 and bool(out.qc_sf)
    # the dense grid's step in ln f is 0.0063: the peak is read to within half of it
    assert float(out.pref_sf_fit) == pytest.approx(peak, rel=0.005) and float(out.pref_sf) == float(out.pref_sf_fit)
    assert abs(float(out.pref_sf_sampled) / peak - 1) > 0.03  # the sampled peak is another answer


def test_gaussian_in_ln_f_has_its_closed_form_bandwidth_in_octaves():
    """A Gaussian of sd s in ln f centred on the sampled range: half height (halfway between its peak and its
    value q0 = exp(-h^2 / 2 s^2) at the range ends, h the half span) lies at |ln f - mu| = s sqrt(-2 ln q),
    q = (1 + q0) / 2, so the bandwidth is 2 s sqrt(-2 ln q) / ln 2 octaves (1.36 for s = 0.4); an ln-for-log2
    slip would give 0.94."""
    x = np.log(SF)
    mu, s, half = (x.min() + x.max()) / 2, 0.4, (x.max() - x.min()) / 2
    q = (1 + np.exp(-half**2 / (2 * s**2))) / 2
    octaves = 2 * s * np.sqrt(-2 * np.log(q)) / np.log(2)
    out = measure(_separable(sf=np.exp(-(x - mu) ** 2 / (2 * s**2))).expand_dims(unit=[0], axis=-1)).isel(unit=0)
    assert float(out.dog_r2) > 0.9999
    assert float(out.sf_bandwidth) == pytest.approx(octaves, rel=1e-3)
    assert float(out.pref_sf_fit) == pytest.approx(np.exp(mu), rel=0.005)


def test_sf_curve_a_dog_cannot_fit_falls_back_to_the_sampled_peak():
    """A zigzag sf curve (DoG R^2 about 0.23 < min_fit_r2): pref_sf is the sampled peak, the bandwidth is
    undefined and sf QC fails, though the unit is responsive and its fit peak is still reported."""
    zigzag = 1 + 0.5 * (-1.0) ** np.arange(12)
    zigzag[4] += 0.3
    out = measure(_separable(sf=zigzag).expand_dims(unit=[0], axis=-1)).isel(unit=0)
    assert float(out.dog_r2) < 0.5 and np.isfinite(float(out.pref_sf_fit))
    assert float(out.pref_sf) == float(out.pref_sf_sampled) == pytest.approx(SF[4])
    assert np.isnan(float(out.sf_bandwidth))
    assert bool(out.responsive) and not bool(out.qc_sf)


def test_naka_rushton_c50_at_a_bound_is_flagged_and_left_out_of_the_c50_median():
    """A linear contrast curve fits c50 = 1 (upper bound) and a step 0.005 (lower), both with R^2 near 1 and
    passing qc_contrast; a sigmoid's c50 lies inside. Two models, each one bound unit beside the sigmoid: both
    bound units are flagged nr_at_bound and left out, so each model's c50_median is the sigmoid's c50 (with
    them it would be halfway to the bound) and half of its passing units are at a bound."""
    sigmoid = _separable(contrast=1 + CONTRAST**N / (CONTRAST**N + C50**N))
    models = {"linear": _separable(contrast=1 + CONTRAST), "step": _separable(contrast=1 + (CONTRAST > 0))}
    zoo = xr.concat([_units(bound=bound, sigmoid=sigmoid) for bound in models.values()], dim="model")
    out = measure(zoo.assign_coords(model=list(models)))
    assert out.qc_contrast.values.all() and (out.nr_r2.values > 0.99).all()
    np.testing.assert_allclose(out.nr_c50.sel(unit="bound").values, [1.0, 0.005])
    np.testing.assert_allclose(out.nr_c50.sel(unit="sigmoid").values, C50, rtol=1e-3)
    assert out.nr_at_bound.sel(unit="bound").values.all() and not out.nr_at_bound.sel(unit="sigmoid").values.any()
    summary = model_summaries(out)
    np.testing.assert_array_equal(summary.c50_median.values, out.nr_c50.sel(unit="sigmoid").values)
    np.testing.assert_array_equal(summary.nr_at_bound_fraction.values, [0.5, 0.5])


def test_f1f0_medians_under_the_applied_and_the_written_phase_qc():
    """A driven unit with an exactly flat phase curve (phase-invariant, F1/F0 = 0) passes qc_phase as the code
    applies it (contrast curve range) but not design 6.2's written rule (phase curve range), so the written
    rule's median is the rectified-sine unit's F1/F0 alone and the applied one halfway to 0."""
    rectified = 4 / (1 + np.sqrt(2))  # 8 samples of max(sin, 0)
    units = _units(flat=_separable(contrast=1 + CONTRAST), simple=_separable(phase=np.maximum(np.sin(PHASE), 0)))
    out = measure(units)
    assert out.qc_phase.values.tolist() == [True, True] and out.qc_phase_written.values.tolist() == [False, True]
    summary = model_summaries(out)
    assert float(summary.f1f0_median_written_qc) == pytest.approx(rectified, rel=1e-6)
    assert float(summary.f1f0_median_applied_qc) == pytest.approx(rectified / 2, rel=1e-6)


def test_job_result_and_units_table_carry_the_bound_flag_and_per_model_summaries(tmp_path):
    """The tuning job's result (measure_zoo) over one complete model (a linear-contrast unit beside a sigmoid one)
    and one incomplete model, written as analysis/tuning.zarr: the per-model summaries are (arch, seed) variables
    (NaN for the incomplete model), units() has nr_at_bound and them as columns, and query("nr_at_bound") finds
    exactly the linear unit."""
    import json

    import actstore
    from actstore.assays.tuning import measure_zoo
    from actstore.store.analysis import write_analysis

    sigmoid = _separable(contrast=1 + CONTRAST**N / (CONTRAST**N + C50**N))
    units = _units(linear=_separable(contrast=1 + CONTRAST), sigmoid=sigmoid).assign_coords(unit=[0, 1])
    encoder = xr.concat([units, units * np.nan], dim="arch").assign_coords(arch=["a", "b"]).expand_dims(seed=[0], axis=1)
    store = xr.Dataset({"encoder": encoder, "complete": (("arch", "seed"), [[True], [False]]),
                        "provenance": (("arch", "seed"), [[json.dumps({})], [json.dumps({})]])},
                       attrs={"spaces": {"encoder": ["unit"]}})
    result = measure_zoo(store, {}, 1.0)
    per_model = ("arch", "seed", "space")
    assert result["c50_median"].dims == per_model and result["nr_at_bound_fraction"].dims == per_model
    a = result.sel(arch="a", seed=0, space="encoder")
    assert float(a["c50_median"]) == float(a["nr_c50"].sel(unit=1)) and float(a["nr_at_bound_fraction"]) == 0.5
    assert np.isnan(result["c50_median"].sel(arch="b", seed=0)).all() and not result["nr_at_bound"].sel(arch="b").any()
    write_analysis(result, str(tmp_path), "tuning", {})
    table = actstore.units(str(tmp_path))
    assert {"nr_at_bound", "qc_phase_written", "c50_median", "nr_at_bound_fraction", "f1f0_median_applied_qc",
            "f1f0_median_written_qc"} <= set(table.columns)
    found = actstore.query("nr_at_bound", str(tmp_path), columns=["nr_c50", "nr_at_bound_fraction"])
    assert found[["arch", "seed", "unit"]].values.tolist() == [["a", 0, 0]]
    assert float(found["nr_c50"].iloc[0]) == pytest.approx(1.0) and float(found["nr_at_bound_fraction"].iloc[0]) == 0.5
