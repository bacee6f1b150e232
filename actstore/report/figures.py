"""The report's figures: each function takes xarray/pandas results and returns a matplotlib Figure.

Figures are built object-oriented on an Agg canvas (no pyplot, no global state), so they never
touch an interactive backend and can be checked (labels, data) before they are saved.
Architectures keep one colour across every figure; models without results (NaN) are left out.
"""
from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from actstore.analysis.stats import MIN_POINTS, TableSpec, mean_se

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Axis labels (with units) of the cross-model table's columns (the assays' `columns`); others show their name.
COLUMN_LABELS = {
    "neural_r": "neural prediction (test r)",
    "orientation_ood": "orientation accuracy, OOD (fraction correct)",
    "contrast_auc": "contrast detection AUC (normalized, 0-1)",
    "rdk_auc": "motion (RDK) AUC (normalized, 0-1)",
    "gosi_median": "median gOSI (0-1)",
    "f1f0_median": "median F1/F0 (ratio)",
    "c50_median": "median c50 (grating contrast)",
    "pref_sf_median": "median preferred SF (cycles/px)",
    "alpha_gru": "GRU power-law exponent \u03b1",
}
# Tuning distributions: (variable, QC flag, axis label, log scale)
TUNING_PANELS = (
    ("gosi", "qc_orientation", "gOSI (0-1)", False),
    ("f1f0", "qc_phase", "F1/F0 (ratio)", False),
    ("pref_sf", "qc_sf", "preferred SF (cycles/px)", True),
    ("nr_c50", "qc_contrast", "c50 (grating contrast)", True),
)
TUNING_EXCLUDED = {"nr_c50": "nr_at_bound"}  # per panel variable: units with this flag set are left out
ACC_LABEL = "accuracy (fraction correct)"
SE_BARS = ", bars \u00b1 1 SE"  # appended to an axis label whose values carry standard-error bars
SPACE_TITLES = {"gru": "GRU final state", "encoder": "Encoder output (last frame)"}


def figure(nrows: int = 1, ncols: int = 1, width: float = 4.2, height: float = 3.4) -> tuple[Figure, np.ndarray]:
    """A Figure on an Agg canvas with a grid of Axes (always a 2-D array), sized per panel."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def plain_log(ax: Axes, which: str = "both") -> None:
    """Log scale on the x and/or y axis with plain-number tick labels (0.05, not 5 x 10^-2); minor ticks
    are labelled at 2, 3, 4, 6 x 10^k inside one decade, at 2 and 5 x 10^k on wider axes."""
    from matplotlib.ticker import FuncFormatter

    def minor_formatter(axis) -> FuncFormatter:
        def label(x: float, _pos: int) -> str:
            lo, hi = sorted(axis.get_view_interval())
            subs = (2, 3, 4, 6) if lo > 0 and hi / lo < 10 else (2, 5)
            mantissa = round(x / 10 ** np.floor(np.log10(x)), 6) if x > 0 else 0
            return f"{x:g}" if mantissa in subs else ""
        return FuncFormatter(label)

    for name in ("x", "y") if which == "both" else (which,):
        axis = getattr(ax, f"{name}axis")
        getattr(ax, f"set_{name}scale")("log")
        axis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}"))
        axis.set_minor_formatter(minor_formatter(axis))


def arch_colors(archs: list[str]) -> dict[str, tuple]:
    """One fixed colour per architecture (tab10 in zoo order)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {a: cmap(i % 10) for i, a in enumerate(archs)}


def _archs(da: xr.DataArray) -> list[str]:
    """The architectures with at least one finite value in `da`, in coordinate order."""
    finite = np.isfinite(da.astype(np.float64)).any([d for d in da.dims if d != "arch"])
    return [str(a) for a, ok in zip(da["arch"].values, finite.values) if ok]


def _mean_sd(da: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD (ddof 1, 0 with one seed) over `seed`, ignoring models without results."""
    values = np.asarray(da.transpose("seed", ...).values, dtype=np.float64)
    n = np.isfinite(values).sum(0)
    mean = np.nansum(values, 0) / np.maximum(n, 1)
    sq = np.nansum((values - mean) ** 2, 0)
    sd = np.sqrt(sq / np.maximum(n - 1, 1))
    return np.where(n > 0, mean, np.nan), np.where(n > 1, sd, 0.0)


def neural_prediction(neural: xr.Dataset, usable: xr.DataArray | None = None, threshold: float = np.nan) -> Figure:
    """Neural prediction per architecture (bars = mean over seeds, error bars +- 1 SE over the recorded
    neurons, dots = seeds; n neurons in the title), and the fraction of the noise ceiling and the smoothed
    whole-test-set r (Xu et al.'s score) beside it where known. With
    `usable` (the stats table's flag per (arch, seed) at `threshold`), twins that are not usable are hollow
    dots and an architecture without a usable twin is a grey hatched bar: an untrained network must not read
    as a weak architecture."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    archs = _archs(neural["neural_r"])
    flags = (usable if usable is not None else xr.ones_like(neural["neural_r"], dtype=bool)).sel(
        arch=archs, seed=neural["seed"])
    fraction = neural["ceiling_fraction"].mean("mouse") if "ceiling_fraction" in neural else None
    values = {"neural_r": neural["neural_r"], "fraction": fraction, "smoothed": neural.get("xu_smoothed_neural_r")}
    errors = _neural_errors(neural)
    titles = {"neural_r": "Neural prediction", "fraction": "Prediction / noise ceiling",
              "smoothed": "Smoothed whole-test r (Xu et al.)"}
    if "n_neurons" in neural:
        counts = {int(n) for n in neural["n_neurons"].sum("mouse").values.ravel() if n > 0}
        if counts:
            span = f"{min(counts)}" if len(counts) == 1 else f"{min(counts)}-{max(counts)}"
            titles = {k: f"{v}\n(n = {span} neurons)" for k, v in titles.items()}
    panels = [("neural_r", "mean test r")]
    if fraction is not None and np.isfinite(fraction.values).any():
        panels.append(("fraction", "fraction of the noise ceiling"))
    if values["smoothed"] is not None and np.isfinite(values["smoothed"].values).any():
        panels.append(("smoothed", "r after 2-s box smoothing"))
    colors = arch_colors([str(a) for a in neural["arch"].values])
    fig, axes = figure(1, len(panels), width=max(4.2, 0.7 * len(archs) + 1.5), height=3.8)
    for ax, (name, label) in zip(axes[0], panels):
        da = values[name].sel(arch=archs)
        mean, _ = _mean_sd(da)
        err = None if errors.get(name) is None else mean_se(da, errors[name].sel(arch=archs), False).values
        x = np.arange(len(archs))
        bars = ax.bar(x, mean, yerr=err, color=[colors[a] for a in archs], alpha=0.8, capsize=3)
        for i, arch in enumerate(archs):
            seeds = np.asarray(da.sel(arch=arch).values, dtype=np.float64)
            ok = flags.sel(arch=arch).values.astype(bool)
            if not ok.any():
                bars[i].set(facecolor="lightgrey", edgecolor="grey", hatch="//")
            ax.plot(np.full(ok.sum(), i), seeds[ok], "o", color="k", ms=3)
            ax.plot(np.full((~ok).sum(), i), seeds[~ok], "o", color="k", mfc="white", ms=3)
        if name == "fraction":
            ax.axhline(1.0, color="grey", ls="--", lw=1)
            if np.isfinite(threshold):
                ax.axhline(threshold, color="k", ls=":", lw=1)
        ax.set_xticks(x, archs, rotation=35, ha="right")
        ax.set_xlabel("architecture")
        ax.set_ylabel(label + (SE_BARS if err is not None else ""))
        ax.set_title(titles[name])
    if not bool(flags.all()):
        fig.legend(handles=[Line2D([], [], marker="o", ls="", color="k", mfc="white", ms=3,
                                   label=f"twin not usable\n(< {100 * threshold:g}% of ceiling, dotted)"),
                            Patch(facecolor="lightgrey", edgecolor="grey", hatch="//", label="no usable twin")],
                   loc="outside right upper", fontsize=7)
    return fig


def _neural_errors(neural: xr.Dataset) -> dict[str, xr.DataArray | None]:
    """Per model (arch, seed), the SE over neurons of each neural-prediction panel's value: each mouse's SE of
    its mean per-neuron r, combined over mice as independent (mice are different neurons); the fraction of
    the ceiling divides each mouse's SE by its ceiling. None where the scores carry no SE."""
    def over_mice(values: str, se: xr.DataArray | None) -> xr.DataArray | None:
        return None if se is None or values not in neural else mean_se(neural[values], se, True, "mouse")

    ceiling_se = neural["r_neuron_se"] / neural["ceiling"] if {"r_neuron_se", "ceiling"} <= set(neural) else None
    return {"neural_r": over_mice("r_neuron", neural.get("r_neuron_se")),  # = stats.neural_r_error's SE
            "fraction": over_mice("ceiling_fraction", ceiling_se),
            "smoothed": over_mice("xu_smoothed_r", neural.get("xu_smoothed_r_se"))}


def _curve_panel(ax: Axes, da: xr.DataArray, level: str, x: np.ndarray, colors: dict[str, tuple],
                 se: xr.DataArray | None = None) -> None:
    """One line per architecture over `level`: mean over seeds, band = +- SD over seeds, error bars = +- 1 SE
    of that mean from the models' binomial SEs over their test trials (`se`; no bars without it)."""
    for arch in _archs(da):
        values = da.sel(arch=arch).transpose("seed", level)
        mean, sd = _mean_sd(values)
        err = None if se is None else mean_se(values, se.sel(arch=arch).transpose("seed", level), True).values
        ax.errorbar(x, mean, yerr=err, fmt="o-", color=colors[arch], label=arch, ms=3, capsize=2, elinewidth=0.8)
        if np.any(sd > 0):
            ax.fill_between(x, mean - sd, mean + sd, color=colors[arch], alpha=0.15, lw=0)


def orientation_curves(probes: xr.Dataset) -> Figure:
    """Orientation-probe accuracy against training-set size, in distribution and out of distribution."""
    colors = arch_colors([str(a) for a in probes["arch"].values])
    sizes = probes["train_size"].values.astype(float)
    chance = float(probes.attrs.get("orientation_chance", np.nan))
    fig, axes = figure(1, 2, height=3.8)
    for ax, test, title in zip(axes[0], ("id", "ood"), ("in distribution (ID)", "out of distribution (OOD)")):
        se = probes.get(f"orientation_acc_{test}_se")
        _curve_panel(ax, probes[f"orientation_acc_{test}"], "train_size", sizes, colors, se)
        if np.isfinite(chance):
            ax.axhline(chance, color="grey", ls="--", lw=1, label="chance")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [f"{s:g}" for s in sizes], rotation=45 if len(sizes) > 6 else 0)
        ax.set_xlabel("training set size (images, class-balanced)")
        ax.set_ylabel(ACC_LABEL + (SE_BARS if se is not None else ""))
        ax.set_title(title)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside right upper", fontsize=7)
    fig.suptitle("Orientation probe (8-way, encoder output)")
    return fig


def contrast_curves(probes: xr.Dataset) -> Figure:
    """Contrast-detection balanced accuracy against target contrast (grid points evenly spaced, as the AUC)."""
    colors = arch_colors([str(a) for a in probes["arch"].values])
    grid = probes["contrast"].values.astype(float)
    fig, axes = figure(1, 1, width=5.2, height=3.8)
    ax = axes[0, 0]
    se = probes.get("contrast_bacc_se")
    _curve_panel(ax, probes["contrast_bacc"], "contrast", np.arange(len(grid)), colors, se)
    ax.axhline(0.5, color="grey", ls="--", lw=1, label="chance")
    ax.set_xticks(np.arange(len(grid)), [f"{c:g}" for c in grid])
    ax.set_xlabel("target contrast (Michelson, 0-1; evenly spaced grid)")
    ax.set_ylabel("balanced accuracy (fraction)" + (SE_BARS if se is not None else ""))
    ax.set_title("Dynamic contrast detection (GRU state)")
    ax.legend(fontsize=7, loc="best")
    return fig


def coherence_curves(probes: xr.Dataset) -> Figure:
    """Left/right motion accuracy against random-dot coherence."""
    colors = arch_colors([str(a) for a in probes["arch"].values])
    fig, axes = figure(1, 1, width=5.2, height=3.8)
    ax = axes[0, 0]
    se = probes.get("rdk_acc_se")
    _curve_panel(ax, probes["rdk_acc"], "coherence", probes["coherence"].values.astype(float), colors, se)
    ax.axhline(0.5, color="grey", ls="--", lw=1, label="chance")
    ax.set_xlabel("motion coherence (fraction of signal dots)")
    ax.set_ylabel(ACC_LABEL + (SE_BARS if se is not None else ""))
    ax.set_title("Random-dot motion direction (GRU state)")
    ax.legend(fontsize=7, loc="best")
    return fig


def tuning_distributions(tuning: xr.Dataset) -> Figure:
    """gOSI, F1/F0, preferred SF and c50 per architecture over QC-passing units (all seeds pooled; c50 without
    fits at a bound): box = quartiles, whiskers 1.5 IQR, dots = units; n under each architecture."""
    archs = [str(a) for a in tuning["arch"].values if bool(tuning["complete"].sel(arch=a).any())] \
        if "complete" in tuning else [str(a) for a in tuning["arch"].values]
    colors = arch_colors([str(a) for a in tuning["arch"].values])
    fig, axes = figure(2, 2, width=max(4.2, 0.6 * len(archs) + 1.8), height=3.6)
    rng = np.random.default_rng(0)
    for ax, (var, qc, label, log) in zip(axes.ravel(), TUNING_PANELS):
        groups = []
        for arch in archs:
            v = tuning[var].sel(arch=arch).values.ravel()
            keep = tuning[qc].sel(arch=arch).values.ravel().astype(bool) & np.isfinite(v)
            if TUNING_EXCLUDED.get(var) in tuning.data_vars:
                keep &= ~tuning[TUNING_EXCLUDED[var]].sel(arch=arch).values.ravel().astype(bool)
            groups.append(v[keep] if not log else v[keep & (v > 0)])
        x = np.arange(len(archs))
        filled = [i for i, g in enumerate(groups) if len(g)]
        if filled:
            ax.boxplot([groups[i] for i in filled], positions=x[filled], widths=0.6, showfliers=False,
                       medianprops={"color": "k"})
        for i, g in enumerate(groups):
            ax.plot(i + rng.uniform(-0.18, 0.18, len(g)), g, "o", ms=2.5, alpha=0.5, color=colors[archs[i]])
        if log:
            plain_log(ax, "y")
        ax.set_xticks(x, [f"{a}\n(n={len(g)})" for a, g in zip(archs, groups)], rotation=35, ha="right", fontsize=8)
        ax.set_xlim(-0.6, len(archs) - 0.4)
        ax.set_xlabel("architecture (QC-passing units)")
        ax.set_ylabel(label)
        ax.set_title(label.split(" (")[0])
    fig.suptitle("Encoder-unit tuning (static full-field gratings)")
    return fig


def eigenspectra(geometry: xr.Dataset) -> Figure:
    """PCA eigenspectra of the GRU state and encoder output (log-log), one line per architecture (the geometric
    mean over seeds), with the power law of the seeds' mean fitted alpha (dashed) over the fit window (shaded);
    the legend gives alpha +- 1 SE (jackknife over the clips; seeds share them, so their SEs are not pooled).
    With one seed each line and its dashed fit are exactly that model's. Eigenvalues below the noise floor are NaN in
    the store and not drawn; an architecture none of whose seeds was fitted gives the reason in the legend."""
    colors = arch_colors([str(a) for a in geometry["arch"].values])
    lo, hi = (int(r) for r in geometry.attrs.get("ranks", (20, 200)))
    spaces = [str(s) for s in geometry["space"].values if str(s) in SPACE_TITLES]  # layers: the hierarchy figure
    fig, axes = figure(1, len(spaces), width=4.8, height=4.0)
    rank = geometry["rank"].values.astype(float)
    for ax, space in zip(axes[0], spaces):
        for arch in _archs(geometry["eigenvalues"].sel(space=space)):
            lam = geometry["eigenvalues"].sel(space=space, arch=arch).transpose("seed", "rank").values.astype(float)
            has = np.isfinite(lam).any(1)  # seeds with a spectrum
            lam = lam[has]
            ok = (np.isfinite(lam) & (lam > 0)).all(0)
            if not ok.any():
                continue
            mean = np.full(len(rank), np.nan)
            mean[ok] = np.exp(np.log(lam[:, ok]).mean(0))
            alpha = geometry[f"alpha_{space}"].sel(arch=arch).values.astype(float)[has]
            fitted = np.isfinite(alpha)
            a = float(alpha[fitted].mean()) if fitted.any() else np.nan
            se = f"alpha_{space}_se"
            err = (float(mean_se(geometry[f"alpha_{space}"].sel(arch=arch)[has], geometry[se].sel(arch=arch)[has],
                                 False)) if se in geometry else np.nan)
            pm = f" \u00b1 {err:.1g}" if np.isfinite(err) else ""  # one significant digit: 0.003, 0.07
            if fitted.all():
                label = f"{arch} (\u03b1 = {a:.2f}{pm})"
            elif fitted.any():
                label = f"{arch} (\u03b1 = {a:.2f}; {(~fitted).sum()} of {fitted.size} seeds not fitted)"
            else:
                label = f"{arch} (\u03b1 not fitted: {geometry[f'alpha_{space}_reason'].sel(arch=arch).values[has][0]})"
            ax.plot(rank[ok], mean[ok], color=colors[arch], lw=1.3, label=label)
            window = ok & (rank >= lo) & (rank <= hi)
            if np.isfinite(a) and window.sum() >= 2:
                # the OLS line of ln lambda on ln rank with slope -alpha passes through the window's mean point
                c = np.mean(np.log(mean[window]) + a * np.log(rank[window]))
                ax.plot(rank[window], np.exp(c - a * np.log(rank[window])), "--", color=colors[arch], lw=1)
        ax.axvspan(lo, min(hi, rank[-1]), color="grey", alpha=0.1, lw=0)
        plain_log(ax, "x")
        ax.set_yscale("log")
        ax.set_xlabel("PC rank")
        ax.set_ylabel("eigenvalue (variance, standardized units)")
        ax.set_title(f"{SPACE_TITLES.get(space, space)} (fit: ranks {lo}-{hi})")
        ax.legend(fontsize=7, loc="lower left")
    return fig


SHARED_SAMPLES = {"alpha"}  # profile variables every seed measures on the same samples: SEs not independent
HIERARCHY_PANELS = (  # (profile variable, axis label); each with `<variable>_se` bars where it has them
    ("orientation_id", "orientation accuracy, ID (fraction correct)"),
    ("gosi_median", "median gOSI (0-1)"),
    ("f1f0_median", "median F1/F0 (ratio)"),
    ("alpha", "power-law exponent \u03b1"),
)


def hierarchy(profiles: xr.Dataset) -> Figure:
    """Probe accuracy, median gOSI, median F1/F0 and alpha against relative depth (the fraction of the encoder's
    convolutions; the encoder output is 1), one line per architecture: mean over seeds, bars +- 1 SE of that mean
    (binomial for accuracy, bootstrap over units for medians, jackknife over the clips for alpha)."""
    colors = arch_colors([str(a) for a in profiles["arch"].values])
    fig, axes = figure(2, 2, width=4.6, height=3.6)
    for ax, (var, label) in zip(axes.ravel(), HIERARCHY_PANELS):
        if var not in profiles:
            ax.set_axis_off()
            continue
        for arch in _archs(profiles[var]):
            p = profiles.sel(arch=arch)
            depth = p["depth"].mean("seed").values
            order = np.lexsort((p["space"].values == "encoder", depth))  # at a tie the output comes last
            values = p[var].transpose("seed", "space")
            mean, _ = _mean_sd(values)
            se = f"{var}_se"
            err = (mean_se(values, p[se].transpose("seed", "space"), var not in SHARED_SAMPLES).values if se in p
                   else None)
            ax.errorbar(depth[order], mean[order], yerr=None if err is None else err[order], fmt="o-", ms=3,
                        capsize=2, elinewidth=0.8, color=colors[arch], label=arch)
        if var == "orientation_id" and "orientation_chance" in profiles.attrs:
            ax.axhline(profiles.attrs["orientation_chance"], color="grey", ls="--", lw=1, label="chance")
        ax.set_xlabel("relative depth (fraction of the encoder's convolutions)")
        ax.set_ylabel(label + (SE_BARS if f"{var}_se" in profiles else ""))
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside right upper", fontsize=7)
    fig.suptitle("Across the hierarchy: encoder layers (early, middle, late) and output")
    return fig


def _pair_text(stats: xr.Dataset, pair: str) -> str:
    """'r = .., p = .., n = k' over the usable points, then a line 'descriptive' for n <= DESCRIPTIVE_POINTS and
    one '(carried by one point)' when flagged; 'n = k: too few twins' below MIN_POINTS, else why r is undefined."""
    s = stats.sel(pair=pair)
    n = int(s["n"])
    if n < MIN_POINTS:
        return f"n = {n}: too few twins"
    if not np.isfinite(s["r"]):
        return f"r undefined (a constant column), n = {n}"
    text = f"r = {float(s['r']):.2f}, p = {float(s['p']):.3g}, n = {n}"
    marks = [m for m, on in (("descriptive", s["descriptive"]), ("(carried by one point)", s["carried_by_one"])) if on]
    return "\n".join([text, *marks])


def _column_se(table: xr.Dataset, column: str, seeds: xr.DataArray) -> np.ndarray:
    """Per architecture, the SE of its mean of `column` over `seeds` from the models' own SEs (`<column>_se`,
    see stats.mean_se); NaN for a column without SEs."""
    errors = TableSpec.from_attrs(table.attrs).errors
    if column not in errors or f"{column}_se" not in table:
        return np.full(table.sizes["arch"], np.nan)
    return mean_se(table[column].where(seeds), table[f"{column}_se"], errors[column]).transpose("arch").values


def cross_model_scatter(table: xr.Dataset, stats: xr.Dataset, pairs: list[tuple[str, str]], title: str,
                        ncols: int = 4) -> Figure:
    """One panel per (x, y) column pair: architecture means +- SD over seeds (thin bars) and +- 1 SE of the
    mean from the models' own SEs where the column has `<column>_se` (thick bars), the OLS trend line, and
    Pearson r and p over the architecture means (`stats` = the pair statistics at level 'arch'). As in the
    statistics, an architecture's mean is over its usable seeds (`table["usable"]`); one without a usable twin
    is drawn hollow over all its seeds and left out of the line, which spans the usable points only."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    colors = arch_colors([str(a) for a in table["arch"].values])
    ncols = min(len(pairs), ncols)
    nrows = int(np.ceil(len(pairs) / ncols))
    width = 3.8 if ncols > 1 else 5.0  # a single panel also holds the legend below it and the wrapped title
    fig, axes = figure(nrows, ncols, width=width, height=3.4 if ncols > 1 else 5.0)
    for ax in axes.ravel()[len(pairs):]:
        ax.set_visible(False)
    shown: dict[str, object] = {}
    fitted = table["usable"].any("seed").values  # architectures with a usable twin
    seeds = table["usable"] | ~table["usable"].any("seed")  # their usable seeds; every seed of the others
    hollow = with_se = False
    for ax, (xc, yc) in zip(axes.ravel(), pairs):
        xm, xs = _mean_sd(table[xc].where(seeds))
        ym, ys = _mean_sd(table[yc].where(seeds))
        xe, ye = _column_se(table, xc, seeds), _column_se(table, yc, seeds)
        for i, arch in enumerate(str(a) for a in table["arch"].values):
            if np.isfinite(xm[i]) and np.isfinite(ym[i]):
                style = {"color": colors[arch]} if fitted[i] else {"color": "grey", "mfc": "white",
                                                                   "mec": colors[arch], "mew": 1.5, "zorder": 3}
                shown[arch] = ax.errorbar(xm[i], ym[i], xerr=xs[i], yerr=ys[i], fmt="o", ms=5, capsize=2, **style)
                hollow = hollow or not fitted[i]
                if np.isfinite(xe[i]) or np.isfinite(ye[i]):
                    ax.errorbar(xm[i], ym[i], xerr=xe[i] if np.isfinite(xe[i]) else None,
                                yerr=ye[i] if np.isfinite(ye[i]) else None, fmt="none", ecolor=style["color"],
                                elinewidth=3, alpha=0.5)
                    with_se = True
        pair = f"{xc} vs {yc}"
        s = stats.sel(pair=pair)
        ok = np.isfinite(xm) & np.isfinite(ym) & fitted
        if np.isfinite(s["slope"]) and ok.any():
            x = np.linspace(xm[ok].min(), xm[ok].max(), 2)
            ax.plot(x, float(s["slope"]) * x + float(s["intercept"]), "-", color="k", lw=1)
        ax.set_title(_pair_text(stats, pair), fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.set_xlabel(COLUMN_LABELS.get(xc, xc), fontsize=8)
        ax.set_ylabel(COLUMN_LABELS.get(yc, yc), fontsize=8)
    if hollow:
        shown["hollow: no usable twin,\nnot in r, p or the line"] = Line2D([], [], marker="o", ls="", color="grey",
                                                                          mfc="white")
    if shown:  # beside several panels; below a single one, whose centred title would run into it
        fig.legend(list(shown.values()), list(shown), fontsize=7,
                   **({"loc": "outside right upper"} if ncols > 1 else {"loc": "outside lower center", "ncols": 2}))
    bars = ("thin bars: SD over seeds; thick: \u00b1 1 SE of the mean (test trials; neurons for neural r; clips "
            "for \u03b1)")
    # wrapped to the panels' width (about 8 title characters per inch)
    fig.suptitle(title + ("\n" + textwrap.fill(bars, width=int(8 * width * ncols)) if with_se else ""))
    return fig


def _wrapped(recovered: np.ndarray, true: np.ndarray, period: float) -> np.ndarray:
    """The recovered angle moved by whole periods to lie within period/2 of the true one (for plotting)."""
    return true + (recovered - true + period / 2) % period - period / 2


def oracle_recovery(measured: xr.Dataset, truth: pd.DataFrame) -> Figure:
    """The tuning assay run on the synthetic mouse's true neurons: recovered vs true preferred orientation
    and SF (QC-passing neurons, identity dashed), and F1/F0 by true cell type (the simple/complex split at 1)."""
    fig, axes = figure(1, 3, width=4.0, height=3.8)
    ax_ori, ax_sf, ax_f = axes[0]
    ok = measured["qc_orientation"].values.astype(bool)
    true_ori = truth["ori_deg"].to_numpy(dtype=float) % 180
    rec = _wrapped(measured["pref_ori"].values.astype(float), true_ori, 180.0)
    err = np.abs(rec - true_ori)[ok]
    ax_ori.plot(true_ori[ok], rec[ok], "o", ms=4, color="tab:blue")
    ax_ori.plot([0, 180], [0, 180], "--", color="grey", lw=1)
    ax_ori.set_xlabel("true preferred orientation (deg)")
    ax_ori.set_ylabel("recovered preferred orientation (deg)")
    ax_ori.set_title(f"Orientation: median |error| {np.median(err):.1f} deg (n={ok.sum()})" if ok.any()
                     else "Orientation: no QC-passing neuron", fontsize=9)
    ok = measured["qc_sf"].values.astype(bool)
    true_sf, rec_sf = truth["sf_cpp"].to_numpy(dtype=float), measured["pref_sf"].values.astype(float)
    ax_sf.plot(true_sf[ok], rec_sf[ok], "o", ms=4, color="tab:green")
    span = np.array([min(true_sf.min(), np.nanmin(rec_sf[ok]) if ok.any() else true_sf.min()),
                     max(true_sf.max(), np.nanmax(rec_sf[ok]) if ok.any() else true_sf.max())])
    ax_sf.plot(span, span, "--", color="grey", lw=1)
    plain_log(ax_sf)
    ax_sf.set_xlabel("true preferred SF (cycles/px)")
    ax_sf.set_ylabel("recovered preferred SF (cycles/px)")
    ratio = np.abs(np.log2(rec_sf[ok] / true_sf[ok]))
    ax_sf.set_title(f"Spatial frequency: median |error| {np.median(ratio):.2f} oct (n={ok.sum()})" if ok.any()
                    else "Spatial frequency: no QC-passing neuron", fontsize=9)
    f1f0 = measured["f1f0"].values.astype(float)
    ok = measured["qc_phase"].values.astype(bool) & np.isfinite(f1f0)
    kinds = truth["cell_type"].astype(str).to_numpy()
    rng = np.random.default_rng(0)
    for i, (kind, color) in enumerate((("simple", "tab:orange"), ("complex", "tab:purple"))):
        v = f1f0[ok & (kinds == kind)]
        if len(v):
            ax_f.boxplot([v], positions=[i], widths=0.5, showfliers=False, medianprops={"color": "k"})
        ax_f.plot(i + rng.uniform(-0.15, 0.15, len(v)), v, "o", ms=4, alpha=0.7, color=color)
    ax_f.axhline(1.0, color="grey", ls="--", lw=1)
    ax_f.set_xticks([0, 1], [f"simple (n={(ok & (kinds == 'simple')).sum()})",
                             f"complex (n={(ok & (kinds == 'complex')).sum()})"])
    ax_f.set_xlim(-0.6, 1.6)
    ax_f.set_xlabel("true cell type")
    ax_f.set_ylabel("recovered F1/F0 (ratio)")
    ax_f.set_title("Phase modulation by true cell type", fontsize=9)
    fig.suptitle("Ground truth: the tuning assay on the synthetic mouse's neurons (reference session)")
    return fig
