"""Every probe endpoint carries n and a standard error: the SE formulas against hand-computed values and
simulation, probes.zarr / summary.csv of the real smoke chain against the recipes' test trial counts, and
the report's error bars and table against those numbers."""
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from actstore.analysis import scores as sc
from actstore.analysis import stats
from actstore.report import figures as fg
from actstore.report.html import results_table
from actstore.store.analysis import open_analysis


def test_binomial_se_hand_computed():
    labels = np.zeros(64, int)
    predicted = np.r_[np.zeros(45, int), np.ones(19, int)]  # 45 of 64 correct
    p = float(sc.accuracy(predicted, labels))
    assert p == 0.703125
    # p (1 - p) = 0.703125 * 0.296875 = 0.208740234375; / 64 = 0.0032615661621; sqrt = 0.0571101...
    assert sc.binomial_se(p, 64) == pytest.approx(0.0571101, abs=1e-7)
    assert sc.binomial_se(p, 64) == pytest.approx(np.sqrt(0.208740234375 / 64), rel=1e-12)
    assert sc.binomial_se(1.0, 10) == 0.0 and np.isnan(sc.binomial_se(0.5, 0))


def test_balanced_accuracy_se_hand_computed():
    # the hand-worked case of test_probes: blanks 3 of 4 rejected; targets at 0.1 (1 of 4 hit), 0.5 (3 of 4), 1 (2 of 2)
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    level = np.array([0, 0, 0, 0, 0.1, 0.1, 0.1, 0.1, 0.5, 0.5, 0.5, 0.5, 1.0, 1.0])
    pred = np.array([0, 0, 0, 1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1])
    grid = np.array([0.0, 0.1, 0.5, 1.0])
    hit, rejection, n_target, n_blank = sc.detection_rates(pred, labels, level, grid)
    np.testing.assert_allclose(hit, [0.25, 0.25, 0.75, 1.0])  # c = 0: no targets, the false-alarm rate
    assert rejection == 0.75 and n_target.tolist() == [0, 4, 4, 2] and n_blank == 4
    se = sc.balanced_accuracy_se(hit, n_target, rejection, n_blank)
    # se_hit = se_cr = sqrt(.25 * .75 / 4) = 0.216506 at 0.1 and 0.5 -> 0.5 sqrt(2 * 0.046875) = 0.153093;
    # at 1.0 se_hit = 0 -> 0.5 * 0.216506 = 0.108253; at 0 the value is exactly 0.5 -> 0
    np.testing.assert_allclose(se, [0.0, 0.1530931, 0.1530931, 0.1082532], atol=1e-7)


def test_trapezoid_se_hand_computed():
    x = np.array([0.0, 1.0, 3.0])
    # trapezoid weights / range 3: (0.5, 0.5 + 1, 1) / 3 = (1/6, 1/2, 1/3)
    np.testing.assert_allclose(sc.trapezoid_weights(x), [1 / 6, 1 / 2, 1 / 3])
    assert sc.normalized_auc(np.array([0.0, 0.5, 1.0]), x) == pytest.approx(1.75 / 3)
    # sqrt((0.1/6)^2 + (0.2/2)^2 + (0.3/3)^2) = sqrt(0.000277778 + 0.01 + 0.01) = 0.1424001
    assert sc.trapezoid_se(np.array([0.1, 0.2, 0.3]), x) == pytest.approx(0.1424001, abs=1e-7)


def test_shared_blank_and_paired_auc_se_hand_computed():
    # contrast: the case above over the grid index 0..3: weights (1/6, 1/3, 1/3, 1/6); levels with targets 1-3,
    # sum of their weights 5/6; var = 0.25 ((1/3)^2 0.046875 * 2 + 0 + (5/6)^2 0.046875) = 0.0107422
    hit, n_target = np.array([0.25, 0.25, 0.75, 1.0]), np.array([0, 4, 4, 2])
    assert sc.balanced_auc_se(hit, n_target, 0.75, 4, np.arange(4)) == pytest.approx(np.sqrt(0.0107422), abs=1e-6)
    # orientation: 2 sizes on the same 4 trials, weights (1/2, 1/2): a = (1, 1, .5, 0), SD 0.4145781 / sqrt 4
    correct = np.array([[1, 1, 0, 0], [1, 1, 1, 0]], bool)
    assert sc.paired_auc_se(correct, np.array([3.0, 4.0])) == pytest.approx(0.2072891, abs=1e-7)


def test_auc_ses_match_simulation():
    """The analytic SEs equal the SD of the AUC over many simulated test sets drawn from known rates."""
    rng = np.random.default_rng(0)
    reps = 20000
    # contrast: 3 levels x 40 targets and 60 blanks shared by every level
    grid, n_t, n_b = np.array([0.1, 0.5, 1.0]), 40, 60
    level = np.r_[np.repeat(grid, n_t), np.zeros(n_b)]
    labels = np.r_[np.ones(3 * n_t, int), np.zeros(n_b, int)]
    p_hit, p_cr = np.array([0.6, 0.8, 0.95]), 0.7
    p_yes = np.r_[np.repeat(p_hit, n_t), np.full(n_b, 1 - p_cr)]
    pred = (rng.random((reps, len(labels))) < p_yes).astype(int)
    auc = sc.normalized_auc(sc.balanced_accuracy_by_level(pred, labels, level, grid), np.arange(3))
    se = sc.balanced_auc_se(p_hit, np.full(3, n_t), p_cr, n_b, np.arange(3))
    assert auc.std() == pytest.approx(se, rel=0.03)
    # orientation: nested train sizes scored on the same 200 test trials -> correlated levels
    p = np.array([0.3, 0.6, 0.8])
    u = rng.random((reps, 1, 200))
    correct = u < p[:, None]  # a trial right at one size is right at every larger one
    acc = correct.mean(-1)
    x = np.log2([8, 16, 32])
    analytic = np.mean(sc.paired_auc_se(correct, x))
    assert sc.normalized_auc(acc, x).std() == pytest.approx(analytic, rel=0.03)
    assert analytic > 1.1 * np.mean(sc.trapezoid_se(sc.binomial_se(acc, 200), x))  # independence would understate


# ----------------------------------------------------------------------------- the real smoke chain

def test_smoke_probes_carry_se_and_the_recipes_test_counts(smoke_root, smoke_catalog):
    ds = open_analysis(smoke_root, "probes").load()
    ori, con, rdk = (smoke_catalog.recipe(f"{t}_task") for t in ("orientation", "contrast", "rdk"))
    per_level, blanks = con["test"]["targets_per_contrast"], con["test"]["blanks"]
    per_coherence = rdk["test"]["trials_per_coherence"]
    expected_n = {
        **{f"orientation_{name}_n": ori["splits"][f"test_{test}"]["trials"] for test in ("id", "ood")
           for name in (f"acc_{test}", test, f"auc_{test}", f"auc_adj_{test}")},
        "contrast_bacc_n_target": per_level, "contrast_bacc_n_blank": blanks,
        "contrast_auc_n": len(con["test_contrasts"]) * per_level + blanks,
        "rdk_acc_n": per_coherence, "rdk_auc_n": len(rdk["test_coherences"]) * per_coherence,
    }
    for arch, seed in smoke_catalog.models:
        one = ds.sel(arch=arch, seed=seed)
        for name, n in expected_n.items():
            assert (one[name].values == n).all(), name
        for name in ("orientation_acc_id", "orientation_acc_ood", "orientation_ood", "rdk_acc"):
            np.testing.assert_allclose(one[f"{name}_se"], sc.binomial_se(one[name], one[f"{name}_n"]), err_msg=name)
        for name in ("contrast_bacc", "contrast_auc", "rdk_auc", "orientation_auc_id", "orientation_auc_adj_ood"):
            se = one[f"{name}_se"].values
            assert (np.isfinite(se) & (se >= 0) & (se <= 0.5)).all(), name
    table = pd.read_csv(f"{smoke_root}/analysis/summary.csv").set_index(["arch", "seed"])
    neural = open_analysis(smoke_root, "neural").load()
    for arch, seed in smoke_catalog.models:
        for c in ("orientation_ood", "contrast_auc", "rdk_auc"):
            for k in ("se", "n"):
                expected = float(ds[f"{c}_{k}"].sel(arch=arch, seed=seed))
                assert table.loc[(arch, seed), f"{c}_{k}"] == pytest.approx(expected)
        mice = neural.sel(arch=arch, seed=seed)
        assert table.loc[(arch, seed), "neural_r_n"] == float(mice["n_neurons"].sum())
        r_se = np.sqrt((mice["r_neuron_se"] ** 2).sum()) / mice.sizes["mouse"]  # every smoke mouse is scored
        assert table.loc[(arch, seed), "neural_r_se"] == pytest.approx(float(r_se))


def test_smoke_report_error_bars_and_table_show_the_se_and_n(smoke_root, smoke_catalog):
    probes = open_analysis(smoke_root, "probes").load()
    summary = open_analysis(smoke_root, "summary").load()
    fig = fg.coherence_curves(probes)
    ax = fig.axes[0]
    assert "SE" in ax.get_ylabel()
    bars = {c.get_label(): c for c in ax.containers}
    for arch in fg._archs(probes["rdk_acc"]):  # one seed: the bars are that model's +- 1 SE
        segments = bars[arch].lines[2][0].get_segments()
        half = np.array([(s[1, 1] - s[0, 1]) / 2 for s in segments])
        np.testing.assert_allclose(half, probes["rdk_acc_se"].sel(arch=arch, seed=0), rtol=1e-6)
    scatter = fg.cross_model_scatter(summary, summary.sel(level="arch"), [("neural_r", "orientation_ood")], "t")
    thick = [c for c in scatter.axes[0].containers if c.lines[0] is None]  # the SE bars draw no marker
    assert len(thick) == summary.sizes["arch"]
    spec = stats.TableSpec.from_attrs(summary.attrs)
    html = results_table(summary, list(spec.columns), fg.COLUMN_LABELS, tuple(spec.errors))
    assert html.count("<th>SE (n)</th>") == len(spec.errors)
    n_ood = int(summary["orientation_ood_n"].sel(seed=0).values[0])
    assert len(re.findall(rf"\(n = {n_ood}\)", html)) >= summary.sizes["arch"]


def test_arch_mean_se_independent_and_shared():
    values = xr.DataArray([0.5, 0.7, np.nan], dims="seed")
    se = xr.DataArray([0.03, 0.04, np.nan], dims="seed")
    assert float(stats.mean_se(values, se, True)) == pytest.approx(0.05 / 2)  # sqrt(.03^2 + .04^2) / 2
    assert float(stats.mean_se(values, se, False)) == pytest.approx(0.035)     # mean SE: correlated bound
    assert np.isnan(stats.mean_se(values, se.where(se < 0.035), True))        # a used value without its SE
