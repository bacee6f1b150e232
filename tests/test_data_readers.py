"""The xu2023 and parker2022 readers: tiny files written with numpy / h5py read back exactly,
split boundaries as design 6.1 says, NaN behaviour interpolated over time, each release's frame scaling,
parker2022's inactive and NaN bins dropped, and every bad file ending in one line naming file and key."""
import subprocess
import sys

import h5py
import numpy as np
import pytest
import yaml

from actstore.catalog import Catalog, deep_merge, default_catalog_path, load_catalog
from actstore.data import data_fingerprint, load_sessions, prepare_data
from actstore.errors import UserError

SESSION = "070921_J553RT"
BEHAVIOUR = ("speed", "pitch", "roll", "phi", "th", "eyerad")
N = 3


def catalog_for(source: str, path, sessions=(SESSION,)) -> Catalog:
    """The smoke catalog reading `source` files at `path` (an absolute path: the root is ignored), 10 segments."""
    base = load_catalog(profile="smoke")
    over = {"data": {"source": source, "path": str(path), "sessions": list(sessions), "reference_session": SESSION,
                     "segments": 10}}
    return Catalog(path=base.path, profile="test", cfg=deep_merge(base.cfg, over))


def xu_lengths(i: int) -> tuple[int, int]:
    return 20 + i, 7 + i % 3


def write_xu(folder, seed=0) -> dict:
    """A 10-segment xu2023 session of random arrays, each movie file with its own gray range;
    returns each key concatenated in time order, and `vid_files` the movie files in time order."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    series = {k: [] for k in ("vid_mean", "nsp", *BEHAVIOUR)}
    for i in range(10):
        for j, (part, n) in enumerate(zip(("train", "test"), xu_lengths(i))):
            lo = 10 * i + 5 * j
            arrays = {"vid_mean": rng.integers(lo, lo + 100 + 7 * i, (n, 60, 80)).astype(np.uint8),
                      "nsp": rng.poisson(0.5, (n, N)).astype(np.float64)}
            arrays.update({b: rng.normal(size=n) for b in BEHAVIOUR})
            for key, a in arrays.items():
                np.save(folder / f"{part}_{key}_seg_{i}.npy", a)
                series[key].append(a)
    return {"vid_files": series["vid_mean"], **{k: np.concatenate(v) for k, v in series.items()}}


def write_parker(path, n_bins=230, seed=0, **replace) -> dict:
    """A parker2022 file of random arrays (the movie's gray range drifting over time), `replace` overriding datasets."""
    rng = np.random.default_rng(seed)
    drift = np.arange(n_bins)[:, None, None]
    arrays = {"model_vid_sm": rng.normal(size=(n_bins, 30, 40)) * (1 + drift / 50) + drift / 10,
              "model_nsp": rng.poisson(0.5, (n_bins, N)),
              "model_t": np.arange(n_bins) * 0.05, "unit_nums": np.array([4, 17, 23])}
    arrays.update({f"model_{b}": rng.normal(size=n_bins) for b in BEHAVIOUR})
    arrays.update(replace)
    with h5py.File(path, "w") as f:
        g = f.create_group(f"{SESSION}/fm1")
        for key, a in arrays.items():
            g.create_dataset(key, data=a)
    return arrays


def scaled(x):
    x = x.astype(np.float32)
    return (x - x.min()) / (x.max() - x.min())


def with_scaling(catalog: Catalog, frame_scaling: str) -> Catalog:
    return Catalog(path=catalog.path, profile=catalog.profile,
                   cfg=deep_merge(catalog.cfg, {"data": {"frame_scaling": frame_scaling}}))


def test_xu2023_reads_back_exactly_with_split_boundaries(tmp_path):
    truth = write_xu(tmp_path / SESSION)
    s = load_sessions(catalog_for("xu2023", tmp_path), "unused")[SESSION]
    # the release's own convention: each segment file scaled to [0, 1] on its own
    np.testing.assert_array_equal(s.frames, np.concatenate([scaled(f) for f in truth["vid_files"]]))
    assert s.frames.dtype == np.float32 and s.frames.min() == 0 and s.frames.max() == 1
    assert s.frame_scaling == "per_segment" and s.dropped_bins == 0
    assert s.behaviour_filled == dict.fromkeys(BEHAVIOUR, 0)
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
    assert s.frame_scaling == "per_session" and s.dropped_bins == 0
    np.testing.assert_array_equal(s.counts, truth["model_nsp"].astype(np.float32))
    np.testing.assert_array_equal(s.behaviour["eyerad"], truth["model_eyerad"].astype(np.float32))
    assert s.bin_s == 0.05 and list(s.neuron_ids) == [4, 17, 23] and s.frame_shape == (30, 40)
    # 230 bins = 10 segments of 23: train 16 (optimize 13, validate 3), test 7
    np.testing.assert_array_equal(s.part[:23], [0] * 13 + [1] * 3 + [2] * 7)
    np.testing.assert_array_equal(s.block[:46], np.repeat(np.arange(6), [13, 3, 7, 13, 3, 7]))
    assert s.block.max() == 29 and len(s.block) == 230


def test_xu2023_behaviour_nan_is_interpolated_over_time_and_counted(tmp_path):
    folder = tmp_path / SESSION
    truth = write_xu(folder)
    speed_train, speed_test = np.arange(20.0), 20 + np.arange(7.0)  # segment 0: bins 0..19, then 20..26
    speed_train[[0, 1, 5, 19]] = np.nan  # the session's first two bins, one inside, one at the file's end
    speed_test[0] = np.nan  # and the next file's first
    np.save(folder / "train_speed_seg_0.npy", speed_train)
    np.save(folder / "test_speed_seg_0.npy", speed_test)
    eyerad = np.load(folder / "test_eyerad_seg_9.npy")
    eyerad[-2:] = np.nan  # the session's last two bins
    np.save(folder / "test_eyerad_seg_9.npy", eyerad)
    s = load_sessions(catalog_for("xu2023", tmp_path), "unused")[SESSION]
    # by hand: edge NaNs hold the nearest finite value (bin 2 = 2), the rest lie on the line through their
    # neighbours, across the train/test file boundary too (18 .. 21 gives 19, 20)
    want_speed = np.r_[2.0, 2.0, np.arange(2.0, 27.0), truth["speed"][27:]].astype(np.float32)
    np.testing.assert_array_equal(s.behaviour["speed"], want_speed)
    want_eyerad = truth["eyerad"].copy()
    want_eyerad[-2:] = eyerad[-3]
    np.testing.assert_array_equal(s.behaviour["eyerad"], want_eyerad.astype(np.float32))
    for b in ("pitch", "roll", "phi", "th"):
        np.testing.assert_array_equal(s.behaviour[b], truth[b].astype(np.float32))
    assert s.behaviour_nan == "interpolate" and s.behaviour_filled == {**dict.fromkeys(BEHAVIOUR, 0), "speed": 5, "eyerad": 2}


def test_xu2023_per_session_scaling_scales_the_whole_movie(tmp_path):
    truth = write_xu(tmp_path / SESSION)
    s = load_sessions(with_scaling(catalog_for("xu2023", tmp_path), "per_session"), "unused")[SESSION]
    np.testing.assert_array_equal(s.frames, scaled(truth["vid_mean"]))
    assert s.frame_scaling == "per_session"
    assert not np.array_equal(s.frames, np.concatenate([scaled(f) for f in truth["vid_files"]]))


PARKER_N = 250
PARKER_DROPPED = [*range(30, 40), 100, 120, 130]  # inactive, active NaN, a NaN count, a NaN pixel


def write_parker_with_gaps(path) -> dict:
    """A parker2022 file with inactive bins 30..39, model_active NaN at 100, a NaN count at bin 120, a NaN
    pixel at bin 130, and model_speed 0, 1, 2, ... with NaN at bins 0, 29, 60, 61."""
    active = np.ones(PARKER_N)
    active[30:40] = 0.2
    active[100] = np.nan
    speed = np.arange(PARKER_N, dtype=np.float64)
    speed[[0, 29, 60, 61]] = np.nan
    truth = write_parker(path, n_bins=PARKER_N, model_active=active, model_speed=speed)
    truth["model_nsp"] = truth["model_nsp"].astype(np.float64)
    truth["model_nsp"][120, 1] = np.nan
    truth["model_vid_sm"][130, 3, 4] = np.nan
    for key in ("model_nsp", "model_vid_sm"):
        _edit_h5(key, truth[key])(path)
    return truth


def test_parker2022_drops_inactive_and_nan_bins_and_interpolates_behaviour_over_time(tmp_path):
    path = tmp_path / "ModelData_all.h5"
    truth = write_parker_with_gaps(path)
    kept = np.setdiff1d(np.arange(PARKER_N), PARKER_DROPPED)
    s = load_sessions(catalog_for("parker2022", path), "unused")[SESSION]
    assert s.dropped_bins == 13 and len(s.counts) == len(s.block) == 237
    np.testing.assert_array_equal(s.counts, truth["model_nsp"][kept].astype(np.float32))
    np.testing.assert_array_equal(s.frames, scaled(truth["model_vid_sm"][kept]))
    assert s.frame_scaling == "per_session"
    # over the recording's time: bin 0 holds bin 1's value, bin 29 lies between bins 28 and 30 (inactive, dropped,
    # but measured), 60 and 61 between 59 and 62
    want = np.arange(PARKER_N, dtype=np.float32)[kept]
    want[0] = 1
    np.testing.assert_array_equal(s.behaviour["speed"], want)
    np.testing.assert_array_equal(s.behaviour["eyerad"], truth["model_eyerad"][kept].astype(np.float32))
    assert s.behaviour_filled == {**dict.fromkeys(BEHAVIOUR, 0), "speed": 4}
    # 237 bins = segments of 24, 23, ...: segment 0 optimize 14, validate 3, test 7; segment 1 optimize 13 is cut
    # in two by the dropped bins 30..39 (kept bins 24..29, then 30..36), validate 3, test 7
    np.testing.assert_array_equal(s.block[:47], np.repeat(np.arange(7), [14, 3, 7, 6, 7, 3, 7]))
    np.testing.assert_array_equal(s.part[:47], np.repeat([0, 1, 2, 0, 1, 2], [14, 3, 7, 13, 3, 7]))
    for part in ("optimize", "test"):  # (validate parts of 3 bins hold no 5-frame sample)
        t = s.targets(part)
        assert len(t) and (kept[t] - kept[t - 5] == 5).all()  # every sample's bins are consecutive in the file


def test_parker2022_per_segment_scaling_scales_each_train_and_test_part(tmp_path):
    path = tmp_path / "ModelData_all.h5"
    truth = write_parker_with_gaps(path)
    kept = np.setdiff1d(np.arange(PARKER_N), PARKER_DROPPED)
    s = load_sessions(with_scaling(catalog_for("parker2022", path), "per_segment"), "unused")[SESSION]
    is_test = s.part == 2
    edges = np.flatnonzero(is_test[1:] != is_test[:-1]) + 1
    pieces = np.split(truth["model_vid_sm"][kept], edges)
    assert len(pieces) == 20 and s.frame_scaling == "per_segment"
    np.testing.assert_array_equal(s.frames, np.concatenate([scaled(x) for x in pieces]))


def test_prepare_reports_filled_and_dropped_bins(tmp_path):
    path = tmp_path / "ModelData_all.h5"
    write_parker_with_gaps(path)
    line = prepare_data(catalog_for("parker2022", path), str(tmp_path / "root"))[0]
    assert line.startswith(f"data: validated {SESSION}: 3 neurons, 237 bins")
    assert line.endswith("frames scaled per session, 4 behaviour NaN(s) filled (interpolate), "
                         "13 inactive or NaN bins dropped")


def test_frame_scaling_is_part_of_the_data_fingerprint(tmp_path):
    truth = write_xu(tmp_path / SESSION)
    root = str(tmp_path / "root")
    release = catalog_for("xu2023", tmp_path)
    prepare_data(release, root)
    fingerprint = data_fingerprint(release, root)
    assert data_fingerprint(with_scaling(release, "per_segment"), root) == fingerprint  # the same frames
    per_session = with_scaling(release, "per_session")
    with pytest.raises(UserError, match="data not prepared for this catalog"):
        data_fingerprint(per_session, root)
    assert "validated" in prepare_data(per_session, root)[0]
    assert data_fingerprint(per_session, root) != fingerprint
    np.testing.assert_array_equal(load_sessions(per_session, root)[SESSION].frames, scaled(truth["vid_mean"]))


@pytest.mark.parametrize("profile, value, message", [
    ("paper", "per_file", "data.frame_scaling: invalid value 'per_file'; expected one of release, per_segment, per_session"),
    ("smoke", "per_segment", "profiles.smoke: data.frame_scaling: per_segment does not apply to synthetic data"),
])
def test_a_bad_frame_scaling_is_one_line(tmp_path, profile, value, message):
    raw = yaml.safe_load(default_catalog_path().read_text())
    raw["data"]["frame_scaling"] = value
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError) as e:
        load_catalog(path, profile)
    assert message in str(e.value) and str(e.value).startswith(str(path)) and "\n" not in str(e.value)


def _save(folder, name, a):
    np.save(folder / name, a)


def _ones_with(shape, value, *at):
    a = np.ones(shape)
    a[at] = value
    return a


XU_BAD = {
    "missing segment": (lambda d: (d / "train_nsp_seg_3.npy").unlink(), "train_nsp_seg_3.npy: missing file"),
    "wrong frame shape": (lambda d: _save(d, "test_vid_mean_seg_2.npy", np.zeros((7, 30, 40))),
                          "test_vid_mean_seg_2.npy: vid_mean: shape (7, 30, 40); expected (T, 60, 80)"),
    "NaN counts": (lambda d: _save(d, "train_nsp_seg_1.npy", np.full((21, N), np.nan)),
                   "train_nsp_seg_1.npy: nsp: 63 NaN or infinite value(s); expected finite numbers"),
    "NaN frames": (lambda d: _save(d, "train_vid_mean_seg_0.npy", _ones_with((20, 60, 80), np.nan, 3, 4, 5)),
                   "train_vid_mean_seg_0.npy: vid_mean: 1 NaN or infinite value(s); expected finite numbers"),
    "infinite behaviour": (lambda d: _save(d, "train_roll_seg_0.npy", np.r_[np.inf, np.zeros(19)]),
                           "train_roll_seg_0.npy: roll: 1 infinite value(s); expected finite numbers or NaN"),
    "all behaviour NaN": (lambda d: [_save(d, f.name, np.full(len(np.load(f)), np.nan)) for f in d.glob("*_pitch_seg_*")],
                          "*_pitch_seg_*.npy: pitch: all 324 values are NaN; expected at least one finite value"),
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
            if key in g:
                del g[key]
            if value is not None:
                g.create_dataset(key, data=value)
    return edit


PARKER_BAD = {
    "missing dataset": (_edit_h5("model_speed", None), "fm1/model_speed: missing dataset"),
    "wrong frame shape": (_edit_h5("model_vid_sm", np.ones((230, 60, 80))),
                          "fm1/model_vid_sm: shape (230, 60, 80); expected (T, 30, 40)"),
    "no usable bin": (_edit_h5("model_active", np.r_[np.zeros(225), np.ones(5)]),
                      "fm1: 5 of 230 bins are active (model_active >= 0.5) with finite frames and counts; "
                      "10 segments (data.segments) need at least 20"),
    "negative counts": (_edit_h5("model_nsp", -np.ones((230, N))), "fm1/model_nsp: negative value -1"),
    "negative counts beside NaN": (_edit_h5("model_nsp", _ones_with((230, N), np.nan, 0, 0) - 3 * np.eye(230, N)),
                                   "fm1/model_nsp: negative value -2"),
    "infinite frames": (_edit_h5("model_vid_sm", _ones_with((230, 30, 40), np.inf, 7, 1, 2)),
                        "fm1/model_vid_sm: 1 infinite value(s); expected finite numbers or NaN"),
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
