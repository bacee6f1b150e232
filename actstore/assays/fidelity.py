"""`actstore analyze fidelity`: the grating experiment run on each twin instead of the mouse -> analysis/fidelity.zarr.

The tuning grid's `readout` spaces hold every twin's predicted response of every recorded neuron to every
grating (one space per mouse, unit = neuron). The tuning assay (the catalog's analysis.tuning settings) is run
on these predicted neurons and compared neuron by neuron with the same assay on the true neurons
(ground_truth.zarr), by analysis.fidelity: preferred-orientation error (deg), preferred-SF error (octaves),
simple/complex agreement, c50 error and the gOSI correlation, per mouse and pooled over mice, each with its n
(and the first four with an SE: bootstrap over the neurons for medians, binomial for the agreement).
Only the synthetic mouse has true neurons; recordings without them skip this assay.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from actstore.analysis.fidelity import fidelity, summaries
from actstore.analysis.tuning import measure
from actstore.assays.base import Assay, Sources
from actstore.assays.inputs import model_units, on_grid
from actstore.assays.ground_truth import session_truth
from actstore.catalog import Catalog
from actstore.store.ledger import complete_models

STORE = "tuning_grid"


class Fidelity(Assay):
    """Per twin and recorded neuron: how well the twin's predicted tuning matches the neuron's true tuning."""

    name = "fidelity"
    version = "fidelity/2"  # 2: <summary>_se
    summary = "in-silico fidelity: the tuning assay on each twin's predicted neurons vs the true neurons"
    position = 25
    stores = (STORE,)
    analyses = ("ground_truth",)
    columns = {"fidelity": ("ori_error_median", "sf_error_median", "simple_complex_agreement")}
    errors = dict.fromkeys(columns["fidelity"], False)  # every seed is compared on the same recorded neurons
    pairs = (("prediction", "fidelity"),)

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> Fidelity:
        return cls(tuning=dict(catalog["analysis"]["tuning"]))

    def skip(self, sources: Sources) -> str | None:
        why = super().skip(sources)
        if why is not None:
            return why
        if sources.recorded["ground_truth"] is None:
            return "no ground_truth.zarr (only the synthetic mouse has true neurons); skipped"
        if not sources.ledgers[STORE].attrs.get("readout"):
            return (f"{STORE}.zarr holds no readout spaces; skipped (rerun `actstore extract --recipe {STORE} "
                    "--rebuild` with spaces.readout_recipes naming it)")
        return None

    def compute(self, sources: Sources) -> tuple[xr.Dataset, list[str]]:
        ds, truth, zoo = sources.stores[STORE], sources.analyses["ground_truth"].load(), sources.zoo
        byo = sources.extra.get("byo", ())
        models = [m for m in complete_models(sources.ledgers[STORE], zoo.models) if m[0] not in byo]
        main_contrast = float(ds.attrs.get("main_contrast", 1.0))
        per_mouse = []
        for mouse, space in ds.attrs["readout"]["spaces"].items():
            true_tuning, _ = session_truth(truth, mouse)
            predicted = model_units(ds, space, models)
            measured = measure(predicted.isel(unit=slice(0, true_tuning.sizes["unit"])).astype(np.float64),
                               main_contrast=main_contrast, **self.params["tuning"]).compute()
            per_mouse.append(fidelity(measured, true_tuning.drop_vars("unit", errors="ignore"), dim="unit")
                             .rename(unit="neuron").assign_coords(neuron=np.arange(true_tuning.sizes["unit"])))
        mice = list(ds.attrs["readout"]["spaces"])
        errors = [k for k in per_mouse[0].data_vars if "neuron" in per_mouse[0][k].dims]
        stacked = xr.concat([p[errors] for p in per_mouse], dim="mouse", join="outer")
        pooled = summaries(stacked.stack(recorded=("mouse", "neuron")), "recorded")
        by_mouse = xr.concat([p.drop_vars(errors) for p in per_mouse], dim="mouse", join="outer").rename(
            {k: f"{k}_by_mouse" for k in per_mouse[0].data_vars if k not in errors})
        out = xr.merge([stacked, by_mouse, pooled]).assign_coords(mouse=np.array(mice, dtype=object))
        out = on_grid(out, zoo.archs, zoo.seeds)
        summary = ", ".join(f"{a} {float(out['ori_error_median'].sel(arch=a).mean()):.1f} deg"
                            for a in out["arch"].values if np.isfinite(out["ori_error_median"].sel(arch=a)).any())
        return out, [f"fidelity: {len(models)} models x {len(mice)} mice; median orientation error: {summary}"]

    def open(self, catalog: Catalog, root: str) -> Sources:
        sources = super().open(catalog, root)
        sources.extra["byo"] = list(catalog["byo"])  # brought twins have no readout of the recorded mice
        return sources

    def report(self, found, sections, figures) -> None:
        from actstore.analysis.stats import mean_se
        from actstore.report.figures import SE_BARS, figure
        from actstore.report.html import Section

        s = Section("fidelity", "In-silico fidelity: the grating experiment run on the twins",
                    "Each twin's predicted responses of every recorded neuron to the tuning grid, measured with the "
                    "same tuning assay as the true neurons and compared neuron by neuron (neurons passing the "
                    "metric's QC on both sides, pooled over mice): median preferred-orientation error (deg), median "
                    "preferred-SF error (octaves), and the fraction of neurons put on the same side of F1/F0 = 1 "
                    "(simple vs complex). Bars: mean over seeds, error bars +- 1 SE over the neurons (bootstrap of the "
                    "median; binomial for the agreement); dots: seeds; n (neurons) under each bar. Only the "
                    "synthetic mouse has true neurons to compare with.")
        if (ds := self.published(found, s, sections)) is None:
            return
        panels = (("ori_error_median", "orientation error (deg)"), ("sf_error_median", "SF error (octaves)"),
                  ("simple_complex_agreement", "simple/complex agreement"))
        archs = [str(a) for a in ds["arch"].values if np.isfinite(ds["ori_error_median"].sel(arch=a)).any()
                 or np.isfinite(ds["sf_error_median"].sel(arch=a)).any()]
        if not archs:
            s.notes.append("No twin has a neuron passing QC on both sides.")
            sections.append(s)
            return
        fig, axes = figure(1, 3, width=max(3.2, 0.5 * len(archs)), height=3.4)
        for ax, (var, label) in zip(axes[0], panels):
            values = ds[var].sel(arch=archs)
            n = ds[f"{var}_n"].sel(arch=archs).sum("seed").values
            err = mean_se(values, ds[f"{var}_se"].sel(arch=archs), False).values if f"{var}_se" in ds else None
            ax.bar(range(len(archs)), values.mean("seed").values, yerr=err, capsize=3, color="lightsteelblue")
            for k, arch in enumerate(archs):
                ax.plot([k] * values.sizes["seed"], values.sel(arch=arch).values, "o", ms=3, color="k")
            ax.set_xticks(range(len(archs)), [f"{a}\nn={int(c)}" for a, c in zip(archs, n)], rotation=45, fontsize=7)
            ax.set_xlabel("architecture")
            ax.set_ylabel(label + (SE_BARS if err is not None else ""))
            ax.set_title(label, fontsize=9)
        figures[s.key] = fig
        s.notes.append("Median orientation error per architecture (mean over seeds): " + ", ".join(
            f"{a} {float(ds['ori_error_median'].sel(arch=a).mean()):.1f} deg" for a in archs) + ".")
        sections.append(s)
