"""Analysis outputs (`<root>/analysis/<name>.zarr`): written whole and atomically, opened lazily.

A result is built under a temporary name and published only when complete (store/publish.py), so
a killed job never leaves a half-written result that a later run takes for current.
`attrs["inputs"]` records what it was computed from (hashes), for staleness checks.
"""
from __future__ import annotations

import json
from typing import Any

import xarray as xr

from actstore.store.paths import ZARR_MARKER, Layout
from actstore.store.publish import publish_folder
from actstore.store.root import filesystem, join, zarr_location
from actstore.store.zarrstore import quiet_zarr


def write_analysis(ds: xr.Dataset, root: str, name: str, inputs: dict[str, Any] | None = None) -> str:
    """Write `ds` (computing any dask arrays) as analysis/<name>.zarr, replacing an older one atomically."""
    final = Layout(root).analysis(name)
    ds = ds.copy()
    ds.attrs = {**ds.attrs, "inputs": inputs or {}}

    def build(tmp_url: str) -> None:
        with quiet_zarr():
            ds.to_zarr(zarr_location(tmp_url), mode="w", zarr_format=3, consolidated=True)

    publish_folder(final, build, ZARR_MARKER)
    return final


def open_analysis(root: str, name: str, dask: bool = True) -> xr.Dataset | None:
    """The lazy result, or None when it has not been published; dask=False reads it whole without dask (a small
    result read at once, without the cost of a dask scheduler)."""
    path = Layout(root).analysis(name)
    fs, p = filesystem(path)
    if not fs.exists(join(p, ZARR_MARKER)):
        return None
    with quiet_zarr():
        if dask:
            return xr.open_zarr(zarr_location(path), consolidated=True)
        return xr.open_zarr(zarr_location(path), consolidated=True, chunks=None).load()


def analysis_inputs(root: str, name: str) -> dict[str, Any] | None:
    """What an existing result was computed from (None when absent), read from its zarr.json alone: compare to
    decide staleness without opening the result."""
    fs, p = filesystem(Layout(root).analysis(name))
    try:
        meta = json.loads(fs.cat_file(join(p, ZARR_MARKER)))
    except FileNotFoundError:
        return None
    return dict(meta.get("attributes", {}).get("inputs", {}))
