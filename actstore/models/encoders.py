"""The eight visual encoders: torchvision builders (weights=None) with a 1-channel stem and a D-output head.

Each maps frames (N, 1, H, W) in [0, 1] to (N, D) and runs on 60x80 and 30x40 frames;
where the original layout cannot handle such small frames its pooling or padding is
adapted minimally (AlexNet's last max-pool, xu_cnn's padding at 30x40).
"""
from __future__ import annotations

from typing import Callable

import torch
import torchvision.models as tvm
from torch import nn

from actstore import ARCHS


def _stem(conv: nn.Conv2d) -> nn.Conv2d:
    """The same convolution with one input channel (grayscale head-camera frames)."""
    return nn.Conv2d(
        1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        dilation=conv.dilation, groups=1, bias=conv.bias is not None,
    )


def _conv_out(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


class XuCNN(nn.Module):
    """Xu et al. (2023): three Conv(7, stride 2)-BN-ReLU-Dropout(0.5) blocks, flatten, Linear(-> D).

    Unpadded as published; a layer whose input is smaller than its 7-px kernel (the last
    block at 30x40) gets padding 3 instead, the minimal change that keeps all three blocks.
    """

    def __init__(self, frame_shape: tuple[int, int], dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        h, w = frame_shape
        c_in = 1
        for c_out in (128, 64, 32):
            pad = 0 if min(h, w) >= 7 else 3
            layers += [nn.Conv2d(c_in, c_out, 7, stride=2, padding=pad), nn.BatchNorm2d(c_out), nn.ReLU(), nn.Dropout(0.5)]
            h, w, c_in = _conv_out(h, 7, 2, pad), _conv_out(w, 7, 2, pad), c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in * h * w, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))


def _resnet18(frame_shape: tuple[int, int], dim: int) -> nn.Module:
    m = tvm.resnet18(weights=None)
    m.conv1 = _stem(m.conv1)
    m.fc = nn.Linear(m.fc.in_features, dim)
    return m


def _efficientnet_b0(frame_shape: tuple[int, int], dim: int) -> nn.Module:
    m = tvm.efficientnet_b0(weights=None)
    m.features[0][0] = _stem(m.features[0][0])
    m.classifier[-1] = nn.Linear(m.classifier[-1].in_features, dim)
    return m


def _mobilenet_v2(frame_shape: tuple[int, int], dim: int) -> nn.Module:
    m = tvm.mobilenet_v2(weights=None)
    m.features[0][0] = _stem(m.features[0][0])
    m.classifier[-1] = nn.Linear(m.classifier[-1].in_features, dim)
    return m


class _AlexNet(nn.Module):
    """AlexNet features without the final max-pool (too small a map at 60x80), then Linear(-> D).

    At 30x40 the second max-pool would also see a 2-px map, so pools use ceil_mode there.
    """

    def __init__(self, frame_shape: tuple[int, int], dim: int):
        super().__init__()
        m = tvm.alexnet(weights=None)
        feats = list(m.features.children())[:-1]
        feats[0] = _stem(feats[0])
        self.features = nn.Sequential(*feats)
        with torch.no_grad():
            probe = torch.zeros(1, 1, *frame_shape)
            try:
                n = self.features(probe).numel()
            except RuntimeError:
                for layer in self.features:
                    if isinstance(layer, nn.MaxPool2d):
                        layer.ceil_mode = True
                n = self.features(probe).numel()
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(n, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))


def _squeezenet1_1(frame_shape: tuple[int, int], dim: int) -> nn.Module:
    m = tvm.squeezenet1_1(weights=None)
    m.features[0] = _stem(m.features[0])
    m.classifier[1] = nn.Conv2d(m.classifier[1].in_channels, dim, kernel_size=1)
    return m


def _shufflenet_v2(frame_shape: tuple[int, int], dim: int) -> nn.Module:
    m = tvm.shufflenet_v2_x1_0(weights=None)
    m.conv1[0] = _stem(m.conv1[0])
    m.fc = nn.Linear(m.fc.in_features, dim)
    return m


def _regnet_y_400mf(frame_shape: tuple[int, int], dim: int) -> nn.Module:
    m = tvm.regnet_y_400mf(weights=None)
    m.stem[0] = _stem(m.stem[0])
    m.fc = nn.Linear(m.fc.in_features, dim)
    return m


BUILDERS: dict[str, Callable[[tuple[int, int], int], nn.Module]] = {
    "xu_cnn": XuCNN,
    "resnet18": _resnet18,
    "efficientnet_b0": _efficientnet_b0,
    "mobilenet_v2": _mobilenet_v2,
    "alexnet": _AlexNet,
    "squeezenet1_1": _squeezenet1_1,
    "shufflenet_v2": _shufflenet_v2,
    "regnet_y_400mf": _regnet_y_400mf,
}
assert tuple(BUILDERS) == ARCHS


def build_encoder(arch: str, frame_shape: tuple[int, int], dim: int) -> nn.Module:
    """A fresh (untrained) encoder mapping (N, 1, H, W) -> (N, dim)."""
    if arch not in BUILDERS:
        raise ValueError(f"unknown arch {arch!r}; valid: {', '.join(ARCHS)}")
    return BUILDERS[arch](tuple(frame_shape), dim)
