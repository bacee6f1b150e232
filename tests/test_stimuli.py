"""Stimulus generators: known answers (orientation from the FFT, blur gain, Gabor frame, RDK coherence),
balance, nuisance ranges, determinism, the shared Dataset contract and recipe validation."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml
from scipy.ndimage import gaussian_filter

from actstore.catalog import deep_merge, load_catalog
from actstore.errors import UserError
from actstore.stimuli import dot_trajectories, generate, gratings, validate_recipe
from actstore.stimuli.nuisance import degraded
from actstore.stimuli.streams import balanced_labels, stream

NAMES = ["tuning_grid", "orientation_task", "contrast_task", "rdk_task", "reference_clips"]
SHAPE = (60, 80)


@pytest.fixture(scope="module")
def smoke():
    return load_catalog(profile="smoke")


@pytest.fixture(scope="module")
def movie():
    return stream(7, "test movie").uniform(0, 1, (400, *SHAPE)).astype(np.float32)


@pytest.fixture(scope="module")
def sets(smoke, movie):
    return {n: generate(smoke.recipe(n), 0, movie if n == "reference_clips" else None) for n in NAMES}


def fft_orientation(image: np.ndarray) -> float:
    """Orientation (deg, mod 180, y = row) of the strongest Fourier component of a windowed, zero-padded image."""
    h, w = image.shape
    win = np.hanning(h)[:, None] * np.hanning(w)[None, :]
    power = np.abs(np.fft.fft2((image - image.mean()) * win, s=(1024, 1024))) ** 2
    ky, kx = np.unravel_index(np.argmax(power), power.shape)
    fy, fx = np.fft.fftfreq(1024)[ky], np.fft.fftfreq(1024)[kx]
    return float(np.rad2deg(np.arctan2(fy, fx)) % 180)


def angle_error(a: float, b: float) -> float:
    return abs((a - b + 90) % 180 - 90)


# ----------------------------------------------------------------------------- gratings
@pytest.mark.parametrize("sf", [0.05, 0.1, 0.2])
def test_grating_orientation_is_recovered_from_its_fft(sf):
    for th in np.arange(0, 180, 15.0):
        img = gratings(SHAPE, th, sf, 0.3, 1.0, 0.5)
        assert angle_error(fft_orientation(img), th) < 1.0, th


def test_grating_follows_the_formula_with_x_column_y_row_and_clipping():
    th, f, phi, c, lum = 30.0, 0.07, 1.1, 0.8, 0.5
    img = gratings(SHAPE, th, f, phi, c, lum)
    i, j = 7, 61                                   # row, column
    x, y = j - (SHAPE[1] - 1) / 2, i - (SHAPE[0] - 1) / 2
    want = lum * (1 + c * np.sin(2 * np.pi * f * (x * np.cos(np.deg2rad(th)) + y * np.sin(np.deg2rad(th))) + phi))
    assert img.dtype == np.float32 and img[i, j] == pytest.approx(want, abs=1e-6)
    down = gratings(SHAPE, 90.0, 0.01, 0.0, 1.0, 0.5)  # th = 90: brightness grows with y, i.e. down the rows
    assert down[0, 40] < down[29, 40] < down[59, 40]
    bright = gratings(SHAPE, 0.0, 0.1, 0.0, 1.0, 0.7)
    assert bright.max() == 1.0 and bright.min() == pytest.approx(0.0, abs=1e-6)
    assert (bright == 1.0).mean() > 0.2           # L (1 + c) = 1.4 is clipped


def test_tuning_grid_is_the_full_factorial_of_the_recipe_axes(smoke, sets):
    ds, r = sets["tuning_grid"], smoke.recipe("tuning_grid")
    assert ds.stimulus.dims == ("orientation", "sf", "phase", "contrast", "y", "x")
    assert ds.sizes["orientation"] == r["orientation_deg"]["num"] and ds.sizes["sf"] == r["sf_cpp"]["num"]
    np.testing.assert_allclose(ds.orientation, np.arange(8) * 22.5)
    np.testing.assert_allclose(ds.sf[[0, -1]], [0.01, 0.25])
    np.testing.assert_allclose(np.diff(np.log(ds.sf)), np.log(25) / 5)
    np.testing.assert_allclose(ds.phase, np.arange(4) * np.pi / 2)
    assert (ds.stimulus.sel(contrast=0.0) == 0.5).all()
    for o in ds.orientation.values:
        img = ds.stimulus.sel(orientation=o, contrast=1.0).isel(sf=3, phase=1).values
        assert angle_error(fft_orientation(img), o) < 1.0
    one = ds.stimulus.isel(orientation=2, sf=4, phase=3).sel(contrast=0.5).values
    np.testing.assert_array_equal(one, gratings(SHAPE, ds.orientation[2], ds.sf[4], ds.phase[3], 0.5, 0.5))
    full = generate(load_catalog(profile="paper").recipe("tuning_grid"), 0)
    assert dict(full.sizes) == {"orientation": 12, "sf": 12, "phase": 8, "contrast": 9, "y": 60, "x": 80}


def test_blur_scales_a_grating_by_the_gaussian_transfer_and_noise_has_its_sd():
    f, sigma = 0.08, 1.5
    img = gratings(SHAPE, 0.0, f, 0.0, 0.5, 0.5)[None]
    out = degraded(img.copy(), np.array([sigma]), np.array([0.0]), stream(0, "t"))[0]
    gain = (out - 0.5)[20:40, 20:60].std() / (img[0] - 0.5)[20:40, 20:60].std()
    assert gain == pytest.approx(np.exp(-2 * np.pi ** 2 * sigma ** 2 * f ** 2), rel=0.02)
    flat = degraded(np.full((2, *SHAPE), 0.5, np.float32), np.zeros(2), np.array([0.05, 0.0]), stream(0, "t"))
    assert flat[0].std() == pytest.approx(0.05, rel=0.05) and (flat[1] == 0.5).all()


# ----------------------------------------------------------------------------- orientation task
def test_orientation_task_classes_are_balanced_and_orientation_lies_in_its_class(smoke, sets):
    ds, r = sets["orientation_task"], smoke.recipe("orientation_task")
    width = 180 / r["classes"]
    np.testing.assert_array_equal(np.floor(ds.orientation.values / width), ds.label.values)
    for split, spec in r["splits"].items():
        labels = ds.label.values[ds.split.values == split]
        assert len(labels) == spec["trials"]
        assert (np.bincount(labels, minlength=8) == spec["trials"] // 8).all(), split
    train = ds.label.values[ds.split.values == "train"]
    for k in (1, 2, 3, 5):                          # every prefix of 8k train trials is balanced
        assert (np.bincount(train[: 8 * k], minlength=8) == k).all()


def test_orientation_task_nuisances_lie_in_the_id_and_ood_ranges(smoke, sets):
    ds, r = sets["orientation_task"], smoke.recipe("orientation_task")
    coords = {"sf_cpp": "sf", "contrast": "contrast", "noise_sd": "noise_sd", "blur_sigma": "blur_sigma",
              "luminance": "luminance", "phase_deg": "phase"}
    for split, spec in r["splits"].items():
        ranges = r["nuisance"][spec["nuisance"]]
        sel = ds.split.values == split
        for key, name in coords.items():
            v = ds[name].values[sel]
            lo, hi = ranges[key]["low"], ranges[key]["high"]
            if key == "phase_deg":
                v = np.rad2deg(v)
            assert (v >= lo).all() and (v <= hi).all(), (split, name)
    assert r["splits"]["test_ood"]["nuisance"] == "ood"
    ood = ds.split.values == "test_ood"
    assert (ds.sf.values[ood] >= 0.12).all() and (ds.sf.values[~ood] <= 0.12).all()
    assert (ds.blur_sigma.values[ood] >= 1).all() and (ds.luminance.values[ood] <= 0.35).all()
    # Each image is the trial's grating, blurred by its blur_sigma, plus pixel noise of its noise_sd.
    for t in np.flatnonzero(ds.noise_sd.values > 0.03)[:5]:
        c = ds.isel(trial=t)
        clean = gratings(SHAPE, c.orientation.values, c.sf.values, c.phase.values, c.contrast.values, c.luminance.values)
        clean = gaussian_filter(clean, float(c.blur_sigma), mode="reflect")
        img = c.stimulus.values
        inside = (img > 0) & (img < 1)
        assert (img - clean)[inside].std() == pytest.approx(float(c.noise_sd), rel=0.1)
        assert angle_error(fft_orientation(img), float(c.orientation)) < 3


# ----------------------------------------------------------------------------- contrast task
def test_gabor_flashes_on_the_promised_frame_and_nowhere_else(smoke):
    quiet = deep_merge(smoke.recipe("contrast_task"), {"background": {"noise_sd": {"low": 0.0, "high": 0.0},
                                                                      "blur_sigma": {"low": 0.0, "high": 0.0}}})
    ds = generate(quiet, 0)
    x = np.arange(80) - 39.5
    y = np.arange(60) - 29.5
    for t in range(ds.sizes["trial"]):
        clip, tf, c = ds.stimulus.values[t], int(ds.target_frame[t]), float(ds.contrast[t])
        others = [f for f in range(5) if f != tf]
        assert (clip[others] == 0.5).all()
        if ds.label[t] == 0:
            assert tf == -1 and c == 0 and (clip == 0.5).all()
            continue
        assert tf in (2, 3, 4)
        if c == 0:
            assert (clip == 0.5).all()
            continue
        dev = (clip[tf] - 0.5) ** 2
        assert dev.max() > 0
        cy, cx = (dev.sum(1) @ y) / dev.sum(), (dev.sum(0) @ x) / dev.sum()
        assert abs(cx) < 1.5 and abs(cy) < 1.5      # centred on the frame centre
        assert dev.max() <= (0.5 * c) ** 2 + 1e-6


def test_contrast_task_targets_stand_out_on_their_frame_in_noise(sets):
    ds = sets["contrast_task"]
    strong = np.flatnonzero(ds.contrast.values >= 0.5)
    assert len(strong) >= 8
    centre = ds.stimulus.values[strong][:, :, 22:38, 32:48]
    energy = ((centre - 0.5) ** 2).mean(axis=(2, 3))
    np.testing.assert_array_equal(energy.argmax(axis=1), ds.target_frame.values[strong])


def test_contrast_task_splits_balance_and_test_grid(smoke, sets):
    ds, r = sets["contrast_task"], smoke.recipe("contrast_task")
    for split in ("train", "val"):
        labels = ds.label.values[ds.split.values == split]
        assert len(labels) == r["trials"][split] and labels.sum() == len(labels) // 2
        c = ds.contrast.values[ds.split.values == split]
        assert (c[labels == 1] >= 0.05).all() and (c[labels == 0] == 0).all()
    test = ds.isel(trial=ds.split.values == "test")
    for level in r["test_contrasts"]:
        assert int(((test.label == 1) & (test.contrast == level)).sum()) == r["test"]["targets_per_contrast"]
    assert int((test.label == 0).sum()) == r["test"]["blanks"]
    assert np.isnan(ds.gabor_sf.values[ds.label.values == 0]).all()
    assert ds.stimulus.dims == ("trial", "frame", "y", "x") and ds.sizes["frame"] == 5


# ----------------------------------------------------------------------------- RDK
def signal_fraction(traj: dict, direction: np.ndarray, speed: float, shape=SHAPE) -> tuple[float, np.ndarray]:
    """Fraction of moving dots whose displacement (on the torus) is exactly `speed` px the signal way."""
    size = np.array([shape[1], shape[0]], float)
    d = np.diff(traj["position"], axis=1)
    d = (d + size / 2) % size - size / 2
    way = (np.abs(d[..., 0] - direction[:, None, None] * speed) < 1e-9) & (np.abs(d[..., 1]) < 1e-9)
    return way[traj["moved"]].mean(), way


@pytest.mark.parametrize("coherence", [0.0, 0.05, 0.3, 0.8, 1.0])
def test_rdk_coherence_is_the_fraction_of_dots_moving_the_signal_way(smoke, coherence):
    dots = smoke.recipe("rdk_task")["dots"]
    direction = np.tile([-1.0, 1.0], 20)
    traj = dot_trajectories(40, 20, np.full(40, coherence), direction, dots, SHAPE, stream(0, "rdk test"))
    frac, way = signal_fraction(traj, direction, dots["speed_px_per_frame"])
    assert frac == pytest.approx(coherence, abs=0.01)
    np.testing.assert_array_equal(way & traj["moved"], traj["signal"])
    assert traj["moved"].mean() == pytest.approx(1 - 1 / dots["lifetime_frames"], abs=0.01)
    size = np.array([SHAPE[1], SHAPE[0]], float)
    step = (np.diff(traj["position"], axis=1) + size / 2) % size - size / 2
    np.testing.assert_allclose(np.hypot(*np.moveaxis(step[traj["moved"]], -1, 0)), dots["speed_px_per_frame"])


def test_rdk_frames_move_the_labelled_way(smoke, sets):
    ds, r = sets["rdk_task"], smoke.recipe("rdk_task")
    assert ds.stimulus.dims == ("trial", "frame", "y", "x") and ds.sizes["frame"] == 20
    full = ds.isel(trial=ds.coherence.values == 1.0)
    assert full.sizes["trial"] >= 4
    shifts = np.arange(-3, 4)
    for t in range(full.sizes["trial"]):
        clip = full.stimulus.values[t] - r["background"]
        score = [sum((clip[f + 1] * np.roll(clip[f], s, axis=1)).sum() for f in range(19)) for s in shifts]
        assert shifts[int(np.argmax(score))] == (2 if full.label[t] == 1 else -2)


def test_rdk_conditions_are_balanced(smoke, sets):
    ds, r = sets["rdk_task"], smoke.recipe("rdk_task")
    train = ds.isel(trial=ds.split.values == "train")
    assert train.sizes["trial"] == r["trials"]["train"]
    for label in (0, 1):
        for c in r["train_coherences"]:
            assert int(((train.label == label) & (train.coherence == c)).sum()) == r["trials"]["train"] // 4
    test = ds.isel(trial=ds.split.values == "test")
    for c in r["test_coherences"]:
        labels = test.label.values[test.coherence.values == c]
        assert len(labels) == r["test"]["trials_per_coherence"] and labels.sum() == len(labels) // 2


# ----------------------------------------------------------------------------- reference clips
def test_reference_clips_are_consecutive_frames_of_the_reference_session(smoke, sets, movie):
    ds, r = sets["reference_clips"], smoke.recipe("reference_clips")
    start = ds.start.values
    assert len(np.unique(start)) == r["clips"] and (np.diff(start) > 0).all() and start.max() <= 400 - 5
    for i in (0, 17, r["clips"] - 1):
        np.testing.assert_array_equal(ds.stimulus.values[i], movie[start[i]: start[i] + 5])
    again = generate(r, 5, movie)                  # the draw seed is fixed: the run seed does not move clips
    np.testing.assert_array_equal(again.start, start)
    moved = generate({**r, "draw_seed": 1}, 0, movie)
    assert not np.array_equal(moved.start, start)
    with pytest.raises(UserError, match="need at least 64 reference frames; the reference session has 30"):
        generate(r, 0, movie[:30])
    with pytest.raises(UserError, match="needs the reference session's frames"):
        generate(r, 0)
    with pytest.raises(UserError, match=r"scaled to \[0, 1\]"):
        generate(r, 0, movie * 2)


# ----------------------------------------------------------------------------- contract + determinism
@pytest.mark.parametrize("name", NAMES)
def test_every_set_keeps_the_store_contract(sets, name):
    ds = sets[name]
    s = ds.stimulus
    assert s.dtype == np.float32 and float(s.min()) >= 0 and float(s.max()) <= 1
    assert s.dims[-2:] == ("y", "x") and ds.attrs["chunk_frames"] == 5 and ds.attrs["kind"] == name
    if "frame" in s.dims:
        assert s.sizes["frame"] > 1 and s.sizes["frame"] % 5 == 0
    if "trial" in s.dims:
        np.testing.assert_array_equal(ds.trial, np.arange(ds.sizes["trial"]))
    if name != "reference_clips" and name != "tuning_grid":
        assert set(np.unique(ds.split.values)) <= {"train", "val", "test", "test_id", "test_ood"}


@pytest.mark.parametrize("name", ["orientation_task", "contrast_task", "rdk_task"])
def test_same_recipe_and_seed_give_identical_sets_and_another_seed_differs(smoke, sets, name):
    again = generate(smoke.recipe(name), 0)
    assert again.identical(sets[name])
    other = generate(smoke.recipe(name), 1)
    assert not np.array_equal(other.stimulus.values, sets[name].stimulus.values)
    renamed = generate({**smoke.recipe(name), "name": "renamed"}, 0)   # recipes never share a stream
    assert not np.array_equal(renamed.stimulus.values, sets[name].stimulus.values)


def test_tuning_grid_has_no_draws(smoke, sets):
    np.testing.assert_array_equal(generate(smoke.recipe("tuning_grid"), 3).stimulus, sets["tuning_grid"].stimulus)


def test_balanced_labels_balance_every_prefix():
    labels = balanced_labels(50, 4, stream(0, "x"))
    assert len(labels) == 50 and all((np.bincount(labels[: 4 * k], minlength=4) == k).all() for k in range(13))


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("name,edit,message", [
    ("tuning_grid", {"kind": "gratings"}, "kind: invalid value 'gratings'; expected one of tuning_grid,"),
    ("tuning_grid", {"sf_cpp": {"scale": "cubic"}}, "sf_cpp.scale: invalid value 'cubic'; expected one of linear, log"),
    ("tuning_grid", {"sf_cpp": {"start": 0.9}}, "sf_cpp.start: invalid value 0.9; expected a number in [1e-06, 0.5]"),
    ("tuning_grid", {"main_contrast": 0.3}, "main_contrast: invalid value 0.3; expected one of the contrast values"),
    ("tuning_grid", {"colour": 1}, "colour: unknown key; valid keys: kind, frame_shape,"),
    ("orientation_task", {"splits": {"train": {"trials": 0}}}, "splits.train.trials: invalid value 0; expected an integer >= 1"),
    ("orientation_task", {"splits": {"val": {"nuisance": "odd"}}}, "splits.val.nuisance: invalid value 'odd'; expected one of id, ood"),
    ("orientation_task", {"nuisance": {"id": {"contrast": {"low": 0.9, "high": 0.2}}}}, "nuisance.id.contrast: invalid value"),
    ("contrast_task", {"target_frames": [2, 7]}, "target_frames[1]: invalid value 7; expected a frame index in 0..4"),
    ("rdk_task", {"frames": 18}, "frames: invalid value 18; expected a multiple of chunk_frames (5)"),
    ("rdk_task", {"dots": {"count": "many"}}, "dots.count: invalid value 'many'; expected an integer >= 1"),
    ("reference_clips", {"clips": -1}, "clips: invalid value -1; expected an integer >= 1"),
])
def test_bad_recipes_fail_with_file_key_value_and_what_is_valid(smoke, name, edit, message):
    bad = deep_merge(smoke.recipe(name), edit)
    with pytest.raises(UserError) as e:
        validate_recipe(bad, f"recipes/{name}.yaml")
    assert str(e.value).startswith(f"recipes/{name}.yaml: {message}")
    with pytest.raises(UserError) as e:
        generate(bad, 0, np.zeros((100, *SHAPE), np.float32))
    assert str(e.value).startswith(f"recipe {name!r}: {message}")


def test_catalog_recipe_reports_the_bad_recipe_file(tmp_path, smoke):
    shutil.copy(smoke.path, tmp_path / "catalog.yaml")
    shutil.copytree(smoke.recipes_dir, tmp_path / "recipes")
    path = tmp_path / "recipes" / "rdk_task.yaml"
    recipe = yaml.safe_load(path.read_text())
    recipe["dots"]["lifetime_frames"] = 1
    path.write_text(yaml.safe_dump(recipe))
    cat = load_catalog(tmp_path / "catalog.yaml", profile="smoke")
    with pytest.raises(UserError, match=rf"^{path}: dots.lifetime_frames: invalid value 1; expected an integer >= 2$"):
        cat.recipe("rdk_task")
