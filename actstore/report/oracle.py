"""Ground truth for the report: the tuning assay run on the synthetic mouse's own neurons.

The oracle of the reference session sees exactly the catalog's tuning_grid stimuli and is measured
with the same `actstore.analysis.tuning.measure` (and settings) as the twins, so the report can show
how well the assay recovers known preferred orientation, spatial frequency and cell type.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from actstore.analysis.tuning import GRID_DIMS, measure
from actstore.catalog import Catalog
from actstore.errors import UserError

STORE = "tuning_grid"


def oracle_inputs(catalog: Catalog, root: str) -> dict[str, Any] | None:
    """What the ground-truth panel depends on (None when the data hold no synthetic truth or are not prepared)."""
    from actstore.data import data_fingerprint

    if catalog["data"]["source"] != "synthetic":
        return None
    try:
        fingerprint = data_fingerprint(catalog, root)
    except UserError:
        return None
    return {"data": fingerprint, "recipe": catalog.recipe_hash(STORE), "run_seed": catalog["run_seed"],
            "session": catalog["data"]["reference_session"], "tuning": catalog["analysis"]["tuning"]}


def oracle_responses(oracle, stimulus: xr.DataArray) -> xr.DataArray:
    """The oracle's expected counts for every grating of the grid: (*GRID_DIMS, unit)."""
    grid = stimulus.transpose(*GRID_DIMS, "y", "x")
    images = grid.values.reshape(-1, *grid.shape[-2:])
    counts = oracle.respond(images).reshape(*grid.shape[:-2], oracle.n_neurons)
    coords = {d: grid[d].values for d in GRID_DIMS} | {"unit": np.arange(oracle.n_neurons)}
    return xr.DataArray(counts.astype(np.float64), dims=(*GRID_DIMS, "unit"), coords=coords)


def oracle_tuning(catalog: Catalog, root: str) -> tuple[xr.Dataset, pd.DataFrame]:
    """(measured tuning per true neuron, their true parameters) for the reference session.
    UserError when the data hold no ground truth or the frames do not match the grid."""
    from actstore.data import Oracle, load_sessions
    from actstore.stimuli import generate

    session = load_sessions(catalog, root)[catalog["data"]["reference_session"]]
    oracle = Oracle.from_session(session)
    recipe = catalog.recipe(STORE)
    stimulus = generate(recipe, catalog["run_seed"])["stimulus"]
    measured = measure(oracle_responses(oracle, stimulus), main_contrast=float(recipe.get("main_contrast", 1.0)),
                       **catalog["analysis"]["tuning"])
    return measured.compute(), oracle.params
