"""One recorded (or simulated) session and its temporal train/validation/test split (design 6.1).

Every bin carries a block id and a part (optimize, validate, test); a sample never
crosses a block boundary, so no frame of a test sample ever feeds a training sample.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

PARTS = ("optimize", "validate", "test")
OPTIMIZE, VALIDATE, TEST = range(3)
BEHAVIOUR_NAN = "interpolate"  # NaN in a behaviour trace: linear over bins, edge NaNs hold the nearest finite value


@dataclass
class Session:
    """Frames (T, H, W) float32 in [0, 1], spike counts (T, N), and per-bin split labels.

    `block` numbers the contiguous stretches (segment x part, cut again wherever bins were
    dropped) and `part` holds 0, 1, 2 for optimize, validate, test. `truth` holds ground truth
    where known (the synthetic mouse: true rates (T, N) and per-neuron parameters);
    `noise_ceiling` the per-neuron ceiling. How the reader got there: `frame_scaling`
    (per_segment | per_session), `behaviour_nan` (the NaN policy) with `behaviour_filled`
    (trace -> NaN samples filled), and `dropped_bins` (bins of the file left out).
    """

    name: str
    frames: np.ndarray
    counts: np.ndarray
    bin_s: float
    neuron_ids: np.ndarray
    block: np.ndarray
    part: np.ndarray
    behaviour: dict[str, np.ndarray] = field(default_factory=dict)
    truth: dict[str, np.ndarray] = field(default_factory=dict)
    noise_ceiling: np.ndarray | None = None
    frame_scaling: str = "per_session"
    behaviour_nan: str = BEHAVIOUR_NAN
    behaviour_filled: dict[str, int] = field(default_factory=dict)
    dropped_bins: int = 0

    @property
    def n_neurons(self) -> int:
        return int(self.counts.shape[1])

    @property
    def frame_shape(self) -> tuple[int, int]:
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    def targets(self, part: str, context: int = 5) -> np.ndarray:
        """Bin indices i whose sample (frames i-context..i-1 -> counts at i) lies inside one block of `part`."""
        code = PARTS.index(part)
        i = np.arange(context, len(self.block))
        same = self.block[i] == self.block[i - context]
        return i[same & (self.part[i] == code)]


def scale_frames(movie: np.ndarray, lengths: Sequence[int] | None = None) -> np.ndarray:
    """A movie as float32 in [0, 1] by (x - min) / max(x - min) over the whole session (design 6.1),
    or over each consecutive piece of `lengths` bins on its own (the xu2023 release scales each file)."""
    x = np.array(movie, dtype=np.float32)
    edges = np.cumsum([0, *(lengths if lengths is not None else [len(x)])])
    for lo, hi in zip(edges[:-1], edges[1:]):
        piece = x[lo:hi]
        if piece.size:
            piece -= piece.min()
            top = piece.max()
            if top > 0:
                piece /= top
    return x


def split_at_gaps(block: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Block ids renumbered 0, 1, ... with a new block wherever `kept` (the file's bin indices, increasing)
    skips bins, so no sample spans dropped bins."""
    start = np.r_[True, (block[1:] != block[:-1]) | (np.diff(kept) > 1)]
    return (np.cumsum(start) - 1).astype(np.int32)


def split_labels(train_lengths: list[int], test_lengths: list[int],
                 validation_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Block ids and part codes for segments laid out as train_0, test_0, train_1, test_1, ...

    Each train part splits into optimize (first 1 - validation_fraction) and validate (rest).
    """
    blocks, parts = [], []
    b = 0
    for n_train, n_test in zip(train_lengths, test_lengths):
        n_val = int(round(n_train * validation_fraction))
        for n, code in ((n_train - n_val, OPTIMIZE), (n_val, VALIDATE), (n_test, TEST)):
            blocks.append(np.full(n, b, dtype=np.int32))
            parts.append(np.full(n, code, dtype=np.int8))
            b += 1
    return np.concatenate(blocks), np.concatenate(parts)


def segment_lengths(total: int, segments: int, train_fraction: float) -> tuple[list[int], list[int]]:
    """Split a continuous recording of `total` bins into equal segments, each train-then-test."""
    edges = np.linspace(0, total, segments + 1).round().astype(int)
    train, test = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        n_train = int(round((hi - lo) * train_fraction))
        train.append(n_train)
        test.append(int(hi - lo - n_train))
    return train, test
