"""Activation stores: one Zarr v3 group per stimulus set under the root, opened lazily with xarray."""
from __future__ import annotations

from typing import TYPE_CHECKING

from actstore.errors import UserError
from actstore.store.paths import ZARR_MARKER, Layout
from actstore.store.root import filesystem, join, zarr_location

if TYPE_CHECKING:
    import xarray as xr


def open_store(name: str, root: str = "stores") -> "xr.Dataset":
    """The store of stimulus set `name` as a lazy Dataset; feature values of models not marked complete
    (never written, or interrupted mid-write) read as NaN."""
    import xarray as xr

    from actstore.store.zarrstore import quiet_zarr

    url = Layout(root).store(name)
    fs, path = filesystem(url)
    if not fs.exists(join(path, ZARR_MARKER)):
        raise UserError(f"{url}: no such store; run `actstore extract --recipe {name}` first")
    with quiet_zarr():
        ds = xr.open_zarr(zarr_location(url), consolidated=True)
    for space in ds.attrs["spaces"]:
        ds[space] = ds[space].where(ds["complete"])
    return ds
