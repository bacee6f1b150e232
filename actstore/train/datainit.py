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
MIN_COUNT = 1e-3


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


def mean_count_bias(mean: torch.Tensor) -> torch.Tensor:
    """The readout bias whose softplus is each neuron's mean count per bin (floored at MIN_COUNT: silent neurons)."""
    return torch.log(torch.expm1(mean.clamp(min=MIN_COUNT)))


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
        twin.readouts[mouse].bias.copy_(mean_count_bias(torch.as_tensor(mean, dtype=torch.float32)))
    twin.train(was_training)


RIDGE_GRID = (1.0, 10.0, 100.0, 1000.0, 1e4, float("inf"))  # on standardized states; inf = biases only
NEWTON_STEPS = 20


def _softplus_readout(beta: torch.Tensor, mu: torch.Tensor, sd: torch.Tensor, states: torch.Tensor,
                      mean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of softplus(bias + weight h) from ridge coefficients `beta` of counts on standardized states:
    linearized at each neuron's mean count, then biases moved so the mean rate over `states` is that count again."""
    target, bias = mean.clamp(min=MIN_COUNT), mean_count_bias(mean)
    weight = (beta / sd[:, None]).T / torch.sigmoid(bias)[:, None]  # d softplus(b)/db = sigmoid(b)
    drive = (states - mu) @ weight.T
    for _ in range(NEWTON_STEPS):  # solve mean_t softplus(bias + drive) = mean count, per neuron (softplus is convex)
        x = bias + drive
        bias = bias - (F.softplus(x).mean(0) - target) / torch.sigmoid(x).mean(0)
    return weight, bias - weight @ mu


@torch.no_grad()
def fit_readout(twin: DigitalTwin, mouse: str, states: torch.Tensor, counts: np.ndarray,
                val_states: torch.Tensor, val_counts: np.ndarray, mean_counts: np.ndarray) -> float:
    """Set one mouse's readout to a ridge fit of counts on the twin's GRU states (a linear probe before fine-tuning,
    Kumar et al. 2022), made a softplus readout by `_softplus_readout` whose mean rate is `mean_counts` (each neuron's
    mean count over the whole training split, of which `counts` are a sample). The ridge strength is the one of
    RIDGE_GRID whose readout has the lowest Poisson loss on the validation samples (biases alone, the bias-only
    init's, are a candidate, so the fit never does worse there than that init); returns that loss."""
    h, hv = states.double().cpu(), val_states.double().cpu()
    mu, sd = h.mean(0), h.std(0) + EPS
    z = (h - mu) / sd
    y, yv = torch.as_tensor(counts, dtype=torch.float64), torch.as_tensor(val_counts, dtype=torch.float64)
    mean = torch.as_tensor(mean_counts, dtype=torch.float64)
    gram, cross = z.T @ z, z.T @ (y - y.mean(0))
    best, best_loss = None, np.inf
    for strength in RIDGE_GRID:
        beta = (torch.zeros_like(cross) if strength == float("inf")
                else torch.linalg.solve(gram + strength * torch.eye(len(gram), dtype=gram.dtype), cross))
        weight, bias = _softplus_readout(beta, mu, sd, h, mean)
        loss = float(F.poisson_nll_loss(F.softplus(hv @ weight.T + bias), yv, log_input=False))
        if loss < best_loss:
            best, best_loss = (weight, bias), loss
    readout = twin.readouts[mouse]
    readout.weight.copy_(best[0].to(readout.weight))
    readout.bias.copy_(best[1].to(readout.bias))
    return best_loss
