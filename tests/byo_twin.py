"""A twin defined outside actstore's zoo (for tests/test_byo.py): a small conv encoder per frame, a GRU and a
softplus readout, with its own module names."""
import torch
from torch import nn
from torch.nn import functional as F


class ByoTwin(nn.Module):
    def __init__(self, neurons: int = 12):
        super().__init__()
        self.frames = nn.Sequential(nn.Conv2d(1, 8, 5, stride=2), nn.ReLU(), nn.Conv2d(8, 12, 3, stride=2), nn.ReLU(),
                                    nn.Conv2d(12, 10, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                    nn.Linear(10, 16))
        self.rnn = nn.GRU(16, 32, batch_first=True)
        self.out = nn.Linear(32, neurons)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        b, t = clips.shape[:2]
        _, h = self.rnn(self.frames(clips.reshape(b * t, *clips.shape[2:])).reshape(b, t, -1))
        return F.softplus(self.out(h[-1]))


def build() -> nn.Module:
    return ByoTwin()
