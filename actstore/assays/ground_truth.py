"""Ground truth as an assay: the tuning assay run on the synthetic mouse's own neurons -> analysis/ground_truth.zarr.

Each session's oracle sees exactly the catalog's tuning_grid stimuli and is measured with the same
`actstore.analysis.tuning.measure` (and settings) as the twins, beside each neuron's true parameters
(`true_<param>`), on dims (mouse, neuron) (`recorded_neurons` per mouse; beyond it, padding). The report shows
how well the assay recovers known preferred orientation, spatial frequency and cell type; the fidelity assay
compares the twins' predicted neurons with these. Recordings without ground truth (real data) skip it.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from actstore.analysis.tuning import GRID_DIMS, measure
from actstore.assays.base import Assay, Sources, Zoo
from actstore.catalog import Catalog
from actstore.errors import UserError

STORE = "tuning_grid"
TRUE_PARAMS = ("cell_type", "ori_deg", "sf_cpp", "c50")


def oracle_responses(oracle, stimulus: xr.DataArray) -> xr.DataArray:
    """The oracle's expected counts for every grating of the grid: (*GRID_DIMS, unit)."""
    grid = stimulus.transpose(*GRID_DIMS, "y", "x")
    images = grid.values.reshape(-1, *grid.shape[-2:])
    counts = oracle.respond(images).reshape(*grid.shape[:-2], oracle.n_neurons)
    coords = {d: grid[d].values for d in GRID_DIMS} | {"unit": np.arange(oracle.n_neurons)}
    return xr.DataArray(counts.astype(np.float64), dims=(*GRID_DIMS, "unit"), coords=coords)


def session_truth(ds: xr.Dataset, mouse: str) -> tuple[xr.Dataset, pd.DataFrame]:
    """One session's measured tuning (dim `unit`, its own neurons only) and its true parameters as a table."""
    one = ds.sel(mouse=mouse).isel(neuron=slice(0, int(ds["recorded_neurons"].sel(mouse=mouse))))
    return one.rename(neuron="unit"), pd.DataFrame({name: one[f"true_{name}"].values for name in TRUE_PARAMS})


class GroundTruth(Assay):
    """The tuning assay on the reference session's true neurons, beside their true parameters."""

    name = "ground_truth"
    version = "ground_truth/1"
    summary = "ground truth: the tuning assay on the synthetic mouse's own neurons, beside their true tuning"
    position = 15

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> GroundTruth:
        return cls(sessions=list(catalog["data"]["sessions"]), reference=catalog["data"]["reference_session"],
                   tuning=dict(catalog["analysis"]["tuning"]))

    def open(self, catalog: Catalog, root: str) -> Sources:
        from actstore.data import data_fingerprint

        extra: dict[str, Any] = {"catalog": catalog, "why": None}
        if catalog["data"]["source"] != "synthetic":
            extra["why"] = "only the synthetic mouse has ground truth (catalog data.source: synthetic); skipped"
        else:
            try:
                extra["data"] = data_fingerprint(catalog, root)
            except UserError as e:
                extra["why"] = f"no prepared data ({e}); skipped"
            extra["recipe"] = catalog.recipe(STORE)
        return Sources(Zoo.of(catalog), root, extra=extra)

    def skip(self, sources: Sources) -> str | None:
        return sources.extra["why"]

    def fingerprint(self, sources: Sources) -> dict[str, Any]:
        return {"data": sources.extra["data"], "recipe": sources.extra["recipe"]}

    def compute(self, sources: Sources) -> tuple[xr.Dataset, list[str]]:
        from actstore.data import Oracle, load_sessions
        from actstore.stimuli import generate

        catalog, recipe = sources.extra["catalog"], sources.extra["recipe"]
        sessions = load_sessions(catalog, sources.root)
        stimulus = generate(recipe, sources.zoo.run_seed)["stimulus"]
        parts, counts = [], []
        for mouse in self.params["sessions"]:
            oracle = Oracle.from_session(sessions[mouse])
            measured = measure(oracle_responses(oracle, stimulus), main_contrast=float(recipe.get("main_contrast", 1.0)),
                               **self.params["tuning"]).compute()
            for name in TRUE_PARAMS:
                values = oracle.params[name].to_numpy()
                measured[f"true_{name}"] = ("unit", values.astype(object) if values.dtype.kind in "OU" else values)
            parts.append(measured.rename(unit="neuron").assign_coords(neuron=np.arange(oracle.n_neurons)))
            counts.append(oracle.n_neurons)
        fill = {k: False if v.dtype == bool else "" if v.dtype.kind in "OU" else np.nan
                for k, v in parts[0].data_vars.items()}  # mice with fewer neurons: padding that stays its type
        out = xr.concat(parts, dim="mouse", join="outer", fill_value=fill)
        out = out.assign_coords(mouse=np.array(self.params["sessions"], dtype=object))
        out["recorded_neurons"] = ("mouse", np.array(counts, dtype=np.int64))
        out.attrs["reference_session"] = self.params["reference"]
        passing = int(out["qc_orientation"].sum())
        return out, [f"ground_truth: {sum(counts)} true neurons of {len(counts)} sessions, {passing} pass "
                     f"orientation QC"]

    def report(self, found, sections, figures) -> None:
        from actstore.report import sections as rs

        rs.ground_truth(found, sections, figures)
