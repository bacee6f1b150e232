"""The report's sections, one builder per topic: each appends its Section (and its figure by section key) from
the published analyses `found` by output name, or a note saying why there is none. The assays call them from
their `report` method (actstore.assays), in registry order."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from actstore.analysis.tuning import encoder_units

if TYPE_CHECKING:
    import xarray as xr

    from actstore.analysis.stats import TableSpec
    from actstore.report.html import Section


def _missing(name: str, command: str) -> str:
    return f"analysis/{name}.zarr not found: run `actstore {command}` to draw this."


def _has(ds: xr.Dataset | None, *names: str) -> bool:
    """True when every named variable is present and holds at least one finite value."""
    return ds is not None and all(n in ds and bool(np.isfinite(ds[n].values.astype(float)).any()) for n in names)


def _fill(section: "Section", ds: xr.Dataset | None, name: str, command: str, needs: tuple[str, ...], empty: str,
          draw: Callable[[xr.Dataset], Any], figures: dict) -> None:
    """The section's figure from analysis `name`, or a note saying why there is none (missing, or empty)."""
    if ds is None:
        section.notes.append(_missing(name, command))
    elif not _has(ds, *needs):
        section.notes.append(empty)
    else:
        figures[section.key] = draw(ds)


def _usable_note(summary: xr.Dataset | None) -> str:
    """The scored twins that are usable (the only ones in the cross-model statistics) and those that are not,
    with the threshold, from the stats table."""
    if summary is None:
        return "analysis/summary.zarr not found: run `actstore analyze stats` to mark which twins are usable."
    table = summary[["neural_r", "usable"]].to_dataframe()
    scored = table[np.isfinite(table["neural_r"])]
    names = {flag: ", ".join(f"{a}-s{s}" for a, s in scored.index[scored["usable"] == flag]) or "none"
             for flag in (True, False)}
    return (f"Usable twins (mean fraction of the noise ceiling over mice >= "
            f"{100 * summary.attrs['usable_ceiling_fraction']:g}%, or no ceiling known; only these enter the "
            f"cross-model statistics): {names[True]}. Not usable: {names[False]}.")


def neural(found: dict, sections: list, figures: dict) -> None:
    from actstore.report import figures as fg
    from actstore.report.html import Section

    ds, summary = found["neural"], found["summary"]
    s = Section("neural", "Neural prediction per architecture",
                "Per-neuron Pearson r between predicted and recorded spike counts on the test split, inside "
                "non-overlapping chunks, averaged over chunks, neurons and mice. Bars: mean over seeds; error bars: "
                "+- 1 SE over the recorded neurons (each mouse's SE of its mean, combined over mice; n in each "
                "title); dots: seeds, whose spread is the seed-to-seed variation. Right: the same score as a "
                "fraction of the noise ceiling (the true rates' r), "
                "dotted: the usable-twin threshold. Last panel: per-neuron r over the whole scored test set after "
                "a 2-s box smoothing of prediction and counts (evaluation.smoothing_bins, 41 of 48 ms), the "
                "score of Xu et al.'s Table 2 "
                "(their CNN-GRU on the real recordings: 0.639 / 0.593 / 0.484 for 070921 / 101521 / 110421), so "
                "twins can be put next to published numbers; on the synthetic mouse it is not comparable to them. "
                "Hollow dots: twins that are not usable; grey hatched bars: architectures without a usable twin.")
    if _has(ds, "neural_r") and not _has(ds, "ceiling_fraction"):
        s.notes.append("No noise ceiling is known for these recordings; only r is shown.")
    if _has(ds, "neural_r"):
        s.notes.append(_usable_note(summary))
    usable, threshold = (None, np.nan) if summary is None else (summary["usable"].compute(),
                                                                summary.attrs["usable_ceiling_fraction"])
    _fill(s, ds, "neural", "train", ("neural_r",), "No trained model has a neural-prediction score yet.",
          lambda d: fg.neural_prediction(d, usable, threshold), figures)
    sections.append(s)


def probes(found: dict, sections: list, figures: dict) -> None:
    from actstore.report import figures as fg
    from actstore.report.html import Section

    ds = found["probes"]
    specs = [
        (Section("orientation", "Orientation probe: accuracy against training size",
                 "Linear 8-way orientation readout of the encoder output (one frame), trained on class-balanced "
                 "subsets; L2 chosen on validation. Lines: mean over seeds (band SD); error bars: +- 1 SE of that "
                 "mean from the binomial SE over each model's test trials; dashed: chance."),
         ("orientation_acc_id", "orientation_acc_ood"), fg.orientation_curves),
        (Section("contrast", "Contrast detection: balanced accuracy against contrast",
                 "Linear readout of the GRU state detecting a flashed Gabor in noise; balanced accuracy per test "
                 "contrast (hit rate at that contrast and correct rejections of blanks). Mean over seeds, band SD; "
                 "error bars: +- 1 SE, 0.5 sqrt(SE_hit^2 + SE_CR^2) from the binomial SEs of the targets at that "
                 "contrast and of the blanks."),
         ("contrast_bacc",), fg.contrast_curves),
        (Section("rdk", "Motion: accuracy against coherence",
                 "Linear left/right readout of the last chunk's GRU state for random-dot kinematograms, trained on "
                 "high coherence, tested over the coherence grid. Mean over seeds, band SD; error bars: +- 1 SE "
                 "(binomial, over the test trials at each coherence); dashed: chance."),
         ("rdk_acc",), fg.coherence_curves),
    ]
    for section, needs, draw in specs:
        _fill(section, ds, "probes", "analyze probes", needs,
              f"analysis/probes.zarr holds no {section.key} results "
              f"(its task store was missing or had no complete model).", draw, figures)
        sections.append(section)


def tuning(found: dict, sections: list, figures: dict) -> None:
    from actstore.report import figures as fg
    from actstore.report.html import Section

    ds = None if found["tuning"] is None else encoder_units(found["tuning"])
    s = Section("tuning", "Tuning of encoder units",
                "Static full-field gratings: global orientation selectivity (gOSI), phase modulation (F1/F0), "
                "preferred spatial frequency and Naka-Rushton c50, over the units passing each metric's QC, "
                "seeds pooled; a c50 at a bound of its fit is no estimate and is left out. Box: quartiles; "
                "dots: units.")
    if ds is None:
        s.notes.append(_missing("tuning", "analyze tuning"))
    else:
        ds = ds.compute()
        s.notes.extend(_tuning_summary_notes(ds))
        empty = [var for var, qc, _, _ in fg.TUNING_PANELS if not bool(ds[qc].any())]
        if len(empty) == len(fg.TUNING_PANELS):
            s.notes.append("No unit passes QC for any metric: nothing to draw.")
        else:
            if empty:
                s.notes.append(f"No unit passes QC for: {', '.join(empty)}.")
            figures[s.key] = fg.tuning_distributions(ds)
    sections.append(s)


def _per_arch(ds: xr.Dataset, var: str, fmt: str) -> str:
    """`arch value` for each architecture with a complete model: the mean over those models of the per-model `var`."""
    import warnings

    values = ds[var]
    if "complete" in ds:
        values = values.where(ds["complete"]).sel(arch=ds["complete"].any("seed").values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an architecture without a value: NaN
        means = values.mean("seed", skipna=True)
    return ", ".join(f"{a} {'n/a' if not np.isfinite(v) else format(v, fmt)}"
                     for a, v in zip(means["arch"].values, means.values.astype(float)))


def _f1f0_rules_note(ds: xr.Dataset) -> str | None:
    """Both F1/F0 medians per architecture (tuning.zarr): the phase QC the code applies and design 6.2's as written."""
    if not (_has(ds, "f1f0_median_applied_qc") or _has(ds, "f1f0_median_written_qc")):
        return None
    return ("F1/F0 median (mean over seeds) under the phase QC applied (qc_phase: phase or contrast curve range, the "
            f"F1/F0 panel and f1f0_median): {_per_arch(ds, 'f1f0_median_applied_qc', '.3g')}; under design 6.2's "
            f"rule as written (qc_phase_written: phase curve range): {_per_arch(ds, 'f1f0_median_written_qc', '.3g')}.")


def _tuning_summary_notes(ds: xr.Dataset) -> list[str]:
    """Notes from the tuning result's per-model summaries: c50 fits at a bound, and F1/F0 under both phase QCs."""
    notes = []
    if _has(ds, "nr_at_bound_fraction"):
        notes.append("Fraction of contrast-QC-passing units whose c50 is at a bound of its fit (left out of the c50 "
                     "panel and of tuning.zarr's c50_median; mean over seeds): "
                     f"{_per_arch(ds, 'nr_at_bound_fraction', '.0%')}.")
    f1f0 = _f1f0_rules_note(ds)
    return notes + ([f1f0] if f1f0 else [])


def geometry(found: dict, sections: list, figures: dict) -> None:
    from actstore.report import figures as fg
    from actstore.report.html import Section

    ds = found["geometry"]
    s = Section("geometry", "Population geometry: eigenspectra",
                "PCA eigenspectra of the standardized GRU final state and encoder output over the reference clips; "
                "one line per architecture (geometric mean over seeds); dashed: the power law lambda ~ rank^-alpha "
                "with the seeds' mean fitted alpha, over the shaded rank window. Legend: alpha +- 1 SE, a "
                "delete-a-group jackknife over the clips (analysis.geometry.jackknife_groups; n = the clips, in "
                "analysis/geometry.zarr as alpha_<space>_n).")
    _fill(s, ds, "geometry", "analyze geometry", ("eigenvalues",), "analysis/geometry.zarr holds no spectra.",
          lambda d: fg.eigenspectra(d.compute()), figures)
    sections.append(s)


def hierarchy(found: dict, sections: list, figures: dict) -> None:
    from actstore.analysis.hierarchy import hierarchy_profiles
    from actstore.report import figures as fg
    from actstore.report.html import Section

    tuning = found["tuning"]
    s = Section("hierarchy", "Across the hierarchy",
                "Each twin's layer spaces (catalog spaces.layers: early, middle, late; the centre unit of each "
                "channel) and its encoder output, at their relative depth: orientation-probe accuracy in "
                "distribution at the largest train size (each seed's test trials), and the median gOSI and F1/F0 "
                "of the units passing QC (their n in the note below), and alpha of the reference "
                "clips' eigenspectrum. Mean over seeds; bars +- 1 SE.")
    if tuning is None or "space" not in tuning.dims:
        s.notes.append(_missing("tuning", "analyze tuning"))
    else:
        profiles = hierarchy_profiles(tuning.compute(), found["probes"], found["geometry"])
        if found["probes"] is not None and "orientation_chance" in found["probes"].attrs:
            profiles.attrs["orientation_chance"] = float(found["probes"].attrs["orientation_chance"])
        n = profiles["gosi_median_n"].sum("seed").to_pandas().astype(int)
        s.notes.append("Units passing orientation QC per architecture and space (seeds summed): "
                       + "; ".join(f"{a} " + ", ".join(f"{sp} {n.loc[a, sp]}" for sp in n.columns) for a in n.index)
                       + ".")
        figures[s.key] = fg.hierarchy(profiles)
    sections.append(s)


def scatters(found: dict, sections: list, figures: dict, spec: TableSpec) -> None:
    """One section per pair of column groups of the stats table (`spec`, the registry's)."""
    from actstore.analysis.stats import ALPHA, DESCRIPTIVE_POINTS
    from actstore.report import figures as fg
    from actstore.report.html import Section

    ds = found["summary"]
    ds = ds.compute() if ds is not None else None
    usable = (f" (mean fraction of the noise ceiling over mice >= {100 * ds.attrs['usable_ceiling_fraction']:g}%, "
              "or no ceiling known)") if ds is not None else ""
    caption = (f"Architecture means over their usable twins{usable} (error bars: SD over seeds); hollow: an "
               "architecture without a usable twin, drawn over all its seeds and left out of r, p and the line. "
               "Line: OLS trend; Pearson r and p over the n architecture means with a usable twin. With n <= "
               f"{DESCRIPTIVE_POINTS} a correlation is descriptive, not a finding; '(carried by one point)': p < "
               f"{ALPHA:g}, but leaving out one point flips the sign of r or takes p to {ALPHA:g} or above.")
    groups = spec.groups
    for gx, gy in spec.pair_groups:
        pairs = [(x, y) for x in groups[gx] for y in groups[gy]]
        s = Section(f"scatter-{gx}-{gy}", f"Cross-model: {gx} vs {gy}", caption)
        if ds is None:
            s.notes.append(_missing("summary", "analyze stats"))
        elif not any(_has(ds, x, y) for x, y in pairs):
            s.notes.append(f"No architecture has both values for any {gx} vs {gy} pair.")
        else:
            stats = ds[["r", "p", "slope", "intercept", "n", "descriptive", "carried_by_one"]].sel(level="arch")
            undefined = [f"{x} vs {y}" for x, y in pairs if not np.isfinite(stats["r"].sel(pair=f"{x} vs {y}"))]
            if undefined:
                s.notes.append(f"r is undefined for {len(undefined)} of {len(pairs)} pairs (fewer than 3 "
                               f"architectures with a usable twin and both values, or a constant column): "
                               f"{', '.join(undefined)}.")
            ncols = len(groups[gy]) if len(groups[gy]) > 1 else len(pairs)
            figures[s.key] = fg.cross_model_scatter(ds, stats, pairs, f"{gx.capitalize()} vs {gy}", ncols)
        sections.append(s)


def table(found: dict, sections: list, figures: dict, spec: TableSpec) -> None:
    """The results table: every column of the stats table (`spec`) with its SE and n where it has them."""
    from actstore.report.figures import COLUMN_LABELS
    from actstore.report.html import Section, results_table

    ds = found["summary"]
    s = Section("results", "Results table",
                "Mean +- SD over seeds per architecture (SD blank with one seed); tuning columns are medians over "
                "QC-passing units. 'SE (n)' beside an endpoint: the SE of that mean from each model's own SE "
                "(binomial over test trials; over neurons for neural r; a bootstrap over the units or neurons for a "
                "median; a jackknife over the clips for alpha) and n, the test trials (neurons, units, clips) per "
                "model. Per-model values: analysis/summary.csv.")
    if ds is None:
        s.notes.append(_missing("summary", "analyze stats"))
    else:
        ds = ds.compute()
        empty = [c for c in spec.columns if not _has(ds, c)]
        if empty:
            s.notes.append(f"No values yet for: {', '.join(empty)}.")
        s.html = results_table(ds, list(spec.columns), COLUMN_LABELS, tuple(spec.errors))
    f1f0 = None if found["tuning"] is None else _f1f0_rules_note(encoder_units(found["tuning"]))
    if f1f0:
        s.notes.append(f1f0)
    sections.append(s)


def ground_truth(found: dict, sections: list, figures: dict) -> None:
    from actstore.assays.ground_truth import session_truth
    from actstore.report import figures as fg
    from actstore.report.html import Section

    s = Section("ground-truth", "Ground truth: tuning recovered from the synthetic mouse",
                "The reference session's true neurons (the oracle) shown the catalog's tuning_grid gratings and "
                "measured with the same tuning assay as the twins' units: recovered vs true preferred orientation "
                "and spatial frequency (QC-passing neurons; dashed: identity), and F1/F0 by true cell type over "
                "phase-QC-passing neurons (simple cells are phase-modulated, F1/F0 > 1; complex cells are not).")
    ds = found["ground_truth"]
    if ds is None:
        s.notes.append("Only the synthetic mouse has ground truth (catalog data.source: synthetic, prepared data; "
                       "`actstore analyze ground_truth`).")
    else:
        figures[s.key] = fg.oracle_recovery(*session_truth(ds.compute(), ds.attrs["reference_session"]))
    sections.append(s)
