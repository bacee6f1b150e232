"""The batched fitting engine: known parameters recovered, bounds held, bad curves flagged, parity with scipy."""
import warnings

import numpy as np
import pytest
from scipy.optimize import curve_fit

from actstore.analysis import fitting

X = np.log(np.geomspace(0.01, 0.25, 12))
C = np.array([0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0])


def _r2(y, pred):
    return 1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)


def test_dog_recovers_a_noise_free_band_pass_curve():
    true = np.array([[0.3, 2.0, np.log(0.06), 0.5, 0.6, np.log(0.05), 1.4]])
    fit = fitting.fit_dog(X, fitting.dog(X, true))
    assert fit.success[0] and fit.r2[0] > 0.99999
    dense = np.linspace(X.min(), X.max(), 500)
    peak = dense[np.argmax(fitting.dog(dense, fit.params))]
    assert peak == pytest.approx(dense[np.argmax(fitting.dog(dense, true))], abs=0.02)


def test_dog_batch_matches_shapes_and_respects_bounds():
    rng = np.random.default_rng(1)
    true = np.stack([rng.normal(0, 0.2, 60), rng.uniform(0.5, 2, 60), rng.uniform(X.min(), X.max(), 60),
                     rng.uniform(0.3, 1.2, 60), rng.uniform(0, 0.8, 60), rng.uniform(X.min(), X.max(), 60),
                     rng.uniform(0.8, 2.5, 60)], 1)
    y = (fitting.dog(X, true) + rng.normal(0, 0.05, (60, 12))).reshape(3, 20, 12)
    fit = fitting.fit_dog(X, y)
    assert fit.params.shape == (3, 20, 7) and fit.r2.shape == (3, 20) and fit.success.shape == (3, 20)
    _, lower, upper = fitting.dog_setup(X, y.reshape(60, 12), 5)
    p = fit.params.reshape(60, 7)
    assert np.all(p >= lower) and np.all(p <= upper)
    assert np.median(fit.r2) > 0.95


def test_naka_rushton_recovers_c50_n_and_the_sign_of_the_gain():
    true = np.array([[0.5, 2.0, 0.15, 2.5], [1.0, -1.5, 0.3, 1.5], [0.0, 0.7, 0.05, 4.0]])
    fit = fitting.fit_naka_rushton(C, fitting.naka_rushton(C, true))
    assert fit.success.all() and np.all(fit.r2 > 0.9999)
    np.testing.assert_allclose(fit.params[:, 2], true[:, 2], rtol=0.02)
    np.testing.assert_allclose(fit.params[:, 3], true[:, 3], rtol=0.02)
    np.testing.assert_array_equal(np.sign(fit.params[:, 1]), np.sign(true[:, 1]))


def test_naka_rushton_keeps_c50_and_n_inside_their_bounds():
    # a step at very low contrast wants c50 -> 0 and n -> infinity; the fit must stop at the bounds
    y = np.where(C > 0, 1.0, 0.0)[None]
    fit = fitting.fit_naka_rushton(C, y, c50_bounds=(0.005, 1.0), n_bounds=(0.5, 6.0))
    assert 0.005 <= fit.params[0, 2] <= 1.0 and 0.5 <= fit.params[0, 3] <= 6.0
    assert fit.r2[0] > 0.99


def test_at_bound_flags_c50_on_the_fit_box_and_nothing_inside_it_or_unfit():
    """Against the box each curve was fitted in: a linear curve puts c50 on the upper bound, a step on the lower
    (and n on its upper); an interior sigmoid, an unfitted (NaN) curve and the unbounded r0 are never at a bound."""
    sigmoid = fitting.naka_rushton(C, np.array([[0.5, 2.0, 0.15, 2.5]]))[0]
    y = np.stack([0.3 + 2 * C, np.where(C > 0, 1.0, 0.0), sigmoid, np.full(9, np.nan)])
    fit = fitting.fit_naka_rushton(C, y, c50_bounds=(0.005, 1.0), n_bounds=(0.5, 6.0))
    np.testing.assert_array_equal(fit.lower[:, 2], 0.005)
    np.testing.assert_array_equal(fit.upper[:, 2], 1.0)
    flags = fitting.at_bound(fit)
    assert flags[:, 2].tolist() == [True, True, False, False]  # c50
    assert flags[1, 3] and not flags[2, 3]  # the step's n at 6
    assert not flags[:, 0].any()  # r0 has infinite bounds
    # half and twice the tolerance, relative to each bound, inside it
    rtol, params = fitting.BOUND_RTOL, np.tile(fit.params[2], (4, 1))
    params[:, 2] = 1.0 * (1 - rtol / 2), 1.0 * (1 - 2 * rtol), 0.005 * (1 + rtol / 2), 0.005 * (1 + 2 * rtol)
    near = fitting.Fit(params, fit.r2, fit.success, fit.lower, fit.upper)
    assert fitting.at_bound(near)[:, 2].tolist() == [True, False, True, False]


def test_nan_and_constant_curves_give_nan_and_no_success_without_warnings():
    y = np.stack([np.full(12, np.nan), np.full(12, 3.0), np.r_[np.nan, np.ones(11)], fitting.dog(X, np.array(
        [[0.0, 1.0, np.log(0.05), 0.5, 0.0, np.log(0.05), 1.0]]))[0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fitting.fit_dog(X, y)
        nr = fitting.fit_naka_rushton(C, np.stack([np.full(9, np.nan), np.zeros(9)]))
    assert np.isnan(fit.params[:3]).all() and np.isnan(fit.r2[:3]).all() and not fit.success[:3].any()
    assert fit.success[3] and fit.r2[3] > 0.9999
    assert np.isnan(nr.r2).all() and not nr.success.any()


def test_batched_dog_is_as_good_as_scipy_from_the_same_starts_and_bounds():
    rng = np.random.default_rng(2)
    n = 12
    true = np.stack([rng.normal(0, 0.2, n), rng.uniform(0.5, 2, n), rng.uniform(X.min(), X.max(), n),
                     rng.uniform(0.3, 1.2, n), rng.uniform(0, 0.8, n), rng.uniform(X.min(), X.max(), n),
                     rng.uniform(0.8, 2.5, n)], 1)
    y = fitting.dog(X, true) + rng.normal(0, 0.1, (n, 12))
    fit = fitting.fit_dog(X, y)
    p0, lower, upper = fitting.dog_setup(X, y, 5)
    ref = []
    for i in range(n):
        best = -np.inf
        for start in p0[i]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p, _ = curve_fit(lambda x, *q: fitting.dog(x, np.array(q)), X, y[i], p0=start,
                                 bounds=(lower[i], upper[i]), maxfev=4000)
            best = max(best, _r2(y[i], fitting.dog(X, p)))
        ref.append(best)
    assert np.median(fit.r2) >= np.median(ref) - 0.005
