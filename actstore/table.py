"""The units table: one row per (arch, seed, space, unit) with every tuning metric, flag and model-level score
(`actstore.units`); a space's padding beyond an arch's own width has no rows. Its columns come from every
assay of the registry that gives the stats table columns: their per-unit variables (dims arch, seed, space,
unit) and their per-model scalars. The neurons table is its recorded-neuron counterpart (`actstore.neurons`)."""
from __future__ import annotations

import pandas as pd
import xarray as xr

from actstore.assays.stats import contributors
from actstore.catalog import Catalog
from actstore.errors import UserError
from actstore.store.analysis import open_analysis
from actstore.store.paths import Layout

KEYS = ["arch", "seed", "space", "unit"]
NEURON_KEYS = ["arch", "seed", "mouse", "neuron"]


def units(root: str = "stores", catalog: Catalog | None = None) -> pd.DataFrame:
    """The units table; with a catalog, only its zoo's models. UserError when tuning has not been run."""
    tuning = open_analysis(root, "tuning")
    if tuning is None:
        raise UserError(f"{Layout(root).analysis('tuning')}: not found; run `actstore analyze tuning` first")
    scalars = [name for name, v in tuning.data_vars.items() if set(v.dims) == set(KEYS)]
    table = tuning[scalars].transpose(*KEYS).to_dataframe().reset_index()
    per_space = tuning[["width", "depth"]].to_dataframe().reset_index()  # depth: relative depth in the encoder
    table = table.merge(per_space, on=["space", "arch"])
    table = table[table["unit"] < table.pop("width")]
    done = tuning["complete"].to_dataframe().reset_index()
    table = table.merge(done[done["complete"]][["arch", "seed"]], on=["arch", "seed"])
    for name in [cls.output for cls in contributors()]:
        ds = tuning if name == "tuning" else open_analysis(root, name)
        per_unit = [] if ds is None or name == "tuning" else [
            v for v, da in ds.data_vars.items() if set(da.dims) == set(KEYS) and v not in table.columns]
        if per_unit:
            frame = ds[per_unit].transpose(*KEYS).to_dataframe().reset_index()
            frame["arch"], frame["space"] = frame["arch"].astype(str), frame["space"].astype(str)
            table = table.merge(frame, on=KEYS, how="left")
        scores = model_scores(ds, name, taken=set(table.columns))
        if scores is not None:
            table = table.merge(scores, on=[k for k in ("arch", "seed", "space") if k in scores.columns], how="left")
    if catalog is not None:
        zoo = pd.DataFrame(catalog.models, columns=["arch", "seed"])
        table = table.merge(zoo, on=["arch", "seed"])
    table["arch"] = table["arch"].astype(str)
    table["space"] = table["space"].astype(str)
    table["seed"] = table["seed"].astype(int)
    return table.sort_values(KEYS, kind="stable").reset_index(drop=True)


def model_scores(ds: xr.Dataset | None, name: str, taken: set[str]) -> pd.DataFrame | None:
    """The (arch, seed[, space]) scalars of one analysis as columns (averaged over mice where per mouse).

    Neural columns are prefixed `neural_` (r_overall -> neural_r_overall); others keep their names
    unless that would clash with an existing column, then they get the analysis name as prefix.
    """
    if ds is None:
        return None
    keep = {}
    for var, da in ds.data_vars.items():
        if var != "complete" and {"arch", "seed"} <= set(da.dims) <= {"arch", "seed", "space", "mouse"}:
            col = var if var.startswith(f"{name}_") or (name != "neural" and var not in taken) else f"{name}_{var}"
            keep[col] = da.mean("mouse") if "mouse" in da.dims else da
    if not keep:
        return None
    frame = xr.Dataset(keep).transpose("arch", "seed", ...).to_dataframe().reset_index()
    frame["arch"] = frame["arch"].astype(str)
    keys = ["arch", "seed", *(["space"] if "space" in frame.columns else [])]
    return frame[[*keys, *keep]]


def neurons(root: str = "stores", catalog: Catalog | None = None) -> pd.DataFrame:
    """The neurons table, the recorded-neuron counterpart of the units table: one row per (arch, seed, mouse,
    neuron) of every scored model with the neuron's test r (`neuron_r`), its noise ceiling and their ratio, and
    the model's neural scores; with a catalog, only its zoo's models. UserError when no model is scored."""
    neural = open_analysis(root, "neural")
    if neural is None or "neuron_r" not in neural:
        raise UserError(f"{Layout(root).analysis('neural')}: no per-neuron scores; run `actstore train` first")
    table = neural["neuron_r"].to_dataframe().reset_index()
    ceiling = neural[["neuron_ceiling"]].to_dataframe().reset_index()
    table = table.merge(ceiling, on=["mouse", "neuron"])
    recorded = neural["recorded_neurons"].to_dataframe().reset_index()
    table = table.merge(recorded, on="mouse")
    table = table[table["neuron"] < table.pop("recorded_neurons")]  # the padding of mice with fewer neurons
    table["neuron_ceiling_fraction"] = table["neuron_r"] / table["neuron_ceiling"]
    done = neural["complete"].to_dataframe().reset_index()
    table = table.merge(done[done["complete"]][["arch", "seed"]], on=["arch", "seed"])
    scores = model_scores(neural, "neural", taken=set(table.columns))
    if scores is not None:
        table = table.merge(scores, on=["arch", "seed"], how="left")
    if catalog is not None:
        table = table.merge(pd.DataFrame(catalog.models, columns=["arch", "seed"]), on=["arch", "seed"])
    for key, kind in (("arch", str), ("mouse", str), ("seed", int), ("neuron", int)):
        table[key] = table[key].astype(kind)
    return table.sort_values(NEURON_KEYS, kind="stable").reset_index(drop=True)
