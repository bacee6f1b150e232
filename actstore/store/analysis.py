"""Analysis outputs (`<root>/analysis/<name>.zarr`): written whole and atomically, opened lazily.

A result is written under a temporary name and moved into place only when complete, so
a killed job never leaves a half-written result that a later run takes for current.
`attrs["inputs"]` records what it was computed from (hashes), for staleness checks.
"""
from __future__ import annotations

import uuid
from typing import Any

import xarray as xr

from actstore.store.root import filesystem, join, replace_folder
from actstore.store.zarrstore import quiet_zarr


def analysis_path(root: str, name: str) -> str:
    return join(root, "analysis", f"{name}.zarr")


def write_analysis(ds: xr.Dataset, root: str, name: str, inputs: dict[str, Any] | None = None) -> str:
    """Write `ds` (computing any dask arrays) as analysis/<name>.zarr, replacing an older one atomically."""
    final = analysis_path(root, name)
    tmp = join(root, "analysis", f".{name}.{uuid.uuid4().hex[:8]}.tmp.zarr")
    ds = ds.copy()
    ds.attrs = {**ds.attrs, "inputs": inputs or {}}
    with quiet_zarr():
        ds.to_zarr(tmp, mode="w", zarr_format=3, consolidated=True)
    fs, final_path = filesystem(final)
    _, tmp_path = filesystem(tmp)
    replace_folder(fs, tmp_path, final_path)
    return final


def open_analysis(root: str, name: str) -> xr.Dataset | None:
    """The lazy result, or None when it has not been written."""
    path = analysis_path(root, name)
    fs, p = filesystem(path)
    if not fs.exists(p):
        return None
    with quiet_zarr():
        return xr.open_zarr(path, consolidated=True)


def analysis_inputs(root: str, name: str) -> dict[str, Any] | None:
    """What an existing result was computed from (None when absent): compare to decide staleness."""
    ds = open_analysis(root, name)
    return None if ds is None else dict(ds.attrs.get("inputs", {}))
