"""`actstore analyze tuning`: the tuning assay (design 6.2) of every complete model's units in every static space
of the tuning grid (the encoder output and each layer space), as one Dask computation per space for the whole zoo
-> analysis/tuning.zarr (dims arch, seed, space, unit), with the per-model summaries of `model_summaries` (c50
median without fits at a bound, their fraction, F1/F0 medians under the applied and the written phase QC) on
(arch, seed, space). `width` (space, arch) says how many units of a space an arch has (the rest are padding), and
`depth` (space, arch) its relative depth (the encoder output is 1). The cross-model endpoints read the encoder
output (`encoder_units`).

Up to date (base.reconcile) when the store's ledger fingerprint (recipe, every model's checkpoint and feature
checksums) and the catalog's analysis.tuning settings are those the existing result records.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from actstore.analysis.stats import TUNING_SUMMARIES, tuning_medians
from actstore.analysis.tuning import FLAGS, measure, model_summaries
from actstore.assays.base import Assay, Sources
from actstore.assays.inputs import model_units, on_grid, unit_spaces

VERSION = "tuning/4"
STORE = "tuning_grid"


class Tuning(Assay):
    """The tuning assay of every complete model's units in every static space of the tuning grid."""

    name = "tuning"
    version = VERSION
    summary = "orientation selectivity, phase sensitivity, SF and contrast-response fits per unit and space"
    position = 20
    stores = (STORE,)
    columns = {"tuning": tuple(TUNING_SUMMARIES)}
    errors = dict.fromkeys(TUNING_SUMMARIES, True)  # bootstrap over each seed's own units
    pairs = (("prediction", "tuning"), ("tuning", "probes"))

    def compute(self, sources: Sources) -> tuple[xr.Dataset, list[str]]:
        ds = sources.stores[STORE]
        result = measure_zoo(ds, self.params, float(ds.attrs.get("main_contrast", 1.0)))
        spaces = [str(v) for v in result["space"].values]
        passing = {f: int(result[f].sel(space="encoder").sum()) for f in FLAGS}
        models = int(result["complete"].sum())
        return result, [f"tuning: {models} models x spaces {', '.join(spaces)}; encoder units: "
                        + ", ".join(f"{k} {v}" for k, v in passing.items())]

    @classmethod
    def model_columns(cls, result: xr.Dataset) -> xr.Dataset:
        return tuning_medians(result)

    def report(self, found, sections, figures) -> None:
        from actstore.report import sections as rs

        rs.tuning(found, sections, figures)


def measure_zoo(ds: xr.Dataset, settings: dict, main_contrast: float) -> xr.Dataset:
    """The assay of the complete models' units in every static space, on the store's (arch, seed, space) grid."""
    done = ds["complete"].values.astype(bool)
    archs, seeds = [str(a) for a in ds["arch"].values], [int(s) for s in ds["seed"].values]
    models = [(archs[i], seeds[j]) for i, j in zip(*np.nonzero(done))]
    results, widths, depths = [], [], []
    for space in unit_spaces(ds):
        picked = model_units(ds, space, models)  # the store's per-arch coords come back as width, depth
        results.append(measure(picked, main_contrast=main_contrast, **settings).compute())
        width = ds.get(f"{space}_width")
        widths.append(np.full(len(archs), picked.sizes["unit"]) if width is None else width.values)
        depth = ds.get(f"{space}_depth")
        depths.append(np.ones(len(archs)) if depth is None else depth.values)
    fill = {name: (False if name in FLAGS else np.nan) for name in results[0].data_vars}
    result = xr.concat(results, dim=pd.Index(unit_spaces(ds), name="space"), join="outer", fill_value=fill)
    result = on_grid(result, archs, seeds, fill).transpose("arch", "seed", "space", "unit", ...)
    result = result.merge(model_summaries(result))
    result["complete"] = (("arch", "seed"), done)
    result["width"] = (("space", "arch"), np.asarray(widths, dtype=np.int64))
    result["depth"] = (("space", "arch"), np.asarray(depths, dtype=np.float64))
    result["space"] = result["space"].astype(object)
    return result
