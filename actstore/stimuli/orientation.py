"""The orientation-discrimination probe set (design 6.3): nuisance-varied gratings, ID and OOD splits."""
from __future__ import annotations

import numpy as np
import xarray as xr

from actstore.stimuli.dataset import stimulus_dataset, trial_coords
from actstore.stimuli.gratings import gratings
from actstore.stimuli.nuisance import degraded
from actstore.stimuli.recipes import uniform_draws
from actstore.stimuli.streams import balanced_labels, stream

NUISANCE_COORDS = {"sf_cpp": "sf", "contrast": "contrast", "noise_sd": "noise_sd",
                   "blur_sigma": "blur_sigma", "luminance": "luminance", "phase_deg": "phase"}


def orientation_split(recipe: dict, split: str, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Images (n, H, W) and coords of one split: class-balanced labels, orientation uniform in its class."""
    n = recipe["splits"][split]["trials"]
    ranges = recipe["nuisance"][recipe["splits"][split]["nuisance"]]
    k, span = recipe["classes"], recipe["orientation_deg"]
    label = balanced_labels(n, k, rng)
    width = (span["high"] - span["low"]) / k
    coords = {"label": label, "orientation": span["low"] + (label + rng.uniform(0, 1, n)) * width}
    for key, name in NUISANCE_COORDS.items():
        coords[name] = uniform_draws(ranges[key], n, rng)
    coords["phase"] = np.deg2rad(coords["phase"])
    images = gratings(recipe["frame_shape"], coords["orientation"], coords["sf"], coords["phase"],
                      coords["contrast"], coords["luminance"])
    images = degraded(images, coords["blur_sigma"], coords["noise_sd"], rng)
    coords["split"] = np.full(n, split)
    return images, coords


def orientation_task(recipe: dict, seed: int) -> xr.Dataset:
    """All splits along "trial": stimulus (trial, y, x); coords label, orientation, split and the nuisances."""
    name = recipe.get("name", recipe["kind"])
    parts = [orientation_split(recipe, s, stream(seed, name, s)) for s in recipe["splits"]]
    images = np.concatenate([p[0] for p in parts])
    return stimulus_dataset(images, ("trial",), trial_coords([p[1] for p in parts]), recipe, seed,
                            classes=int(recipe["classes"]))
