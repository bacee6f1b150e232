"""The synthetic mouse V1 (design 7): a head-camera movie, Gabor cells, Poisson spikes, ground truth.

The movie is a window onto a 1/f world seen through smooth head and eye motion with fast
turns, zoom from walking, and a slow luminance drift, quantized to 8 bits like a camera. The
neurons are the Oracle's (actstore.data.oracle); each cell's gain is set so its mean rate on
its own movie matches a drawn target. A session is a pure function of (catalog data section,
session name): same seed, bit-identical files.
"""
from __future__ import annotations

import numpy as np

from actstore.data import xu2023
from actstore.data.oracle import Oracle, param_dtype
from actstore.data.session import Session, scale_frames, segment_lengths, split_labels
from actstore.errors import UserError
from actstore.stimuli.streams import stream

SIM_VERSION = 1  # bump when the simulator's output changes for the same catalog
RENDER_CHUNK = 512  # frames rendered at once (bounds the temporaries)


def ou(rng: np.random.Generator, n: int, sd: float, tau_bins: float) -> np.ndarray:
    """A stationary Ornstein-Uhlenbeck (AR(1)) series of length n with standard deviation sd."""
    a = float(np.exp(-1.0 / tau_bins))
    noise = rng.standard_normal(n) * sd * np.sqrt(1 - a * a)
    x = np.empty(n)
    x[0] = rng.standard_normal() * sd
    for t in range(1, n):
        x[t] = a * x[t - 1] + noise[t]
    return x


def world(rng: np.random.Generator, shape: tuple[int, int], slope: float, rms: float) -> np.ndarray:
    """A periodic scene in [0, 1] (mean 0.5, RMS contrast `rms`) with amplitude spectrum 1/f^slope."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    f = np.hypot(fx, fy)
    f[0, 0] = np.inf
    spec = f ** -slope * (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape))
    img = np.fft.irfft2(spec, s=shape)
    return np.clip(0.5 + rms * img / img.std(), 0.0, 1.0)


def motion(rng: np.random.Generator, n: int, bin_s: float, m: dict) -> dict[str, np.ndarray]:
    """Head, eye and body motion per bin: the behaviour traces and the camera's view of the world."""
    def proc(key: str) -> np.ndarray:
        sd, tau_s = m[key]
        return ou(rng, n, sd, tau_s / bin_s)

    yaw_velocity = proc("yaw_velocity")  # deg/s
    turns = rng.random(n) < m["turn_rate_hz"] * bin_s
    sizes = rng.uniform(*m["turn_deg"], size=n) * rng.choice([-1.0, 1.0], size=n) * turns
    turn_velocity = np.convolve(sizes, np.full(m["turn_bins"], 1.0 / m["turn_bins"]))[:n] / bin_s
    yaw = np.cumsum((yaw_velocity + turn_velocity) * bin_s)
    pitch, roll = proc("pitch"), proc("roll")
    phi, th = proc("eye"), proc("eye")
    speed = np.maximum(0.0, m["speed_mean_cm_s"] + proc("speed"))
    log_zoom, log_lum = proc("zoom"), proc("luminance")
    eyerad = m["pupil_px"] * np.exp(-log_lum) * np.exp(proc("pupil"))
    walk = np.cumsum(speed * bin_s) * m["walk_px_per_cm"]
    return {
        "speed": speed, "pitch": pitch, "roll": roll, "phi": phi, "th": th, "eyerad": eyerad,
        "gaze_x": (yaw + phi) / m["deg_per_px"], "gaze_y": (pitch + th) / m["deg_per_px"] + walk,
        "zoom": np.exp(log_zoom), "luminance": np.exp(log_lum),
    }


def render(scene: np.ndarray, view: dict[str, np.ndarray], frame_shape: tuple[int, int]) -> np.ndarray:
    """8-bit frames (T, H, W): the scene sampled bilinearly (wrapping) through each bin's gaze, roll and zoom."""
    h, w = frame_shape
    rows, cols = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij")
    rows, cols = rows.ravel()[None], cols.ravel()[None]
    sh, sw = scene.shape
    flat = scene.ravel()
    n = len(view["zoom"])
    out = np.empty((n, h * w), dtype=np.uint8)
    for lo in range(0, n, RENDER_CHUNK):
        sl = slice(lo, min(lo + RENDER_CHUNK, n))
        rho = np.deg2rad(view["roll"][sl])[:, None]
        z = view["zoom"][sl][:, None]
        wx = view["gaze_x"][sl][:, None] + z * (np.cos(rho) * cols - np.sin(rho) * rows)
        wy = view["gaze_y"][sl][:, None] + z * (np.sin(rho) * cols + np.cos(rho) * rows)
        x0, y0 = np.floor(wx), np.floor(wy)
        fx, fy = wx - x0, wy - y0
        x0 = x0.astype(np.int64) % sw
        y0 = y0.astype(np.int64) % sh
        x1, y1 = (x0 + 1) % sw, (y0 + 1) % sh
        top = (1 - fx) * flat[y0 * sw + x0] + fx * flat[y0 * sw + x1]
        bottom = (1 - fx) * flat[y1 * sw + x0] + fx * flat[y1 * sw + x1]
        img = view["luminance"][sl][:, None] * ((1 - fy) * top + fy * bottom)
        out[sl] = np.rint(np.clip(img, 0.0, 1.0) * 255)
    return out.reshape(n, h, w)


def draw_neurons(rng: np.random.Generator, n: int, frame_shape: tuple[int, int], c: dict) -> np.ndarray:
    """True parameters of n cells (rmax_hz still 1: `calibrated` sets it on the session's movie)."""
    p = np.zeros(n, dtype=param_dtype(c["kernel_bins"]))
    p["neuron"] = np.arange(n)
    p["cell_type"] = np.where(rng.random(n) < c["complex_fraction"], "complex", "simple")
    p["ori_deg"] = rng.uniform(0.0, 180.0, n)
    p["sf_cpp"] = np.exp(rng.uniform(*np.log(c["sf_cpp"]), n))
    p["phase_rad"] = rng.uniform(0.0, 2 * np.pi, n)
    p["sigma_px"] = rng.uniform(*c["envelope_cycles"], n) / p["sf_cpp"]
    p["aspect"] = rng.uniform(*c["aspect"], n)
    margin = c["rf_margin_sigmas"] * p["sigma_px"]
    h, w = frame_shape
    if np.any(2 * margin >= min(h, w)):
        raise UserError(f"data.synthetic.cells: receptive fields of {2 * margin.max():.0f} px do not fit "
                        f"{h}x{w} frames; raise sf_cpp or lower envelope_cycles / rf_margin_sigmas")
    p["x"] = rng.uniform(margin, (w - 1) - margin)
    p["y"] = rng.uniform(margin, (h - 1) - margin)
    p["c50"] = np.exp(rng.uniform(*np.log(c["c50"]), n))
    p["nr_n"] = rng.uniform(*c["nr_exponent"], n)
    p["r0_hz"] = rng.uniform(*c["spontaneous_hz"], n)
    p["rmax_hz"] = 1.0
    p["mean_rate_hz"] = np.exp(rng.uniform(*np.log(c["mean_rate_hz"]), n))
    peak = rng.uniform(*c["kernel_peak_bins"], n)
    width = rng.uniform(*c["kernel_width_bins"], n)
    lags = np.arange(1, c["kernel_bins"] + 1)[:, None]
    kernel = np.exp(-0.5 * ((lags - peak) / width) ** 2)
    kernel /= kernel.sum(axis=0)
    for k, row in zip(lags[:, 0], kernel):
        p[f"w_lag{k}"] = row
    return p


def calibrated(params: np.ndarray, frames: np.ndarray, bin_s: float) -> tuple[np.ndarray, np.ndarray]:
    """`params` with each rmax_hz set so the cell's mean rate on `frames` is its mean_rate_hz,
    and the temporally filtered filter outputs (T, 2, N) of `frames` (the same for any gain)."""
    unit = params.copy()
    unit["r0_hz"], unit["rmax_hz"] = 0.0, 1.0
    probe = Oracle(unit, frames.shape[1:], bin_s)
    linear = probe.linear(frames)
    gain = probe.rates_from_linear(linear).mean(axis=0, dtype=np.float64) / bin_s
    out = params.copy()
    out["rmax_hz"] = (out["mean_rate_hz"] - out["r0_hz"]) / np.maximum(gain, 1e-12)
    return out, linear


def noise_ceiling(session: Session, chunk: int, context: int) -> np.ndarray:
    """Per neuron, the chunked r (design 6.1) of the true rate with the counts on the test samples."""
    from actstore.train.metrics import chunked_neuron_r

    idx = session.targets("test", context)
    return chunked_neuron_r(session.truth["rates"][idx], session.counts[idx], chunk).astype(np.float32)


def synthesize(name: str, data: dict, chunk: int) -> tuple[Session, np.ndarray]:
    """One synthetic session (as the reader will return it) and its 8-bit movie, from the catalog's data section."""
    syn = data["synthetic"]
    cells = syn["cells"]
    if cells["kernel_bins"] > data["context_frames"]:
        raise UserError(f"data.synthetic.cells.kernel_bins: {cells['kernel_bins']} is longer than "
                        f"data.context_frames ({data['context_frames']}); the twins could not see the kernel")
    rng = stream(syn["seed"], name)  # independent of the session order
    bin_s = syn["bin_ms"] / 1000.0
    shape = tuple(syn["frame_shape"])
    n_bins = int(round(syn["minutes"] * 60.0 / bin_s))
    if n_bins < 2 * data["segments"] * (data["context_frames"] + 1):
        raise UserError(f"data.synthetic.minutes: {syn['minutes']} min is too short for "
                        f"{data['segments']} segments of samples with {data['context_frames']} frames")
    m = syn["movie"]
    view = motion(rng, n_bins, bin_s, m)
    movie = render(world(rng, tuple(m["world_px"]), m["spectrum_slope"], m["rms_contrast"]), view, shape)
    frames = scale_frames(movie)
    params, linear = calibrated(draw_neurons(rng, syn["neurons"][name], shape, cells), frames, bin_s)
    rates = Oracle(params, shape, bin_s).rates_from_linear(linear)
    counts = rng.poisson(rates).astype(np.float32)
    block, part = split_labels(*segment_lengths(n_bins, data["segments"], data["train_fraction"]),
                               data["validation_fraction"])
    session = Session(
        name=name, frames=frames, counts=counts, bin_s=bin_s, neuron_ids=np.arange(len(params)),
        block=block, part=part,
        behaviour={k: view[k].astype(np.float32) for k in xu2023.BEHAVIOUR},
        truth={"rates": rates, "params": params},
    )
    session.noise_ceiling = noise_ceiling(session, chunk, data["context_frames"])
    return session, movie


def write_synthetic(folder: str, session: Session, movie: np.ndarray, data: dict) -> None:
    """Write a synthetic session in the xu2023 layout (plus rates, true parameters, ceiling)."""
    lengths = segment_lengths(len(movie), data["segments"], data["train_fraction"])
    series = {"nsp": session.counts, "vid_mean": movie, **session.behaviour, xu2023.TRUTH_RATE: session.truth["rates"]}
    whole = {xu2023.TRUTH_NEURONS: session.truth["params"], xu2023.NOISE_CEILING: session.noise_ceiling}
    xu2023.write_session(folder, series, *lengths, whole)
