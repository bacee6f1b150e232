"""Neural-prediction metrics against values computed by hand."""
import numpy as np
import pytest

from actstore.train.metrics import chunked_neuron_r, overall_r, pearson_columns, prediction_r


def test_pearson_columns_hand_values():
    # column 0: perfectly linear (r = 1); column 1: reversed (r = -1);
    # column 2: x = (1, 2, 3, 4), y = (1, 3, 2, 4): dx = (-1.5, -.5, .5, 1.5), dy = (-1.5, .5, -.5, 1.5),
    # sum dx dy = 2.25 - .25 - .25 + 2.25 = 4, sum dx^2 = sum dy^2 = 5 -> r = 0.8
    pred = np.array([[1, 1, 1], [2, 2, 2], [3, 3, 3], [4, 4, 4]], dtype=float)
    obs = np.array([[2, 8, 1], [4, 6, 3], [6, 4, 2], [8, 2, 4]], dtype=float)
    np.testing.assert_allclose(pearson_columns(pred, obs), [1.0, -1.0, 0.8])


def test_pearson_columns_constant_column_is_nan():
    pred = np.array([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])
    obs = np.array([[1.0, 2.0], [0.0, 3.0], [5.0, 4.0]])
    r = pearson_columns(pred, obs)
    assert np.isnan(r[1]) and np.isfinite(r[0])


def test_constant_prediction_scores_zero_where_the_neuron_varies():
    # column 0: constant prediction, varying counts -> 0 (no variation explained), not NaN (dropped);
    # column 1: silent neuron -> NaN whatever the prediction; column 2: hand value 0.8 as above
    pred = np.array([[2.0, 1.0, 1.0], [2.0, 2.0, 2.0], [2.0, 3.0, 3.0], [2.0, 4.0, 4.0]])
    obs = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 3.0], [0.0, 0.0, 2.0], [3.0, 0.0, 4.0]])
    r = prediction_r(pred, obs)
    assert r[0] == 0.0 and np.isnan(r[1]) and r[2] == pytest.approx(0.8)
    # a twin whose rates are flat in every chunk scores 0 for each neuron that fires, not the mean of the others
    chunked = chunked_neuron_r(np.vstack([pred, pred]), np.vstack([obs, obs]), chunk=4)
    assert chunked[0] == 0.0 and np.isnan(chunked[1]) and chunked[2] == pytest.approx(0.8)


def test_chunked_neuron_r_averages_within_chunks_then_drops_tail():
    # One neuron, chunk 4: chunk A is perfectly correlated (1.0), chunk B gives 0.8 (hand value above);
    # the 2-sample tail is dropped. Pooled over the same 8 samples r is much lower (offset between chunks):
    # mean pred 2.5, mean obs 13.75; Sxy = 329 - 8 * 2.5 * 13.75 = 54, Sxx = 10, Syy = 3030 - 8 * 13.75^2 = 1517.5
    pred = np.array([1, 2, 3, 4, 1, 2, 3, 4, 9, 0], dtype=float)[:, None]
    obs = np.array([10, 20, 30, 40, 1, 3, 2, 4, 0, 9], dtype=float)[:, None]
    r = chunked_neuron_r(pred, obs, chunk=4)
    assert r.shape == (1,)
    assert r[0] == pytest.approx((1.0 + 0.8) / 2)
    assert overall_r(pred[:8], obs[:8]) == pytest.approx(54 / np.sqrt(10 * 1517.5))  # 0.438


def test_chunked_neuron_r_skips_constant_chunks_and_too_short_input():
    # neuron 0: chunk 1 constant in obs (NaN, ignored), chunk 2 r = -1 -> mean -1
    pred = np.array([[1.0], [2.0], [1.0], [2.0]])
    obs = np.array([[5.0], [5.0], [3.0], [1.0]])
    assert chunked_neuron_r(pred, obs, chunk=2)[0] == pytest.approx(-1.0)
    assert np.isnan(chunked_neuron_r(pred, obs, chunk=5)).all()


def test_overall_r_pools_all_entries():
    # entries (1, 2), (2, 4), (3, 1), (4, 3): dx = (-1.5, -.5, .5, 1.5), dy = (-.5, 1.5, -1.5, .5)
    # sum dx dy = .75 - .75 - .75 + .75 = 0 -> r = 0
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    obs = np.array([[2.0, 4.0], [1.0, 3.0]])
    assert overall_r(pred, obs) == pytest.approx(0.0, abs=1e-12)
    assert overall_r(pred, 2 * pred + 1) == pytest.approx(1.0)
