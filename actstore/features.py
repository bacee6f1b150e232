"""Feature spaces and the one batched forward loop that feeds them all.

Each batch is encoded once; every feature space is a thin reader of that shared pass:
`encoder` keeps the encoder output per frame, `gru` runs the GRU from a zero state over
each chunk of `chunk_frames` frames and keeps the final state of each chunk.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np

from actstore.errors import UserError

if TYPE_CHECKING:  # torch loads only when features are computed: planning an extraction needs none
    import torch

    from actstore.models import DigitalTwin


def chunk_count(n_frames: int, chunk_frames: int) -> int:
    """How many GRU chunks a stimulus of `n_frames` frames splits into (a short one is one chunk)."""
    if n_frames <= chunk_frames:
        return 1
    if n_frames % chunk_frames:
        raise UserError(f"stimulus has {n_frames} frames, not a multiple of chunk_frames={chunk_frames}")
    return n_frames // chunk_frames


@dataclass(frozen=True)
class FeatureSpace:
    """A stored variable: its name, its unit dim, and how it reads the shared encoder pass."""

    name: str
    unit_dim: str
    size_key: str  # the twin config key giving the unit count
    step_dim: str

    def steps(self, n_frames: int, chunk_frames: int) -> int:
        raise NotImplementedError

    def dims(self, n_frames: int, chunk_frames: int, config: dict) -> tuple[tuple[str, int], ...]:
        """The variable's own trailing dims after the stimulus dims: (step?, unit)."""
        n = self.steps(n_frames, chunk_frames)
        step = ((self.step_dim, n),) if n > 1 else ()
        return (*step, (self.unit_dim, int(config[self.size_key])))

    def compute(self, twin: DigitalTwin, encoded: torch.Tensor, chunk_frames: int) -> torch.Tensor:
        """(B, T, D) encoded frames -> (B, steps, units)."""
        raise NotImplementedError


class EncoderSpace(FeatureSpace):
    def steps(self, n_frames: int, chunk_frames: int) -> int:
        return n_frames

    def compute(self, twin: DigitalTwin, encoded: torch.Tensor, chunk_frames: int) -> torch.Tensor:
        return encoded


class GruSpace(FeatureSpace):
    def steps(self, n_frames: int, chunk_frames: int) -> int:
        return chunk_count(n_frames, chunk_frames)

    def compute(self, twin: DigitalTwin, encoded: torch.Tensor, chunk_frames: int) -> torch.Tensor:
        b, t, d = encoded.shape
        c = chunk_count(t, chunk_frames)
        return twin.recur(encoded.reshape(b * c, t // c, d)).reshape(b, c, -1)


SPACES: tuple[FeatureSpace, ...] = (
    EncoderSpace("encoder", "unit", "encoder_dim", "frame"),
    GruSpace("gru", "hidden", "hidden_dim", "chunk"),
)


def resolve_device(device: str | None) -> str:
    """'auto' (or None) -> cuda when available, else cpu."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available; valid here: auto, cpu")
    return device


def batched_features(twin: DigitalTwin, frames: np.ndarray, batch_size: int, device: str, chunk_frames: int,
                     spaces: tuple[FeatureSpace, ...] = SPACES) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
    """(S, T, H, W) frames -> per batch (first, stop, {space: (B, steps, units) float32}), frozen and in order."""
    import torch

    twin.eval().to(device)
    with torch.inference_mode():
        for first in range(0, len(frames), batch_size):
            stop = min(first + batch_size, len(frames))
            clips = torch.from_numpy(np.ascontiguousarray(frames[first:stop])).to(device).unsqueeze(2)
            encoded = twin.encode(clips)
            yield first, stop, {s.name: s.compute(twin, encoded, chunk_frames).float().cpu().numpy() for s in spaces}
