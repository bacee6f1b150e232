"""Chunk layout of a store: which stimuli share a chunk, so region writes stay chunk-aligned.

Stimulus dims are chunked from the innermost outwards: inner dims whole, one dim split,
outer dims one index per chunk. Every chunk is then a contiguous run of stimuli in C
order, which lets a writer flush chunks as soon as the forward passes have covered them.
"""
from __future__ import annotations

from itertools import product
from math import prod


def stimulus_chunks(stim_shape: tuple[int, ...], bytes_per_stimulus: int, target_bytes: int) -> tuple[int, ...]:
    """Chunk sizes along the stimulus dims so that one chunk holds about `target_bytes`."""
    chunks = list(stim_shape)
    inner = bytes_per_stimulus
    for k in reversed(range(len(stim_shape))):
        if inner * stim_shape[k] <= target_bytes:
            inner *= stim_shape[k]
            continue
        chunks[k] = max(1, target_bytes // inner)
        chunks[:k] = [1] * k
        break
    return tuple(chunks)


def chunk_runs(stim_shape: tuple[int, ...], chunks: tuple[int, ...]) -> list[tuple[int, int, tuple[slice, ...]]]:
    """Every chunk as (first, stop, region): its flat C-order stimulus range and its slices, in order."""
    split = max((k for k, (n, c) in enumerate(zip(stim_shape, chunks)) if c < n), default=0)
    inner = prod(stim_shape[split + 1:])
    runs = []
    for outer in product(*(range(n) for n in stim_shape[:split])):
        base = 0
        for m, i in enumerate(outer):
            base = base * stim_shape[m] + i
        n, c = stim_shape[split], chunks[split]
        for lo in range(0, n, c):
            hi = min(lo + c, n)
            first = (base * n + lo) * inner
            region = (*(slice(i, i + 1) for i in outer), slice(lo, hi), *(slice(None),) * len(stim_shape[split + 1:]))
            runs.append((first, first + (hi - lo) * inner, region))
    return runs
