"""`actstore analyze stats`: the cross-model table and pair statistics (design 6.5) -> analysis/summary.zarr
and analysis/summary.csv (one row per arch, seed, with its ceiling_fraction and usable flag; the pair
statistics use usable twins only). Its columns, error columns and pairs are those every registered assay
declares (`Assay.columns`, `errors`, `pairs`), its values their `model_columns`; missing analyses read as NaN."""
from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from actstore.analysis.stats import TableSpec, model_table, summary
from actstore.assays.base import Assay, Sources, Zoo
from actstore.catalog import Catalog
from actstore.store.paths import Layout
from actstore.store.publish import publish_file
from actstore.store.root import filesystem

VERSION = "stats/4"  # 3: columns, errors and pairs from the registry; 4: tuning medians with SE and n


def contributors() -> list[type[Assay]]:
    """Every registered assay class that gives the table columns, in registry order."""
    from actstore.assays import assay_classes

    return [cls for cls in assay_classes() if cls.columns]


def table_spec(assays: list[type[Assay]] | None = None) -> TableSpec:
    """The table's groups, error columns and pairs, in the assays' order (default: every contributor)."""
    assays = contributors() if assays is None else assays
    groups: dict[str, tuple[str, ...]] = {}
    for a in assays:
        for group, cols in a.columns.items():
            groups[group] = groups.get(group, ()) + tuple(cols)
    pairs = tuple(p for a in assays for p in a.pairs if p[0] in groups and p[1] in groups)
    return TableSpec(groups, {c: v for a in assays for c, v in a.errors.items()}, pairs)


def table(archs: list[str], seeds: list[int], found: dict[str, xr.Dataset | None], *,
          usable_fraction: float) -> xr.Dataset:
    """The cross-model table (analysis.stats.model_table) of the contributors' per-model columns, from their
    published results `found` by output name (absent: NaN columns)."""
    assays = contributors()
    parts = [a.model_columns(found[a.output]) for a in assays if found.get(a.output) is not None]
    values = xr.merge([p.drop_vars([c for c in p.coords if c not in ("arch", "seed")]) for p in parts],
                      join="outer", compat="override") if parts else xr.Dataset()
    return model_table(archs, seeds, values, table_spec(assays), usable_fraction=usable_fraction)


class Stats(Assay):
    """The cross-model table: every assay's per-model columns, architecture means and the pair statistics."""

    name = "stats"
    output = "summary"
    version = VERSION
    summary = "cross-model table (summary.csv), architecture means, pair statistics over usable twins"
    position = 90

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> Stats:
        return cls(usable_ceiling_fraction=float(catalog["analysis"]["usable_ceiling_fraction"]))

    def open(self, catalog: Catalog, root: str) -> Sources:
        return Sources.of(Zoo.of(catalog), root, self.stores, [a.output for a in contributors()])

    def fingerprint(self, sources: Sources) -> dict[str, Any]:
        """The contributing analyses' recorded inputs (the table is a function of them) and the table's spec."""
        return {**super().fingerprint(sources), "spec": table_spec().attrs()}

    def current(self, root: str, record: dict[str, Any]) -> bool:
        fs, csv = filesystem(Layout(root).summary_csv)
        return super().current(root, record) and fs.exists(csv)

    def compute(self, sources: Sources) -> tuple[xr.Dataset, list[str]]:
        cross = table(sources.zoo.archs, sources.zoo.seeds, sources.analyses,
                      usable_fraction=self.params["usable_ceiling_fraction"])
        spec = TableSpec.from_attrs(cross.attrs)
        missing = [name for name, ds in sources.analyses.items() if ds is None]
        result = summary(cross)
        head = result["r"].sel(level="arch")
        finite = int(np.isfinite(head.values).sum())
        scored = np.isfinite(cross["neural_r"].values)
        usable = int((cross["usable"].values & scored).sum())
        threshold = self.params["usable_ceiling_fraction"]
        return result, [
            f"stats: {cross.sizes['arch'] * cross.sizes['seed']} models x {len(spec.columns)} columns, "
            f"{usable}/{scored.sum()} scored twins usable (>= {100 * threshold:g}% of the noise ceiling), "
            f"{finite}/{head.size} pairs with r over them" + (f"; missing: {', '.join(missing)}" if missing else "")]

    def publish(self, result: xr.Dataset, root: str, record: dict[str, Any]) -> list[str]:
        lines = super().publish(result, root, record)
        csv_url = Layout(root).summary_csv
        rows = result[[v for v, da in result.data_vars.items() if set(da.dims) == {"arch", "seed"}]]
        publish_file(csv_url, rows.to_dataframe().reset_index().to_csv(index=False).encode())
        return [*lines, f"stats: wrote {csv_url}"]

    def report(self, found, sections, figures) -> None:
        from actstore.report import sections as rs

        spec = table_spec()
        rs.hierarchy(found, sections, figures)
        rs.scatters(found, sections, figures, spec)
        rs.table(found, sections, figures, spec)
