"""actstore: a data-centric activation store for probing digital twins of mouse V1.

`import actstore` stays light (no torch, xarray or dask) so the CLI starts instantly;
heavy submodules and API functions load on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

ARCHS: tuple[str, ...] = (
    "xu_cnn",
    "resnet18",
    "efficientnet_b0",
    "mobilenet_v2",
    "alexnet",
    "squeezenet1_1",
    "shufflenet_v2",
    "regnet_y_400mf",
)

_SUBMODULES = {"models", "analysis", "data", "stimuli", "store", "train", "catalog", "report"}
_FUNCTIONS = {
    "open_store": "actstore.store",
    "units": "actstore.table",
    "neurons": "actstore.table",
    "query": "actstore.expressions",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"actstore.{name}")
    if name in _FUNCTIONS:
        return getattr(importlib.import_module(_FUNCTIONS[name]), name)
    raise AttributeError(f"module 'actstore' has no attribute {name!r}")
