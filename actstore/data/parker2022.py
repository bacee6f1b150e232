"""The parker2022 layout: one HDF5 file (ModelData_all.h5) with a group `<session>/fm1/` per session.

Datasets: `model_vid_sm` frames (T, 30, 40), `model_nsp` counts (T, N), `model_t` bin times (T,),
the behaviour traces (T,) `model_speed`, `model_pitch`, `model_roll`, `model_phi`, `model_th`,
`model_eyerad`, and `unit_nums` (N,); 50 ms bins. A session is one continuous recording, cut into
equal segments, each train then test.
"""
from __future__ import annotations

import h5py
import numpy as np

from actstore.data.checks import checked_array, same_length
from actstore.data.session import Session, scale_frames, segment_lengths, split_labels
from actstore.errors import UserError
from actstore.store.root import filesystem

BIN_S = 0.05
FRAME_SHAPE = (30, 40)
GROUP = "fm1"
BEHAVIOUR = ("speed", "pitch", "roll", "phi", "th", "eyerad")


def _dataset(group: h5py.Group, key: str, where: str) -> np.ndarray:
    if key not in group:
        raise UserError(f"{where}/{key}: missing dataset; valid datasets there: {', '.join(sorted(group))}")
    return group[key][()]


def read_session(path: str, name: str, segments: int, train_fraction: float,
                 validation_fraction: float) -> Session:
    """Session `name` of the HDF5 file at `path` with frames scaled to [0, 1] and split labels set."""
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
                                   ("T", *FRAME_SHAPE))
            counts = checked_array(_dataset(group, "model_nsp", where), f"{where}/model_nsp",
                                   ("T", "N"), nonnegative=True)
            n = counts.shape[1]
            units = checked_array(_dataset(group, "unit_nums", where), f"{where}/unit_nums", (n,))
            series = {"model_vid_sm": frames, "model_nsp": counts,
                      "model_t": checked_array(_dataset(group, "model_t", where), f"{where}/model_t", ("T",))}
            for b in BEHAVIOUR:
                series[f"model_{b}"] = checked_array(_dataset(group, f"model_{b}", where),
                                                     f"{where}/model_{b}", ("T",))
    total = same_length(series, {k: f"{where}/{k}" for k in series})
    if frames.max() == frames.min():
        raise UserError(f"{where}/model_vid_sm: the movie is constant; expected varying frames")
    if total < 2 * segments:
        raise UserError(f"{where}: {total} bins cannot make {segments} segments (data.segments)")
    block, part = split_labels(*segment_lengths(total, segments, train_fraction), validation_fraction)
    return Session(
        name=name,
        frames=scale_frames(frames),
        counts=counts.astype(np.float32),
        bin_s=BIN_S,
        neuron_ids=units.astype(np.int64),
        block=block,
        part=part,
        behaviour={b: series[f"model_{b}"].astype(np.float32) for b in BEHAVIOUR},
    )
