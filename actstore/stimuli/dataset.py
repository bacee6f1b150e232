"""Wrap generated frames as the xarray Dataset every stimulus set shares (the store contract)."""
from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr


def stimulus_dataset(stimulus: np.ndarray, dims: tuple[str, ...], coords: dict[str, Any],
                     recipe: dict, seed: int, **attrs: Any) -> xr.Dataset:
    """A Dataset with `stimulus` float32 in [0, 1] over (*dims, ["frame",] "y", "x") plus coords.

    A "frame" dim is added only when the stimulus has more than one frame per item.
    """
    frames = stimulus.ndim - len(dims) - 2
    if frames not in (0, 1):
        raise ValueError(f"stimulus of shape {stimulus.shape} does not match dims {dims}")
    if frames and stimulus.shape[len(dims)] == 1:
        stimulus = stimulus[(slice(None),) * len(dims) + (0,)]
    full = (*dims, "frame", "y", "x") if stimulus.ndim == len(dims) + 3 else (*dims, "y", "x")
    ds = xr.Dataset({"stimulus": (full, np.ascontiguousarray(stimulus, dtype=np.float32))}, coords=coords)
    ds.attrs.update(kind=recipe["kind"], recipe=recipe.get("name", recipe["kind"]), seed=int(seed),
                    chunk_frames=int(recipe["chunk_frames"]), **attrs)
    return ds


def trial_coords(split_blocks: list[dict[str, np.ndarray]]) -> dict[str, tuple[str, np.ndarray]]:
    """Concatenate per-split coordinate blocks (same keys) into 1-D coords along "trial"."""
    keys = split_blocks[0].keys()
    coords = {k: ("trial", np.concatenate([b[k] for b in split_blocks])) for k in keys}
    coords["trial"] = ("trial", np.arange(len(coords[next(iter(keys))][1])))
    return coords
