"""In-silico fidelity with known answers: the oracle compared with itself has no error; a twin whose every
neuron prefers the next orientation of the grid is off by exactly one grid step; SF and cell type follow."""
import numpy as np
import pytest

from actstore.analysis.fidelity import circular_difference, fidelity, summaries
from actstore.analysis.stats import median_and_se
from actstore.analysis.tuning import measure


@pytest.fixture(scope="module")
def oracle(smoke_root, smoke_catalog):
    """(the oracle's responses to the tuning grid, the measured tuning of its true neurons) for the reference mouse."""
    from actstore.assays.ground_truth import oracle_responses
    from actstore.data import Oracle, load_sessions
    from actstore.stimuli import generate

    cat = smoke_catalog
    truth = Oracle.from_session(load_sessions(cat, smoke_root)[cat["data"]["reference_session"]])
    responses = oracle_responses(truth, generate(cat.recipe("tuning_grid"), cat["run_seed"])["stimulus"])
    return responses, measure(responses, **cat["analysis"]["tuning"]).compute(), cat["analysis"]["tuning"]


def test_circular_difference_wraps_at_the_period():
    import xarray as xr

    a, b = xr.DataArray([1.0, 179.0, 45.0]), xr.DataArray([179.0, 1.0, 135.0])
    np.testing.assert_allclose(circular_difference(a, b).values, [2.0, 2.0, 90.0])


def test_summaries_carry_each_models_se_over_its_neurons():
    """Per model (row), over the neurons that pass QC only: a median's SE is the bootstrap of that median, the
    agreement's SE the binomial sqrt(p (1 - p) / n) of the fraction that agree."""
    import xarray as xr

    rng = np.random.default_rng(3)
    values = {k: rng.gamma(2.0, 10.0, size=(2, 40)) for k in ("ori_error", "sf_error", "c50_error", "gosi_predicted",
                                                             "gosi_true")}
    values["simple_complex_agree"] = (rng.random((2, 40)) < 0.7).astype(float)
    for v in values.values():
        v[0, :15] = np.nan  # neurons failing QC in model 0
    got = summaries(xr.Dataset({k: (("model", "neuron"), v) for k, v in values.items()}), "neuron")
    for m in range(2):
        row = values["ori_error"][m]
        assert float(got["ori_error_median_se"][m]) == median_and_se(row)[1] > 0
        agree = values["simple_complex_agree"][m][np.isfinite(values["simple_complex_agree"][m])]
        assert int(got["simple_complex_agreement_n"][m]) == len(agree) == (25, 40)[m]
        assert float(got["simple_complex_agreement_se"][m]) == pytest.approx(
            np.sqrt(agree.mean() * (1 - agree.mean()) / len(agree)))


def test_the_oracle_itself_has_fidelity_errors_of_zero(oracle):
    _, truth, _ = oracle
    got = fidelity(truth, truth, dim="unit")
    assert int(got["ori_error_median_n"]) >= 6
    assert float(got["ori_error_median"]) == 0 and float(got["sf_error_median"]) == 0
    assert float(got["simple_complex_agreement"]) == 1 and float(got["gosi_r"]) == pytest.approx(1.0)


def test_a_twin_rotated_by_one_grid_step_is_off_by_that_step(oracle):
    """Every neuron's responses moved to the next orientation of the grid (periodic): the preferred orientation
    moves by one step (180 / 8 = 22.5 deg) and nothing else changes."""
    responses, truth, settings = oracle
    step = float(np.diff(responses["orientation"].values)[0])
    rolled = responses.roll(orientation=1, roll_coords=False)
    got = fidelity(measure(rolled, **settings).compute(), truth, dim="unit")
    assert float(got["ori_error_median"]) == pytest.approx(step, abs=1.0)
    assert float(got["sf_error_median"]) < 0.05 and float(got["simple_complex_agreement"]) == 1


def test_the_assay_scores_a_twin_replaced_by_the_oracle_as_perfect(smoke_root, smoke_catalog, tmp_path):
    """Through the registry on the smoke zoo: the readout spaces hold every neuron's prediction; with one twin's
    readout overwritten by the true neurons' responses, that twin's fidelity errors are 0 and the other's not."""
    import shutil

    import xarray as xr
    import zarr

    from actstore import assays
    from actstore.assays.ground_truth import oracle_responses
    from actstore.data import Oracle, load_sessions
    from actstore.stimuli import generate
    from actstore.store.analysis import open_analysis

    cat = smoke_catalog
    first = open_analysis(smoke_root, "fidelity").load()
    assert set(first["mouse"].values) == set(cat["data"]["sessions"])
    assert (first["ori_error_median_n"] > 0).all() and (first["ori_error_median_se"] > 0).all()
    for part in ("data", "models", "analysis", "tuning_grid.zarr"):
        shutil.copytree(f"{smoke_root}/{part}", tmp_path / part)
    store = xr.open_zarr(tmp_path / "tuning_grid.zarr")
    group = zarr.open_group(str(tmp_path / "tuning_grid.zarr"), mode="r+")
    sessions = load_sessions(cat, str(tmp_path))
    stimulus = generate(cat.recipe("tuning_grid"), cat["run_seed"])["stimulus"]
    arch = cat["zoo"]["archs"][0]
    for mouse, space in store.attrs["readout"]["spaces"].items():
        truth = oracle_responses(Oracle.from_session(sessions[mouse]), stimulus)
        dims = store[space].dims[2:]
        values = truth.rename(unit=dims[-1]).transpose(*dims).values.astype(np.float32)
        group[space][list(store["arch"].values).index(arch), 0] = values
    zarr.consolidate_metadata(str(tmp_path / "tuning_grid.zarr"))
    shutil.rmtree(tmp_path / "analysis" / "fidelity.zarr")  # the ledger is unchanged: the result would be up to date
    assert assays.run(cat, str(tmp_path), "fidelity")[-1].startswith("fidelity: wrote")
    out = open_analysis(str(tmp_path), "fidelity").load()
    oracle_twin = out.sel(arch=arch, seed=0)
    assert float(oracle_twin["ori_error_median"]) < 0.5 and float(oracle_twin["sf_error_median"]) < 0.01
    assert float(oracle_twin["simple_complex_agreement"]) == 1 and float(oracle_twin["gosi_r"]) > 0.999
    other = out.sel(arch=cat["zoo"]["archs"][1], seed=0)
    assert float(other["ori_error_median"]) > 1.0 or float(other["simple_complex_agreement"]) < 1
