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


# Two chunk key layouts of Zarr v3 that share no key ("c/0/1" and "c" for a scalar, against "0.1" and "0"):
# successive versions of a result alternate between them, so an object-store root can copy the new version beside
# the published one and switch with its one root zarr.json (store/publish.py), never showing no result.
CHUNK_KEYS = ({"name": "default", "separator": "/"}, {"name": "v2", "separator": "."})


def write_analysis(ds: xr.Dataset, root: str, name: str, inputs: dict[str, Any] | None = None) -> str:
    """Write `ds` (computing any dask arrays) as analysis/<name>.zarr, replacing an older one atomically."""
    final = Layout(root).analysis(name)
    ds = ds.copy()
    ds.attrs = {**ds.attrs, "inputs": inputs or {}}
    keys = CHUNK_KEYS[1] if _chunk_keys(final) == CHUNK_KEYS[0] else CHUNK_KEYS[0]
    encoding = {k: {"chunk_key_encoding": keys} for k in ds.variables}

    def build(tmp_url: str) -> None:
        with quiet_zarr():
            ds.to_zarr(zarr_location(tmp_url), mode="w", zarr_format=3, consolidated=True, encoding=encoding)

    publish_folder(final, build, ZARR_MARKER)
    return final


def _root_meta(url: str) -> dict[str, Any] | None:
    """The root zarr.json of the published result at `url` (attributes and consolidated metadata), or None."""
    fs, path = filesystem(url)
    try:
        return json.loads(fs.cat_file(join(path, ZARR_MARKER)))
    except FileNotFoundError:
        return None


def _chunk_keys(url: str) -> dict[str, str] | None:
    """The chunk key layout of the published result at `url` (one of CHUNK_KEYS), or None when there is none."""
    meta = _root_meta(url) or {}
    for array in meta.get("consolidated_metadata", {}).get("metadata", {}).values():
        if "chunk_key_encoding" in array:
            enc = array["chunk_key_encoding"]
            return {"name": enc["name"], "separator": enc.get("configuration", {}).get("separator", "/")}
    return None


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
    meta = _root_meta(Layout(root).analysis(name))
    return None if meta is None else dict(meta.get("attributes", {}).get("inputs", {}))
