"""Sinusoidal gratings and Gabors (design 6.2) and the full-factorial tuning grid.

I(x, y) = L (1 + c env(x, y) sin(2 pi f (x cos th + y sin th) + phi)), clipped to [0, 1], with
x = column (rightward) and y = row (downward), in px from the frame centre, as in the synthetic
mouse's Gabor neurons (actstore.data.oracle); th (deg) is the wave-vector direction, from +x
towards +y (clockwise on screen); env = 1 for full-field gratings.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from actstore.stimuli.dataset import stimulus_dataset
from actstore.stimuli.recipes import axis_values


def pixel_coordinates(frame_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """x (1, W) = column and y (H, 1) = row, in px from the frame centre."""
    h, w = frame_shape
    return (np.arange(w) - (w - 1) / 2)[None, :], (np.arange(h) - (h - 1) / 2)[:, None]


def carriers(frame_shape: tuple[int, int], orientation_deg, sf, phase) -> np.ndarray:
    """sin(2 pi f (x cos th + y sin th) + phi) for broadcastable parameter arrays -> (*params, H, W) float32."""
    x, y = pixel_coordinates(frame_shape)
    th = np.deg2rad(np.asarray(orientation_deg, dtype=np.float64))[..., None, None]
    f = np.asarray(sf, dtype=np.float64)[..., None, None]
    phi = np.asarray(phase, dtype=np.float64)[..., None, None]
    return np.sin(2 * np.pi * f * (x * np.cos(th) + y * np.sin(th)) + phi).astype(np.float32)


def gaussian_envelope(frame_shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """exp(-r^2 / 2 sigma^2) around the frame centre, (H, W) float32."""
    x, y = pixel_coordinates(frame_shape)
    return np.exp(-(x ** 2 + y ** 2) / (2 * sigma_px ** 2)).astype(np.float32)


def gratings(frame_shape: tuple[int, int], orientation_deg, sf, phase, contrast, luminance,
             envelope: np.ndarray | None = None) -> np.ndarray:
    """L (1 + c env sin(...)) clipped to [0, 1] for broadcastable per-image parameters -> (*params, H, W) float32."""
    c = np.asarray(contrast, dtype=np.float32)[..., None, None]
    lum = np.asarray(luminance, dtype=np.float32)[..., None, None]
    wave = carriers(frame_shape, orientation_deg, sf, phase)
    if envelope is not None:
        wave *= envelope
    return np.clip(lum * (1 + c * wave), 0.0, 1.0, dtype=np.float32)


def tuning_grid(recipe: dict, seed: int) -> xr.Dataset:
    """Every (orientation, sf, phase, contrast) of the recipe's axes: stimulus (orientation, sf, phase, contrast, y, x).

    Deterministic (no draws), so `seed` only lands in the attrs.
    """
    ori = axis_values(recipe["orientation_deg"])
    sf = axis_values(recipe["sf_cpp"])
    phase = np.deg2rad(axis_values(recipe["phase_deg"]))
    contrast = axis_values(recipe["contrast"])
    wave = carriers(recipe["frame_shape"], ori[:, None, None], sf[None, :, None], phase[None, None, :])
    c = contrast.astype(np.float32)[:, None, None]
    lum = np.float32(recipe["luminance"])
    images = np.clip(lum * (1 + c * wave[:, :, :, None]), 0.0, 1.0, dtype=np.float32)
    coords = {"orientation": ori, "sf": sf, "phase": phase, "contrast": contrast}
    dims = ("orientation", "sf", "phase", "contrast")
    return stimulus_dataset(images, dims, coords, recipe, seed, main_contrast=float(recipe["main_contrast"]),
                            luminance=float(recipe["luminance"]))
