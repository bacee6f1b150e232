"""The zoo's table of neural prediction, `analysis/neural.zarr`, re-assembled from the checkpoints that exist.

It reads only checkpoint metadata (model.json), so it covers every trained zoo model without
loading any of them, and deciding that it is up to date needs no torch.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from actstore.catalog import Catalog
from actstore.models.checkpoint import read_meta
from actstore.store.analysis import analysis_inputs, write_analysis
from actstore.store.paths import META, Layout
from actstore.store.root import filesystem, join

SCORING_VERSION = 4  # bump when the metrics change: existing checkpoints are then re-scored, not retrained


def _existing_metas(catalog: Catalog, root: str) -> dict[tuple[str, int], dict[str, Any]]:
    metas = {}
    for arch, seed in catalog.models:
        folder = Layout(root).model(arch, seed)
        fs, path = filesystem(join(folder, META))
        if fs.exists(path):
            meta = read_meta(folder)
            if "neural" in meta.get("provenance", {}):
                metas[(arch, seed)] = meta
    return metas


def neural_dataset(catalog: Catalog, metas: dict[tuple[str, int], dict[str, Any]]) -> xr.Dataset:
    """Dims (arch, seed, mouse) over the catalog's zoo; models without a checkpoint are NaN, complete False."""
    archs, seeds = catalog["zoo"]["archs"], catalog["zoo"]["seeds"]
    mice = list(catalog["data"]["sessions"])
    shape = (len(archs), len(seeds), len(mice))
    values = {k: np.full(shape, np.nan) for k in ("r_neuron", "r_neuron_se", "n_neurons", "xu_smoothed_r",
                                                  "xu_smoothed_r_se", "r_overall", "ceiling_fraction")}
    ceiling = np.full(len(mice), np.nan)
    complete = np.zeros(shape[:2], dtype=bool)
    for (arch, seed), meta in metas.items():
        i, j = archs.index(arch), seeds.index(seed)
        complete[i, j] = True
        for k, mouse in enumerate(mice):
            score = meta["provenance"]["neural"].get(mouse)
            if score is None:
                continue
            for name, array in values.items():
                array[i, j, k] = score.get(name, np.nan)  # scores older than SCORING_VERSION 4 lack some
            ceiling[k] = score["ceiling"]
    dims = ("arch", "seed", "mouse")
    ds = xr.Dataset(
        {name: (dims, array) for name, array in values.items()},
        coords={"arch": np.array(archs, dtype=object), "seed": seeds, "mouse": np.array(mice, dtype=object)},
    )
    ds["neural_r"] = ds["r_neuron"].mean("mouse")
    ds["ceiling"] = ("mouse", ceiling)
    ds["complete"] = (("arch", "seed"), complete)
    ds["r_neuron"].attrs["long_name"] = "per-neuron test r inside chunks, mean over chunks then neurons"
    ds["xu_smoothed_r"].attrs["long_name"] = (
        "per-neuron r over the whole scored test set after a box smoothing of prediction and counts "
        f"({int(catalog['evaluation']['smoothing_bins'])} bins, inside each contiguous piece), mean over neurons: "
        "the score of Xu et al.'s Table 2")
    ds["xu_smoothed_neural_r"] = ds["xu_smoothed_r"].mean("mouse")
    ds["ceiling"].attrs["long_name"] = "the same score of the true rates (noise ceiling); NaN without ground truth"
    ds.attrs["chunk_samples"] = int(catalog["evaluation"]["chunk_samples"])
    return ds


def write_neural(catalog: Catalog, root: str) -> str:
    """(Re)write analysis/neural.zarr from every zoo checkpoint that exists; 'up to date' when none changed."""
    metas = _existing_metas(catalog, root)
    inputs = {f"{a}-s{s}": m["sha256"] for (a, s), m in sorted(metas.items())}
    inputs["zoo"] = [catalog["zoo"]["archs"], catalog["zoo"]["seeds"], catalog["data"]["sessions"]]
    if analysis_inputs(root, "neural") == inputs:
        return "neural: up to date"
    write_analysis(neural_dataset(catalog, metas), root, "neural", inputs)
    return f"neural: wrote analysis/neural.zarr ({len(metas)} models)"
