"""`actstore analyze similarity`: how alike the twins' representations are -> analysis/similarity.zarr.

Over the reference clips, in every space of that store (the GRU's last state, the last frame's encoder
output, each layer on its arch's own units), for every pair of complete models (archs x seeds): linear CKA,
debiased (`cka`, the unbiased HSIC estimator: near 0 for unrelated features even at small n) and biased
(`cka_biased`), and RSA (`rsa`: the Spearman r of the two models' correlation-distance RDMs over the clips).
Dims (space, model, other), one model per complete (arch, seed); `seed_floor_<measure>` (space, arch) is
the mean over an arch's pairs of distinct seeds, the noise floor against which two archs' similarity
reads (NaN with one seed). The CKA of all pairs is one computation over the stacked Gram matrices
(analysis.similarity); rsatoolbox would give the same RDMs and comparisons, but pair by pair.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from actstore.analysis.similarity import centred_gram, cka_matrix, rdm_vector, spearman_matrix
from actstore.assays.base import Assay, Sources
from actstore.assays.geometry import clip_features
from actstore.store.ledger import complete_models

STORE = "reference_clips"
MEASURES = ("cka", "cka_biased", "rsa")


def seed_floor(matrix: np.ndarray, archs: list[str], names: list[str]) -> np.ndarray:
    """Per arch in `archs`, the mean similarity over its pairs of distinct seeds (NaN without two seeds)."""
    out = np.full(len(archs), np.nan)
    for k, arch in enumerate(archs):
        mine = [i for i, a in enumerate(names) if a == arch]
        pairs = [matrix[i, j] for i in mine for j in mine if i < j]
        if pairs:
            out[k] = float(np.nanmean(pairs))
    return out


class Similarity(Assay):
    """CKA (debiased and biased) and RSA between every pair of complete models, per space of the reference clips."""

    name = "similarity"
    version = "similarity/1"
    summary = "representational similarity between twins: linear CKA (debiased) and RSA, every space"
    position = 60
    stores = (STORE,)

    def compute(self, sources: Sources) -> tuple[xr.Dataset, list[str]]:
        import dask.array as da

        ds, zoo = sources.stores[STORE], sources.zoo
        models = complete_models(sources.ledgers[STORE], zoo.models)
        spaces = list(ds.attrs["spaces"])
        values = {m: [] for m in MEASURES}
        for space in spaces:
            feats = [clip_features(ds, arch, seed, space).values.astype(np.float64) for arch, seed in models]
            grams = da.stack([centred_gram(da.from_array(f, chunks=-1)) for f in feats])  # (M, n, n), lazy
            values["cka"].append(cka_matrix(grams, debiased=True))
            values["cka_biased"].append(cka_matrix(grams, debiased=False))
            values["rsa"].append(spearman_matrix(np.stack([rdm_vector(f) for f in feats])))
        archs = [a for a, _ in models]
        labels = np.array([f"{a}-s{s}" for a, s in models], dtype=object)
        dims = ("space", "model", "other")
        out = xr.Dataset(
            {m: (dims, np.stack(v)) for m, v in values.items()}
            | {f"seed_floor_{m}": (("space", "arch"), np.stack([seed_floor(x, zoo.archs, archs) for x in v]))
               for m, v in values.items()},
            coords={"space": np.array(spaces, dtype=object), "model": labels, "other": labels,
                    "model_arch": ("model", np.array(archs, dtype=object)),
                    "model_seed": ("model", [s for _, s in models]),
                    "arch": np.array(zoo.archs, dtype=object)},
            attrs={"clips": int(grams.shape[-1]),
                   "cka": "linear CKA with the unbiased HSIC estimator (Song et al. 2012) on centred features",
                   "cka_biased": "linear CKA, tr(K L) / sqrt(tr(K K) tr(L L)) on centred features",
                   "rsa": "Spearman r between correlation-distance RDMs (upper triangles) over the clips"})
        off = ~np.eye(len(models), dtype=bool)
        enc = out["cka"].sel(space="encoder").values[off]
        return out, [f"similarity: {len(models)} models x spaces {', '.join(spaces)}; encoder CKA between "
                     f"models {np.nanmin(enc):.3f}..{np.nanmax(enc):.3f}" if enc.size else
                     f"similarity: {len(models)} model(s): no pair to compare"]

    def report(self, found, sections, figures) -> None:
        from actstore.report.figures import figure
        from actstore.report.html import Section

        s = Section("similarity", "Representational similarity between twins",
                    "Debiased linear CKA (top) and RSA (bottom: Spearman r between correlation-distance RDMs) "
                    "between every pair of complete models over the reference clips, per space. Rows and "
                    "columns: models (arch-seed). Compare two architectures against the seed-to-seed values "
                    "of one (noise floor, in analysis/similarity.zarr: seed_floor_cka, seed_floor_rsa).")
        if (ds := self.published(found, s, sections)) is None:
            return
        if ds.sizes["model"] < 2:
            s.notes.append(f"Only {ds.sizes['model']} complete model in {STORE}.zarr: no pair to compare.")
            sections.append(s)
            return
        spaces = [str(v) for v in ds["space"].values]
        names = [str(v) for v in ds["model"].values]
        fig, axes = figure(2, len(spaces), width=max(2.6, 0.32 * len(names)), height=max(2.6, 0.32 * len(names)))
        for row, measure in enumerate(("cka", "rsa")):
            for col, space in enumerate(spaces):
                ax = axes[row][col]
                image = ax.imshow(ds[measure].sel(space=space).values, vmin=0 if measure == "cka" else -1, vmax=1,
                                  cmap="viridis")
                ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
                ax.set_yticks(range(len(names)), names, fontsize=6)
                ax.set_xlabel("model")
                ax.set_ylabel("model")
                ax.set_title(f"{measure.upper()} · {space}", fontsize=8)
            bar = fig.colorbar(image, ax=axes[row].tolist(), shrink=0.8, label=measure.upper())
            bar.ax.set_xlabel("scale", fontsize=7)
        fig.suptitle(f"Similarity between twins over {ds.attrs['clips']} reference clips", fontsize=9)
        off = ~np.eye(len(names), dtype=bool)
        s.notes.append("Range between distinct models, per space: " + "; ".join(
            f"{space} CKA {np.nanmin(v):.2f}..{np.nanmax(v):.2f}" for space in spaces
            if (v := ds["cka"].sel(space=space).values[off]).size) + f" (n = {ds.attrs['clips']} clips).")
        figures[s.key] = fig
        sections.append(s)
