"""Store-backed analysis jobs: each reads stores lazily, computes with Dask, writes analysis/<name>.zarr.

Every job module exposes `run(catalog, root) -> list[str]` (summary lines) and is up to
date (does nothing) when its inputs have not changed.
"""
from __future__ import annotations

import importlib

ORDER = ("tuning", "probes", "geometry", "stats")


def run(catalog, root: str, what: str) -> list[str]:
    """Run one job, or all of them in order for what == 'all'."""
    names = ORDER if what == "all" else (what,)
    lines: list[str] = []
    for name in names:
        lines += importlib.import_module(f"actstore.jobs.{name}").run(catalog, root)
    return lines
