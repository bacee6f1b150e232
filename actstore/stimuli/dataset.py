"""Wrap generated frames as the xarray Dataset every stimulus set shares (the store contract)."""
from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr


def stimulus_dataset(stimulus: np.ndarray, dims: tuple[str, ...], coords: dict[str, Any],
                     recipe: dict, seed: int, **attrs: Any) -> xr.Dataset:
    """A Dataset with `stimulus` float32 over (*dims, ["frame",] "y", "x") plus coords and attrs.

    `stimulus` has shape (*dims, H, W) or (*dims, frames, H, W); a single frame drops the "frame" dim.
    """
    if stimulus.ndim == len(dims) + 3 and stimulus.shape[len(dims)] == 1:
        stimulus = stimulus.squeeze(len(dims))
    frame = ("frame",) if stimulus.ndim == len(dims) + 3 else ()
    data = np.ascontiguousarray(stimulus, dtype=np.float32)
    ds = xr.Dataset({"stimulus": ((*dims, *frame, "y", "x"), data)}, coords=coords)
    ds.attrs.update(kind=recipe["kind"], recipe=recipe.get("name", recipe["kind"]), seed=int(seed),
                    chunk_frames=int(recipe["chunk_frames"]), **attrs)
    return ds


def trial_coords(split_blocks: list[dict[str, np.ndarray]]) -> dict[str, tuple[str, np.ndarray]]:
    """Concatenate per-split coordinate blocks (same keys) into 1-D coords along "trial", plus trial = 0..n-1."""
    coords = {k: ("trial", np.concatenate([b[k] for b in split_blocks])) for k in split_blocks[0]}
    coords["trial"] = ("trial", np.arange(sum(len(b["label"]) for b in split_blocks)))
    return coords
