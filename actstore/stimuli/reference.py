"""Population-geometry clips (design 6.4): consecutive-frame clips of the reference session."""
from __future__ import annotations

import numpy as np
import xarray as xr

from actstore.errors import UserError
from actstore.stimuli.dataset import stimulus_dataset
from actstore.stimuli.streams import stream


def reference_clips(recipe: dict, seed: int, reference_frames: np.ndarray) -> xr.Dataset:
    """`clips` clips of `frames` consecutive frames of reference_frames (T, H, W) in [0, 1]: stimulus
    (trial, frame, y, x) with coord `start` (first frame index), starts drawn without replacement,
    sorted, from the recipe's draw_seed (fixed, so the run seed does not change them)."""
    movie = np.asarray(reference_frames)
    name = recipe.get("name", recipe["kind"])
    if movie.ndim != 3:
        raise UserError(f"{name}: reference frames have shape {movie.shape}; expected (T, H, W)")
    if not np.isfinite(movie).all() or movie.min() < 0 or movie.max() > 1:
        raise UserError(f"{name}: reference frames must be finite and scaled to [0, 1]")
    frames, n = recipe["frames"], recipe["clips"]
    possible = movie.shape[0] - frames + 1
    if possible < n:
        raise UserError(f"{name}: clips: {n} clips of {frames} frames need at least {n + frames - 1} reference "
                        f"frames; the reference session has {movie.shape[0]}")
    start = np.sort(stream(recipe["draw_seed"], name).choice(possible, n, replace=False))
    clips = movie[start[:, None] + np.arange(frames)].astype(np.float32)
    coords = {"trial": np.arange(n), "start": ("trial", start)}
    return stimulus_dataset(clips, ("trial",), coords, recipe, seed, draw_seed=int(recipe["draw_seed"]))
