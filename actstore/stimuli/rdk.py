"""The motion-direction probe set (design 6.3): random-dot kinematograms, left vs right, graded coherence.

Dots live on a torus in pixel-index coordinates (col, row); "right" is +col, the +x of the gratings.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from actstore.stimuli.dataset import stimulus_dataset, trial_coords
from actstore.stimuli.streams import balanced_labels, stream

RENDER_BATCH = 64  # trials rendered at once (bounds the scatter-index memory)


def dot_trajectories(n: int, frames: int, coherence: np.ndarray, direction: np.ndarray, dots: dict,
                     frame_shape: tuple[int, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Dot positions (n, frames, dots, 2) as (col, row), plus per step (n, frames-1, dots) masks:
    `moved` (the dot stepped; False where it was reborn) and `signal` (it stepped direction*speed along +col).

    Per step, signal dots are round(coherence * moving dots) of the moving dots, drawn anew;
    the rest step `speed` px in a random direction. A dot is reborn at a random place after `lifetime_frames`.
    """
    h, w = frame_shape
    m, life, speed = dots["count"], dots["lifetime_frames"], dots["speed_px_per_frame"]
    size = np.array([w, h], dtype=np.float64)
    pos = np.empty((n, frames, m, 2))
    pos[:, 0] = rng.uniform(0, 1, (n, m, 2)) * size
    age = rng.integers(0, life, (n, m))
    moved = np.empty((n, frames - 1, m), dtype=bool)
    signal = np.empty((n, frames - 1, m), dtype=bool)
    for t in range(frames - 1):
        age += 1
        reborn = age >= life
        age[reborn] = 0
        keys = np.where(reborn, np.inf, rng.uniform(0, 1, (n, m)))
        rank = np.argsort(np.argsort(keys, axis=1), axis=1)
        k = np.round(coherence * (~reborn).sum(axis=1)).astype(int)
        sig = rank < k[:, None]
        angle = rng.uniform(0, 2 * np.pi, (n, m))
        noise_step = speed * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
        signal_step = np.stack(np.broadcast_arrays(direction[:, None] * speed, np.zeros((n, m))), axis=-1)
        step = np.where(sig[..., None], signal_step, noise_step)
        new = np.where(reborn[..., None], rng.uniform(0, 1, (n, m, 2)) * size, pos[:, t] + step)
        pos[:, t + 1] = np.mod(new, size)
        moved[:, t], signal[:, t] = ~reborn, sig
    return {"position": pos, "moved": moved, "signal": signal}


def rendered_dots(position: np.ndarray, value: np.ndarray, dots: dict, background: float,
                  frame_shape: tuple[int, int]) -> np.ndarray:
    """Frames (n, frames, H, W) float32: anti-aliased discs (coverage clip(radius + 0.5 - d, 0, 1)) of each
    dot's value over the background, wrapping at the edges; where dots overlap, the largest coverage per value wins."""
    h, w = frame_shape
    n, frames, m, _ = position.shape
    r = dots["radius_px"]
    reach = int(np.ceil(r + 0.5))
    off = np.arange(-reach, reach + 1)
    cols = np.round(position[..., 0])[..., None, None] + off[None, :]          # (n, f, m, 1, k)
    rows = np.round(position[..., 1])[..., None, None] + off[:, None]          # (n, f, m, k, 1)
    d = np.hypot(cols - position[..., 0, None, None], rows - position[..., 1, None, None])
    cover = np.clip(r + 0.5 - d, 0.0, 1.0)
    flat = (np.arange(n * frames).reshape(n, frames, 1, 1, 1) * h + np.mod(rows, h).astype(np.int64)) * w \
        + np.mod(cols, w).astype(np.int64)
    out = np.full(n * frames * h * w, background, dtype=np.float64)
    for v in np.unique(value):
        alpha = np.zeros(n * frames * h * w)
        mine = np.broadcast_to((value == v)[:, None, :, None, None], cover.shape)
        np.maximum.at(alpha, flat[mine], cover[mine])
        out += (v - background) * alpha
    return np.clip(out, 0.0, 1.0).astype(np.float32).reshape(n, frames, h, w)


def rdk_clips(recipe: dict, label: np.ndarray, coherence: np.ndarray, split: str,
              rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Clips (n, frames, H, W) and coords for given labels (0 left, 1 right) and coherences."""
    dots, shape, frames = recipe["dots"], tuple(recipe["frame_shape"]), recipe["frames"]
    clips = np.empty((len(label), frames, *shape), dtype=np.float32)
    for lo in range(0, len(label), RENDER_BATCH):
        sl = slice(lo, lo + RENDER_BATCH)
        n = len(label[sl])
        traj = dot_trajectories(n, frames, coherence[sl], 2.0 * label[sl] - 1.0, dots, shape, rng)
        value = rng.choice(np.asarray(dots["values"], dtype=np.float64), (n, dots["count"]))
        clips[sl] = rendered_dots(traj["position"], value, dots, recipe["background"], shape)
    return clips, {"label": label, "coherence": coherence, "split": np.full(len(label), split)}


def balanced_conditions(n: int, coherences: list[float], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Labels and coherences balanced over label x coherence in every prefix of 2 * len(coherences) trials."""
    levels = np.asarray(coherences, dtype=np.float64)
    cond = balanced_labels(n, 2 * len(levels), rng)
    return cond % 2, levels[cond // 2]


def rdk_task(recipe: dict, seed: int) -> xr.Dataset:
    """train, val (train coherences) and test (every test coherence, half left, half right) along "trial":
    stimulus (trial, frame, y, x); coords label, coherence, split."""
    name = recipe.get("name", recipe["kind"])
    parts = []
    for split in ("train", "val"):
        rng = stream(seed, name, split)
        label, coherence = balanced_conditions(recipe["trials"][split], recipe["train_coherences"], rng)
        parts.append(rdk_clips(recipe, label, coherence, split, rng))
    rng = stream(seed, name, "test")
    per = recipe["test"]["trials_per_coherence"]
    levels = np.repeat(np.asarray(recipe["test_coherences"], dtype=np.float64), per)
    label = np.tile(balanced_labels(per, 2, rng), len(recipe["test_coherences"]))
    parts.append(rdk_clips(recipe, label, levels, "test", rng))
    clips = np.concatenate([p[0] for p in parts])
    return stimulus_dataset(clips, ("trial",), trial_coords([p[1] for p in parts]), recipe, seed,
                            test_coherences=[float(c) for c in recipe["test_coherences"]])
