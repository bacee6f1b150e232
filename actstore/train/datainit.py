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
from torch.nn import functional as F

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


RIDGE_GRID = (1.0, 10.0, 100.0, 1000.0, 1e4)  # on standardized states; the one best on validation is kept
NEWTON_STEPS = 20


@torch.no_grad()
def fit_readout(twin: DigitalTwin, mouse: str, states: torch.Tensor, counts: np.ndarray,
                val_states: torch.Tensor, val_counts: np.ndarray) -> float:
    """Set one mouse's readout to a ridge fit of counts on the twin's GRU states (linear probe, then fine-tune:
    Kumar et al. 2022), linearized through the softplus at each neuron's mean rate, with the biases then moved so
    that the mean rate over `states` is each neuron's mean count again (the softplus is convex). The ridge strength
    is the one of RIDGE_GRID with the best mean per-neuron r on the validation samples, which is returned."""
    from actstore.train.metrics import prediction_r

    h = states.double().cpu()
    mu, sd = h.mean(0), h.std(0) + EPS
    z, zv = (h - mu) / sd, (val_states.double().cpu() - mu) / sd
    y = torch.as_tensor(counts, dtype=torch.float64)
    mean = y.mean(0)
    gram, cross = z.T @ z, z.T @ (y - mean)
    best, best_r = None, -np.inf
    for strength in RIDGE_GRID:
        beta = torch.linalg.solve(gram + strength * torch.eye(len(gram), dtype=gram.dtype), cross)
        r = prediction_r((zv @ beta).numpy(), np.asarray(val_counts, dtype=np.float64))
        score = float(np.nanmean(r)) if np.isfinite(r).any() else -np.inf
        if score > best_r:
            best, best_r = beta, score
    bias = torch.log(torch.expm1(torch.clamp(mean, min=1e-3)))
    weight = (best / sd[:, None]).T / torch.sigmoid(bias)[:, None]  # d softplus(b)/db = sigmoid(b)
    drive = (h - mu) @ weight.T
    for _ in range(NEWTON_STEPS):  # solve mean_t softplus(bias + drive) = mean count, per neuron
        x = bias + drive
        bias = bias - (F.softplus(x).mean(0) - mean.clamp(min=1e-3)) / torch.sigmoid(x).mean(0)
    readout = twin.readouts[mouse]
    readout.weight.copy_(weight.to(readout.weight))
    readout.bias.copy_((bias - weight @ mu).to(readout.bias))
    return best_r
