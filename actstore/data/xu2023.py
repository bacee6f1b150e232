"""The xu2023 layout: one folder per session of `{train|test}_{key}_seg_{i}.npy` files.

Keys: `nsp` spike counts (T, N), `vid_mean` frames (T, 60, 80), and the behaviour traces
(T,) `speed`, `pitch`, `roll`, `phi`, `th`, `eyerad` (NaN allowed: interpolated, session.BEHAVIOUR_NAN);
48 ms bins. Segments lie in time as train_0, test_0, train_1, test_1, ... The synthetic mouse adds `rate` (true expected counts
per bin, (T, N)) segments and whole-session `truth_neurons.npy` and `noise_ceiling.npy`.
"""
from __future__ import annotations

import numpy as np

from actstore.data.checks import checked_array, interpolated, same_length
from actstore.data.session import Session, scale_frames, split_labels
from actstore.errors import UserError
from actstore.store.root import filesystem, join

BIN_S = 0.048
FRAME_SHAPE = (60, 80)
BEHAVIOUR = ("speed", "pitch", "roll", "phi", "th", "eyerad")
KEYS = ("vid_mean", "nsp", *BEHAVIOUR)
SPLITS = ("train", "test")
TRUTH_RATE = "rate"
TRUTH_NEURONS = "truth_neurons.npy"
NOISE_CEILING = "noise_ceiling.npy"


def segment_file(part: str, key: str, i: int) -> str:
    """The file name of one key of one segment part."""
    return f"{part}_{key}_seg_{i}.npy"


def load_npy(path: str, hint: str = "") -> np.ndarray:
    """One .npy file (path or URL) as an array; UserError naming the file when missing or unreadable."""
    fs, p = filesystem(path)
    try:
        with fs.open(p, "rb") as f:
            return np.load(f, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"{path}: missing file{'; ' + hint if hint else ''}") from None
    except (ValueError, OSError, EOFError) as e:
        raise UserError(f"{path}: not a readable .npy file ({e})") from None


def save_npy(path: str, array: np.ndarray) -> None:
    """Write one .npy file (path or URL), creating its folder."""
    fs, p = filesystem(path)
    fs.makedirs(p.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(p, "wb") as f:
        np.save(f, array, allow_pickle=False)


def session_folder(base: str, name: str) -> str:
    """`<base>/<name>`, or UserError listing the sessions that exist under `base`."""
    folder = join(base, name)
    fs, p = filesystem(folder)
    if not fs.isdir(p):
        fb, pb = filesystem(base)
        there = sorted(x.rstrip("/").rsplit("/", 1)[-1] for x in fb.ls(pb, detail=False)) if fb.isdir(pb) else []
        raise UserError(f"data.sessions: unknown session {name!r}: no folder {folder} "
                        f"(sessions there: {', '.join(there) or 'none'})")
    return folder


def read_session(base: str, name: str, segments: int, validation_fraction: float, frame_scaling: str,
                 frame_shape: tuple[int, int] = FRAME_SHAPE, bin_s: float = BIN_S) -> Session:
    """The session `<base>/<name>/` with frames scaled to [0, 1] (`frame_scaling`: per_segment scales each
    file on its own, per_session the whole movie), behaviour NaNs interpolated, split labels set, and any truth files."""
    folder = session_folder(base, name)
    hint = (f"a xu2023 session holds {{train|test}}_{{{'|'.join(KEYS)}}}_seg_{{i}}.npy "
            f"for i in 0..{segments - 1}")
    fs, truth_path = filesystem(join(folder, TRUTH_NEURONS))
    has_truth = fs.exists(truth_path)
    keys = (*KEYS, TRUTH_RATE) if has_truth else KEYS
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    lengths: dict[str, list[int]] = {s: [] for s in SPLITS}
    files: list[int] = []  # bins per file, in time order
    n_neurons: int | None = None
    for i in range(segments):
        for split in SPLITS:
            arrays, where = {}, {}
            for key in keys:
                path = join(folder, segment_file(split, key, i))
                where[key] = f"{path}: {key}"
                raw = load_npy(path, hint)
                if key == "vid_mean":
                    arrays[key] = checked_array(raw, where[key], ("T", *frame_shape))
                elif key in ("nsp", TRUTH_RATE):
                    n = n_neurons if n_neurons is not None else "N"
                    arrays[key] = checked_array(raw, where[key], ("T", n), nonnegative=True)
                    n_neurons = arrays[key].shape[1]
                else:
                    arrays[key] = checked_array(raw, where[key], ("T",), allow_nan=True)
            lengths[split].append(same_length(arrays, where))
            files.append(lengths[split][-1])
            for key, a in arrays.items():
                parts[key].append(a)
    frames = np.concatenate(parts.pop("vid_mean"))
    if frames.size and frames.max() == frames.min():
        raise UserError(f"{join(folder, segment_file('train', 'vid_mean', 0))}: vid_mean: the movie is constant; "
                        f"expected varying frames")
    block, part = split_labels(lengths["train"], lengths["test"], validation_fraction)
    counts = np.concatenate(parts.pop("nsp")).astype(np.float32)
    truth: dict[str, np.ndarray] = {}
    ceiling = None
    if has_truth:
        truth["rates"] = np.concatenate(parts.pop(TRUTH_RATE)).astype(np.float32)
        truth["params"] = load_npy(join(folder, TRUTH_NEURONS))
        ceiling = checked_array(load_npy(join(folder, NOISE_CEILING)), join(folder, NOISE_CEILING),
                                (counts.shape[1],), allow_nan=True)
    traces = {k: np.concatenate(parts[k]) for k in BEHAVIOUR}
    return Session(
        name=name,
        frames=scale_frames(frames, files if frame_scaling == "per_segment" else None),
        counts=counts,
        bin_s=bin_s,
        neuron_ids=np.arange(counts.shape[1]),
        block=block,
        part=part,
        behaviour={k: interpolated(t, f"{join(folder, segment_file('*', k, '*'))}: {k}").astype(np.float32)
                   for k, t in traces.items()},
        truth=truth,
        noise_ceiling=ceiling,
        frame_scaling=frame_scaling,
        behaviour_filled={k: int(np.isnan(t).sum()) for k, t in traces.items()},
    )


def write_session(folder: str, series: dict[str, np.ndarray], train_lengths: list[int],
                  test_lengths: list[int], whole: dict[str, np.ndarray]) -> None:
    """Cut continuous `series` (key -> (T, ...)) into segment files and write `whole` (file name -> array).

    Segments are laid out train_0, test_0, train_1, ...
    """
    start = 0
    for i, (n_train, n_test) in enumerate(zip(train_lengths, test_lengths)):
        for split, n in (("train", n_train), ("test", n_test)):
            for key, a in series.items():
                save_npy(join(folder, segment_file(split, key, i)), a[start:start + n])
            start += n
    for fname, a in whole.items():
        save_npy(join(folder, fname), a)
