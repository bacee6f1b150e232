"""Cross-model statistics: hand-worked medians, means/SDs and trends; missing inputs give NaN, not errors;
the job writes summary.zarr + summary.csv and is up to date when nothing changed."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.stats import pearsonr
from scipy.stats import t as student_t

from actstore.analysis import stats
from actstore.catalog import Catalog, deep_merge, load_catalog
from actstore import assays
from actstore.assays import stats as job
from actstore.store.analysis import open_analysis, write_analysis

ARCHS, SEEDS = ["xu_cnn", "alexnet", "resnet18", "mobilenet_v2"], [0, 1]


def _grid(values) -> xr.DataArray:
    return xr.DataArray(np.asarray(values, dtype=float), coords={"arch": np.array(ARCHS, dtype=object), "seed": SEEDS},
                        dims=("arch", "seed"))


def test_tuning_medians_use_qc_passing_units_only():
    gosi = np.array([[[0.1, 0.2, 0.9, 0.5]]])
    qc = np.array([[[True, True, False, True]]])
    ds = xr.Dataset({"gosi": (("arch", "seed", "unit"), gosi), "qc_orientation": (("arch", "seed", "unit"), qc),
                     "nr_c50": (("arch", "seed", "unit"), gosi), "qc_contrast": (("arch", "seed", "unit"), ~qc)},
                    coords={"arch": ["a"], "seed": [0]})
    med = stats.tuning_medians(ds)
    assert float(med["gosi_median"].item()) == pytest.approx(0.2)   # median of 0.1, 0.2, 0.5
    assert float(med["c50_median"].item()) == pytest.approx(0.9)    # only the unit failing orientation QC
    assert "f1f0_median" not in med                                  # absent variables are skipped
    # each median with its bootstrap SE over the same units and their count
    from actstore.analysis.stats import median_and_se

    assert int(med["gosi_median_n"].item()) == 3 and int(med["c50_median_n"].item()) == 1
    assert float(med["gosi_median_se"].item()) == median_and_se(np.array([0.1, 0.2, 0.5]))[1] > 0
    assert np.isnan(med["c50_median_se"].item())                     # one unit: no SE


def test_the_stats_c50_median_leaves_out_fits_at_a_bound():
    """The cross-model c50 is the tuning job's own median: a unit whose c50 sits on the fit box is not counted."""
    from actstore.analysis.tuning import model_summaries

    def unit(*values):
        return ("arch", "seed", "unit"), np.array([[values]])

    ds = xr.Dataset({"nr_c50": unit(0.1, 0.2, 1.0, 1.0), "qc_contrast": unit(True, True, True, True),
                     "nr_at_bound": unit(False, False, True, True), "f1f0": unit(0.5, 0.5, 0.5, 0.5),
                     "qc_phase": unit(True, True, True, True), "qc_phase_written": unit(True, True, True, True)},
                    coords={"arch": ["a"], "seed": [0]})
    med = stats.tuning_medians(ds.merge(model_summaries(ds)))
    assert float(med["c50_median"].item()) == pytest.approx(0.15)   # not the 1.0 of the two bound fits
    assert int(med["c50_median_n"].item()) == 2                      # nor in its n


def test_table_with_missing_inputs_is_nan_not_error():
    neural = xr.Dataset({"neural_r": _grid(np.arange(8).reshape(4, 2))}).isel(arch=slice(0, 3))
    table = job.table(ARCHS, SEEDS, {"neural": neural}, usable_fraction=0.25)
    spec = job.table_spec()
    assert list(table.data_vars) == [*spec.columns, "ceiling_fraction", *spec.error_columns, "usable"]
    assert table["usable"].all()                                         # no ceiling known: not judged
    assert table["neural_r"].sel(arch="alexnet", seed=1) == 3
    assert np.isnan(table["neural_r"].sel(arch="mobilenet_v2")).all()   # model not in the input
    assert np.isnan(table["rdk_auc"]).all()                              # input absent
    result = stats.summary(table)
    assert np.isnan(result["r"]).all()                                   # no pair has 3 points with both sides


def test_arch_means_and_sd_hand_worked():
    neural = xr.Dataset({"neural_r": _grid([[1, 3], [2, 2], [0, 4], [5, np.nan]])})
    table = job.table(ARCHS, SEEDS, {"neural": neural}, usable_fraction=0.25)
    out = stats.arch_summary(table)
    np.testing.assert_allclose(out["neural_r_mean"].values, [2, 2, 2, 5])
    np.testing.assert_allclose(out["neural_r_sd"].values, [np.sqrt(2), 0, np.sqrt(8), np.nan])


def test_trend_known_line_and_degenerate_cases():
    x = np.array([0.1, 0.2, 0.4, 0.5, np.nan])
    got = stats.trend(x, 2 * x + 1)
    assert got["r"] == pytest.approx(1.0) and got["slope"] == pytest.approx(2) and got["intercept"] == pytest.approx(1)
    assert got["n"] == 4
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=10), rng.normal(size=10)
    r, p = pearsonr(a, b)
    got = stats.trend(a, b)
    assert got["r"] == pytest.approx(r) and got["p"] == pytest.approx(p)
    assert got["slope"] == pytest.approx(np.polyfit(a, b, 1)[0])
    assert np.isnan(stats.trend(a[:2], b[:2])["r"])           # fewer than 3 models
    assert np.isnan(stats.trend(a, np.ones(10))["r"])         # constant side


def test_pairs_cover_the_predefined_relationships():
    pairs = job.table_spec().pairs()
    assert ("neural_r", "orientation_ood") in pairs and ("neural_r", "alpha_gru") in pairs
    assert ("alpha_gru", "rdk_auc") in pairs and ("c50_median", "contrast_auc") in pairs
    assert ("neural_r", "gosi_median") in pairs
    assert ("neural_r", "lifetime_sparseness_median") in pairs  # an assay's own pairs join through the registry
    assert len(pairs) == 3 + 4 + 1 + 3 + 12 + 2 + 3 and len(set(pairs)) == len(pairs)


def _twins(x, y, fraction) -> xr.Dataset:
    """The stats table of one-seed twins m0, m1, ...: neural_r = x, contrast_auc = y and the mean fraction of
    the noise ceiling `fraction`, split over two mice (fraction -+ 0.05), judged at the default threshold."""
    names = [f"m{i}" for i in range(len(x))]
    grid = {"coords": {"arch": names, "seed": [0]}, "dims": ("arch", "seed")}
    per_mouse = np.asarray(fraction, dtype=float)[:, None, None] + np.array([-0.05, 0.05])
    neural = xr.Dataset({"neural_r": xr.DataArray(np.asarray(x, dtype=float)[:, None], **grid),
                         "ceiling_fraction": (("arch", "seed", "mouse"), per_mouse)})
    probes = xr.Dataset({"contrast_auc": xr.DataArray(np.asarray(y, dtype=float)[:, None], **grid)})
    return job.table(names, [0], {"neural": neural, "probes": probes}, usable_fraction=0.25)


def _pair(table: xr.Dataset) -> xr.Dataset:
    return stats.pair_statistics(table).sel(level="arch", pair="neural_r vs contrast_auc")


def test_pair_statistics_over_usable_twins_hand_computed():
    # m5 is not usable (10% of the ceiling) and would reverse the trend; m4 sits exactly at the threshold
    table = _twins([1, 2, 3, 4, 6, 9], [2, 1, 4, 3, 7, 0], [0.5, 0.5, 0.5, 0.5, 0.25, 0.1])
    np.testing.assert_allclose(table["ceiling_fraction"].sel(seed=0), [0.5, 0.5, 0.5, 0.5, 0.25, 0.1])
    assert table["usable"].sel(seed=0).values.tolist() == [True] * 5 + [False]
    got = _pair(table)
    # by hand over the five usable points: mean x 3.2, mean y 3.4; Sxy = 15.6, Sxx = 14.8, Syy = 21.2
    assert int(got["n"]) == 5
    assert float(got["r"]) == pytest.approx(15.6 / np.sqrt(14.8 * 21.2))
    assert float(got["slope"]) == pytest.approx(15.6 / 14.8)
    assert float(got["intercept"]) == pytest.approx(3.4 - 15.6 / 14.8 * 3.2)
    assert float(got["p"]) == pytest.approx(pearsonr([1, 2, 3, 4, 6], [2, 1, 4, 3, 7])[1])
    assert bool(got["descriptive"])                                      # five points describe, they do not find
    assert float(stats.summary(table)["n"].sel(level="model", pair="neural_r vs contrast_auc")) == 5



def test_trend_r_p_slope_by_explicit_formulas():
    # x = 0..5, y = 2 * (1, 3, 2, 5, 4, 6): dx = dy / 2 = (-2.5, -1.5, -.5, .5, 1.5, 2.5) and dy / 2 =
    # (-2.5, -.5, -1.5, 1.5, .5, 2.5): Sxy = 31, Sxx = 17.5, Syy = 70 -> r = 31/35, slope = 31/17.5 (r != slope);
    # t = r sqrt((n - 2) / (1 - r^2)) = 3.82 on 4 df, two-sided p = 0.019. A NaN pair is dropped.
    x = np.array([0, 1, 2, 3, 4, 5, np.nan])
    y = np.array([2, 6, 4, 10, 8, 12, 3.0])
    xs, ys = x[:6], y[:6]
    dx, dy = xs - xs.mean(), ys - ys.mean()
    r = (dx @ dy) / np.sqrt((dx @ dx) * (dy @ dy))
    t = r * np.sqrt(4 / (1 - r**2))
    p = 2 * student_t.sf(abs(t), df=4)
    slope = (dx @ dy) / (dx @ dx)
    assert r == pytest.approx(31 / 35) and slope == pytest.approx(31 / 17.5) and 0.01 < p < 0.05
    for got in (stats.trend(x, y), _pair(_twins(x, y, [0.5] * 7))):
        assert float(got["n"]) == 6
        assert float(got["r"]) == pytest.approx(r, rel=1e-12)
        assert float(got["p"]) == pytest.approx(p, rel=1e-9)
        assert float(got["slope"]) == pytest.approx(slope, rel=1e-12)
        assert float(got["intercept"]) == pytest.approx(ys.mean() - slope * xs.mean(), rel=1e-12)

def test_one_trained_twin_among_untrained_ones_gives_no_statistics():
    # the demo's case: a perfect line through one trained twin and seven untrained ones (2% of the ceiling)
    x = np.array([0.3, 0.01, 0.02, 0.0, 0.015, 0.005, 0.01, 0.02])
    got = _pair(_twins(x, 2 * x + 0.5, [0.6] + [0.02] * 7))
    assert int(got["n"]) == 1 and np.isnan(got["r"]) and np.isnan(got["p"]) and np.isnan(got["slope"])
    assert not bool(got["carried_by_one"])


def test_carried_by_one_flags_a_correlation_one_point_makes():
    # seven points and one outlier: r > 0.89, p < 0.01; without the outlier r = -0.19 (sign flipped, p = 0.68),
    # r = +0.46 (p = 0.30: no longer significant) or r = -0.998 (p < 1e-6: significant, of the other sign)
    for y, outlier in (([1, 1.2, 0.9, 1.1, 1.0, 0.95, 1.05], 5), ([0.9, 1.0, 0.95, 1.1, 1.0, 0.95, 1.05], 5),
                       ([2.0, 1.85, 1.6, 1.45, 1.2, 1.0, 0.85], 10)):
        carried = _pair(_twins([1, 2, 3, 4, 5, 6, 7, 20], [*y, outlier], [0.5] * 8))
        assert float(carried["p"]) < 0.01 and int(carried["n"]) == 8
        assert bool(carried["carried_by_one"]) and bool(carried["descriptive"])
    x = np.arange(10.0)
    steady = _pair(_twins(x, x + np.array([0.3, -0.2, 0.1, 0.4, -0.3, 0.2, -0.1, 0.3, -0.4, 0.1]), [0.5] * 10))
    assert float(steady["p"]) < 0.05 and not bool(steady["carried_by_one"]) and not bool(steady["descriptive"])
    few = _pair(_twins([1, 2], [1, 3], [0.5] * 2))
    assert int(few["n"]) == 2 and np.isnan(few["r"])                    # fewer than MIN_POINTS


def test_status_marks_twins_below_the_threshold_not_usable(smoke_root, smoke_catalog):
    from actstore.status import status_lines

    fraction = open_analysis(smoke_root, "neural")["ceiling_fraction"].mean("mouse").sel(seed=0).values
    threshold = float(fraction.mean())                   # between the two smoke twins
    catalog = Catalog(smoke_catalog.path, smoke_catalog.profile,
                      deep_merge(smoke_catalog.cfg, {"analysis": {"usable_ceiling_fraction": threshold}}))
    lines = {line.split()[1]: line for line in status_lines(catalog, smoke_root) if line.startswith("  model")}
    for (arch, seed), f in zip(smoke_catalog.models, fraction):
        want = ", usable twin" if f >= threshold else f", not usable (below {100 * threshold:g}% of ceiling)"
        assert lines[f"{arch}-s{seed}"].endswith(want)
    assert sum("not usable" in line for line in lines.values()) == 1


def _catalog() -> Catalog:
    base = load_catalog(profile="smoke")
    return Catalog(base.path, base.profile, deep_merge(base.cfg, {"zoo": {"archs": ARCHS, "seeds": SEEDS}}))


def test_stats_job_table_csv_and_staleness(tmp_path):
    root = str(tmp_path)
    catalog = _catalog()
    lines = assays.run(catalog, root, "stats")                       # nothing exists yet: all NaN, no exception
    assert "missing: neural, tuning, fidelity, probes, geometry, sparseness" in lines[0]
    r = _grid([[0.1, 0.2], [0.3, 0.35], [0.5, 0.45], [0.7, 0.8]])
    write_analysis(xr.Dataset({"neural_r": r}), root, "neural", {"v": 1})
    write_analysis(xr.Dataset({"orientation_ood": 0.5 * r + 0.1, "contrast_auc": -r + 1}), root, "probes", {"v": 1})
    assert assays.run(catalog, root, "stats")[-1].startswith("stats: wrote")
    csv = pd.read_csv(tmp_path / "analysis" / "summary.csv")
    assert len(csv) == 8 and list(csv.columns[:3]) == ["arch", "seed", "neural_r"]
    assert csv["usable"].all() and csv["ceiling_fraction"].isna().all()  # no ceiling known: every twin counts
    assert csv.set_index(["arch", "seed"]).loc[("alexnet", 1), "orientation_ood"] == pytest.approx(0.275)
    out = open_analysis(root, "summary").load()
    head = out.sel(level="arch", pair="neural_r vs orientation_ood")
    assert float(head["r"]) == pytest.approx(1.0) and float(head["slope"]) == pytest.approx(0.5)
    assert float(head["n"]) == 4
    assert float(out["r"].sel(level="model", pair="neural_r vs contrast_auc")) == pytest.approx(-1.0)
    assert float(out["n"].sel(level="model", pair="neural_r vs contrast_auc")) == 8
    assert np.isnan(out["r"].sel(level="arch", pair="neural_r vs rdk_auc"))
    assert out["neural_r_sd"].sel(arch="xu_cnn") == pytest.approx(np.std([0.1, 0.2], ddof=1))
    assert assays.run(catalog, root, "stats") == ["stats: up to date"]
    (tmp_path / "analysis" / "summary.csv").unlink()
    assert assays.run(catalog, root, "stats")[-1].startswith("stats: wrote")  # a lost CSV is rewritten


def test_real_smoke_chain(smoke_root, smoke_catalog):
    """Probes, geometry and stats over stores the real pipeline extracted from trained smoke twins."""

    probes_ds = open_analysis(smoke_root, "probes").load()
    geometry_ds = open_analysis(smoke_root, "geometry").load()
    models = smoke_catalog.models
    for arch, seed in models:
        one = probes_ds.sel(arch=arch, seed=seed)
        for name in ("orientation_acc_id", "orientation_acc_ood", "contrast_bacc", "rdk_acc",
                     "orientation_auc_adj_id", "contrast_auc", "rdk_auc"):
            assert np.isfinite(one[name].values).all(), name
        for name in ("orientation_acc_id", "contrast_bacc", "rdk_acc", "contrast_auc", "rdk_auc"):
            assert ((one[name].values >= 0) & (one[name].values <= 1)).all(), name
        lam = geometry_ds["eigenvalues"].sel(space="gru", arch=arch, seed=seed).values
        assert np.all(np.diff(lam[np.isfinite(lam)]) <= 1e-12)
        assert np.isfinite(geometry_ds["alpha_gru"].sel(arch=arch, seed=seed))
    assert set(probes_ds["train_size"].values) <= set(smoke_catalog["analysis"]["probes"]["orientation_train_sizes"])
    assert geometry_ds.sizes["rank"] <= smoke_catalog["analysis"]["geometry"]["n_components"]
    table = pd.read_csv(f"{smoke_root}/analysis/summary.csv").set_index(["arch", "seed"])
    assert len(table) == len(models)
    for arch, seed in models:
        assert table.loc[(arch, seed), "orientation_ood"] == pytest.approx(
            float(probes_ds["orientation_ood"].sel(arch=arch, seed=seed)))
        assert np.isfinite(table.loc[(arch, seed), "neural_r"])
    assert assays.run(smoke_catalog, smoke_root, "probes") == ["probes: up to date"]
    assert assays.run(smoke_catalog, smoke_root, "geometry") == ["geometry: up to date"]
    assert assays.run(smoke_catalog, smoke_root, "stats") == ["stats: up to date"]
