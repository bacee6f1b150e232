"""Linear probes: known answers (linear signal -> near perfect, noise -> chance), hand-worked balanced
accuracy, agreement with scikit-learn at the same L2, the fast solver's parts against plain references
(objective vs autograd, start Hessian vs the true one, float32 solve vs float64 optimum), and the job over
small stores in the contract layout."""
import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.linear_model import LogisticRegression

from actstore.analysis import probes as pr
from actstore.analysis import scores as sc
from actstore.catalog import Catalog, deep_merge, load_catalog
from actstore import assays
from actstore.store.analysis import open_analysis


def _signal_and_noise(rng, n, k, f, gain):
    """Two models on the same labels: model 0 encodes the label linearly, model 1 is pure noise."""
    y = rng.integers(0, k, n)
    proto = rng.normal(size=(k, f))
    signal = gain * proto[y] + rng.normal(size=(n, f))
    return np.stack([signal, rng.normal(size=(n, f))]), y


@pytest.mark.parametrize("k", [8, 2])
def test_linear_signal_near_perfect_and_noise_at_chance(k):
    rng = np.random.default_rng(0)
    x, y = _signal_and_noise(rng, 4000, k, 24, gain=3.0)
    probes = pr.fit_probes(x[:, :2000], y[:2000], k, np.array([1e-2]))
    acc = sc.accuracy(probes.predict(x[:, 2000:])[:, 0], y[2000:])
    se = np.sqrt((1 / k) * (1 - 1 / k) / 2000)
    assert acc[0] > 0.97
    assert abs(acc[1] - 1 / k) < 4 * se


def test_balanced_accuracy_hand_worked():
    # blanks (label 0): 3 of 4 rejected -> CR 0.75, false alarms 0.25
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    level = np.array([0, 0, 0, 0, 0.1, 0.1, 0.1, 0.1, 0.5, 0.5, 0.5, 0.5, 1.0, 1.0])
    pred = np.array([0, 0, 0, 1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1])
    grid = np.array([0.0, 0.1, 0.5, 1.0])
    got = sc.balanced_accuracy_by_level(pred, labels, level, grid)
    # c=0 has no targets: hit = false-alarm rate 0.25 -> 0.5; 0.1: (0.25+0.75)/2; 0.5: (0.75+0.75)/2; 1: (1+0.75)/2
    np.testing.assert_allclose(got, [0.5, 0.5, 0.75, 0.875])
    # zero-contrast targets present: their own hit rate counts
    labels0 = np.array([0, 0, 1, 1])
    got0 = sc.balanced_accuracy_by_level(np.array([[0, 1, 1, 1]]), labels0, np.array([0, 0, 0, 0]), np.array([0.0]))
    np.testing.assert_allclose(got0, [[(1.0 + 0.5) / 2]])
    np.testing.assert_allclose(sc.accuracy_by_level(pred, labels, level, grid), [0.75, 0.25, 0.75, 1.0])


def test_auc_and_chance_adjustment():
    assert sc.normalized_auc(np.array([0.5, 0.5, 0.5]), np.array([3, 4, 5])) == pytest.approx(0.5)
    # trapezoid of (0, 1) over x (0, 1, 3): (0+0.5)/2*1 + (0.5+1)/2*2 = 1.75 / 3
    assert sc.normalized_auc(np.array([0.0, 0.5, 1.0]), np.array([0, 1, 3])) == pytest.approx(1.75 / 3)
    assert sc.chance_adjusted(0.125, 1 / 8) == pytest.approx(0.0)
    assert sc.chance_adjusted(1.0, 1 / 8) == pytest.approx(1.0)


@pytest.mark.parametrize("k", [8, 2])
def test_batched_probes_match_sklearn(k):
    rng = np.random.default_rng(1)
    m, n, f = 2, 400, 12
    y = rng.integers(0, k, 2 * n)
    proto = rng.normal(size=(m, k, f))
    x = 0.6 * proto[:, y] + rng.normal(size=(m, 2 * n, f)) + 2.0  # offset: the bias must be fitted too
    grid = np.array([1e-3, 1e-2, 1e-1])
    probes = pr.fit_probes(x[:, :n], y[:n], k, grid, max_iter=1000, tolerance=1e-8)
    pred = probes.predict(x[:, n:])
    for li, l2 in enumerate(grid):
        for mi in range(m):
            sk = LogisticRegression(C=1 / (l2 * n), tol=1e-8, max_iter=1000).fit(x[mi, :n], y[:n])
            ours = sc.accuracy(pred[mi, li], y[n:])
            theirs = (sk.predict(x[mi, n:]) == y[n:]).mean()
            assert abs(ours - theirs) <= 0.01
            np.testing.assert_allclose(probes.weight[mi, li].numpy(), sk.coef_.T, atol=2e-3)


@pytest.mark.parametrize("k", [8, 2])
def test_fewer_samples_than_features_match_sklearn(k):
    # n = 40 < F = 60: the solve runs in the span of the centred samples (`_sample_basis`, <= 40 coordinates),
    # and the probes it maps back to the raw features must be scikit-learn's at the same l2 (C = 1 / (l2 n)):
    # the same weights (none outside the span), the same probabilities and test accuracy. Known answer: the
    # labels are encoded linearly with a gain that makes them easy, so both are far above chance.
    rng = np.random.default_rng(8)
    m, n, f, n_test = 2, 40, 60, 2000
    y = rng.integers(0, k, n + n_test)
    proto = rng.normal(size=(m, k, f))
    x = 1.5 * proto[:, y] + rng.normal(size=(m, n + n_test, f)) + 1.0
    grid = np.array([1e-2, 1e-1, 1.0])
    probes = pr.fit_probes(x[:, :n], y[:n], k, grid, max_iter=2000, tolerance=1e-10)
    pred = probes.predict(x[:, n:])
    z = probes.logits(x[:, n:])
    for li, l2 in enumerate(grid):
        for mi in range(m):
            sk = LogisticRegression(C=1 / (l2 * n), tol=1e-10, max_iter=5000).fit(x[mi, :n], y[:n])
            scale = np.abs(sk.coef_).max()
            np.testing.assert_allclose(probes.weight[mi, li].numpy(), sk.coef_.T, atol=1e-5 * scale)
            ours = torch.softmax(z[mi, li], -1) if k > 2 else torch.sigmoid(z[mi, li])
            theirs = sk.predict_proba(x[mi, n:])
            np.testing.assert_allclose(ours.numpy(), theirs if k > 2 else theirs[:, 1:], atol=1e-5)
            acc = sc.accuracy(pred[mi, li], y[n:])
            assert acc == pytest.approx((sk.predict(x[mi, n:]) == y[n:]).mean(), abs=1e-3)
            assert acc > 0.9


def test_fit_is_deterministic_and_subsets_nested_balanced():
    rng = np.random.default_rng(2)
    x, y = _signal_and_noise(rng, 400, 8, 10, gain=1.0)
    a = pr.fit_probes(x, y, 8, np.array([1e-2, 1.0]))
    b = pr.fit_probes(x, y, 8, np.array([1e-2, 1.0]))
    assert torch_equal(a.weight, b.weight) and torch_equal(a.bias, b.bias)
    subsets = sc.balanced_subsets(y, [8, 16, 32], 8, seed=5)
    assert [len(s) for s in subsets] == [8, 16, 32]
    assert all(np.bincount(y[s], minlength=8).tolist() == [len(s) // 8] * 8 for s in subsets)
    assert set(subsets[0]) <= set(subsets[1]) <= set(subsets[2])
    assert all(np.array_equal(s, t) for s, t in zip(subsets, sc.balanced_subsets(y, [8, 16, 32], 8, seed=5)))
    assert sc.feasible_sizes(y, [8, 12, 16, 10_000], 8) == [8, 16]


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


def _design(x: np.ndarray, y: np.ndarray, k: int, lam: np.ndarray, dtype: torch.dtype):
    """The solver's inputs as fit_probes builds them: centred features with a constant column."""
    xc = torch.as_tensor(x - x.mean(1, keepdims=True))
    x1 = torch.cat([xc, torch.ones(*xc.shape[:2], 1, dtype=xc.dtype)], 2)
    return pr._Design(x1.to(dtype), torch.as_tensor(y), k, torch.as_tensor(lam)), x1


def _reference_loss(theta: torch.Tensor, x1: torch.Tensor, y: torch.Tensor, k: int, lam: torch.Tensor,
                    rows: torch.Tensor) -> torch.Tensor:
    """mean softmax / binary cross-entropy + l2/2 |W|^2 with torch's own log_softmax and softplus."""
    n_l2 = len(lam)
    t = theta.reshape(len(rows), k, -1)
    z = torch.einsum("rkd,rnd->rnk", t, x1[rows // n_l2])
    if k == 1:
        data = (torch.nn.functional.softplus(z[..., 0]) - y * z[..., 0]).mean(1)
    else:
        data = -torch.log_softmax(z, -1).gather(-1, y.expand(len(rows), -1)[..., None])[..., 0].mean(1)
    return data + 0.5 * lam[rows % n_l2] * (t[..., :-1] ** 2).sum((1, 2))


@pytest.mark.parametrize("k, scale", [(5, 20.0), (5, 0.3), (1, 20.0)])
def test_objective_matches_autograd_of_the_plain_loss(k, scale):
    # logits far beyond +-80 (scale 20) exercise the shifted softmax with its exponent floor, which keeps
    # float32 free of subnormals; small ones (0.3) the unshifted path
    rng = np.random.default_rng(4)
    m, n, f, lam = 2, 300, 6, np.array([1e-3, 1.0])
    x = 3 * rng.normal(size=(m, n, f))
    y = rng.integers(0, max(k, 2), n)
    rows = torch.tensor([0, 1, 3])
    theta = torch.as_tensor(scale * rng.normal(size=(3, k * (f + 1))), dtype=torch.float64).requires_grad_()
    exact, x1 = _design(x, y, k, lam, torch.float64)
    target = torch.as_tensor(y, dtype=torch.float64) if k == 1 else torch.as_tensor(y)
    want = _reference_loss(theta, x1, target, k, torch.as_tensor(lam), rows)
    (want_grad,) = torch.autograd.grad(want.sum(), theta)
    largest = (x1 @ theta.detach().reshape(3, k, -1)[0].T).abs().max()
    assert largest > 200 if scale > 1 else largest < 80
    for design, rtol in ((exact, 1e-10), (_design(x, y, k, lam, torch.float32)[0], 1e-4)):
        loss, grad = design.objective(theta.detach(), rows)
        np.testing.assert_allclose(loss, want.detach(), rtol=rtol)
        np.testing.assert_allclose(grad, want_grad, rtol=rtol, atol=rtol * want_grad.abs().max().item())


@pytest.mark.parametrize("k, n", [(4, 60), (1, 60), (4, 8)])
def test_start_hessian_inverts_the_hessian_at_zero(k, n):
    # the preconditioner of strongly penalised problems is the exact inverse Hessian at theta = 0 on every
    # direction the data can move (class-centred for softmax; the span of the samples when n < F)
    rng = np.random.default_rng(5)
    f, lam = 12, np.array([0.5])
    x = rng.normal(size=(1, n, f)) * np.linspace(0.2, 5.0, f)
    y = rng.integers(0, max(k, 2), n)
    _, x1 = _design(x, y, k, lam, torch.float64)
    start = pr._StartHessian(x1[..., :f].float(), k, torch.as_tensor(lam))
    assert bool(start.exact.all())
    rows = torch.tensor([0])
    target = torch.as_tensor(y, dtype=torch.float64) if k == 1 else torch.as_tensor(y)
    hessian = torch.autograd.functional.hessian(
        lambda t: _reference_loss(t[None], x1, target, k, torch.as_tensor(lam), rows)[0],
        torch.zeros(k * (f + 1), dtype=torch.float64))
    v = torch.as_tensor(rng.normal(size=(k, f + 1)))
    if k > 1:
        v -= v.mean(0)  # a class mean moves no softmax probability
    v[:, :f] = torch.as_tensor(v[:, :f].numpy() @ np.linalg.pinv(x1[0, :, :f].numpy()) @ x1[0, :, :f].numpy())
    back = start.inverse((hessian @ v.flatten())[None].float(), rows)[0].double()
    np.testing.assert_allclose(back, v.flatten(), atol=2e-4 * v.abs().max().item())


def test_float32_solve_reaches_the_float64_optimum():
    # the production path (float32 evaluations, float64 finish, start-Hessian preconditioning) against a plain
    # float64 L-BFGS run to a tight tolerance: every problem stops on a float64 gradient below the tolerance,
    # even one (1e-9) that float32 gradients cannot resolve, and lands on the same optimum
    rng = np.random.default_rng(6)
    m, n, f, k = 2, 600, 10, 4
    assert n >= pr.FLOAT32_FROM
    y = rng.integers(0, k, n)
    x = rng.normal(size=(m, k, f))[:, y] + 2 * rng.normal(size=(m, n, f)) * np.linspace(0.5, 3, f) + 5.0
    lam = np.array([1e-4, 1e-2, 1.0])
    probes = pr.fit_probes(x, y, k, lam, max_iter=2000, tolerance=1e-9)
    exact, x1 = _design(x, y, k, lam, torch.float64)
    # the returned raw-feature probes, as parameters of the centred problem
    w = probes.weight.reshape(m * len(lam), f, k)
    b = probes.bias.reshape(m * len(lam), k) + torch.einsum("rf,rfk->rk", torch.as_tensor(
        np.repeat(x.mean(1), len(lam), 0)), w)
    theta = torch.cat([w.transpose(1, 2), b[..., None]], 2).reshape(m * len(lam), -1)
    rows = torch.arange(m * len(lam))
    assert exact.objective(theta, rows)[1].abs().max() <= 1e-9
    reference = pr.batched_lbfgs(exact.objective, torch.zeros_like(theta), max_iter=5000, tolerance=1e-10)
    # strong convexity (curvature >= l2): |theta - optimum| <= |gradient| / l2 <= sqrt(D) 1e-9 / l2
    bound = np.sqrt(theta.shape[1]) * 1.1e-9 / np.tile(lam, m)
    assert ((theta - reference).abs().amax(1).numpy() <= bound).all()


def test_only_the_exact_gradient_stops_a_problem():
    # batched quadratics whose approximate objective understates the gradient 100x: it looks converged long
    # before it is, so the rows must go on with the exact objective until that one passes the test
    rng = np.random.default_rng(7)
    a = torch.as_tensor(rng.normal(size=(3, 6, 6)))
    a = a @ a.mT + torch.eye(6, dtype=torch.float64)
    b = torch.as_tensor(rng.normal(size=(3, 6)))

    def exact(theta, rows):
        g = torch.einsum("rij,rj->ri", a[rows], theta) - b[rows]
        return 0.5 * ((g - b[rows]) * theta).sum(1), g

    def understated(theta, rows):
        loss, g = exact(theta, rows)
        return loss, 0.01 * g

    theta = pr.batched_lbfgs(understated, torch.zeros(3, 6, dtype=torch.float64), tolerance=1e-8,
                             refine=exact)
    assert exact(theta, torch.arange(3))[1].abs().max() <= 1e-8


def test_selection_prefers_the_strength_that_generalizes():
    rng = np.random.default_rng(3)
    n, f = 40, 200  # few samples, many noise features: weak L2 overfits
    y = rng.integers(0, 2, 2000)
    x = rng.normal(size=(1, 2000, f))
    x[0, :, 0] += 1.5 * (2 * y - 1)
    probes, chosen = pr.fit_selected(x[:, :n], y[:n], x[:, n:1000], y[n:1000], 2, [1e-4, 1.0])
    assert chosen.tolist() == [1.0]
    assert sc.accuracy(probes.predict(x[:, 1000:])[:, 0], y[1000:])[0] > 0.75



def test_standardized_uses_train_statistics_for_every_split():
    # (M=2 models, n, F=2): per model and feature the train split's mean and SD (ddof 0; SD 0 -> 1) apply to all
    # splits. Train means: model 0 (2, 5), SD (1, 0 -> 1); model 1 (2, 0), SD (2, 1). Val and test sit
    # elsewhere, so their own statistics would give other values (model 0's val feature 0 would be (-1, 1)).
    train = np.array([[[1, 5], [3, 5]], [[0, -1], [4, 1]]], dtype=float)
    val = np.array([[[10, 5], [14, 7]], [[2, 0], [10, 3]]], dtype=float)
    test = np.array([[[2, 5], [4, 5], [6, 5]], [[-2, -1], [2, 1], [6, 3]]], dtype=float)
    got_train, got_val, got_test = sc.standardized(train, val, test)
    np.testing.assert_allclose(got_train, [[[-1, 0], [1, 0]], [[-1, -1], [1, 1]]])
    np.testing.assert_allclose(got_val, [[[8, 0], [12, 2]], [[0, 0], [4, 3]]])
    np.testing.assert_allclose(got_test, [[[0, 0], [2, 0], [4, 0]], [[-2, -1], [0, 1], [2, 3]]])


def test_l2_is_chosen_on_the_validation_split_not_the_test_split():
    # One feature, train labels 3:1 for class 1, feature = +1 for class 1 and -1 for class 0. Weak L2 (1e-4)
    # follows the feature; strong L2 (100) leaves the weight ~0.004 and the bias ~log 3, so it says 1 everywhere.
    # Val and test share labels (3/4 class 1): strong scores 0.75 on both. Weak scores 1 where the feature
    # matches the labels and 0 where it is flipped. Model 0: matching val, flipped test; model 1 the reverse.
    # On val the best strengths are (weak, strong); test would pick (strong, weak).
    y = np.tile([0, 1, 1, 1], 4)
    sign = (2 * y - 1).astype(float)[None, :, None]
    train = np.concatenate([sign, sign])
    val = np.concatenate([sign, -sign])
    test = np.concatenate([-sign, sign])
    grid = np.array([1e-4, 100.0])
    full = pr.fit_probes(train, y, 2, grid)
    np.testing.assert_allclose(sc.accuracy(full.predict(val), y), [[1.0, 0.75], [0.0, 0.75]])
    np.testing.assert_allclose(sc.accuracy(full.predict(test), y), [[0.0, 0.75], [1.0, 0.75]])
    probes, chosen = pr.fit_selected(train, y, val, y, 2, grid)
    assert chosen.tolist() == [1e-4, 100.0]
    # the returned probes are the chosen ones: on test, model 0's weak probe is always wrong, model 1's says 1
    np.testing.assert_allclose(sc.accuracy(probes.predict(test)[:, 0], y), [0.0, 0.75])

# ----------------------------------------------------------------------------- the job, on small stores

ARCHS, SEEDS = ["xu_cnn", "alexnet"], [0, 1]   # xu_cnn encodes the labels, alexnet is noise, seed 1 incomplete


def _catalog() -> Catalog:
    base = load_catalog(profile="smoke")
    return Catalog(base.path, base.profile, deep_merge(base.cfg, {"zoo": {"archs": ARCHS, "seeds": SEEDS}}))


def _store(path, trial_coords: dict, space: str, feats: np.ndarray, tail: tuple[str, ...], **attrs) -> None:
    """A store in the contract layout: feats (arch, seed, trial, *tail); seed 1 is NaN and not complete."""
    n = feats.shape[2]
    ds = xr.Dataset(
        {space: (("arch", "seed", "trial", *tail), feats.astype(np.float32)),
         "stimulus": (("trial", "y", "x"), np.zeros((n, 4, 4), np.float32)),
         "complete": (("arch", "seed"), np.array([[True, False], [True, False]])),
         "provenance": (("arch", "seed"), np.array([['{"sha": "a"}', ""], ['{"sha": "b"}', ""]], dtype=object))},
        coords={"arch": np.array(ARCHS, dtype=object), "seed": SEEDS,
                **{k: ("trial", v) for k, v in trial_coords.items()}},
        attrs={"recipe": path.name, "spaces": {space: list(tail)}, **attrs})
    ds.to_zarr(path, mode="w", zarr_format=3, consolidated=True)


def _write_task_stores(root, rng) -> None:
    # orientation: encoder (trial, unit); signal stronger in-distribution than out of it
    splits = {"train": 256, "val": 128, "test_id": 256, "test_ood": 256}
    split = np.concatenate([[s] * n for s, n in splits.items()]).astype(object)
    label = np.concatenate([np.arange(n) % 8 for n in splits.values()])
    proto = rng.normal(size=(8, 16))
    gain = np.where(split == "test_ood", 0.5, 1.0)[:, None]
    feats = np.full((2, 2, len(label), 16), np.nan)
    feats[0, 0] = gain * proto[label] + rng.normal(size=(len(label), 16))
    feats[1, 0] = rng.normal(size=(len(label), 16))
    _store(root / "orientation_task.zarr", {"label": label, "split": split}, "encoder", feats, ("unit",))
    # contrast: GRU final state, target evidence grows with contrast
    grid = np.array([0, 0.01, 0.04, 0.16, 0.64, 1.0])
    train_c = rng.uniform(0.05, 1.0, 400)
    c = np.concatenate([train_c, rng.uniform(0.05, 1.0, 200), np.repeat(grid, 60), np.zeros(200)])
    label = np.concatenate([rng.integers(0, 2, 600), np.ones(6 * 60, int), np.zeros(200, int)])
    c = np.where(label == 1, c, 0.0)
    split = np.array(["train"] * 400 + ["val"] * 200 + ["test"] * 560, dtype=object)
    direction = rng.normal(size=32)
    feats = np.full((2, 2, len(label), 32), np.nan)
    feats[0, 0] = 6.0 * (label * c)[:, None] * direction + rng.normal(size=(len(label), 32))
    feats[1, 0] = rng.normal(size=(len(label), 32))
    _store(root / "contrast_task.zarr", {"label": label, "split": split, "contrast": c}, "gru", feats, ("hidden",),
           test_contrasts=grid.tolist())
    # rdk: 4 chunks; only the LAST chunk's state carries the direction, scaled by coherence
    coh_grid = np.array([0, 0.2, 0.6, 1.0])
    coh = np.concatenate([rng.choice([0.8, 1.0], 400), rng.choice([0.8, 1.0], 100), np.repeat(coh_grid, 100)])
    label = np.concatenate([rng.integers(0, 2, 500), np.tile([0, 1], 200)])
    split = np.array(["train"] * 400 + ["val"] * 100 + ["test"] * 400, dtype=object)
    feats = np.full((2, 2, len(label), 4, 32), np.nan)
    feats[:, 0] = 50.0 * rng.normal(size=(2, len(label), 4, 32))  # large raw scale: standardization matters
    feats[0, 0, :, -1] += 200.0 * ((2 * label - 1) * coh)[:, None] * direction
    _store(root / "rdk_task.zarr", {"label": label, "split": split, "coherence": coh}, "gru", feats,
           ("chunk", "hidden"), test_coherences=coh_grid.tolist())


def test_probe_job_known_answers_and_staleness(tmp_path):
    catalog = _catalog()
    _write_task_stores(tmp_path, np.random.default_rng(4))
    lines = assays.run(catalog, str(tmp_path), "probes")
    assert lines[-1].startswith("probes: wrote")
    ds = open_analysis(str(tmp_path), "probes").load()
    assert ds["train_size"].values.tolist() == [8, 16, 32, 64, 128, 256]  # sizes the 256-trial pool allows
    good, noise = dict(arch="xu_cnn", seed=0), dict(arch="alexnet", seed=0)
    assert float(ds["orientation_id"].sel(good)) > 0.9
    assert float(ds["orientation_ood"].sel(good)) < float(ds["orientation_id"].sel(good))
    assert abs(float(ds["orientation_id"].sel(noise)) - 1 / 8) < 0.08
    assert abs(float(ds["orientation_auc_adj_id"].sel(noise))) < 0.1
    assert ds["orientation_acc_id"].sel(good).values[0] < ds["orientation_acc_id"].sel(good).values[-1]
    bacc = ds["contrast_bacc"].sel(good).values
    assert ds["contrast"].values.tolist() == [0, 0.01, 0.04, 0.16, 0.64, 1.0]
    assert abs(bacc[0] - 0.5) < 0.1 and bacc[-1] > 0.95
    assert abs(float(ds["contrast_auc"].sel(noise)) - 0.5) < 0.1
    acc = ds["rdk_acc"].sel(good).values
    assert abs(acc[0] - 0.5) < 0.15 and acc[-1] > 0.95
    assert abs(float(ds["rdk_auc"].sel(noise)) - 0.5) < 0.1
    assert np.isnan(ds["orientation_ood"].sel(arch="xu_cnn", seed=1))  # incomplete -> NaN
    assert np.isnan(ds["rdk_auc"].sel(arch="alexnet", seed=1))
    assert assays.run(catalog, str(tmp_path), "probes") == ["probes: up to date"]
    # a re-extracted model changes the store's ledger -> stale
    import zarr

    g = zarr.open_group(str(tmp_path / "rdk_task.zarr"), mode="r+")
    g["provenance"][0, 0] = '{"sha": "c"}'
    zarr.consolidate_metadata(str(tmp_path / "rdk_task.zarr"))
    assert assays.run(catalog, str(tmp_path), "probes")[-1].startswith("probes: wrote")


def test_probe_job_without_stores_skips(tmp_path):
    lines = assays.run(_catalog(), str(tmp_path), "probes")
    assert len(lines) == 1 and "skipped" in lines[0]
    assert open_analysis(str(tmp_path), "probes") is None


def test_level_grids_come_from_the_recipe_and_an_empty_level_is_an_error(tmp_path):
    """The contrast grid is the recipe's test_contrasts (store attrs), not np.unique over the trials."""
    from actstore.errors import UserError

    catalog = _catalog()
    _write_task_stores(tmp_path, np.random.default_rng(4))
    path = tmp_path / "contrast_task.zarr"
    ds = xr.open_zarr(path).load()
    ds.attrs["test_contrasts"] = [0, 0.01, 0.04, 0.16, 0.32, 0.64, 1.0]   # 0.32: listed, no trials there
    ds.to_zarr(path, mode="w", zarr_format=3, consolidated=True)
    with pytest.raises(UserError, match=r"contrast_task.zarr: no test trials at contrast \[0.32\], which the recipe"):
        assays.run(catalog, str(tmp_path), "probes")


def test_each_seed_is_probed_on_its_own_stimulus_draw(tmp_path):
    """A per-seed store: seed 1's labels are a different draw; its twin encodes its own labels. Probing it with
    seed 0's labels would give chance; with its own it is near perfect."""
    rng = np.random.default_rng(5)
    splits = {"train": 256, "val": 128, "test_id": 256, "test_ood": 256}
    split = np.concatenate([[s] * n for s, n in splits.items()]).astype(object)
    labels = np.stack([rng.permutation(np.arange(len(split)) % 8) for _ in SEEDS])   # (seed, trial)
    proto = rng.normal(size=(8, 16))
    feats = np.stack([np.stack([proto[labels[s]] + 0.5 * rng.normal(size=(len(split), 16)) for s in range(2)])
                      for _ in ARCHS])                                              # (arch, seed, trial, unit)
    n = len(split)
    ds = xr.Dataset(
        {"encoder": (("arch", "seed", "trial", "unit"), feats.astype(np.float32)),
         "stimulus": (("seed", "trial", "y", "x"), np.zeros((2, n, 4, 4), np.float32)),
         "complete": (("arch", "seed"), np.ones((2, 2), bool)),
         "provenance": (("arch", "seed"), np.full((2, 2), '{"sha": "a"}', dtype=object))},
        coords={"arch": np.array(ARCHS, dtype=object), "seed": SEEDS, "split": ("trial", split),
                "label": (("seed", "trial"), labels)},
        attrs={"spaces": {"encoder": ["unit"]}, "stimulus_draws": "per_seed", "draw_seeds": [11, 12]})
    ds.to_zarr(tmp_path / "orientation_task.zarr", mode="w", zarr_format=3, consolidated=True)
    assays.run(_catalog(), str(tmp_path), "probes")
    out = open_analysis(str(tmp_path), "probes").load()
    assert (out["orientation_id"].values > 0.9).all(), out["orientation_id"].values
