"""Data-dependent initialization of a fresh twin (Salimans & Kingma 2016; Mishkin & Matas 2016).

Head-camera frames are low-contrast around mid-grey, and torchvision's default inits shrink
that input-driven variation layer after layer (an untrained AlexNet's encoder output varies
by ~3e-4 across clips), so the GRU sees nearly constant input and training stalls. One
forward pass over real frames rescales every encoder convolution and linear layer, in call
order, so that each output channel has unit variance across the batch (and zero mean where
the layer has a bias); readout biases start at each neuron's mean count.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from actstore.models.twin import DigitalTwin

EPS = 1e-6


def _standardize(module: nn.Module, output: torch.Tensor) -> torch.Tensor:
    """Rescale the layer so this batch's output channels have unit SD (and zero mean with a bias); return the new output."""
    channel = 1 if isinstance(module, nn.Conv2d) else output.dim() - 1
    dims = [d for d in range(output.dim()) if d != channel]
    mean, std = output.mean(dim=dims), output.std(dim=dims) + EPS
    module.weight.div_(std.reshape([-1] + [1] * (module.weight.dim() - 1)))
    view = [-1 if d == channel else 1 for d in range(output.dim())]
    if module.bias is None:
        return output / std.reshape(view)
    module.bias.sub_(mean).div_(std)
    return (output - mean.reshape(view)) / std.reshape(view)


@torch.no_grad()
def data_dependent_init(twin: DigitalTwin, frames: torch.Tensor, mean_counts: dict[str, np.ndarray]) -> None:
    """Initialize `twin` in place from real frames (N, 1, H, W) and each mouse's mean count per bin."""
    was_training = twin.training
    twin.eval()
    handles: dict[nn.Module, torch.utils.hooks.RemovableHandle] = {}

    def once(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        handles.pop(module).remove()
        return _standardize(module, output)

    for module in twin.encoder.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            handles[module] = module.register_forward_hook(once)
    twin.encoder(frames)
    for handle in handles.values():
        handle.remove()
    for mouse, mean in mean_counts.items():
        rate = torch.as_tensor(np.maximum(mean, 1e-3), dtype=torch.float32)
        twin.readouts[mouse].bias.copy_(torch.log(torch.expm1(rate)))
    twin.train(was_training)
