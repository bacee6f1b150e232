"""The eight encoders inside the twin, at both frame sizes of the public recordings."""
import pytest
import torch
from torch import nn

import actstore
from actstore.models import build_twin

FRAME_SHAPES = [(60, 80), (30, 40)]
NEURONS = {"070921_J553RT": 7, "110421_J569LT": 3}


def first_conv(module: nn.Module) -> nn.Conv2d:
    return next(m for m in module.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("frame_shape", FRAME_SHAPES, ids=["60x80", "30x40"])
@pytest.mark.parametrize("arch", actstore.ARCHS)
def test_twin_shapes_rates_and_gradients(arch, frame_shape):
    twin = build_twin(arch, frame_shape, NEURONS, encoder_dim=32, hidden_dim=24, seed=0)
    assert first_conv(twin.encoder).in_channels == 1
    clips = torch.rand(3, 5, 1, *frame_shape)
    twin.eval()
    with torch.no_grad():
        feats = twin.features(clips)
    assert feats["encoder"].shape == (3, 5, 32)
    assert feats["gru"].shape == (3, 24)
    twin.train()
    rates = twin(clips, mouse="110421_J569LT")
    assert rates.shape == (3, 3)
    assert bool((rates >= 0).all())
    rates.sum().backward()
    grad = first_conv(twin.encoder).weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0


@pytest.mark.parametrize("arch", actstore.ARCHS)
def test_same_seed_same_initial_weights(arch):
    a = build_twin(arch, (60, 80), NEURONS, encoder_dim=16, hidden_dim=8, seed=3).state_dict()
    b = build_twin(arch, (60, 80), NEURONS, encoder_dim=16, hidden_dim=8, seed=3).state_dict()
    c = build_twin(arch, (60, 80), NEURONS, encoder_dim=16, hidden_dim=8, seed=4).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point() and a[k].numel() > 1)


def test_features_match_forward_path():
    twin = build_twin("xu_cnn", (60, 80), {"m": 4}, encoder_dim=16, hidden_dim=8, seed=0).eval()
    clips = torch.rand(2, 5, 1, 60, 80)
    with torch.no_grad():
        gru = twin.features(clips)["gru"]
        rates = twin(clips, mouse="m")
    expected = torch.nn.functional.softplus(twin.readouts["m"](gru))
    assert torch.allclose(rates, expected)


def test_unknown_mouse_and_arch_are_named():
    twin = build_twin("xu_cnn", (60, 80), {"m": 4}, encoder_dim=16, hidden_dim=8)
    with pytest.raises(KeyError, match="valid: m"):
        twin(torch.rand(1, 5, 1, 60, 80), mouse="other")
    with pytest.raises(ValueError, match="unknown arch"):
        build_twin("vgg16")
