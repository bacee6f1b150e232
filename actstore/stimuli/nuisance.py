"""Image degradations shared by the probe tasks: Gaussian blur, then Gaussian pixel noise, then clipping."""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter


def degraded(images: np.ndarray, blur_sigma: np.ndarray, noise_sd: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
    """Per item i of images (n, ..., H, W): blur the last two axes by blur_sigma[i] px, add
    N(0, noise_sd[i]^2) per pixel (fresh per frame), clip to [0, 1]. float32, in place where possible."""
    out = np.asarray(images, dtype=np.float32)
    lead = (0.0,) * (out.ndim - 3)
    for i, s in enumerate(blur_sigma):
        if s > 0:
            out[i] = gaussian_filter(out[i], sigma=(*lead, s, s), mode="reflect")
    noise = rng.standard_normal(out.shape, dtype=np.float32)
    noise *= np.asarray(noise_sd, dtype=np.float32).reshape((-1,) + (1,) * (out.ndim - 1))
    out += noise
    return np.clip(out, 0.0, 1.0, out=out)
