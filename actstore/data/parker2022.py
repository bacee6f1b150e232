"""The parker2022 layout: one HDF5 file (ModelData_all.h5) with a group `<session>/fm1/` per session.

Datasets: `model_vid_sm` frames (T, 30, 40), `model_nsp` counts (T, N), `model_t` bin times (T,),
the behaviour traces (T,) `model_speed`, `model_pitch`, `model_roll`, `model_phi`, `model_th`,
`model_eyerad`, `unit_nums` (N,), and in the release `model_active` (T,); 50 ms bins. As the release's
own pipeline does, bins that are inactive (`model_active` < 0.5) or hold NaN frames or counts are
dropped; behaviour NaNs are interpolated (session.BEHAVIOUR_NAN). The bins kept are cut into equal
segments, each train then test, and no sample spans a dropped bin.
"""
from __future__ import annotations

import h5py
import numpy as np

from actstore.data.checks import checked_array, interpolated, same_length
from actstore.data.session import Session, scale_frames, segment_lengths, split_at_gaps, split_labels
from actstore.errors import UserError
from actstore.store.root import filesystem

BIN_S = 0.05
FRAME_SHAPE = (30, 40)
GROUP = "fm1"
BEHAVIOUR = ("speed", "pitch", "roll", "phi", "th", "eyerad")
ACTIVE = "model_active"
ACTIVE_THRESHOLD = 0.5  # the release's cut (pytorchGLM format_data)


def _dataset(group: h5py.Group, key: str, where: str) -> np.ndarray:
    if key not in group:
        raise UserError(f"{where}/{key}: missing dataset; valid datasets there: {', '.join(sorted(group))}")
    return group[key][()]


def read_session(path: str, name: str, segments: int, train_fraction: float,
                 validation_fraction: float, frame_scaling: str) -> Session:
    """Session `name` of the HDF5 file at `path`: inactive and NaN bins dropped, frames scaled to [0, 1]
    (`frame_scaling`: per_segment scales each segment's train and test part on its own, per_session the
    whole movie), behaviour NaNs interpolated over the recording, split labels set."""
    fs, p = filesystem(path)
    try:
        f = fs.open(p, "rb")
    except FileNotFoundError:
        raise UserError(f"{path}: missing file (data.path: the parker2022 ModelData_all.h5)") from None
    with f:
        try:
            h5 = h5py.File(f, "r")
        except OSError as e:
            raise UserError(f"{path}: not a readable HDF5 file ({e})") from None
        with h5:
            key = f"{name}/{GROUP}"
            if key not in h5:
                there = sorted(s for s in h5 if isinstance(h5[s], h5py.Group) and GROUP in h5[s])
                raise UserError(f"{path}: data.sessions: unknown session {name!r}: no group {key} "
                                f"(sessions in file: {', '.join(there) or 'none'})")
            group = h5[key]
            where = f"{path}: {key}"
            frames = checked_array(_dataset(group, "model_vid_sm", where), f"{where}/model_vid_sm",
                                   ("T", *FRAME_SHAPE), allow_nan=True)
            counts = checked_array(_dataset(group, "model_nsp", where), f"{where}/model_nsp",
                                   ("T", "N"), nonnegative=True, allow_nan=True)
            n = counts.shape[1]
            units = checked_array(_dataset(group, "unit_nums", where), f"{where}/unit_nums", (n,))
            series = {"model_vid_sm": frames, "model_nsp": counts,
                      "model_t": checked_array(_dataset(group, "model_t", where), f"{where}/model_t", ("T",))}
            for k in (*(f"model_{b}" for b in BEHAVIOUR), *((ACTIVE,) if ACTIVE in group else ())):
                series[k] = checked_array(_dataset(group, k, where), f"{where}/{k}", ("T",), allow_nan=True)
    total = same_length(series, {k: f"{where}/{k}" for k in series})
    keep = ~(np.isnan(frames).any(axis=(1, 2)) | np.isnan(counts).any(axis=1))
    if ACTIVE in series:
        keep &= series[ACTIVE] >= ACTIVE_THRESHOLD
    kept = np.flatnonzero(keep)
    if len(kept) < 2 * segments:
        raise UserError(f"{where}: {len(kept)} of {total} bins are active ({ACTIVE} >= {ACTIVE_THRESHOLD}) with "
                        f"finite frames and counts; {segments} segments (data.segments) need at least {2 * segments}")
    frames, counts = frames[kept], counts[kept]
    if frames.max() == frames.min():
        raise UserError(f"{where}/model_vid_sm: the movie is constant; expected varying frames")
    train, test = segment_lengths(len(kept), segments, train_fraction)
    block, part = split_labels(train, test, validation_fraction)
    traces = {b: series[f"model_{b}"] for b in BEHAVIOUR}
    return Session(
        name=name,
        frames=scale_frames(frames, [n for pair in zip(train, test) for n in pair]
                            if frame_scaling == "per_segment" else None),
        counts=counts.astype(np.float32),
        bin_s=BIN_S,
        neuron_ids=units.astype(np.int64),
        block=split_at_gaps(block, kept),
        part=part,
        behaviour={b: interpolated(t, f"{where}/model_{b}")[kept].astype(np.float32) for b, t in traces.items()},
        frame_scaling=frame_scaling,
        behaviour_filled={b: int(np.isnan(t[kept]).sum()) for b, t in traces.items()},
        dropped_bins=total - len(kept),
    )
