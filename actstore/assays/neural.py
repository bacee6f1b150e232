"""Neural scoring as an assay: the zoo's table of neural prediction, `analysis/neural.zarr`, re-assembled from the
scores training wrote into each checkpoint's metadata (model.json).

It reads only that metadata, so it covers every trained zoo model without loading any of them, and deciding
that it is up to date needs no torch. `actstore train` reconciles it after training.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from actstore.assays.base import Assay, Sources, Zoo
from actstore.catalog import Catalog
from actstore.models.checkpoint import read_meta
from actstore.store.paths import META, Layout
from actstore.store.root import filesystem, join

# bump when the metrics change: existing checkpoints are then re-scored, not retrained (5: per-neuron r and ceiling)
SCORING_VERSION = 5


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


def neural_dataset(zoo: Zoo, params: dict[str, Any], metas: dict[tuple[str, int], dict[str, Any]]) -> xr.Dataset:
    """Dims (arch, seed, mouse[, neuron]) over the zoo; models without a scored checkpoint are NaN, complete False."""
    archs, seeds, mice = zoo.archs, zoo.seeds, params["mice"]
    shape = (len(archs), len(seeds), len(mice))
    values = {k: np.full(shape, np.nan) for k in ("r_neuron", "r_neuron_se", "n_neurons", "xu_smoothed_r",
                                                  "xu_smoothed_r_se", "r_overall", "ceiling_fraction")}
    ceiling = np.full(len(mice), np.nan)
    complete = np.zeros(shape[:2], dtype=bool)
    width = max((len(m["provenance"]["neural"].get(mouse, {}).get("neuron_r", [])) for m in metas.values()
                 for mouse in mice), default=0)
    neuron_r = np.full((*shape, width), np.nan)  # mice differ in neuron count: NaN beyond a mouse's own
    neuron_ceiling = np.full((len(mice), width), np.nan)
    recorded = np.zeros(len(mice), dtype=np.int64)
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
            per_neuron = np.asarray(score.get("neuron_r", []), dtype=np.float64)
            neuron_r[i, j, k, :len(per_neuron)] = per_neuron
            recorded[k] = len(per_neuron)
            ceil = np.asarray(score.get("neuron_ceiling", []), dtype=np.float64)
            neuron_ceiling[k, :len(ceil)] = ceil
    dims = ("arch", "seed", "mouse")
    ds = xr.Dataset(
        {name: (dims, array) for name, array in values.items()},
        coords={"arch": np.array(archs, dtype=object), "seed": seeds, "mouse": np.array(mice, dtype=object),
                "neuron": np.arange(width)},
    )
    ds["neuron_r"] = ((*dims, "neuron"), neuron_r)
    ds["neuron_ceiling"] = (("mouse", "neuron"), neuron_ceiling)
    ds["recorded_neurons"] = ("mouse", recorded)  # the neuron dim's padding beyond a mouse's own is not a neuron
    ds["neuron_r"].attrs["long_name"] = "each neuron's chunked test r (the error profile); NaN beyond a mouse's neurons"
    ds["neuron_ceiling"].attrs["long_name"] = "each neuron's noise ceiling of the same score; NaN without ground truth"
    ds["neural_r"] = ds["r_neuron"].mean("mouse")
    ds["ceiling"] = ("mouse", ceiling)
    ds["complete"] = (("arch", "seed"), complete)
    ds["r_neuron"].attrs["long_name"] = "per-neuron test r inside chunks, mean over chunks then neurons"
    ds["xu_smoothed_r"].attrs["long_name"] = (
        "per-neuron r over the whole scored test set after a box smoothing of prediction and counts "
        f"({params['smoothing_bins']} bins, inside each contiguous piece), mean over neurons: "
        "the score of Xu et al.'s Table 2")
    ds["xu_smoothed_neural_r"] = ds["xu_smoothed_r"].mean("mouse")
    ds["ceiling"].attrs["long_name"] = "the same score of the true rates (noise ceiling); NaN without ground truth"
    ds.attrs["chunk_samples"] = params["chunk_samples"]
    return ds


class Neural(Assay):
    """Per-neuron test prediction of every trained zoo twin, per mouse, from its checkpoint's scores."""

    name = "neural"
    version = f"neural/{SCORING_VERSION}"
    summary = "neural prediction: per-neuron test r per mouse, fraction of the noise ceiling, usable twins"
    position = 10
    columns = {"prediction": ("neural_r",)}
    errors = {"neural_r": False}  # every seed is scored on the same recorded neurons

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> Neural:
        return cls(mice=list(catalog["data"]["sessions"]), smoothing_bins=int(catalog["evaluation"]["smoothing_bins"]),
                   chunk_samples=int(catalog["evaluation"]["chunk_samples"]))

    def open(self, catalog: Catalog, root: str) -> Sources:
        return Sources(Zoo.of(catalog), root, extra={"metas": _existing_metas(catalog, root)})

    def fingerprint(self, sources: Sources) -> dict[str, Any]:
        return {f"{a}-s{s}": m["sha256"] for (a, s), m in sorted(sources.extra["metas"].items())}

    def compute(self, sources: Sources) -> tuple[xr.Dataset, list[str]]:
        metas = sources.extra["metas"]
        return neural_dataset(sources.zoo, self.params, metas), [f"neural: scores of {len(metas)} models"]

    @classmethod
    def model_columns(cls, result: xr.Dataset) -> xr.Dataset:
        from actstore.analysis.stats import neural_r_error

        out = super().model_columns(result)
        if "r_neuron_se" in result:
            out = out.merge(neural_r_error(result))
        if "ceiling_fraction" in result:
            out["ceiling_fraction"] = result["ceiling_fraction"].mean("mouse")
        return out

    def report(self, found, sections, figures) -> None:
        from actstore.report import sections as rs

        rs.neural(found, sections, figures)
