"""`actstore analyze sparseness`: lifetime and population sparseness of every complete model's units over the
tuning grid's gratings, in every static space -> analysis/sparseness.zarr.

The Treves-Rolls measure as normalized by Vinje & Gallant (2000), S = (1 - (mean r)^2 / mean r^2) / (1 - 1/n),
is 0 for a response equal everywhere and 1 for one that is nonzero at a single one of n points. It is defined
for non-negative rates; twin units carry arbitrary offsets and signs, so each unit's responses are taken
relative to its own minimum over the grid. Both run over the grid's distinct stimuli: every grating of nonzero
contrast and the blank once (the contrast-0 entries are one gray frame, repeated over orientation, SF and phase;
counted each time it would weigh a unit's blank response hundreds of times and tie the population median).
Lifetime sparseness is over a unit's n stimuli; population
sparseness is over a stimulus's n responsive units (range over the grid above `responsive_ptp`, the tuning
assay's responsiveness rule; the rest, and a space's padding, are left out), and a model's value is its median
over the gratings. Per model and space: `lifetime_sparseness` per unit, `population_sparseness` per grating,
their medians `lifetime_sparseness_median` (over the responsive units) and `population_sparseness_median`
with their n and bootstrap SE (`_se`: over the units, over the gratings); the cross-model table takes the
encoder output's.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from actstore.analysis.stats import median_se
from actstore.analysis.tuning import GRID_DIMS
from actstore.assays.base import Assay, Sources
from actstore.assays.inputs import model_units, on_grid, unit_spaces
from actstore.store.ledger import complete_models

STORE = "tuning_grid"


def treves_rolls(r: xr.DataArray, dim: str) -> xr.DataArray:
    """Normalized sparseness of non-negative `r` over `dim` (NaN where r is all zero or NaN along it); NaN
    entries are left out, and n counts the rest."""
    n = r.notnull().sum(dim)
    power = (r**2).mean(dim)
    ratio = r.mean(dim) ** 2 / power.where(power > 0)
    return ((1 - ratio) / (1 - 1 / n.where(n > 1))).where(ratio > 0)


def distinct_stimuli(responses: xr.DataArray) -> xr.DataArray:
    """(..., *GRID_DIMS, unit) responses stacked to (..., unit, grating) over the grid's distinct stimuli: every
    grating of nonzero contrast, and of the contrast-0 entries (one gray frame) only the first."""
    grid = responses.stack(grating=list(GRID_DIMS))
    blank = np.asarray(grid["contrast"].values == 0)
    keep = ~blank
    keep[np.flatnonzero(blank)[:1]] = True
    return grid.isel(grating=np.flatnonzero(keep))


def sparseness(responses: xr.DataArray, responsive_ptp: float) -> xr.Dataset:
    """Lifetime sparseness per unit and population sparseness per stimulus of (..., *GRID_DIMS, unit) responses
    over the grid's distinct stimuli, each relative to the unit's minimum; units with a range of at most
    `responsive_ptp` are out."""
    grid = distinct_stimuli(responses)
    lo, hi = grid.min("grating"), grid.max("grating")
    shifted = (grid - lo).where(hi - lo > responsive_ptp)
    return xr.Dataset({"lifetime_sparseness": treves_rolls(shifted, "grating"),
                       "population_sparseness": treves_rolls(shifted, "unit").reset_index("grating", drop=True)})


class Sparseness(Assay):
    """Lifetime and population sparseness of every complete model's units, per static space."""

    name = "sparseness"
    version = "sparseness/3"  # 2: the medians' bootstrap SEs; 3: the blank counted once
    summary = "lifetime and population sparseness (Treves-Rolls, Vinje & Gallant) per unit and space"
    position = 50
    stores = (STORE,)
    columns = {"sparseness": ("lifetime_sparseness_median", "population_sparseness_median")}
    # each seed's own units (independent); every seed's population median over the same gratings (not)
    errors = {"lifetime_sparseness_median": True, "population_sparseness_median": False}
    pairs = (("prediction", "sparseness"),)

    def __init__(self, responsive_ptp: float = 1e-3) -> None:
        super().__init__(responsive_ptp=responsive_ptp)

    def compute(self, sources: Sources) -> tuple[xr.Dataset, list[str]]:
        ds, zoo = sources.stores[STORE], sources.zoo
        models = complete_models(sources.ledgers[STORE], zoo.models)
        spaces = unit_spaces(ds)
        parts = []
        for space in spaces:
            one = sparseness(model_units(ds, space, models).astype(np.float64), self.params["responsive_ptp"]).compute()
            parts.append(xr.Dataset({
                "lifetime_sparseness": one["lifetime_sparseness"],
                "lifetime_sparseness_median": one["lifetime_sparseness"].median("unit"),
                "lifetime_sparseness_median_se": median_se(one["lifetime_sparseness"], "unit"),
                "lifetime_sparseness_median_n": one["lifetime_sparseness"].notnull().sum("unit"),
                "population_sparseness": one["population_sparseness"],
                "population_sparseness_median": one["population_sparseness"].median("grating"),
                "population_sparseness_median_se": median_se(one["population_sparseness"], "grating"),
                "population_sparseness_median_n": one["population_sparseness"].notnull().sum("grating")}))
        result = xr.concat(parts, dim="space", join="outer").assign_coords(space=np.array(spaces, dtype=object))
        result = on_grid(result, zoo.archs, zoo.seeds).transpose("arch", "seed", "space", ...)
        enc = result.sel(space="encoder")
        return result, [f"sparseness: {len(models)} models x spaces {', '.join(spaces)}; encoder median lifetime "
                        f"{float(enc['lifetime_sparseness_median'].median()):.3f}, population "
                        f"{float(enc['population_sparseness_median'].median()):.3f}"]

    def report(self, found, sections, figures) -> None:
        from actstore.report.figures import figure
        from actstore.report.html import Section

        s = Section("sparseness", "Sparseness of encoder units",
                    "Lifetime sparseness (over the tuning grid's gratings, the blank counted once, per responsive "
                    "unit) and population sparseness (over the responsive units, per grating) of each twin's encoder "
                    "output, "
                    "Treves-Rolls as normalized by Vinje & Gallant (0: dense, 1: one response only), responses "
                    "relative to each unit's minimum. Box: quartiles over units (lifetime, seeds pooled) and over "
                    "gratings (population); n under each box.")
        if (ds := self.published(found, s, sections)) is None:
            return
        enc = ds.sel(space="encoder")
        archs = [str(a) for a in enc["arch"].values if np.isfinite(enc["lifetime_sparseness_median"].sel(arch=a)).any()]
        if not archs:
            s.notes.append("No model has a responsive encoder unit.")
            sections.append(s)
            return
        fig, axes = figure(1, 2, width=max(4.0, 0.6 * len(archs)), height=3.6)
        for ax, name, values in (
                (axes[0][0], "lifetime", [enc["lifetime_sparseness"].sel(arch=a).values.ravel() for a in archs]),
                (axes[0][1], "population", [enc["population_sparseness"].sel(arch=a).values.ravel() for a in archs])):
            kept = [v[np.isfinite(v)] for v in values]
            ax.boxplot(kept, showfliers=False)
            ax.set_xticks(range(1, len(archs) + 1), [f"{a}\nn={len(v)}" for a, v in zip(archs, kept)],
                          rotation=45, fontsize=7)
            ax.set_ylim(0, 1)
            ax.set_xlabel("architecture (encoder output)")
            ax.set_ylabel(f"{name} sparseness")
            ax.set_title("over units" if name == "lifetime" else "over gratings", fontsize=9)
        figures[s.key] = fig
        sections.append(s)
