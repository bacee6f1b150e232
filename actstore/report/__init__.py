"""`actstore report`: the study's figures and `<root>/report/index.html`, built from the analysis outputs.

Its sections come from the assay registry (each assay's `report`, in registry order; builders in sections.py).
The report is up to date (nothing is redrawn) while every registered analysis' recorded inputs are unchanged (their
hash is in index.html). It is built in a temporary folder and published whole (index.html last), so a killed run
never leaves a half report; its figures are named by content, so a new report shares no file but index.html with
the old one and an object-store root switches between them with that one write. Missing inputs become notes in the
page, never errors.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import time
from typing import TYPE_CHECKING, Any

from actstore.catalog import Catalog, canonical_hash
from actstore.store.paths import REPORT_MARKER, Layout
from actstore.store.publish import publish_folder
from actstore.store.root import filesystem, join

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from actstore.report.html import Section

VERSION = "report/4"  # 2: sections from the assay registry; 3: figures named by content, inputs hash in index.html;
# 4: neural-prediction bars carry the SE over neurons (earlier reports showed only the SD over seeds)
INPUTS_TAG = re.compile(r'<meta name="actstore-inputs" content="([0-9a-f]{64})">')
DPI = 100


def report_inputs(catalog: Catalog, root: str) -> dict[str, Any]:
    """Everything the report is drawn from: each registered analysis' recorded inputs."""
    from actstore.assays import assay_classes
    from actstore.store.analysis import analysis_inputs

    inputs = {"version": VERSION, "zoo": [catalog.archs, catalog["zoo"]["seeds"]],
              "analyses": {cls.output: analysis_inputs(root, cls.output) for cls in assay_classes()}}
    return json.loads(json.dumps(inputs, default=str))


def report_content(catalog: Catalog, root: str) -> tuple[list[Section], dict[str, Figure]]:
    """The report's sections, in registry order, and their figures by section key (drawn, not yet saved)."""
    from actstore.assays import registry
    from actstore.store.analysis import open_analysis

    assays = registry(catalog)
    found = {a.output: open_analysis(root, a.output) for a in assays}
    sections: list[Section] = []
    figures: dict[str, Figure] = {}
    for assay in assays:
        assay.report(found, sections, figures)
    return sections, figures


def _write(fs, path: str, data: bytes) -> None:
    with fs.open(path, "wb") as f:
        f.write(data)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _up_to_date(fs, folder: str, inputs: dict) -> bool:
    """Whether the published index.html records the hash of exactly these inputs."""
    try:
        found = INPUTS_TAG.search(fs.cat_file(f"{folder}/{REPORT_MARKER}").decode(errors="replace"))
    except FileNotFoundError:
        return False
    return found is not None and found.group(1) == canonical_hash(inputs)


def build_report(catalog: Catalog, root: str) -> list[str]:
    """Draw every figure and write <root>/report/index.html (atomically); 'up to date' when nothing it
    is drawn from has changed. Returns summary lines; the last names the index.html path."""
    from actstore.report.html import page

    final = Layout(root).report
    index = join(final, REPORT_MARKER)
    fs, final_path = filesystem(final)
    inputs = report_inputs(catalog, root)
    if _up_to_date(fs, final_path, inputs):
        return [f"report: up to date ({index})"]
    sections, figures = report_content(catalog, root)
    meta = [f"catalog: {catalog.path} (profile {catalog.profile}); root: {root}",
            f"models: {len(catalog.models)} ({len(catalog['zoo']['archs'])} architectures x "
            f"{len(catalog['zoo']['seeds'])} seeds); inputs {canonical_hash(inputs)[:12]}",
            f"generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}"]

    def build(tmp_url: str) -> None:
        tmp = filesystem(tmp_url)[1]
        fs.makedirs(tmp, exist_ok=True)
        for section in sections:
            if section.key in figures:
                png = _png(figures[section.key])
                section.image = f"{section.key}.{hashlib.sha256(png).hexdigest()[:12]}.png"
                _write(fs, f"{tmp}/{section.image}", png)
        head = f'<meta name="actstore-inputs" content="{canonical_hash(inputs)}">'
        _write(fs, f"{tmp}/{REPORT_MARKER}",
               page(f"actstore report: {catalog['name']}", meta, sections, head).encode())

    publish_folder(final, build, REPORT_MARKER)
    notes = sum(len(s.notes) for s in sections)
    return [f"report: {len(figures)} figures, {len(sections)} sections, {notes} notes", f"report: wrote {index}"]
