"""`actstore analyze stats`: the cross-model table and pair statistics (design 6.5) -> analysis/summary.zarr
and analysis/summary.csv (one row per arch, seed, with its ceiling_fraction and usable flag; the pair
statistics use usable twins only). Missing analyses read as NaN columns."""
from __future__ import annotations

import numpy as np

from actstore.analysis.stats import COLUMNS, model_table, summary
from actstore.catalog import Catalog, canonical_hash
from actstore.jobs.inputs import as_json, text_as_objects, up_to_date
from actstore.store.analysis import open_analysis, write_analysis
from actstore.store.paths import Layout
from actstore.store.publish import publish_file
from actstore.store.root import filesystem

VERSION = "stats/2"
SOURCES = ("neural", "probes", "tuning", "geometry")


def run(catalog: Catalog, root: str) -> list[str]:
    """Build the table from whatever analyses exist; 'up to date' when its content is unchanged."""
    archs, seeds = catalog.archs, list(catalog["zoo"]["seeds"])
    found = {name: open_analysis(root, name) for name in SOURCES}
    threshold = float(catalog["analysis"]["usable_ceiling_fraction"])
    table = model_table(archs, seeds, **found, usable_fraction=threshold)
    inputs = {"version": VERSION, "archs": archs, "seeds": seeds, "usable_ceiling_fraction": threshold,
              "table": canonical_hash({c: table[c].values.tolist() for c in table.data_vars})}
    csv_url = Layout(root).summary_csv
    fs, csv = filesystem(csv_url)
    if up_to_date(root, "summary", inputs) and fs.exists(csv):
        return ["stats: up to date"]
    result = summary(table)
    path = write_analysis(text_as_objects(result), root, "summary", as_json(inputs))
    publish_file(csv_url, table.to_dataframe().reset_index().to_csv(index=False).encode())
    missing = [name for name, ds in found.items() if ds is None]
    head = result["r"].sel(level="arch")
    finite = int(np.isfinite(head.values).sum())
    scored = np.isfinite(table["neural_r"].values)
    usable = int((table["usable"].values & scored).sum())
    return [f"stats: {len(archs) * len(seeds)} models x {len(COLUMNS)} columns, {usable}/{scored.sum()} scored twins "
            f"usable (>= {100 * threshold:g}% of the noise ceiling), {finite}/{head.size} pairs with r over them"
            + (f"; missing: {', '.join(missing)}" if missing else ""), f"stats: wrote {path} and {csv_url}"]
