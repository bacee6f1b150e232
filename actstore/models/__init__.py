"""The twin zoo: eight torchvision encoders inside one convolutional-recurrent DigitalTwin.

Names load on first use (PEP 562), so importing `actstore.models.checkpoint` to read a
checkpoint's metadata does not import torch.
"""
from importlib import import_module
from typing import Any

_HOMES = {"DigitalTwin": "twin", "build_twin": "twin", "build_encoder": "encoders",
          "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint"}
__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'actstore.models' has no attribute {name!r}")
    return getattr(import_module(f"actstore.models.{_HOMES[name]}"), name)
