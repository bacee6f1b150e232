"""The xu2023 and parker2022 readers: tiny files written with numpy / h5py read back exactly,
split boundaries as design 6.1 says, and every bad file ending in one line naming file and key."""
import subprocess
import sys

import h5py
import numpy as np
import pytest
import yaml

from actstore.catalog import Catalog, deep_merge, default_catalog_path, load_catalog
from actstore.data import load_sessions, prepare_data
from actstore.errors import UserError

SESSION = "070921_J553RT"
BEHAVIOUR = ("speed", "pitch", "roll", "phi", "th", "eyerad")
N = 3


def catalog_for(source: str, path, sessions=(SESSION,)) -> Catalog:
    """The smoke catalog reading `source` files at `path` (an absolute path: the root is ignored)."""
    base = load_catalog(profile="smoke")
    over = {"data": {"source": source, "path": str(path), "sessions": list(sessions), "reference_session": SESSION}}
    return Catalog(path=base.path, profile="test", cfg=deep_merge(base.cfg, over))


def xu_lengths(i: int) -> tuple[int, int]:
    return 20 + i, 7 + i % 3


def write_xu(folder, seed=0) -> dict:
    """A 10-segment xu2023 session of random arrays; returns each key concatenated in time order."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    series = {k: [] for k in ("vid_mean", "nsp", *BEHAVIOUR)}
    for i in range(10):
        for part, n in zip(("train", "test"), xu_lengths(i)):
            arrays = {"vid_mean": rng.integers(0, 256, (n, 60, 80)).astype(np.uint8),
                      "nsp": rng.poisson(0.5, (n, N)).astype(np.float64)}
            arrays.update({b: rng.normal(size=n) for b in BEHAVIOUR})
            for key, a in arrays.items():
                np.save(folder / f"{part}_{key}_seg_{i}.npy", a)
                series[key].append(a)
    return {k: np.concatenate(v) for k, v in series.items()}


def write_parker(path, n_bins=230, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {"model_vid_sm": rng.normal(size=(n_bins, 30, 40)), "model_nsp": rng.poisson(0.5, (n_bins, N)),
              "model_t": np.arange(n_bins) * 0.05, "unit_nums": np.array([4, 17, 23])}
    arrays.update({f"model_{b}": rng.normal(size=n_bins) for b in BEHAVIOUR})
    with h5py.File(path, "w") as f:
        g = f.create_group(f"{SESSION}/fm1")
        for key, a in arrays.items():
            g.create_dataset(key, data=a)
    return arrays


def scaled(x):
    x = x.astype(np.float32)
    return (x - x.min()) / (x.max() - x.min())


def test_xu2023_reads_back_exactly_with_split_boundaries(tmp_path):
    truth = write_xu(tmp_path / SESSION)
    s = load_sessions(catalog_for("xu2023", tmp_path), "unused")[SESSION]
    np.testing.assert_array_equal(s.frames, scaled(truth["vid_mean"]))
    assert s.frames.dtype == np.float32 and s.frames.min() == 0 and s.frames.max() == 1
    np.testing.assert_array_equal(s.counts, truth["nsp"])
    for b in BEHAVIOUR:
        np.testing.assert_array_equal(s.behaviour[b], truth[b].astype(np.float32))
    assert s.bin_s == 0.048 and list(s.neuron_ids) == [0, 1, 2] and s.noise_ceiling is None
    # segment 0: train 20 = optimize 16 + validate 4, then test 7; segment 1 starts at bin 27
    np.testing.assert_array_equal(s.part[:27], [0] * 16 + [1] * 4 + [2] * 7)
    np.testing.assert_array_equal(s.block[:28], [0] * 16 + [1] * 4 + [2] * 7 + [3])
    assert len(s.part) == sum(sum(xu_lengths(i)) for i in range(10)) == len(s.frames)
    assert (s.block[1:] >= s.block[:-1]).all() and s.block.max() == 29
    # test samples of segment 0: bins 25..26 have all 5 context frames inside the test block (20..26)
    assert list(s.targets("test")[:2]) == [25, 26]


def test_parker2022_reads_back_exactly_with_split_boundaries(tmp_path):
    truth = write_parker(tmp_path / "ModelData_all.h5")
    s = load_sessions(catalog_for("parker2022", tmp_path / "ModelData_all.h5"), "unused")[SESSION]
    np.testing.assert_array_equal(s.frames, scaled(truth["model_vid_sm"]))
    np.testing.assert_array_equal(s.counts, truth["model_nsp"].astype(np.float32))
    np.testing.assert_array_equal(s.behaviour["eyerad"], truth["model_eyerad"].astype(np.float32))
    assert s.bin_s == 0.05 and list(s.neuron_ids) == [4, 17, 23] and s.frame_shape == (30, 40)
    # 230 bins = 10 segments of 23: train 16 (optimize 13, validate 3), test 7
    np.testing.assert_array_equal(s.part[:23], [0] * 13 + [1] * 3 + [2] * 7)
    np.testing.assert_array_equal(s.block[:46], np.repeat(np.arange(6), [13, 3, 7, 13, 3, 7]))
    assert s.block.max() == 29 and len(s.block) == 230


def _save(folder, name, a):
    np.save(folder / name, a)


XU_BAD = {
    "missing segment": (lambda d: (d / "train_nsp_seg_3.npy").unlink(), "train_nsp_seg_3.npy: missing file"),
    "wrong frame shape": (lambda d: _save(d, "test_vid_mean_seg_2.npy", np.zeros((7, 30, 40))),
                          "test_vid_mean_seg_2.npy: vid_mean: shape (7, 30, 40); expected (T, 60, 80)"),
    "NaN counts": (lambda d: _save(d, "train_nsp_seg_1.npy", np.full((21, N), np.nan)),
                   "train_nsp_seg_1.npy: nsp: 63 NaN"),
    "negative counts": (lambda d: _save(d, "test_nsp_seg_0.npy", -np.ones((7, N))),
                        "test_nsp_seg_0.npy: nsp: negative value -1"),
    "lengths differ": (lambda d: _save(d, "train_nsp_seg_4.npy", np.zeros((25, N))),
                       "train_nsp_seg_4.npy: nsp: 25 bins but"),
    "neuron count differs": (lambda d: _save(d, "train_nsp_seg_5.npy", np.zeros((25, N + 1))),
                             "train_nsp_seg_5.npy: nsp: shape (25, 4); expected (T, 3)"),
    "not a npy file": (lambda d: (d / "test_speed_seg_9.npy").write_bytes(b"garbage"),
                       "test_speed_seg_9.npy: not a readable .npy file"),
}


@pytest.mark.parametrize("case", list(XU_BAD))
def test_xu2023_bad_files_end_in_one_line_naming_file_and_key(tmp_path, case):
    write_xu(tmp_path / SESSION)
    breaker, expected = XU_BAD[case]
    breaker(tmp_path / SESSION)
    with pytest.raises(UserError) as e:
        load_sessions(catalog_for("xu2023", tmp_path), "unused")
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_unknown_session_names_what_exists(tmp_path):
    write_xu(tmp_path / SESSION)
    with pytest.raises(UserError, match=r"unknown session 'nope'.*sessions there: 070921_J553RT"):
        load_sessions(catalog_for("xu2023", tmp_path, sessions=(SESSION, "nope")), "unused")
    write_parker(tmp_path / "m.h5")
    with pytest.raises(UserError, match=r"m.h5: data.sessions: unknown session 'nope'.*in file: 070921_J553RT"):
        load_sessions(catalog_for("parker2022", tmp_path / "m.h5", sessions=("nope",)), "unused")


def _edit_h5(key, value):
    def edit(path):
        with h5py.File(path, "a") as f:
            g = f[f"{SESSION}/fm1"]
            del g[key]
            if value is not None:
                g.create_dataset(key, data=value)
    return edit


PARKER_BAD = {
    "missing dataset": (_edit_h5("model_speed", None), "fm1/model_speed: missing dataset"),
    "wrong frame shape": (_edit_h5("model_vid_sm", np.ones((230, 60, 80))),
                          "fm1/model_vid_sm: shape (230, 60, 80); expected (T, 30, 40)"),
    "NaN counts": (_edit_h5("model_nsp", np.where(np.eye(230, N) > 0, np.nan, 1.0)), "fm1/model_nsp: 3 NaN"),
    "negative counts": (_edit_h5("model_nsp", -np.ones((230, N))), "fm1/model_nsp: negative value -1"),
    "lengths differ": (_edit_h5("model_nsp", np.ones((229, N))), "fm1/model_nsp: 229 bins but"),
    "missing file": (lambda p: p.unlink(), "ModelData_all.h5: missing file"),
    "not HDF5": (lambda p: p.write_bytes(b"garbage"), "ModelData_all.h5: not a readable HDF5 file"),
}


@pytest.mark.parametrize("case", list(PARKER_BAD))
def test_parker2022_bad_files_end_in_one_line_naming_file_and_key(tmp_path, case):
    path = tmp_path / "ModelData_all.h5"
    write_parker(path)
    breaker, expected = PARKER_BAD[case]
    breaker(path)
    with pytest.raises(UserError) as e:
        load_sessions(catalog_for("parker2022", path), "unused")
    assert expected in str(e.value) and "\n" not in str(e.value)


def _catalog_file(tmp_path, data_dir) -> str:
    raw = yaml.safe_load(default_catalog_path().read_text())
    raw["data"].update(source="xu2023", path=str(data_dir), sessions=[SESSION], reference_session=SESSION)
    raw["default_profile"] = "paper"
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "actstore.cli", *args], capture_output=True, text=True)


def test_cli_data_validates_real_files_then_is_up_to_date_and_exits_2_on_a_bad_file(tmp_path):
    write_xu(tmp_path / "xu" / SESSION)
    args = ("--catalog", _catalog_file(tmp_path, tmp_path / "xu"), "--root", str(tmp_path / "root"), "data")
    first = _cli(*args)
    assert first.returncode == 0, first.stderr
    assert f"validated {SESSION}: 3 neurons" in first.stdout
    assert "up to date" in _cli(*args).stdout
    (tmp_path / "xu" / SESSION / "test_nsp_seg_6.npy").unlink()
    bad = _cli(*args)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("actstore: error: ")
    assert "test_nsp_seg_6.npy: missing file" in bad.stderr


def test_prepare_revalidates_when_a_real_file_changes(tmp_path):
    write_xu(tmp_path / SESSION)
    catalog = catalog_for("xu2023", tmp_path)
    root = str(tmp_path / "root")
    assert "validated" in prepare_data(catalog, root)[0]
    assert "up to date" in prepare_data(catalog, root)[0]
    np.save(tmp_path / SESSION / "train_speed_seg_0.npy", np.zeros(20))
    assert "validated" in prepare_data(catalog, root)[0]
