"""The clip dataset (design 6.1): frames [i-5..i-1] -> spike counts at bin i, per split, cycling over mice.

Samples are drawn as runs of `run_length` consecutive targets inside one block: the
encoder sees each frame of a run once and the GRU sees every 5-frame window of it, so
a run of L samples costs L + 4 encoded frames instead of 5 L (run_length 1 gives
independent clips). Batch order is a pure function of (seed, epoch).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from actstore.data.session import Session
from actstore.models.twin import DigitalTwin


@dataclass(frozen=True)
class Batch:
    """One mouse's samples: `frames` (R, L + context - 1, H, W) covering R runs, `counts` (R * L, N)."""

    mouse: str
    frames: torch.Tensor
    counts: torch.Tensor


def consecutive_runs(targets: np.ndarray, max_len: int) -> list[np.ndarray]:
    """Split sorted bin indices into runs of consecutive bins, each at most `max_len` long."""
    if len(targets) == 0:
        return []
    breaks = np.flatnonzero(np.diff(targets) != 1) + 1
    runs: list[np.ndarray] = []
    for run in np.split(targets, breaks):
        runs += [run[k:k + max_len] for k in range(0, len(run), max_len)]
    return runs


def run_starts(targets: np.ndarray, run_length: int, offset: int = 0) -> np.ndarray:
    """First targets of every full run of `run_length` consecutive targets, runs starting `offset` into each stretch."""
    starts = []
    for run in consecutive_runs(targets, len(targets) or 1):
        usable = run[offset:]
        n = len(usable) // run_length
        starts.append(usable[: n * run_length: run_length])
    return np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)


def gather(session: Session, starts: np.ndarray, length: int, context: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames (R, length + context - 1, H, W) and counts (R * length, N) of runs beginning at target `starts`."""
    frame_idx = starts[:, None] - context + np.arange(length + context - 1)
    count_idx = (starts[:, None] + np.arange(length)).ravel()
    return session.frames[frame_idx], session.counts[count_idx]


def whole_chunks(targets: np.ndarray, chunk: int) -> np.ndarray:
    """The targets that fill whole runs of `chunk` consecutive bins inside one stretch (one segment's part),
    in order; each stretch's short tail is dropped, so no chunk joins two segments far apart in time."""
    runs = [run for run in consecutive_runs(targets, chunk) if len(run) == chunk]
    return np.concatenate(runs) if runs else np.zeros(0, dtype=np.asarray(targets).dtype)


def select_chunks(targets: np.ndarray, chunk: int, max_samples: int) -> np.ndarray:
    """All `targets` (max_samples 0, when they fit, or when no stretch holds a whole chunk), else at most
    `max_samples` of them as whole chunks (`whole_chunks`) evenly spread over the recording."""
    chunks = whole_chunks(targets, chunk).reshape(-1, chunk)
    if max_samples <= 0 or len(targets) <= max_samples or len(chunks) == 0:
        return targets
    keep = max(1, min(len(chunks), max_samples // chunk))
    return chunks[np.linspace(0, len(chunks) - 1, keep).round().astype(int)].ravel()


def epoch_batches(sessions: dict[str, Session], part: str, batch_size: int, run_length: int, context: int,
                  rng: np.random.Generator, max_batches: int = 0) -> list[tuple[str, np.ndarray]]:
    """(mouse, run starts) per batch: each mouse's runs shuffled into batches, mice taken in turn until all are used."""
    runs_per_batch = max(1, batch_size // run_length)
    queues: list[list[tuple[str, np.ndarray]]] = []
    for mouse, session in sessions.items():
        starts = run_starts(session.targets(part, context), run_length, int(rng.integers(run_length)))
        starts = starts[rng.permutation(len(starts))]
        n = len(starts) // runs_per_batch
        queues.append([(mouse, starts[k * runs_per_batch:(k + 1) * runs_per_batch]) for k in range(n)])
    order: list[tuple[str, np.ndarray]] = []
    for k in range(max((len(q) for q in queues), default=0)):
        order += [q[k] for q in queues if k < len(q)]
    return order[:max_batches] if max_batches > 0 else order


def make_batch(session: Session, mouse: str, starts: np.ndarray, run_length: int, context: int,
               device: torch.device) -> Batch:
    """Tensors on `device` for runs of `run_length` targets starting at `starts`."""
    frames, counts = gather(session, starts, run_length, context)
    return Batch(mouse, torch.from_numpy(np.ascontiguousarray(frames)).to(device),
                 torch.from_numpy(np.asarray(counts, dtype=np.float32)).to(device))


def window_states(twin: DigitalTwin, frames: torch.Tensor, context: int) -> torch.Tensor:
    """GRU states (R * L, H) after every `context`-frame window of runs (R, L + context - 1, H, W), each frame encoded once."""
    r, f = frames.shape[:2]
    encoded = twin.encode(frames.unsqueeze(2))
    windows = encoded.unfold(1, context, 1).permute(0, 1, 3, 2)
    return twin.recur(windows.reshape(r * (f - context + 1), context, encoded.shape[-1]))


def window_rates(twin: DigitalTwin, frames: torch.Tensor, mouse: str, context: int) -> torch.Tensor:
    """Rates (R * L, N) for every `context`-frame window of runs: the same as twin(clips, mouse) on each window."""
    return twin.rates(window_states(twin, frames, context), mouse)
