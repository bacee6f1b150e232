"""Recordings: xu2023 and parker2022 readers, the synthetic mouse V1 and its oracle.

Importing this package loads numpy only; the readers, the simulator and the oracle load on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

from actstore.data.session import PARTS, Session, scale_frames, segment_lengths, split_labels

_LAZY = {
    "load_sessions": "actstore.data.prepare",
    "prepare_data": "actstore.data.prepare",
    "data_fingerprint": "actstore.data.prepare",
    "data_problem": "actstore.data.prepare",
    "Oracle": "actstore.data.oracle",
}

__all__ = ["PARTS", "Session", "scale_frames", "segment_lengths", "split_labels", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'actstore.data' has no attribute {name!r}")
