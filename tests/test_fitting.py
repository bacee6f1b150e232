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
    assert np.median(fit.r2) >= np.median(ref)  # not lower than scipy from the same starts


def _inside(lower, upper, rng, n):
    """n random parameter vectors strictly inside a box (infinite sides replaced by +-1)."""
    lo, hi = np.where(np.isfinite(lower), lower, -1.0), np.where(np.isfinite(upper), upper, 1.0)
    return lo + (hi - lo) * rng.uniform(0.05, 0.95, (n, len(lo)))


@pytest.mark.parametrize("model, x, lower, upper", [
    (fitting._dog, X, np.array([-np.inf, 0, X.min() - 1, 0.15, 0, X.min() - 1, 0.15]),
     np.array([np.inf, 3, X.max() + 1, 5, 3, X.max() + 1, 5])),
    (fitting._nr, C, np.array([-np.inf, -3, 0.005, 0.5]), np.array([np.inf, 3, 1.0, 6.0])),
])
def test_analytic_jacobian_equals_central_differences(model, x, lower, upper):
    """The solver trusts the models' Jacobians (no finite differences): each column matches a central
    difference of the prediction at random points inside the box."""
    p = _inside(lower, upper, np.random.default_rng(3), 50)
    _, jac = model(x, p)
    for k in range(p.shape[1]):
        h = 1e-6 * np.maximum(np.abs(p[:, k]), 1.0)
        up, down = p.copy(), p.copy()
        up[:, k] += h
        down[:, k] -= h
        fd = (model(x, up)[0] - model(x, down)[0]) / (2 * h[:, None])
        np.testing.assert_allclose(jac[:, :, k], fd, rtol=1e-5, atol=1e-7, err_msg=f"column {k}")


def test_cholesky_solve_matches_numpy_and_flags_indefinite_systems():
    rng = np.random.default_rng(4)
    j = rng.normal(size=(30, 7, 12))
    a, diag, b = j @ j.transpose(0, 2, 1), rng.uniform(1e-6, 1, (30, 7)), rng.normal(size=(30, 7))
    ref = np.linalg.solve(a + diag[:, :, None] * np.eye(7), b[..., None])[..., 0]
    np.testing.assert_allclose(fitting._cholesky_solve(a, diag, b), ref, rtol=1e-9, atol=1e-12)
    with np.errstate(invalid="ignore"):
        assert np.isnan(fitting._cholesky_solve(-a[:1], diag[:1], b[:1])).all()


def test_streaming_rows_through_a_small_working_set_gives_the_fits_of_one_big_working_set(monkeypatch):
    """Rows leave the working set as they converge (or reach max_iter) and waiting rows take their slots.
    With a 16-row working set, 80 (curve, start) rows stream through it; every row ends where it ends when all
    80 are worked on at once (parameters, cost, converged), to rounding."""
    rng = np.random.default_rng(5)
    true = np.stack([rng.normal(0, 0.2, 16), rng.uniform(0.5, 2, 16), rng.uniform(X.min(), X.max(), 16),
                     rng.uniform(0.3, 1.2, 16), rng.uniform(0, 0.8, 16), rng.uniform(X.min(), X.max(), 16),
                     rng.uniform(0.8, 2.5, 16)], 1)
    y = fitting.dog(X, true) + rng.normal(0, 0.1, (16, 12))
    p0, lower, upper = fitting.dog_setup(X, y, 5)
    args = (fitting._dog, X, np.repeat(y, 5, axis=0), p0.reshape(-1, 7), np.repeat(lower, 5, axis=0),
            np.repeat(upper, 5, axis=0))
    whole = fitting.least_squares(*args, max_iter=40)
    monkeypatch.setattr(fitting, "BLOCK", 16)
    streamed = fitting.least_squares(*args, max_iter=40)
    assert 0 < whole[2].sum() < 80  # some rows converge, some stop at max_iter
    np.testing.assert_allclose(streamed[0], whole[0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(streamed[1], whole[1], rtol=1e-9)
    np.testing.assert_array_equal(streamed[2], whole[2])
