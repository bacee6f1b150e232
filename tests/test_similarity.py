"""Representational similarity with known answers: CKA of a representation with itself, a rotation and a scaling
of it is 1; with independent noise the debiased CKA is near 0 at small n where the biased one is not; identical
RDMs compare at 1; the batched CKA equals a pair-by-pair computation; the Mantel test finds a planted relation."""
import dask.array as da
import numpy as np
import pytest
from scipy.stats import ortho_group, spearmanr

from actstore.analysis.similarity import centred_gram, cka_matrix, mantel, rdm_vector, spearman_matrix


def _grams(*features):
    return np.stack([centred_gram(f) for f in features])


def _pair_cka(x, y, debiased):
    """Reference: one pair at a time, from the formulas (Song et al. 2012 for the unbiased HSIC)."""
    def hsic(k, l_):
        n = len(k)
        if not debiased:
            return np.trace(k @ l_) / (n - 1) ** 2
        k, l_ = k.copy(), l_.copy()
        np.fill_diagonal(k, 0)
        np.fill_diagonal(l_, 0)
        one = np.ones(n)
        return (np.trace(k @ l_) + (one @ k @ one) * (one @ l_ @ one) / ((n - 1) * (n - 2))
                - 2 / (n - 2) * one @ k @ l_ @ one) / (n * (n - 3))
    k, l_ = centred_gram(x), centred_gram(y)
    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


def test_cka_of_itself_a_rotation_and_a_scaling_is_one():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 20))
    q = ortho_group.rvs(20, random_state=1)
    for debiased in (True, False):
        got = cka_matrix(_grams(x, x @ q, 3.7 * x, x + 5.0), debiased=debiased)
        np.testing.assert_allclose(got, np.ones((4, 4)), atol=1e-10)


def test_debiased_cka_is_near_zero_for_independent_features_at_small_n():
    rng = np.random.default_rng(2)
    biased, debiased = [], []
    for _ in range(20):
        x, y = rng.normal(size=(20, 100)), rng.normal(size=(20, 100))
        biased.append(cka_matrix(_grams(x, y), debiased=False)[0, 1])
        debiased.append(cka_matrix(_grams(x, y), debiased=True)[0, 1])
    assert np.mean(biased) > 0.6                    # n = 20 stimuli, 100 features: the biased estimate is inflated
    assert abs(np.mean(debiased)) < 0.03 and np.std(debiased) < 0.1


def test_batched_cka_equals_the_pair_loop_and_dask_equals_numpy():
    rng = np.random.default_rng(3)
    base = rng.normal(size=(40, 8))
    feats = [base @ rng.normal(size=(8, w)) + s * rng.normal(size=(40, w)) for w, s in ((6, 0.1), (12, 1.0), (30, 3.0))]
    for debiased in (True, False):
        batched = cka_matrix(_grams(*feats), debiased=debiased)
        loop = np.array([[_pair_cka(a, b, debiased) for b in feats] for a in feats])
        np.testing.assert_allclose(batched, loop, rtol=1e-10)
        lazy = cka_matrix(da.stack([centred_gram(da.from_array(f, chunks=(20, -1))) for f in feats]), debiased)
        np.testing.assert_allclose(lazy, batched, rtol=1e-10)
    assert 0.2 < batched[0, 1] < batched[0, 0]       # related but not identical


def test_rdm_comparison_of_identical_models_is_one_and_matches_scipy():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(15, 10))
    v = np.stack([rdm_vector(x), rdm_vector(2 * x + 1), rdm_vector(rng.normal(size=(15, 7)))])
    got = spearman_matrix(v)
    assert got[0, 1] == pytest.approx(1.0)
    assert got[0, 2] == pytest.approx(spearmanr(v[0], v[2]).statistic)
    i, j = 3, 8
    assert rdm_vector(x)[np.flatnonzero((np.triu_indices(15, 1)[0] == i) & (np.triu_indices(15, 1)[1] == j))[0]] \
        == pytest.approx(1 - np.corrcoef(x[i], x[j])[0, 1])


def test_mantel_finds_a_planted_relation_and_not_an_absent_one():
    rng = np.random.default_rng(5)
    points = rng.normal(size=(10, 2))
    a = np.linalg.norm(points[:, None] - points[None], axis=-1)
    related = a + 0.1 * rng.normal(size=a.shape)
    related = (related + related.T) / 2
    noise = rng.normal(size=a.shape)
    noise = (noise + noise.T) / 2
    r, p, n = mantel(a, related, permutations=999)
    assert r > 0.9 and p < 0.01 and n == 45
    r0, p0, _ = mantel(a, noise, permutations=999)
    assert abs(r0) < 0.4 and p0 > 0.05


def test_similarity_and_neurons_through_the_registry(smoke_root, smoke_catalog):
    """On the smoke zoo: every space compared, each model identical to itself, the CKA symmetric and in range;
    neural.zarr keeps each neuron's r, which the neurons table serves to `query`."""
    from actstore import assays, neurons, query
    from actstore.store.analysis import open_analysis

    ds = open_analysis(smoke_root, "similarity").load()
    assert set(ds["space"].values) == {"gru", "encoder", "early", "middle", "late"}
    assert list(ds["model"].values) == [f"{a}-s{s}" for a, s in smoke_catalog.models]
    for measure in ("cka", "cka_biased", "rsa"):
        m = ds[measure].values
        np.testing.assert_allclose(np.diagonal(m, axis1=1, axis2=2), 1.0, atol=1e-9)
        np.testing.assert_allclose(m, np.swapaxes(m, 1, 2), atol=1e-12)
    assert (np.abs(ds["cka"].values) <= 1 + 1e-9).all()
    assert np.isnan(ds["seed_floor_cka"]).all()                  # one seed: no noise floor to give
    table = neurons(smoke_root)
    neural = open_analysis(smoke_root, "neural")
    assert len(table) == len(smoke_catalog.models) * int(neural["recorded_neurons"].sum())
    rows = query("neuron_r < 0.1 & arch == 'xu_cnn'", smoke_root)
    assert list(rows.columns[:4]) == ["arch", "seed", "mouse", "neuron"] and set(rows["arch"]) <= {"xu_cnn"}
    assert (rows["neuron_r"] < 0.1).all() and len(rows) == int((table.query("arch == 'xu_cnn'")["neuron_r"] < 0.1).sum())
    from actstore.expressions import write_rows

    empty = query("neuron_r < 0.1 & mouse == 'J553RT'", smoke_root)  # the mouse is named by its session
    assert write_rows(empty, "table").startswith("(no neurons match; mouse holds no 'J553RT'")
    assert assays.run(smoke_catalog, smoke_root, "similarity") == ["similarity: up to date"]


def test_error_profiles_follow_a_planted_representational_similarity(tmp_path):
    """Six usable twins whose error profiles share a component in proportion to a planted similarity, and a
    seventh that is not usable: the Mantel test finds the relation over the six (15 pairs)."""
    import xarray as xr

    from actstore import assays
    from actstore.catalog import Catalog, deep_merge, load_catalog
    from actstore.store.analysis import open_analysis, write_analysis

    rng = np.random.default_rng(6)
    archs = ["xu_cnn", "resnet18", "efficientnet_b0", "mobilenet_v2", "alexnet", "squeezenet1_1", "shufflenet_v2"]
    latent = rng.normal(size=(len(archs), 3))              # where each twin sits in "representation space"
    sim = np.exp(-np.linalg.norm(latent[:, None] - latent[None], axis=-1))
    neurons_ = 200
    shared = rng.normal(size=(3, neurons_))
    profiles = latent @ shared + 0.3 * rng.normal(size=(len(archs), neurons_))   # alike latents fail alike
    mice = ["a", "b"]
    per_mouse = profiles.reshape(len(archs), 1, 2, neurons_ // 2)
    neural = xr.Dataset(
        {"neuron_r": (("arch", "seed", "mouse", "neuron"), per_mouse),
         "ceiling_fraction": (("arch", "seed", "mouse"), np.where(np.arange(7) < 6, 0.5, 0.05)[:, None, None]
                              * np.ones((7, 1, 2))),
         "recorded_neurons": ("mouse", [100, 100]), "complete": (("arch", "seed"), np.ones((7, 1), bool))},
        coords={"arch": np.array(archs, dtype=object), "seed": [0], "mouse": np.array(mice, dtype=object),
                "neuron": np.arange(100)})
    labels = np.array([f"{a}-s0" for a in archs], dtype=object)
    similarity = xr.Dataset({m: (("space", "model", "other"), sim[None]) for m in ("cka", "rsa")},
                            coords={"space": np.array(["encoder"], dtype=object), "model": labels, "other": labels})
    write_analysis(neural, str(tmp_path), "neural", {"planted": 1})
    write_analysis(similarity, str(tmp_path), "similarity", {"planted": 1})
    base = load_catalog(profile="smoke")
    catalog = Catalog(base.path, base.profile, deep_merge(base.cfg, {"zoo": {"archs": archs}}))
    lines = assays.run(catalog, str(tmp_path), "error_profiles")
    assert lines[-1].startswith("error_profiles: wrote"), lines
    out = open_analysis(str(tmp_path), "error_profiles").load()
    assert list(out["compared"].values) == list(labels[:6])      # the unusable seventh is left out
    got = out.sel(space="encoder", measure="cka")
    assert int(got["mantel_pairs"]) == 15 and float(got["mantel_r"]) > 0.5 and float(got["mantel_p"]) < 0.05
