"""In-silico fidelity: the tuning assay run on a twin's predicted neurons against the same assay run on the true
neurons, neuron by neuron. The question: a scientist who ran the grating experiment on the twin instead of the
mouse, would they get the mouse's answer?

Per neuron (each metric only where both sides pass its QC): the preferred-orientation error (circular, deg,
0..90), the preferred-SF error (|log2 ratio|, octaves), whether both sides put F1/F0 on the same side of 1
(simple vs complex), and the c50 error (|difference|, contrast units) where both contrast fits are usable and
neither sits on a bound of its box. Per model: the medians (the agreement's mean) with their n and SE (bootstrap
over the neurons for a median, binomial for the agreement), and the Pearson r of gOSI over the neurons responsive
on both sides.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from actstore.analysis.stats import median_se

# per-neuron comparison -> its per-model summary (the median; for the agreement, the fraction that agree)
SUMMARIES = {"ori_error": "ori_error_median", "sf_error": "sf_error_median",
             "simple_complex_agree": "simple_complex_agreement", "c50_error": "c50_error_median"}


def circular_difference(a: xr.DataArray, b: xr.DataArray, period: float = 180.0) -> xr.DataArray:
    """|a - b| on a circle of `period` (0 .. period / 2)."""
    d = np.abs(a - b) % period
    return np.minimum(d, period - d)


def per_neuron_errors(predicted: xr.Dataset, truth: xr.Dataset) -> xr.Dataset:
    """The four per-neuron comparisons of two tuning results over the same neurons (NaN where either side fails
    the metric's QC), and both sides' gOSI where both are responsive; `predicted` may carry more dims (models)
    than `truth`."""
    def both(flag: str) -> xr.DataArray:
        return predicted[flag].astype(bool) & truth[flag].astype(bool)

    usable_c50 = both("qc_contrast") & ~predicted["nr_at_bound"].astype(bool) & ~truth["nr_at_bound"].astype(bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        sf_octaves = np.abs(np.log2(predicted["pref_sf"] / truth["pref_sf"]))
    agree = ((predicted["f1f0"] > 1) == (truth["f1f0"] > 1)).astype(np.float64)
    responsive = predicted["responsive"].astype(bool) & truth["responsive"].astype(bool)
    return xr.Dataset({
        "gosi_predicted": predicted["gosi"].where(responsive), "gosi_true": truth["gosi"].where(responsive),
        "ori_error": circular_difference(predicted["pref_ori"], truth["pref_ori"]).where(both("qc_orientation")),
        "sf_error": sf_octaves.where(both("qc_sf")),
        "simple_complex_agree": agree.where(both("qc_phase")),
        "c50_error": np.abs(predicted["nr_c50"] - truth["nr_c50"]).where(usable_c50),
    })


def pearson_over(x: xr.DataArray, y: xr.DataArray, dim: str) -> xr.DataArray:
    """Pearson r along `dim` over the entries finite in both (NaN with fewer than 3 or a constant side)."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x.where(ok), y.where(ok)
    dx, dy = x - x.mean(dim), y - y.mean(dim)
    num = (dx * dy).sum(dim)
    den = np.sqrt((dx**2).sum(dim) * (dy**2).sum(dim))
    return (num / den.where(den > 0)).where(ok.sum(dim) >= 3)


def summaries(errors: xr.Dataset, dim: str) -> xr.Dataset:
    """Per-model summaries of per-neuron errors along `dim`: SUMMARIES, each with `<summary>_n` and `<summary>_se`
    (a median's bootstrap SE over the neurons; the agreement fraction's binomial SE), and `gosi_r` (Pearson r of
    the two sides' gOSI) with `gosi_n`."""
    out = {}
    for name, summary in SUMMARIES.items():
        n = errors[name].notnull().sum(dim)
        if name == "simple_complex_agree":
            out[summary] = errors[name].mean(dim)
            out[f"{summary}_se"] = np.sqrt(out[summary] * (1 - out[summary]) / n.where(n > 0))
        else:
            out[summary] = errors[name].median(dim)
            out[f"{summary}_se"] = median_se(errors[name], dim)
        out[f"{summary}_n"] = n
    out["gosi_r"] = pearson_over(errors["gosi_predicted"], errors["gosi_true"], dim)
    out["gosi_n"] = (errors["gosi_predicted"].notnull() & errors["gosi_true"].notnull()).sum(dim)
    return xr.Dataset(out)


def fidelity(predicted: xr.Dataset, truth: xr.Dataset, dim: str = "neuron") -> xr.Dataset:
    """Per-neuron errors (per_neuron_errors) and their per-model summaries along `dim` (summaries)."""
    errors = per_neuron_errors(predicted, truth)
    return xr.merge([errors, summaries(errors, dim)])
