"""`actstore analyze error_profiles`: do twins that represent alike also fail alike? -> analysis/error_profiles.zarr.

A twin's error profile is its test r on every recorded neuron (neural.zarr `neuron_r`, all mice in order).
`profile_r` (model, other) is the Pearson r between two models' profiles over the neurons both score. Over
the usable twins only (mean fraction of the noise ceiling >= analysis.usable_ceiling_fraction: an untrained
twin's profile is noise), a Mantel test relates profile similarity to each representational similarity of
similarity.zarr (CKA, RSA) in each space: `mantel_r` (space, measure) is the Pearson r between the two
matrices' off-diagonal entries, `mantel_p` its permutation p (the models' labels permuted), `mantel_pairs`
the model pairs it rests on. With fewer than 3 usable twins it is NaN; pairs of models are not independent,
which is what the permutation test accounts for.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from actstore.analysis.similarity import mantel
from actstore.analysis.stats import usable
from actstore.assays.base import Assay, Sources
from actstore.catalog import Catalog

MEASURES = ("cka", "rsa")


def profiles(neural: xr.Dataset) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(model labels, (M, neurons) error profiles over every mouse's recorded neurons, each model's mean fraction
    of the noise ceiling) of the complete models."""
    done = neural["complete"].stack(model=("arch", "seed"))
    done = done[done.values.astype(bool)]
    labels = [f"{a}-s{int(s)}" for a, s in done["model"].values]
    rows, fractions = [], []
    for arch, seed in done["model"].values:
        one = neural.sel(arch=arch, seed=seed)
        rows.append(np.concatenate([one["neuron_r"].sel(mouse=m).values[:int(neural["recorded_neurons"].sel(mouse=m))]
                                    for m in neural["mouse"].values]))
        fractions.append(float(one["ceiling_fraction"].mean()))
    width = sum(int(n) for n in neural["recorded_neurons"].values)
    return labels, np.stack(rows) if rows else np.zeros((0, width)), np.array(fractions)


def profile_correlations(x: np.ndarray) -> np.ndarray:
    """Pearson r between every pair of rows over the entries finite in both (NaN with fewer than 3)."""
    m = len(x)
    out = np.full((m, m), np.nan)
    for i in range(m):
        for j in range(i, m):
            ok = np.isfinite(x[i]) & np.isfinite(x[j])
            if ok.sum() >= 3 and np.ptp(x[i][ok]) > 0 and np.ptp(x[j][ok]) > 0:
                out[i, j] = out[j, i] = np.corrcoef(x[i][ok], x[j][ok])[0, 1]
    return out


class ErrorProfiles(Assay):
    """Neuron-level error profiles: their model x model correlation and a Mantel test against CKA and RSA."""

    name = "error_profiles"
    version = "error_profiles/1"
    summary = "neuron-level error profiles: model x model correlation, Mantel test against CKA / RSA"
    position = 70
    analyses = ("neural", "similarity")

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> ErrorProfiles:
        return cls(usable_ceiling_fraction=float(catalog["analysis"]["usable_ceiling_fraction"]), permutations=999)

    def skip(self, sources: Sources) -> str | None:
        if not sources.recorded["neural"]:  # neural records one checkpoint hash per scored model
            return "no per-neuron scores in neural.zarr; skipped (run `actstore train`)"
        if sources.recorded["similarity"] is None:
            return "no similarity.zarr; skipped (run `actstore analyze similarity`)"
        return None

    def compute(self, sources: Sources) -> tuple[xr.Dataset, list[str]]:
        neural, similarity = sources.analyses["neural"].load(), sources.analyses["similarity"].load()
        labels, x, fraction = profiles(neural)
        corr = profile_correlations(x)
        ok = np.asarray(usable(fraction, self.params["usable_ceiling_fraction"]), dtype=bool)
        compared = [lab for lab, good in zip(labels, ok) if good and lab in set(similarity["model"].values)]
        spaces = [str(s) for s in similarity["space"].values]
        stats: dict[str, Any] = {k: np.full((len(spaces), len(MEASURES)), np.nan) for k in ("r", "p", "pairs")}
        index = [labels.index(lab) for lab in compared]
        for a, space in enumerate(spaces):
            for b, measure in enumerate(MEASURES):
                rep = similarity[measure].sel(space=space, model=compared, other=compared).values
                r, p, pairs = mantel(corr[np.ix_(index, index)], rep, self.params["permutations"])
                stats["r"][a, b], stats["p"][a, b], stats["pairs"][a, b] = r, p, pairs
        names = np.array(labels, dtype=object)
        out = xr.Dataset(
            {"profile_r": (("model", "other"), corr), "usable": ("model", ok),
             **{f"mantel_{k}": (("space", "measure"), v) for k, v in stats.items()}},
            coords={"model": names, "other": names, "space": np.array(spaces, dtype=object),
                    "measure": np.array(MEASURES, dtype=object), "compared": np.array(compared, dtype=object)},
            attrs={"neurons": int(x.shape[1]), "permutations": self.params["permutations"],
                   "usable_ceiling_fraction": self.params["usable_ceiling_fraction"]})
        enc = spaces.index("encoder") if "encoder" in spaces else 0
        return out, [f"error_profiles: {len(labels)} models x {x.shape[1]} neurons; {len(compared)} usable twins "
                     f"compared, {spaces[enc]} CKA vs profile r: Mantel r {stats['r'][enc, 0]:.3f}, "
                     f"p {stats['p'][enc, 0]:.3g} over {int(stats['pairs'][enc, 0])} pairs"]

    def report(self, found, sections, figures) -> None:
        from actstore.report.figures import figure
        from actstore.report.html import Section

        s = Section("error-profiles", "Do twins that represent alike fail alike?",
                    "Each point: a pair of usable twins; x: their representational similarity over the reference "
                    "clips (debiased CKA, left: encoder output, right: GRU state), y: the correlation of their "
                    "per-neuron test r over every recorded neuron (error profiles). Title: Mantel r and its "
                    "permutation p over the n pairs (model labels permuted; pairs are not independent).")
        if (ds := self.published(found, s, sections)) is None:
            return
        sim, compared = found["similarity"], [str(c) for c in ds["compared"].values]
        if sim is None or len(compared) < 3:
            s.notes.append(f"{len(compared)} usable twin(s) with similarities: no pair statistics (a Mantel test "
                           "needs 3 or more).")
            sections.append(s)
            return
        spaces = [sp for sp in ("encoder", "gru") if sp in ds["space"].values]
        fig, axes = figure(1, len(spaces), width=3.8, height=3.4)
        i, j = np.triu_indices(len(compared), k=1)
        prof = ds["profile_r"].sel(model=compared, other=compared).values
        for ax, space in zip(axes[0], spaces):
            rep = sim["cka"].sel(space=space, model=compared, other=compared).values
            ax.plot(rep[i, j], prof[i, j], "o", ms=4)
            st = ds.sel(space=space, measure="cka")
            ax.set_title(f"{space}: Mantel r = {float(st['mantel_r']):.2f}, p = {float(st['mantel_p']):.3g}, "
                         f"n = {int(st['mantel_pairs'])} pairs", fontsize=8)
            ax.set_xlabel(f"CKA ({space})")
            ax.set_ylabel("error-profile r")
        figures[s.key] = fig
        sections.append(s)
