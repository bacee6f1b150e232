"""The simulated V1 neurons as a model ("the oracle"), runnable on any frames.

Each neuron is a Gabor filter pair (the carrier follows design 6.2's grating
sin(2 pi f (x cos th + y sin th) + phi), x = column, y = row, in px from the RF centre),
a temporal kernel over lags 1..K bins, then a simple (half-rectified linear) or complex
(quadrature energy, as an amplitude) drive d, normalized so that an optimal static grating
of contrast c gives d = c, and a Naka-Rushton contrast gain:
rate_hz = r0_hz + rmax_hz d^n / (d^n + c50^n). Outputs are expected spike counts per bin
(the twins' unit): rate_hz * bin_s.
"""
from __future__ import annotations

import numpy as np

from actstore.errors import UserError

PARAM_DTYPE = [
    ("neuron", "i8"), ("cell_type", "U7"), ("ori_deg", "f8"), ("sf_cpp", "f8"), ("phase_rad", "f8"),
    ("x", "f8"), ("y", "f8"), ("sigma_px", "f8"), ("aspect", "f8"), ("c50", "f8"), ("nr_n", "f8"),
    ("r0_hz", "f8"), ("rmax_hz", "f8"), ("mean_rate_hz", "f8"),
]
KERNEL_PREFIX = "w_lag"


def param_dtype(kernel_bins: int) -> np.dtype:
    """The structured dtype of the true parameters, with one temporal weight per lag 1..kernel_bins."""
    return np.dtype(PARAM_DTYPE + [(f"{KERNEL_PREFIX}{k}", "f8") for k in range(1, kernel_bins + 1)])


def gabor_pairs(params: np.ndarray, frame_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Zero-mean quadrature Gabor filters (H*W, 2N) [even..., odd...] and each neuron's grating amplitude (N,).

    The amplitude is the filter response to an optimal grating of contrast 1 (amplitude 0.5).
    """
    h, w = frame_shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    th = np.deg2rad(params["ori_deg"])[:, None, None]
    dx, dy = x[None] - params["x"][:, None, None], y[None] - params["y"][:, None, None]
    u = dx * np.cos(th) + dy * np.sin(th)
    v = -dx * np.sin(th) + dy * np.cos(th)
    sigma = params["sigma_px"][:, None, None]
    env = np.exp(-0.5 * (u / sigma) ** 2 - 0.5 * (v / (sigma * params["aspect"][:, None, None])) ** 2)
    carrier = 2 * np.pi * params["sf_cpp"][:, None, None] * u
    filters = []
    for shift in (0.0, np.pi / 2):
        g = env * np.sin(carrier + params["phase_rad"][:, None, None] + shift)
        g -= env * (g.sum(axis=(1, 2)) / env.sum(axis=(1, 2)))[:, None, None]
        filters.append(g.reshape(len(params), h * w))
    even = filters[0]
    amp = 0.5 * np.hypot((even * np.sin(carrier).reshape(even.shape)).sum(1),
                         (even * np.cos(carrier).reshape(even.shape)).sum(1))
    return np.concatenate(filters).T.astype(np.float32), amp


class Oracle:
    """The ground-truth neurons of a synthetic session: `respond(frames)` like a twin, `params` as a table."""

    def __init__(self, params: np.ndarray, frame_shape: tuple[int, int], bin_s: float):
        self._params = params
        self.frame_shape = (int(frame_shape[0]), int(frame_shape[1]))
        self.bin_s = float(bin_s)
        self._filters, self._amp = gabor_pairs(params, self.frame_shape)
        lags = [n for n in params.dtype.names if n.startswith(KERNEL_PREFIX)]
        self.kernel = np.stack([params[n] for n in sorted(lags, key=lambda n: int(n[len(KERNEL_PREFIX):]))])
        self._complex = params["cell_type"] == "complex"

    @classmethod
    def from_session(cls, session) -> "Oracle":
        """The oracle of a synthetic session (its truth must hold the true parameters)."""
        if "params" not in session.truth:
            raise UserError(f"session {session.name}: no ground truth (only synthetic sessions have an oracle)")
        return cls(session.truth["params"], session.frame_shape, session.bin_s)

    @property
    def params(self):
        """The true per-neuron parameters as a pandas DataFrame (one row per neuron)."""
        import pandas as pd

        return pd.DataFrame(self._params)

    @property
    def n_neurons(self) -> int:
        return len(self._params)

    def filter_outputs(self, frames: np.ndarray) -> np.ndarray:
        """Spatial filter outputs (..., 2, N) [even, odd] of frames (..., H, W)."""
        a = np.asarray(frames, dtype=np.float32)
        if a.shape[-2:] != self.frame_shape:
            raise UserError(f"oracle: frames of shape {a.shape[-2:]}; these neurons live on {self.frame_shape} frames")
        out = a.reshape(-1, a.shape[-2] * a.shape[-1]) @ self._filters
        return out.astype(np.float64).reshape(*a.shape[:-2], 2, self.n_neurons)

    def rates_from_linear(self, linear: np.ndarray) -> np.ndarray:
        """Expected counts per bin from temporally filtered filter outputs (..., 2, N)."""
        even, odd = linear[..., 0, :], linear[..., 1, :]
        drive = np.where(self._complex, np.hypot(even, odd), np.maximum(even, 0.0)) / self._amp
        p = self._params
        dn = drive ** p["nr_n"]
        gain = dn / (dn + p["c50"] ** p["nr_n"])
        return ((p["r0_hz"] + p["rmax_hz"] * gain) * self.bin_s).astype(np.float32)

    def linear(self, movie: np.ndarray) -> np.ndarray:
        """Temporally filtered filter outputs (T, 2, N) of a continuous movie: bin t sees frames t-1..t-K."""
        s = self.filter_outputs(movie)
        out = np.zeros_like(s)
        for k, w in enumerate(self.kernel, start=1):
            out[k:] += w * s[:max(len(s) - k, 0)]
        return out

    def rates(self, movie: np.ndarray) -> np.ndarray:
        """Expected counts (T, N) at every bin of a continuous movie (T, H, W) (frames before the start are blank)."""
        return self.rates_from_linear(self.linear(movie))

    def respond(self, frames: np.ndarray) -> np.ndarray:
        """Expected counts at the next bin: images (M, H, W) held still, or clips (M, T, H, W) -> (M, N)."""
        a = np.asarray(frames)
        if a.ndim == 3:
            lin = self.filter_outputs(a) * self.kernel.sum(axis=0)
        elif a.ndim == 4:
            s = self.filter_outputs(a)
            lin = np.zeros(s.shape[:1] + s.shape[2:])
            for k, w in enumerate(self.kernel[:a.shape[1]], start=1):
                lin += w * s[:, -k]
        else:
            raise UserError(f"oracle: frames of shape {a.shape}; expected images (M, H, W) or clips (M, T, H, W)")
        return self.rates_from_linear(lin)
