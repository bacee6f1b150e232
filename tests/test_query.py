"""The query language (whitelisted ast), the units table, the store-backed tuning job and `actstore query`."""
import io
import json
import subprocess
import sys

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from extract_setup import save_zoo

import actstore
from actstore.analysis.tuning import FLAGS, METRICS, measure
from actstore.catalog import load_catalog
from actstore.errors import UserError
from actstore.extract import extract
from actstore import assays
from actstore.expressions import absent_values, evaluate, write_rows
from actstore.store.analysis import open_analysis, write_analysis

TABLE = pd.DataFrame({
    "arch": ["alexnet", "alexnet", "resnet18", "xu_cnn"], "seed": [0, 1, 0, 0], "unit": [0, 1, 2, 3],
    "gosi": [0.1, 0.5, 0.35, np.nan], "pref_sf": [0.04, 0.08, 0.06, 0.1], "qc_sf": [True, False, True, True],
    "qc_orientation": [True, True, False, True],
})


def rows(expr):
    return list(TABLE.index[evaluate(expr, TABLE)])


# ----------------------------------------------------------------------------- the language
@pytest.mark.parametrize("expr, expected", [
    ("gosi > 0.3", [1, 2]),
    ("arch == 'alexnet' & qc_orientation", [0, 1]),  # & binds like `and`, not tighter than ==
    ("arch == 'alexnet' and qc_orientation", [0, 1]),
    ("qc_sf | gosi > 0.4", [0, 1, 2, 3]),
    ("~qc_sf & qc_orientation", [1]),
    ("not qc_sf or seed == 1", [1]),
    ("arch in ['alexnet', 'xu_cnn'] and seed == 0", [0, 3]),
    ("arch not in ('alexnet',)", [2, 3]),
    ("0.2 < gosi <= 0.5", [1, 2]),
    ("pref_sf * 2 - 0.05 >= 0.1", [1, 3]),
    ("pref_sf / 2 > 0.02 & unit % 2 == 1", [1, 3]),
    ("-gosi < -0.4", [1]),
    ("qc_sf == True & qc_orientation != False", [0, 3]),
    ("gosi != gosi", [3]),  # NaN is the only value unequal to itself
    ("True", [0, 1, 2, 3]),
    ("seed ** 2 == 1 and arch == \"alexnet\"", [1]),
])
def test_valid_expressions_select_the_expected_rows(expr, expected):
    assert rows(expr) == expected


def test_nan_never_matches_a_comparison():
    assert 3 not in rows("gosi > 0") and 3 not in rows("gosi <= 0")


def test_empty_result():
    assert rows("gosi > 10") == [] and rows("False") == []


def test_strings_a_text_column_never_holds_are_named_with_the_closest_held():
    assert absent_values("arch == 'alexnt' & seed == 0", TABLE) == [
        "arch holds no 'alexnt'; did you mean 'alexnet'? it holds 3 values: alexnet, resnet18, xu_cnn"]
    assert absent_values("arch in ['resnet18', 'vgg16'] | 'xu_cn' == arch", TABLE) == [
        "arch holds no 'vgg16'; it holds 3 values: alexnet, resnet18, xu_cnn",
        "arch holds no 'xu_cn'; did you mean 'xu_cnn'? it holds 3 values: alexnet, resnet18, xu_cnn"]
    # only == and in restrict to a value; numbers and held strings are no reason for an empty result
    assert absent_values("arch != 'zzz' & arch not in ['y'] & gosi > 10 & arch == 'xu_cnn'", TABLE) == []
    empty = TABLE.iloc[:0].copy()
    empty.attrs["absent"] = absent_values("arch == 'alexnt'", TABLE)
    assert "no units match; arch holds no 'alexnt'; did you mean 'alexnet'?" in write_rows(empty, "table")


@pytest.mark.parametrize("expr, message", [
    ("gosi.max() > 0", "attribute access"),
    ("arch.startswith('a')", "attribute access"),
    ("abs(gosi) > 0", "function calls"),
    ("__import__('os')", "function calls"),
    ("gosi[0] > 0", "subscripts"),
    ("__class__ == 1", "dunder names"),
    ("(lambda: 1)() == 1", "lambdas"),
    ("[x for x in gosi]", "comprehensions"),
    ("f'{gosi}' == 'a'", "f-strings"),
    ("(g := gosi) > 0", "assignments"),
    ("gosi if qc_sf else pref_sf", "conditional expressions"),
    ("{'a': 1} == gosi", "dicts"),
    ("gosi >", "not a valid expression"),
    ("import os", "not a valid expression"),
    ("gosi + 1", "True/False per unit"),
    ("gosi & qc_sf", "is not True/False"),
    ("arch in [pref_sf]", "needs a list"),
    ("arch in 'alexnet'", "needs a list"),
    ("", "empty expression"),
])
def test_rejected_constructs_are_user_errors(expr, message):
    with pytest.raises(UserError, match=message):
        evaluate(expr, TABLE)


def test_unknown_column_is_named_with_the_closest_valid_ones():
    with pytest.raises(UserError, match=r"unknown column 'gois'; did you mean gosi\?"):
        evaluate("gois > 0.3", TABLE)
    with pytest.raises(UserError, match="unknown column 'zzz'; valid columns: arch, seed, unit"):
        evaluate("zzz", TABLE)


def test_output_formats(tmp_path):
    sub = TABLE.iloc[:2]
    assert pd.read_csv(io.StringIO(write_rows(sub, "csv")))["gosi"].tolist() == [0.1, 0.5]
    assert [r["unit"] for r in json.loads(write_rows(sub, "json"))] == [0, 1]
    assert "alexnet" in write_rows(sub, "table") and "no units match" in write_rows(sub.iloc[:0], "table")
    write_rows(sub, "parquet", str(tmp_path / "q.parquet"))
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "q.parquet"), sub.reset_index(drop=True),
                                  check_dtype=False)
    with pytest.raises(UserError, match="needs --out"):
        write_rows(sub, "parquet")


# ----------------------------------------------------------------------------- a real store
@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Smoke zoo (untrained checkpoints); only xu_cnn extracted, so alexnet stays incomplete; neural.zarr
    written in the training contract's layout; then the real tuning job."""
    root = str(tmp_path_factory.mktemp("tuning-root"))
    catalog = load_catalog(profile="smoke")
    save_zoo(catalog, root)
    extract(catalog, root, "tuning_grid", archs=["xu_cnn"])
    mice = list(catalog["data"]["sessions"])
    r = np.arange(6, dtype=float).reshape(2, 1, 3) / 10  # (arch, seed, mouse)
    neural = xr.Dataset({"r_neuron": (("arch", "seed", "mouse"), r), "r_overall": (("arch", "seed", "mouse"), r + 1),
                         "complete": (("arch", "seed"), np.ones((2, 1), bool))},
                        coords={"arch": np.array(["xu_cnn", "alexnet"], dtype=object), "seed": [0],
                                "mouse": np.array(mice, dtype=object)})
    neural["neural_r"] = neural["r_neuron"].mean("mouse")
    write_analysis(neural, root, "neural", {})
    assert assays.run(catalog, root, "tuning")[0].startswith("tuning: 1 models x spaces encoder, early, middle, late")
    return root


def test_job_writes_every_model_on_the_grid_and_matches_measure(root):
    out = open_analysis(root, "tuning")
    assert set(METRICS) | set(FLAGS) <= set(out.data_vars)
    assert out["gosi"].dims == ("arch", "seed", "space", "unit") and out.sizes["unit"] == 384  # alexnet's middle
    assert list(out["space"].values) == ["encoder", "early", "middle", "late"]
    assert out["width"].sel(arch="xu_cnn").values.tolist() == [16, 128, 64, 32]
    assert out["depth"].sel(arch="xu_cnn").values.tolist() == pytest.approx([1, 1 / 3, 2 / 3, 1], abs=1e-4)
    assert out["complete"].sel(arch="xu_cnn", seed=0) and not out["complete"].sel(arch="alexnet", seed=0)
    assert np.isnan(out["gosi"].sel(arch="alexnet").values).all() and not out["qc_sf"].sel(arch="alexnet").any()
    store = actstore.open_store("tuning_grid", root)
    settings = load_catalog(profile="smoke")["analysis"]["tuning"]
    for space, unit_dim, width in (("encoder", "unit", 16), ("middle", "middle_unit", 64)):
        values = store[space].sel(arch="xu_cnn", seed=0).rename({unit_dim: "unit"}).isel(unit=slice(0, width))
        direct = measure(values.compute(), **settings)
        got = out.sel(arch="xu_cnn", seed=0, space=space).isel(unit=slice(0, width))
        np.testing.assert_allclose(got["gosi"].values, direct["gosi"].values, rtol=1e-9)
        np.testing.assert_array_equal(got["qc_contrast"].values, direct["qc_contrast"].values)
    padding = out.sel(arch="xu_cnn", seed=0, space="middle").isel(unit=slice(64, None))
    assert np.isnan(padding["gosi"].values).all() and not padding["responsive"].any()


def test_job_is_up_to_date_until_its_settings_change(root, tmp_path):
    catalog = load_catalog(profile="smoke")
    assert assays.run(catalog, root, "tuning") == ["tuning: up to date"]
    stricter = load_catalog(profile="smoke")
    stricter.cfg["analysis"]["tuning"]["min_fit_r2"] = 0.999
    assert assays.run(stricter, root, "tuning")[0].startswith("tuning: 1 models")
    assert open_analysis(root, "tuning").attrs["inputs"]["params"]["min_fit_r2"] == 0.999
    assert assays.run(catalog, root, "tuning")[0].startswith("tuning: 1 models")  # back to the catalog's settings
    assert assays.run(catalog, root, "tuning") == ["tuning: up to date"]


def test_units_table_has_one_row_per_complete_unit_with_model_scores(root):
    table = actstore.units(root)
    assert len(table) == 16 + 128 + 64 + 32 and set(table["arch"]) == {"xu_cnn"}  # each space's own width
    assert list(table[table.space == "encoder"]["unit"]) == list(range(16))
    assert table.groupby("space")["depth"].first().to_dict() == pytest.approx(
        {"encoder": 1.0, "early": 1 / 3, "middle": 2 / 3, "late": 1.0}, abs=1e-4)
    assert table[table.space == "middle"]["c50_median"].nunique() == 1  # per-model summaries join per space
    assert set(METRICS) | set(FLAGS) <= set(table.columns)
    assert table["neural_r"].iloc[0] == pytest.approx(0.1)  # mean of r_neuron (0, .1, .2) over mice
    assert table["neural_r_overall"].iloc[0] == pytest.approx(1.1)
    assert "neural_complete" not in table.columns
    tuning = open_analysis(root, "tuning")
    np.testing.assert_allclose(table[table.space == "encoder"]["pref_sf"],
                               tuning["pref_sf"].sel(arch="xu_cnn", seed=0, space="encoder").values[:16])


def test_units_without_tuning_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="actstore analyze tuning"):
        actstore.units(str(tmp_path))


def test_query_matches_pandas_on_the_units_table(root):
    table = actstore.units(root)
    got = actstore.query("arch == 'xu_cnn' & qc_orientation & gosi > 0.3", root, columns=["gosi", "pref_ori"])
    want = table[(table.arch == "xu_cnn") & table.qc_orientation & (table.gosi > 0.3)]
    assert list(got.columns) == ["arch", "seed", "space", "unit", "gosi", "pref_ori"]
    assert list(got["unit"]) == list(want["unit"]) and 0 < len(got) < len(table)
    layer = actstore.query("space == 'middle' & qc_orientation", root)
    assert set(layer["space"]) == {"middle"} and 0 < len(layer) <= 64
    assert len(actstore.query("gosi > 2", root)) == 0
    with pytest.raises(UserError, match="did you mean pref_sf"):
        actstore.query("qc_sf", root, columns=["pref_fs"])


def test_query_returns_matching_activations_lazily(root):
    with pytest.raises(UserError, match="one space at a time"):
        actstore.query("qc_orientation & gosi > 0.3", root, activations="tuning_grid")
    acts = actstore.query("space == 'encoder' & qc_orientation & gosi > 0.3", root, activations="tuning_grid")
    table = actstore.query("space == 'encoder' & qc_orientation & gosi > 0.3", root)
    assert isinstance(acts.data, da.Array) and acts.dims[-1] == "match" and acts.sizes["match"] == len(table)
    assert list(acts["unit"].values) == list(table["unit"]) and set(acts["arch"].values) == {"xu_cnn"}
    enc = actstore.open_store("tuning_grid", root)["encoder"].sel(arch="xu_cnn", seed=0)
    np.testing.assert_array_equal(acts.isel(match=0).values, enc.sel(unit=int(table["unit"][0])).values)
    late = actstore.query("space == 'late' & qc_orientation", root, activations="tuning_grid")
    store = actstore.open_store("tuning_grid", root)["late"].sel(arch="xu_cnn", seed=0)
    first = int(actstore.query("space == 'late' & qc_orientation", root)["unit"].iloc[0])
    np.testing.assert_array_equal(late.isel(match=0).values, store.sel(late_unit=first).values)


def _cli(root, *args):
    return subprocess.run([sys.executable, "-m", "actstore.cli", "--root", root, "query", *args],
                          capture_output=True, text=True)


def test_cli_query_formats_and_errors(root, tmp_path):
    proc = _cli(root, "qc_sf & gosi > 0.3", "--format", "csv", "--columns", "gosi,pref_sf")
    assert proc.returncode == 0, proc.stderr
    got = pd.read_csv(io.StringIO(proc.stdout))
    assert list(got.columns) == ["arch", "seed", "space", "unit", "gosi", "pref_sf"] and (got["gosi"] > 0.3).all()
    proc = _cli(root, "qc_sf", "--format", "parquet", "--out", str(tmp_path / "u.parquet"))
    assert proc.returncode == 0 and len(pd.read_parquet(tmp_path / "u.parquet")) == len(actstore.query("qc_sf", root))
    proc = _cli(root, "gosi.max() > 1")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "attribute access not allowed" in proc.stderr
    proc = _cli(root, "gois > 1", "--format", "json")
    assert proc.returncode == 2 and "did you mean gosi" in proc.stderr
    proc = _cli(root, "arch == 'xu_cn'", "--format", "csv")  # matches nothing: csv stays a header, stderr says why
    assert proc.returncode == 0 and proc.stdout.startswith("arch,seed,space,unit")
    assert len(proc.stdout.splitlines()) == 1
    assert "no units match: arch holds no 'xu_cn'; did you mean 'xu_cnn'? it holds 1 value: xu_cnn" in proc.stderr


def test_job_without_a_store_skips_with_a_hint(tmp_path):
    lines = assays.run(load_catalog(profile="smoke"), str(tmp_path), "tuning")
    assert len(lines) == 1 and "skipped" in lines[0] and "actstore extract --recipe tuning_grid" in lines[0]
