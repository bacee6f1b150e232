"""HTML assembly for the report: sections (figure + caption + notes) and the cross-model results table."""
from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

import numpy as np
import xarray as xr

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; font-size: 0.9em; }
section { margin: 2.5em 0; } img { max-width: 100%; border: 1px solid #eee; }
.caption { color: #444; font-size: 0.92em; } .note { background: #fff6e0; border-left: 4px solid #f0b400;
padding: 0.4em 0.8em; margin: 0.5em 0; font-size: 0.92em; }
table { border-collapse: collapse; font-size: 0.88em; } th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; }
th { background: #f4f4f4; } td { text-align: right; font-variant-numeric: tabular-nums; } td:first-child { text-align: left; }
"""


@dataclass
class Section:
    """One part of the report: a figure file (None when it could not be drawn), its caption and any notes."""

    key: str
    title: str
    caption: str
    image: str | None = None
    notes: list[str] = field(default_factory=list)
    html: str = ""  # extra markup (e.g. a table) shown after the figure


def _cell(mean: float, sd: float) -> str:
    if not np.isfinite(mean):
        return "&ndash;"
    return f"{mean:.3g} &plusmn; {sd:.2g}" if np.isfinite(sd) else f"{mean:.3g}"


def _error_cell(se: float, n: np.ndarray) -> str:
    """'SE (n = ..)' of one architecture: n as one number, or its range when the seeds differ."""
    n = n[np.isfinite(n)].astype(int)
    if not np.isfinite(se) or not len(n):
        return "&ndash;"
    count = f"{n.min()}" if n.min() == n.max() else f"{n.min()}&ndash;{n.max()}"
    return f"{se:.2g} (n = {count})"


def results_table(summary: xr.Dataset, columns: list[str], labels: dict[str, str],
                  errors: tuple[str, ...] = ()) -> str:
    """Mean +- SD over seeds per architecture (rows) for each column; '&ndash;' where there is no value. Each
    column of `errors` that the summary holds an SE for is followed by 'SE (n)': `<column>_mean_se` and the
    per-model `<column>_n`."""
    archs = [str(a) for a in summary["arch"].values]
    with_error = {c for c in errors if f"{c}_mean_se" in summary and f"{c}_n" in summary}
    head = "".join(f"<th>{escape(labels.get(c, c))}</th>" + ("<th>SE (n)</th>" if c in with_error else "")
                   for c in columns)
    rows = []
    for i, arch in enumerate(archs):
        n = max((int(np.isfinite(summary[c].sel(arch=arch).values).sum()) for c in columns), default=0)
        one = summary.sel(arch=arch)
        cells = ""
        for c in columns:
            cells += f"<td>{_cell(float(one[f'{c}_mean']), float(one[f'{c}_sd']))}</td>"
            if c in with_error:
                n_models = np.asarray(one[f"{c}_n"].values, dtype=np.float64)
                cells += f"<td>{_error_cell(float(one[f'{c}_mean_se']), n_models)}</td>"
        rows.append(f"<tr><td>{escape(arch)}</td><td>{n}</td>{cells}</tr>")
    return (f"<table><thead><tr><th>architecture</th><th>seeds</th>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def section_html(section: Section) -> str:
    """A section: heading, notes, the figure and its caption, extra markup."""
    parts = [f'<section id="{escape(section.key)}"><h2>{escape(section.title)}</h2>']
    parts += [f'<p class="note">{escape(note)}</p>' for note in section.notes]
    if section.image is not None:
        parts.append(f'<figure><img src="{escape(section.image)}" alt="{escape(section.title)}">'
                     f'<figcaption class="caption">{escape(section.caption)}</figcaption></figure>')
    elif section.caption and not section.html:
        parts.append(f'<p class="caption">{escape(section.caption)}</p>')
    if section.html:
        parts.append(f'<p class="caption">{escape(section.caption)}</p>{section.html}')
    parts.append("</section>")
    return "\n".join(parts)


def page(title: str, meta: list[str], sections: list[Section], head: str = "") -> str:
    """The whole index.html: title, run details, a table of contents and every section; `head` is added to the
    head as it is (trusted markup, e.g. a meta tag)."""
    toc = "".join(f'<li><a href="#{escape(s.key)}">{escape(s.title)}</a></li>' for s in sections)
    body = "\n".join(section_html(s) for s in sections)
    info = "<br>".join(escape(m) for m in meta)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>{head}"
            f"<style>{STYLE}</style></head>\n<body><h1>{escape(title)}</h1><p class=\"meta\">{info}</p>"
            f"<nav><ol>{toc}</ol></nav>\n{body}\n</body></html>\n")
