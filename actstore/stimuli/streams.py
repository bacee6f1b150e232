"""Random streams and balanced label orders for stimulus draws.

Every draw comes from a numpy Generator keyed on (seed, recipe name, part), so recipes and
splits never share a stream and a stimulus set is a pure function of (recipe, seed).
"""
from __future__ import annotations

import hashlib

import numpy as np


def stream(seed: int, *keys: str) -> np.random.Generator:
    """A Generator seeded from `seed` and the text keys (stable across runs, unlike hash())."""
    words = [int.from_bytes(hashlib.sha256(k.encode()).digest()[:8], "little") for k in keys]
    return np.random.default_rng(np.random.SeedSequence([int(seed), *words]))


def balanced_labels(n: int, classes: int, rng: np.random.Generator) -> np.ndarray:
    """n labels in 0..classes-1 made of consecutive random permutations, so every prefix of
    k * classes trials holds exactly k of each class."""
    blocks = -(-n // classes)
    return rng.permuted(np.tile(np.arange(classes), (blocks, 1)), axis=1).ravel()[:n]
