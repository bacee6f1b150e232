"""Eigenspectra and power-law exponents: known exponents recovered from sampled data, Dask (tsqr and
randomized) and in-memory paths agree, and the job over a small reference_clips store."""
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from scipy.stats import random_correlation

from actstore.analysis.geometry import eigenspectrum, jackknife_se, powerlaw_exponent, powerlaw_fit
from actstore.catalog import Catalog, deep_merge, load_catalog
from actstore import assays
from actstore.report import figures as fg
from actstore.store.analysis import open_analysis


def sample_with_exponent(alpha: float, n: int, f: int, seed: int) -> np.ndarray:
    """n Gaussian samples whose population correlation matrix (unit diagonal, so standardizing is a
    no-op in expectation) has eigenvalues proportional to rank^-alpha."""
    rng = np.random.default_rng(seed)
    lam = np.arange(1, f + 1, dtype=np.float64) ** -alpha
    corr = random_correlation.rvs(lam * f / lam.sum(), random_state=rng)
    w, v = np.linalg.eigh(corr)
    return rng.standard_normal((n, f)) @ (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def rank_deficient(n: int, f: int, rank: int, seed: int) -> np.ndarray:
    """n samples of f features spanning only `rank` dimensions (Gaussian factors)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, rank)) @ rng.standard_normal((rank, f))


@pytest.mark.parametrize("alpha", [0.8, 1.0, 1.5])
def test_known_exponents_recovered(alpha):
    x = sample_with_exponent(alpha, 5000, 512, seed=int(alpha * 10))
    spectrum = eigenspectrum(x, n_components=256)
    assert spectrum.shape == (256,) and np.all(np.diff(spectrum) <= 0)
    assert abs(powerlaw_exponent(spectrum, (20, 200)) - alpha) < 0.05
    fit = powerlaw_fit(spectrum, (20, 200))  # full rank: every eigenvalue above the floor, fitted
    assert fit.effective_rank == 256 and fit.reason == "" and fit.alpha == powerlaw_exponent(spectrum, (20, 200))
    lazy = da.from_array(x, chunks=(1000, 128))
    np.testing.assert_allclose(eigenspectrum(lazy, n_components=256), spectrum, rtol=1e-8)


def test_randomized_path_and_xarray_input_agree():
    x = sample_with_exponent(1.0, 3000, 300, seed=7)
    exact = eigenspectrum(x, n_components=100)
    arr = xr.DataArray(da.from_array(x, chunks=(500, 300)), dims=("trial", "hidden"))
    randomized = eigenspectrum(arr, n_components=100, exact_max_features=0, power_iterations=4)
    np.testing.assert_allclose(randomized[:50], exact[:50], rtol=0.03)
    assert abs(powerlaw_exponent(randomized, (5, 50)) - powerlaw_exponent(exact, (5, 50))) < 0.05
    np.testing.assert_allclose(eigenspectrum(xr.DataArray(x, dims=("a", "b")), 100), exact, rtol=1e-10)


def test_powerlaw_exponent_rank_window_and_edge_cases():
    spectrum = 3.0 * np.arange(1, 301, dtype=float) ** -1.2
    spectrum[:19] = 100.0  # outside the window: ignored
    assert powerlaw_exponent(spectrum, (20, 200)) == pytest.approx(1.2)
    assert powerlaw_exponent(spectrum[:60], (20, 200)) == pytest.approx(1.2)  # capped by length
    assert np.isnan(powerlaw_exponent(spectrum[:20], (20, 200)))  # one point
    assert powerlaw_exponent(xr.DataArray(spectrum), (20, 200)) == pytest.approx(1.2)


def test_rank_deficient_features_are_not_fitted():
    x = rank_deficient(2000, 256, 30, seed=3)
    spectrum = eigenspectrum(x, n_components=256)
    assert spectrum[30:].max() < 1e-8 * spectrum[0]  # rounding noise, not variance
    assert powerlaw_exponent(spectrum, (20, 200), relative_floor=0.0, min_fit_fraction=0.0) > 5  # what noise gives
    fit = powerlaw_fit(spectrum, (20, 200))
    assert np.isnan(fit.alpha) and np.isnan(powerlaw_exponent(spectrum, (20, 200)))
    assert fit.effective_rank == 30
    assert fit.reason == "11 of 181 ranks in 20-200 above noise floor (need 91)"
    assert powerlaw_fit(eigenspectrum(da.from_array(x, chunks=(500, 256)), 256), (20, 200)).effective_rank == 30


def test_fit_window_needs_enough_usable_ranks():
    law = 2.0 * np.arange(1, 301, dtype=float) ** -1.1
    for last in (120, 300):  # 101 or all 181 window ranks above the floor: >= half the window
        fit = powerlaw_fit(np.where(np.arange(300) < last, law, 1e-20 * law[0]), (20, 200))
        assert fit.alpha == pytest.approx(1.1) and fit.effective_rank == last and fit.reason == ""
    fit = powerlaw_fit(np.where(np.arange(300) < 100, law, 0.0), (20, 200))  # 81 of 181: too few
    assert np.isnan(fit.alpha) and fit.effective_rank == 100 and "81 of 181" in fit.reason
    assert powerlaw_fit(law[:24], (2, 20)).alpha == pytest.approx(1.1)  # the smoke profile's window
    fit = powerlaw_fit(law[:24], (2, 20), min_fit_ranks=20)  # 19 window ranks in all
    assert np.isnan(fit.alpha) and fit.effective_rank == 24 and fit.reason.endswith("(need 20)")


def test_standardization_and_component_cap():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 10)) * np.arange(1, 11) * 100  # wildly different feature scales
    x[:, 3] = 5.0  # a constant feature contributes nothing, without dividing by zero
    spec = eigenspectrum(x, n_components=256)
    assert spec.shape == (10,)  # min(256, features, samples - 1)
    assert spec.sum() == pytest.approx(9.0)  # trace of the correlation matrix of 9 varying features
    assert eigenspectrum(x[:5], n_components=256).shape == (4,)


# ----------------------------------------------------------------------------- the job

ARCHS, SEEDS = ["xu_cnn", "alexnet"], [0, 1]
def test_jackknife_se_matches_the_spread_over_independent_samples():
    """alpha's jackknife SE from one sample set predicts how much alpha varies between independent sample sets
    of the same population: over 24 sets, the mean SE is within [0.6, 1.6] x the SD of their alphas."""
    def alpha_of(x):
        return powerlaw_fit(eigenspectrum(x, n_components=96), (5, 60)).alpha

    draws = [sample_with_exponent(1.2, 600, 96, seed=100 + i) for i in range(24)]
    alphas = np.array([alpha_of(x) for x in draws])
    ses = np.array([jackknife_se(alpha_of, x, groups=5) for x in draws])
    assert np.isfinite(ses).all() and abs(alphas.mean() - 1.2) < 0.1
    assert 0.6 < ses.mean() / alphas.std(ddof=1) < 1.6
    # the same on a lazy Dask matrix (positional row selection), and NaN when a refit fails or groups < 2
    lazy = da.from_array(draws[0], chunks=(200, 96))
    assert np.isclose(jackknife_se(alpha_of, lazy, groups=5), ses[0], rtol=1e-6)
    assert np.isnan(jackknife_se(lambda x: np.nan if len(x) < 500 else 1.0, draws[0], groups=5))
    assert np.isnan(jackknife_se(alpha_of, draws[0], groups=1))


TRUE = {"xu_cnn": 0.9, "alexnet": 1.4}


def test_geometry_job(tmp_path):
    base = load_catalog(profile="smoke")
    catalog = Catalog(base.path, base.profile, deep_merge(base.cfg, {
        "zoo": {"archs": ARCHS, "seeds": SEEDS},
        "analysis": {"geometry": {"n_components": 64, "ranks": [5, 50]}}}))
    n, h, d = 2000, 96, 64
    gru = np.full((2, 2, n, h), np.nan, np.float32)
    enc = np.full((2, 2, n, 5, d), np.nan, np.float32)
    for i, arch in enumerate(ARCHS):
        gru[i, 0] = sample_with_exponent(TRUE[arch], n, h, seed=i)
        enc[i, 0] = np.random.default_rng(i).normal(size=(n, 5, d))  # earlier frames: white
        enc[i, 0, :, -1] = sample_with_exponent(TRUE[arch] + 0.3, n, d, seed=10 + i)  # the last frame counts
    ds = xr.Dataset(
        {"gru": (("arch", "seed", "trial", "hidden"), gru),
         "encoder": (("arch", "seed", "trial", "frame", "unit"), enc),
         "complete": (("arch", "seed"), np.array([[True, False], [True, False]]))},
        coords={"arch": np.array(ARCHS, dtype=object), "seed": SEEDS},
        attrs={"spaces": {"gru": ["hidden"], "encoder": ["frame", "unit"]}}).chunk({"trial": 500})
    ds.to_zarr(tmp_path / "reference_clips.zarr", mode="w", zarr_format=3, consolidated=True)
    lines = assays.run(catalog, str(tmp_path), "geometry")
    assert lines[-1].startswith("geometry: wrote")
    out = open_analysis(str(tmp_path), "geometry").load()
    for arch in ARCHS:
        assert abs(float(out["alpha_gru"].sel(arch=arch, seed=0)) - TRUE[arch]) < 0.1
        assert abs(float(out["alpha_encoder"].sel(arch=arch, seed=0)) - TRUE[arch] - 0.3) < 0.1
    assert np.isnan(out["alpha_gru"].sel(arch="xu_cnn", seed=1))
    fitted = out.sel(seed=0)
    assert (fitted["alpha_gru_n"] == n).all() and (fitted["alpha_encoder_n"] == n).all()
    assert ((fitted["alpha_gru_se"] > 0.001) & (fitted["alpha_gru_se"] < 0.1)).all()
    assert np.isnan(out["alpha_gru_se"].sel(arch="xu_cnn", seed=1))
    assert out["eigenvalues"].sizes["rank"] == 64
    assert np.isfinite(out["eigenvalues"].sel(seed=0).values).all()
    assert assays.run(catalog, str(tmp_path), "geometry") == ["geometry: up to date"]


def test_geometry_job_rank_deficient_model(tmp_path):
    """A rank-30 GRU (the alexnet case): NaN alpha with its reason, effective rank 30, no sub-floor eigenvalues in
    the store, and a figure whose axes span only the data above the floor and whose legend says why."""
    base = load_catalog(profile="smoke")
    catalog = Catalog(base.path, base.profile, deep_merge(base.cfg, {
        "zoo": {"archs": ARCHS, "seeds": [0]}, "analysis": {"geometry": {"n_components": 256, "ranks": [20, 200]}}}))
    n, h, d = 2000, 512, 64
    gru = np.stack([sample_with_exponent(1.0, n, h, seed=0), rank_deficient(n, h, 30, seed=1)])[:, None]
    enc = np.random.default_rng(2).normal(size=(2, 1, n, 1, d))
    ds = xr.Dataset(
        {"gru": (("arch", "seed", "trial", "hidden"), gru.astype(np.float32)),
         "encoder": (("arch", "seed", "trial", "frame", "unit"), enc.astype(np.float32)),
         "complete": (("arch", "seed"), np.array([[True], [True]]))},
        coords={"arch": np.array(ARCHS, dtype=object), "seed": [0]},
        attrs={"spaces": {"gru": ["hidden"], "encoder": ["frame", "unit"]}}).chunk({"trial": 500})
    ds.to_zarr(tmp_path / "reference_clips.zarr", mode="w", zarr_format=3, consolidated=True)
    assert assays.run(catalog, str(tmp_path), "geometry")[-1].startswith("geometry: wrote")
    out = open_analysis(str(tmp_path), "geometry").load()
    good, bad = out.sel(arch="xu_cnn", seed=0), out.sel(arch="alexnet", seed=0)
    assert abs(float(good["alpha_gru"]) - 1.0) < 0.1 and good["alpha_gru_reason"].item() == ""
    assert int(good["effective_rank_gru"]) == 256 and int(bad["effective_rank_gru"]) == 30
    reason = "11 of 181 ranks in 20-200 above noise floor (need 91)"
    assert np.isnan(bad["alpha_gru"]) and bad["alpha_gru_reason"].item() == reason
    assert np.isnan(bad["alpha_gru_se"]) and np.isfinite(good["alpha_gru_se"])  # no fit, no SE
    lam = bad["eigenvalues"].sel(space="gru").values
    assert np.isfinite(lam[:30]).all() and np.isnan(lam[30:]).all()
    ax = fg.eigenspectra(out).axes[0]
    assert ax.get_ylim()[0] > 1e-8 * np.nanmax(out["eigenvalues"].sel(space="gru").values)
    assert ax.get_legend_handles_labels()[1] == [
        f"xu_cnn (\u03b1 = {float(good['alpha_gru']):.2f} \u00b1 {float(good['alpha_gru_se']):.1g})",
                                                 f"alexnet (\u03b1 not fitted: {reason})"]
