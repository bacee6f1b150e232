"""Lifetime and population sparseness: the Treves-Rolls values of hand-made responses, the synthetic mouse's
simple cells sparser than its complex cells, and the assay through the registry on the smoke store."""
import numpy as np
import pytest
import xarray as xr

from actstore import assays
from actstore.analysis.tuning import GRID_DIMS
from actstore.assays.sparseness import sparseness, treves_rolls
from actstore.store.analysis import open_analysis


def _grid(values: np.ndarray) -> xr.DataArray:
    """(gratings, units) values on a tuning grid of 4 orientations x 1 SF x 1 phase x 1 contrast."""
    values = np.asarray(values, dtype=float).reshape(4, 1, 1, 1, -1)
    coords = {"orientation": [0.0, 45.0, 90.0, 135.0], "sf": [0.1], "phase": [0.0], "contrast": [1.0]}
    return xr.DataArray(values, dims=(*GRID_DIMS, "unit"), coords=coords)


def test_treves_rolls_known_values():
    r = xr.DataArray(np.array([[1.0, 0, 0, 0], [0, 1, 2, 3], [2, 2, 2, 2], [0, 0, 0, 0]]), dims=("unit", "x"))
    got = treves_rolls(r, "x").values
    # one response in four: 1; a ramp: (1 - 1.5^2 / 3.5) / (1 - 1/4) = 0.476; equal responses: 0; silent: NaN
    np.testing.assert_allclose(got[:3], [1.0, (1 - 2.25 / 3.5) / 0.75, 0.0])
    assert np.isnan(got[3])


def test_sparseness_is_relative_to_each_units_minimum_and_leaves_out_flat_units():
    # unit 0 fires at one orientation above a baseline of 5; unit 1 is a ramp with an offset of -3 (negative
    # values, as a twin's units have); unit 2 is flat
    responses = _grid(np.stack([[5.0, 5, 9, 5], [-3.0, -2, -1, 0], [1.0, 1, 1, 1]], axis=1))
    out = sparseness(responses, responsive_ptp=1e-3)
    np.testing.assert_allclose(out["lifetime_sparseness"].values[:2], [1.0, (1 - 2.25 / 3.5) / 0.75])
    assert np.isnan(out["lifetime_sparseness"].values[2])
    # per grating over the two responsive units (shifted: [0, 0], [0, 1], [4, 2], [0, 3]); [0, 0] is undefined
    pop = out["population_sparseness"].values
    assert np.isnan(pop[0])
    np.testing.assert_allclose(pop[1:], [1.0, (1 - 9 / 10) / 0.5, 1.0])


def test_the_blank_counts_once():
    """Contrast 0 is one gray frame however many orientations it is listed under: the sparseness over a grid of
    4 orientations x contrasts (0, 1) equals Treves-Rolls over the 4 gratings and the blank once (5 stimuli)."""
    coords = {"orientation": [0.0, 45.0, 90.0, 135.0], "sf": [0.1], "phase": [0.0], "contrast": [0.0, 1.0]}
    values = np.zeros((4, 1, 1, 2, 2))
    values[:, 0, 0, 0] = [1.0, 2.0]                   # the blank: each unit's own constant response
    values[:, 0, 0, 1, 0] = [1.0, 1.0, 5.0, 1.0]      # unit 0: one orientation above its blank level
    values[:, 0, 0, 1, 1] = [0.0, 4.0, 0.0, 4.0]      # unit 1: below its blank at two, above at two
    out = sparseness(xr.DataArray(values, dims=(*GRID_DIMS, "unit"), coords=coords), responsive_ptp=1e-3)
    stimuli = [np.array([1.0, 1, 1, 5, 1]), np.array([2.0, 0, 4, 0, 4])]  # blank first, then the 4 gratings
    want = [treves_rolls(xr.DataArray(v - v.min(), dims="x"), "x").item() for v in stimuli]
    np.testing.assert_allclose(out["lifetime_sparseness"].values, want)
    assert out["population_sparseness"].sizes["grating"] == 5


def test_synthetic_simple_cells_are_sparser_than_complex_cells(smoke_root, smoke_catalog):
    """Ground truth: a half-rectified simple cell responds at one phase of its preferred grating, a complex cell
    at every phase, so simple cells have the higher lifetime sparseness over the grid."""
    from actstore.assays.ground_truth import oracle_responses
    from actstore.data import Oracle, load_sessions
    from actstore.stimuli import generate

    catalog = smoke_catalog
    oracle = Oracle.from_session(load_sessions(catalog, smoke_root)[catalog["data"]["reference_session"]])
    stimulus = generate(catalog.recipe("tuning_grid"), catalog["run_seed"])["stimulus"]
    lifetime = sparseness(oracle_responses(oracle, stimulus), responsive_ptp=1e-3)["lifetime_sparseness"].values
    kind = oracle.params["cell_type"].to_numpy()
    simple, complex_ = np.nanmedian(lifetime[kind == "simple"]), np.nanmedian(lifetime[kind == "complex"])
    assert (kind == "simple").sum() >= 3 and (kind == "complex").sum() >= 3
    assert simple > complex_ + 0.05, (simple, complex_)


def test_the_assay_through_the_registry(smoke_root, smoke_catalog):
    """Registered by its module alone: run by `analyze all`, a column of the stats table and of the units
    table, queryable, and up to date on a second run."""
    from actstore.expressions import query

    ds = open_analysis(smoke_root, "sparseness").load()
    enc = ds["lifetime_sparseness_median"].sel(space="encoder")
    assert set(ds["space"].values) >= {"encoder", "early", "middle", "late"}
    assert np.isfinite(enc).all() and ((enc > 0) & (enc < 1)).all()
    summary = open_analysis(smoke_root, "summary").load()
    np.testing.assert_allclose(summary["lifetime_sparseness_median"].values, enc.values)
    # each median with its bootstrap SE over the units (or gratings) and its n, in the stats table too
    from actstore.analysis.stats import median_and_se

    left_out = 0
    for arch in ds["arch"].values:
        for space in ds["space"].values:
            one = ds.sel(arch=arch, seed=0, space=space)
            _, se, n = median_and_se(one["lifetime_sparseness"].values)
            assert float(one["lifetime_sparseness_median_se"]) == se > 0
            assert int(one["lifetime_sparseness_median_n"]) == n
            left_out += int(one["lifetime_sparseness"].isnull().sum())
    assert left_out > 0  # flat units (and a space's padding) are left out of the medians, their SEs and n
    assert np.isfinite(summary["population_sparseness_median_se"]).all()
    assert "population_sparseness_median_mean_se" in summary
    assert "prediction" in summary.attrs["groups"] and "sparseness" in summary.attrs["groups"]
    units = ds["lifetime_sparseness"].sel(space="encoder").values
    cut = float(np.nanmedian(units))  # the query must return exactly the encoder units above the stored median
    rows = query(f"space == 'encoder' & lifetime_sparseness > {cut!r}", smoke_root)
    assert len(rows) == int((units > cut).sum()) > 0 and (rows["lifetime_sparseness"] > cut).all()
    assert assays.run(smoke_catalog, smoke_root, "sparseness") == ["sparseness: up to date"]


def test_an_unknown_assay_is_one_clear_error(smoke_catalog, tmp_path):
    from actstore.errors import UserError

    with pytest.raises(UserError, match="unknown assay 'sparsity'; valid: .*sparseness"):
        assays.run(smoke_catalog, str(tmp_path), "sparsity")
