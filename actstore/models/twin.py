"""DigitalTwin: shared per-frame encoder -> 1-layer GRU -> mouse-specific Linear + softplus (design 6.1)."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from actstore.models.encoders import build_encoder


class DigitalTwin(nn.Module):
    """Predicts each mouse's spike rates at bin t+1 from frames [t-4..t].

    clips are (B, T, 1, H, W) in [0, 1]; the encoder sees every frame independently,
    the GRU integrates the (B, T, D) sequence, and the last state feeds the readout.
    """

    def __init__(self, arch: str, frame_shape: tuple[int, int], neurons: dict[str, int],
                 encoder_dim: int = 128, hidden_dim: int = 512):
        super().__init__()
        self.config = {
            "arch": arch,
            "frame_shape": [int(x) for x in frame_shape],
            "neurons": {str(k): int(v) for k, v in neurons.items()},
            "encoder_dim": int(encoder_dim),
            "hidden_dim": int(hidden_dim),
        }
        self.encoder = build_encoder(arch, tuple(frame_shape), encoder_dim)
        self.gru = nn.GRU(encoder_dim, hidden_dim, num_layers=1, batch_first=True)
        self.readouts = nn.ModuleDict({str(m): nn.Linear(hidden_dim, n) for m, n in neurons.items()})

    def encode(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, T, 1, H, W) -> (B, T, D): the encoder applied to every frame."""
        b, t = clips.shape[:2]
        return self.encoder(clips.reshape(b * t, *clips.shape[2:])).reshape(b, t, -1)

    def recur(self, encoded: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, D) -> (B, H): the GRU's final state, from `state` or zeros."""
        _, h = self.gru(encoded, None if state is None else state.unsqueeze(0).contiguous())
        return h[0]

    def features(self, clips: torch.Tensor) -> dict[str, torch.Tensor]:
        """The two feature spaces actstore stores: encoder (B, T, D) and final GRU state (B, H)."""
        enc = self.encode(clips)
        return {"encoder": enc, "gru": self.recur(enc)}

    def rates(self, state: torch.Tensor, mouse: str) -> torch.Tensor:
        """(B, H) GRU states -> non-negative rates (B, N_mouse) of one mouse's neurons."""
        if mouse not in self.readouts:
            raise KeyError(f"unknown mouse {mouse!r}; valid: {', '.join(self.readouts)}")
        return F.softplus(self.readouts[mouse](state))

    def forward(self, clips: torch.Tensor, mouse: str) -> torch.Tensor:
        """(B, T, 1, H, W) -> non-negative rates (B, N_mouse)."""
        return self.rates(self.recur(self.encode(clips)), mouse)


def build_twin(arch: str, frame_shape: tuple[int, int] = (60, 80), neurons: dict[str, int] | None = None,
               encoder_dim: int = 128, hidden_dim: int = 512, seed: int | None = None) -> DigitalTwin:
    """A fresh twin; with `seed`, the initial weights are a pure function of it."""
    if seed is not None:
        torch.manual_seed(seed)
    return DigitalTwin(arch, frame_shape, neurons or {"mouse": 68}, encoder_dim, hidden_dim)
