"""The report over the smoke root: every figure drawn, referenced and on disk, labelled axes, the numbers
it shows are the analyses' numbers, missing inputs become notes, and an unchanged root is up to date."""
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from actstore.report import INPUTS_TAG, build_report, report_content

FIGURES = {"neural", "orientation", "contrast", "rdk", "tuning", "geometry", "scatter-prediction-probes",
           "scatter-prediction-tuning", "scatter-prediction-geometry", "scatter-geometry-probes",
           "scatter-tuning-probes", "ground-truth", "hierarchy", "sparseness", "scatter-prediction-sparseness",
           "similarity", "fidelity", "scatter-prediction-fidelity"}
PROBE_SECTIONS = {"orientation", "contrast", "rdk"}


class Page(HTMLParser):
    """The parts of index.html the tests read: image sources, notes per section, table rows."""

    def __init__(self, text: str):
        super().__init__()
        self.images: list[str] = []  # img sources: <section key>.<content hash>.png
        self.notes: dict[str, list[str]] = {}
        self.rows: list[list[str]] = []
        self._section, self._in_note, self._in_cell = None, False, False
        self.feed(text)

    @property
    def figures(self) -> list[str]:
        """The section key of every image."""
        return [src.split(".", 1)[0] for src in self.images]

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self._section = a["id"]
            self.notes[self._section] = []
        elif tag == "img":
            self.images.append(a["src"])
        elif tag == "p" and a.get("class") == "note":
            self._in_note = True
            self.notes[self._section].append("")
        elif tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._in_cell = True
            self.rows[-1].append("")

    def handle_endtag(self, tag):
        self._in_note = self._in_note and tag != "p"
        self._in_cell = self._in_cell and tag != "td"

    def handle_data(self, data):
        if self._in_note:
            self.notes[self._section][-1] += data
        if self._in_cell:
            self.rows[-1][-1] += data


def copy_parts(src: str, dst: Path, parts=("analysis", "data")) -> str:
    for part in parts:
        shutil.copytree(os.path.join(src, part), dst / part)
    return str(dst)


def snapshot(root: str) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in Path(root).rglob("*")}


@pytest.fixture(scope="module")
def built(smoke_root, smoke_catalog, tmp_path_factory):
    root = copy_parts(smoke_root, tmp_path_factory.mktemp("report"))
    lines = build_report(smoke_catalog, root)
    return root, lines, Page((Path(root) / "report" / "index.html").read_text())


def test_html_references_every_figure_and_only_existing_images(built):
    root, lines, page = built
    assert lines[-1].endswith(f"{root}/report/index.html")
    assert sorted(page.figures) == sorted(FIGURES)
    for src in page.images:
        assert (Path(root) / "report" / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in Path(root).iterdir() if p.name.startswith(".report.")]  # no temp folder left


def test_two_models_give_notes_not_r_and_the_table_shows_the_summary(built, smoke_root):
    _, _, page = built
    for key in ("scatter-prediction-probes", "scatter-tuning-probes"):
        assert any("r is undefined" in note for note in page.notes[key])  # 2 architectures: no r anywhere
    summary = xr.open_zarr(f"{smoke_root}/analysis/summary.zarr")
    rows = {row[0]: row for row in page.rows if row}
    assert set(rows) == {str(a) for a in summary["arch"].values}
    for arch, row in rows.items():
        assert row[1] == "1"  # one seed in the smoke zoo
        assert row[2] == f"{float(summary['neural_r_mean'].sel(arch=arch)):.3g}"  # SD undefined with one seed


def test_second_build_is_up_to_date_and_writes_nothing(built, smoke_catalog):
    root = built[0]
    before = snapshot(root)
    assert build_report(smoke_catalog, root) == [f"report: up to date ({root}/report/index.html)"]
    assert snapshot(root) == before


def test_cli_report_is_up_to_date_on_a_built_root(built):
    root = built[0]
    proc = subprocess.run([sys.executable, "-m", "actstore.cli", "--profile", "smoke", "--root", root, "report"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines() == [f"report: up to date ({root}/report/index.html)"]


def _has_data(ax) -> bool:
    return bool(ax.lines or ax.collections or ax.patches or ax.containers)


def test_figures_have_labelled_axes_and_show_the_analyses_numbers(smoke_catalog, smoke_root):
    sections, figures = report_content(smoke_catalog, smoke_root)
    assert set(figures) == FIGURES and [s.key for s in sections if s.key in figures] == [
        s.key for s in sections if s.key in FIGURES]
    for key, fig in figures.items():
        drawn = [ax for ax in fig.axes if ax.get_visible() and _has_data(ax)]
        assert drawn, key
        for ax in drawn:
            assert ax.get_xlabel().strip() and ax.get_ylabel().strip(), (key, ax.get_title())
            assert ax.get_title() or fig.get_suptitle(), key
    # bars of the neural figure = neural_r of each architecture (one seed)
    neural = xr.open_zarr(f"{smoke_root}/analysis/neural.zarr")
    bars = [p.get_height() for p in figures["neural"].axes[0].patches]
    np.testing.assert_allclose(bars, neural["neural_r"].sel(seed=0).values, rtol=1e-6)
    # hierarchy: per arch one line over its spaces in depth order, y = the probe's by-space accuracy
    probes = xr.open_zarr(f"{smoke_root}/analysis/probes.zarr")
    tuning = xr.open_zarr(f"{smoke_root}/analysis/tuning.zarr")
    acc_panel = figures["hierarchy"].axes[0]
    drawn = {c.get_label(): c.lines[0] for c in acc_panel.containers}
    assert set(drawn) == set(smoke_catalog["zoo"]["archs"])
    for arch, line in drawn.items():
        depth = tuning["depth"].sel(arch=arch).values
        order = np.lexsort((tuning["space"].values == "encoder", depth))
        np.testing.assert_allclose(line.get_xdata(), depth[order])
        np.testing.assert_allclose(line.get_ydata(),
                                   probes["orientation_id_by_space"].sel(arch=arch, seed=0).values[order])
    # its alpha panel: each point's bar is the model's jackknife SE of alpha in that space (one seed)
    geometry = xr.open_zarr(f"{smoke_root}/analysis/geometry.zarr")
    alpha_panel = figures["hierarchy"].axes[3]
    for bars in alpha_panel.containers:
        arch, half = bars.get_label(), [np.ptp(seg[:, 1]) / 2 for seg in bars.lines[2][0].get_segments()]
        depth = tuning["depth"].sel(arch=arch).values
        spaces = tuning["space"].values[np.lexsort((tuning["space"].values == "encoder", depth))]
        want = [float(geometry[f"alpha_{sp}_se"].sel(arch=arch, seed=0)) for sp in spaces]
        np.testing.assert_allclose(half, want, rtol=1e-6)
    # ground truth: the assay recovers the oracle's preferred orientations (points on the identity line)
    ori = figures["ground-truth"].axes[0].lines[0]
    true, recovered = np.asarray(ori.get_xdata()), np.asarray(ori.get_ydata())
    assert len(true) >= 6 and np.median(np.abs(recovered - true)) < 5.0


def test_missing_inputs_become_notes_and_changed_inputs_rebuild(smoke_root, smoke_catalog, tmp_path):
    root = copy_parts(smoke_root, tmp_path, parts=("analysis",))
    for name in ("probes", "summary", "ground_truth", "sparseness", "similarity", "fidelity"):
        shutil.rmtree(tmp_path / "analysis" / f"{name}.zarr")
    build_report(smoke_catalog, root)
    index = tmp_path / "report" / "index.html"
    page = Page(index.read_text())
    assert sorted(page.figures) == ["geometry", "hierarchy", "neural", "tuning"]
    assert all((tmp_path / "report" / src).is_file() for src in page.images)
    for key in PROBE_SECTIONS:
        assert any("probes.zarr not found" in note for note in page.notes[key])
    for key in ("scatter-prediction-probes", "results"):
        assert any("summary.zarr not found" in note for note in page.notes[key])
    assert any("ground truth" in note for note in page.notes["ground-truth"])
    shutil.rmtree(tmp_path / "analysis" / "geometry.zarr")
    lines = build_report(smoke_catalog, root)
    assert "up to date" not in lines[-1]
    page = Page(index.read_text())
    assert sorted(page.figures) == ["hierarchy", "neural", "tuning"]  # hierarchy: tuning's panels
    assert not list((tmp_path / "report").glob("geometry.*"))
    assert any("geometry.zarr not found" in note for note in page.notes["geometry"])


def test_empty_root_gives_a_page_of_notes(smoke_catalog, tmp_path):
    lines = build_report(smoke_catalog, str(tmp_path))
    page = Page((tmp_path / "report" / "index.html").read_text())
    assert lines[-1].endswith("report/index.html") and page.images == []
    assert all(notes for notes in page.notes.values())
    assert "up to date" in build_report(smoke_catalog, str(tmp_path))[-1]
    # an index.html without the record of its inputs (a foreign or hand-edited one) is never taken as current
    index = tmp_path / "report" / "index.html"
    index.write_text(INPUTS_TAG.sub("", index.read_text()))
    assert build_report(smoke_catalog, str(tmp_path))[-1] == f"report: wrote {tmp_path}/report/index.html"
    assert INPUTS_TAG.search(index.read_text())


def test_unusable_twins_are_listed_marked_and_left_out_of_the_statistics(smoke_catalog, smoke_root, built):
    """With the threshold between the two smoke twins' fractions of the noise ceiling, the weaker twin is listed
    as not usable, drawn as a grey hatched bar and a hollow scatter point, and left out of n."""
    from actstore.analysis.stats import summary
    from actstore.assays.stats import table
    from actstore.report.sections import _usable_note
    from actstore.report import figures as fg
    from actstore.store.analysis import open_analysis

    note = [n for n in built[2].notes["neural"] if n.startswith("Usable twins")]
    assert len(note) == 1 and ">= 25%" in note[0]                       # the catalog's threshold, stated
    found = {name: open_analysis(smoke_root, name) for name in ("neural", "probes", "tuning", "geometry")}
    fraction = found["neural"]["ceiling_fraction"].mean("mouse").sel(seed=0).values
    weak, strong = np.argsort(fraction)
    archs, threshold = smoke_catalog["zoo"]["archs"], float(fraction.mean())
    out = summary(table(archs, [0], found, usable_fraction=threshold))
    assert out["usable"].sel(seed=0).values.tolist() == [i == strong for i in range(2)]
    assert _usable_note(out).endswith(f"): {archs[strong]}-s0. Not usable: {archs[weak]}-s0.")
    assert int(out["n"].sel(level="model", pair="neural_r vs contrast_auc")) == 1
    bars = fg.neural_prediction(found["neural"], out["usable"], threshold)
    assert [p.get_hatch() for p in bars.axes[0].patches] == ["//" if i == weak else None for i in range(2)]
    assert bars.legends
    assert [ax.get_title().splitlines()[0] for ax in bars.axes[:3]] == [
        "Neural prediction", "Prediction / noise ceiling", "Smoothed whole-test r (Xu et al.)"]
    scatter = fg.cross_model_scatter(out, out.sel(level="arch"), [("neural_r", "contrast_auc")], "t")
    points = [c.lines[0] for c in scatter.axes[0].containers if c.lines[0] is not None]
    assert [p.get_markerfacecolor() == "white" for p in points] == [i == weak for i in range(2)]
    assert scatter.axes[0].get_title() == "n = 1: too few twins"


def test_neural_bars_carry_the_se_over_neurons_and_n(smoke_root):
    """Each panel's error bar is +- 1 SE over the recorded neurons: each mouse's SE of its mean, combined over
    the mice as independent (hand-computed here from the stored per-mouse SEs); the title states n."""
    from actstore.report import figures as fg
    from actstore.store.analysis import open_analysis

    neural = open_analysis(smoke_root, "neural").sel(seed=0).compute()
    se, xu_se, ceiling = (neural[v].values for v in ("r_neuron_se", "xu_smoothed_r_se", "ceiling"))
    mice = se.shape[1]
    expected = [np.sqrt((se**2).sum(1)) / mice, np.sqrt(((se / ceiling) ** 2).sum(1)) / mice,
                np.sqrt((xu_se**2).sum(1)) / mice]
    fig = fg.neural_prediction(open_analysis(smoke_root, "neural"))
    n = int(neural["n_neurons"].sum("mouse").values[0])
    for ax, want in zip(fig.axes[:3], expected):
        bars = next(c for c in ax.containers if type(c).__name__ == "ErrorbarContainer")
        half = [np.ptp(seg[:, 1]) / 2 for seg in bars.lines[2][0].get_segments()]
        np.testing.assert_allclose(half, want, rtol=1e-6)
        assert ax.get_title().endswith(f"(n = {n} neurons)") and ax.get_ylabel().endswith("bars \u00b1 1 SE")


def test_every_scatter_panel_states_n(smoke_catalog, smoke_root):
    _, figures = report_content(smoke_catalog, smoke_root)
    titles = [ax.get_title() for key, fig in figures.items() if key.startswith("scatter-")
              for ax in fig.axes if ax.get_visible()]
    assert titles and all("n = " in t for t in titles)


def test_scatter_text_flags_a_correlation_carried_by_one_point():
    """Eight usable twins whose r = 0.94 rests on one outlier, and an unusable ninth: the panel states n = 8,
    'descriptive' and '(carried by one point)', and the ninth is hollow and off the fit."""
    from actstore.analysis.stats import summary
    from actstore.assays.stats import table
    from actstore.report import figures as fg

    names = [f"m{i}" for i in range(9)]
    x, y = [1, 2, 3, 4, 5, 6, 7, 20, 25], [1, 1.2, 0.9, 1.1, 1.0, 0.95, 1.05, 5, 3]
    fraction = np.array([0.5] * 8 + [0.1])[:, None, None] + np.zeros(2)   # per mouse; m8 below 25%
    dims = ("arch", "seed")
    neural = xr.Dataset({"neural_r": (dims, np.array(x, float)[:, None]),
                         "ceiling_fraction": ((*dims, "mouse"), fraction)}, coords={"arch": names, "seed": [0]})
    probes = xr.Dataset({"contrast_auc": (dims, np.array(y, float)[:, None])}, coords={"arch": names, "seed": [0]})
    out = summary(table(names, [0], {"neural": neural, "probes": probes}, usable_fraction=0.25))
    fig = fg.cross_model_scatter(out, out.sel(level="arch"), [("neural_r", "contrast_auc")], "t")
    ax = fig.axes[0]
    assert ax.get_title().splitlines() == ["r = 0.94, p = 0.000608, n = 8", "descriptive", "(carried by one point)"]
    hollow = [c.lines[0].get_markerfacecolor() == "white" for c in ax.containers]
    assert hollow == [False] * 8 + [True]
    line = ax.lines[-1]                                   # the OLS line spans the usable points only
    assert list(line.get_xdata()) == [1, 20]
