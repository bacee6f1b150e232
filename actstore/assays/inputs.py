"""What assays share about their inputs: stores opened lazily, records as plain JSON (so a fresh record compares
equal to one read back from Zarr attrs), and laying per-model values out on the (arch, seed) grid."""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import xarray as xr

from actstore.store.paths import ZARR_MARKER, Layout
from actstore.store.root import filesystem, join


def open_input_store(root: str, name: str) -> xr.Dataset | None:
    """The lazy store `<root>/<name>.zarr` via actstore.open_store, or None when it does not exist yet."""
    from actstore.store import open_store

    fs, path = filesystem(Layout(root).store(name))
    return open_store(name, root) if fs.exists(join(path, ZARR_MARKER)) else None


def as_json(inputs: dict[str, Any]) -> dict[str, Any]:
    """Inputs as they read back from Zarr attrs (tuples as lists), so a fresh record compares equal."""
    return json.loads(json.dumps(inputs, default=str))


def stack_models(var: xr.DataArray, models: list[tuple[str, int]]) -> xr.DataArray:
    """`var` for the given models along a new leading `model` dim (still lazy)."""
    pick = var.sel(arch=xr.DataArray([a for a, _ in models], dims="model"),
                   seed=xr.DataArray([s for _, s in models], dims="model"))
    return pick.drop_vars(["arch", "seed"]).transpose("model", ...)


def model_units(ds: xr.Dataset, space: str, models: list[tuple[str, int]]) -> xr.DataArray:
    """One space of the given models, lazily, along a `model` dim (arch and seed kept as its coords, so results
    unstack back to the grid) with its unit dim named `unit`; the store's per-arch coords (width, depth,
    module) are dropped."""
    pick = {"arch": xr.DataArray([a for a, _ in models], dims="model"),
            "seed": xr.DataArray([s for _, s in models], dims="model")}
    var = ds[space].sel(**pick).rename({ds.attrs["spaces"][space][-1]: "unit"})
    return var.drop_vars([c for c, v in var.coords.items() if c not in var.dims and "model" in v.dims
                          and c not in ("arch", "seed")])


def on_grid(result: xr.Dataset, archs: list[str], seeds: list[int], fill: Any = None) -> xr.Dataset:
    """A result along `model` (arch, seed coords, as model_units gives) back on the dense (arch, seed, ...) grid,
    models without a result filled with `fill` (NaN by default, or per variable), arch as variable-length text."""
    out = result.set_index(model=["arch", "seed"]).unstack("model")
    out = out.reindex(arch=archs, seed=seeds, **({} if fill is None else {"fill_value": fill}))
    out = out.transpose("arch", "seed", ...)
    out["arch"] = out["arch"].astype(object)  # no unstable fixed-width Zarr v3 string dtype
    return out


def seed_view(ds: xr.Dataset, seed: int) -> xr.Dataset:
    """The store as the models of one seed saw it: stimulus variables (those without an arch dim) at that seed's
    own draw, model variables with a seed dim of length 1."""
    view = ds.sel(seed=[seed])
    drawn = [k for k, v in view.variables.items() if "seed" in v.dims and "arch" not in v.dims and k != "seed"]
    own = {k: view[k].isel(seed=0, drop=True).variable for k in drawn}
    out = view.drop_vars(drawn)
    return out.assign_coords({k: v for k, v in own.items() if k in ds.coords}).assign(
        {k: v for k, v in own.items() if k not in ds.coords})


def per_draw(ds: xr.Dataset, models: list[tuple[str, int]],
             run_seed: int) -> list[tuple[xr.Dataset, list[tuple[str, int]], int]]:
    """(view, its models, its draw seed) for each stimulus draw of a store: one per model seed when the store's
    stimuli are drawn per seed (seed_view), else the whole store with every model and the run seed."""
    if ds.attrs.get("stimulus_draws") != "per_seed":
        return [(ds, models, run_seed)]
    seeds = [int(s) for s in ds["seed"].values]
    return [(seed_view(ds, s), mine, int(ds.attrs["draw_seeds"][k])) for k, s in enumerate(seeds)
            if (mine := [m for m in models if m[1] == s])]


def model_grid(values: np.ndarray, models: list[tuple[str, int]], archs: list[str], seeds: list[int]) -> np.ndarray:
    """Per-model values (M, ...) placed on the dense (arch, seed, ...) grid; models not given are NaN."""
    out = np.full((len(archs), len(seeds), *np.shape(values)[1:]), np.nan)
    for m, (a, s) in enumerate(models):
        out[archs.index(a), seeds.index(s)] = values[m]
    return out


def text_as_objects(ds: xr.Dataset) -> xr.Dataset:
    """Fixed-width text variables and coords as objects, which Zarr v3 stores as its stable `string` type."""
    names = [k for k, v in ds.variables.items() if v.dtype.kind == "U"]
    return ds.assign_coords({k: ds[k].astype(object) for k in names if k in ds.coords}).assign(
        {k: ds[k].astype(object) for k in names if k not in ds.coords})


def unit_spaces(ds: xr.Dataset) -> list[str]:
    """The store's spaces of twin units with one value per unit and stimulus: every space but the GRU state and
    the readout spaces (those hold predicted neurons: the fidelity assay's)."""
    readout = set(ds.attrs.get("readout", {}).get("spaces", {}).values())
    return [name for name in ds.attrs["spaces"] if name != "gru" and name not in readout]
