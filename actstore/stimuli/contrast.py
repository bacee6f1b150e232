"""The dynamic contrast-detection probe set (design 6.3): noisy grey clips, targets flash a central Gabor on one frame."""
from __future__ import annotations

import numpy as np
import xarray as xr

from actstore.stimuli.dataset import stimulus_dataset, trial_coords
from actstore.stimuli.gratings import gaussian_envelope, gratings
from actstore.stimuli.nuisance import degraded
from actstore.stimuli.recipes import uniform_draws
from actstore.stimuli.streams import balanced_labels, stream


def contrast_clips(recipe: dict, label: np.ndarray, contrast: np.ndarray, split: str,
                   rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Clips (n, frames, H, W) and coords for given labels and target contrasts (0 for blanks).

    Targets get a Gabor on one frame drawn from target_frames; blanks get target_frame -1 and NaN Gabor coords.
    """
    n, target = len(label), label == 1
    g, bg = recipe["gabor"], recipe["background"]
    coords = {
        "label": label, "contrast": np.where(target, contrast, 0.0),
        "target_frame": np.where(target, rng.choice(recipe["target_frames"], n), -1),
        "noise_sd": uniform_draws(bg["noise_sd"], n, rng),
        "blur_sigma": uniform_draws(bg["blur_sigma"], n, rng),
        "gabor_sf": uniform_draws(g["sf_cpp"], n, rng),
        "gabor_orientation": uniform_draws(g["orientation_deg"], n, rng),
        "gabor_phase": np.deg2rad(uniform_draws(g["phase_deg"], n, rng)),
    }
    for key in ("gabor_sf", "gabor_orientation", "gabor_phase"):
        coords[key] = np.where(target, coords[key], np.nan)
    h, w = recipe["frame_shape"]
    clips = np.full((n, recipe["frames"], h, w), recipe["luminance"], dtype=np.float32)
    idx = np.flatnonzero(target)
    clips[idx, coords["target_frame"][idx]] = gratings(
        (h, w), coords["gabor_orientation"][idx], coords["gabor_sf"][idx], coords["gabor_phase"][idx],
        coords["contrast"][idx], recipe["luminance"], envelope=gaussian_envelope((h, w), g["sigma_px"]))
    clips = degraded(clips, coords["blur_sigma"], coords["noise_sd"], rng)
    coords["split"] = np.full(n, split)
    return clips, coords


def training_split(recipe: dict, split: str, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Half blanks, half targets (balanced in every prefix of 2k trials), contrast from train_contrast."""
    n = recipe["trials"][split]
    label = balanced_labels(n, 2, rng)
    contrast = uniform_draws(recipe["train_contrast"], n, rng)
    return contrast_clips(recipe, label, contrast, split, rng)


def graded_split(recipe: dict, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """targets_per_contrast targets at every test contrast (grid order), then the blanks."""
    levels, test = np.asarray(recipe["test_contrasts"], dtype=np.float64), recipe["test"]
    contrast = np.concatenate([np.repeat(levels, test["targets_per_contrast"]), np.zeros(test["blanks"])])
    label = np.concatenate([np.ones(len(levels) * test["targets_per_contrast"], dtype=np.int64),
                            np.zeros(test["blanks"], dtype=np.int64)])
    return contrast_clips(recipe, label, contrast, "test", rng)


def contrast_task(recipe: dict, seed: int) -> xr.Dataset:
    """train, val and test along "trial": stimulus (trial, frame, y, x); coords label, contrast, target_frame, split, nuisances."""
    name = recipe.get("name", recipe["kind"])
    parts = [training_split(recipe, s, stream(seed, name, s)) for s in ("train", "val")]
    parts.append(graded_split(recipe, stream(seed, name, "test")))
    clips = np.concatenate([p[0] for p in parts])
    return stimulus_dataset(clips, ("trial",), trial_coords([p[1] for p in parts]), recipe, seed,
                            test_contrasts=[float(c) for c in recipe["test_contrasts"]])
