"""`actstore status`: what exists under the root, with sizes."""
from __future__ import annotations

import math
from typing import Iterator

import fsspec

from actstore.catalog import Catalog
from actstore.store.paths import META, ZARR_MARKER, Layout
from actstore.store.root import filesystem, join


def _size(fs: fsspec.AbstractFileSystem, path: str) -> int:
    try:
        return int(fs.du(path, total=True))
    except (FileNotFoundError, NotADirectoryError):
        return 0


def _completed(url: str) -> str:
    """'k/n models complete' from a store's ledger flags."""
    from actstore.store.zarrstore import ActivationStore

    try:
        store = ActivationStore(url)
    except Exception as e:  # status reports, it never fails on a damaged store
        return f"unreadable ({type(e).__name__})"
    return f"{store.complete_count()}/{len(store.archs) * len(store.seeds)} models complete"


def ceiling_text(fraction: float) -> str:
    """' (62% of ceiling)' for a finite fraction of the noise ceiling, '' otherwise (no ceiling known)."""
    return f" ({round(100 * fraction)}% of ceiling)" if math.isfinite(fraction) else ""


def usable_text(fraction: float, threshold: float) -> str:
    """', usable twin', or ', not usable (below 25% of ceiling)' when the fraction of the noise ceiling is below
    `threshold` (the cross-model statistics leave such a twin out); ', usable (no ceiling known)' without one."""
    from actstore.analysis.stats import usable

    if not math.isfinite(fraction):
        return ", usable (no ceiling known)"
    return ", usable twin" if usable(fraction, threshold) else f", not usable (below {100 * threshold:g}% of ceiling)"


def _neural_scores(root: str, threshold: float) -> dict[tuple[str, int], str]:
    """'test r 0.31 (62% of ceiling), smoothed r 0.52, usable twin' per trained model, from
    analysis/neural.zarr (empty when absent); `threshold` is the catalog's analysis.usable_ceiling_fraction."""
    from actstore.store.analysis import open_analysis

    try:
        ds = open_analysis(root, "neural", dask=False)
    except Exception:  # status reports, it never fails on a damaged result
        return {}
    if ds is None:
        return {}
    out = {}
    for arch in ds["arch"].values:
        for seed in ds["seed"].values:
            cell = ds.sel(arch=arch, seed=seed)
            if not bool(cell["complete"]):
                continue
            fraction = float(cell["ceiling_fraction"].mean())
            smoothed = float(cell["xu_smoothed_neural_r"]) if "xu_smoothed_neural_r" in cell else math.nan
            out[(str(arch), int(seed))] = (f"  test r {float(cell['neural_r']):.3f}{ceiling_text(fraction)}"
                                           + (f", smoothed r {smoothed:.3f}" if math.isfinite(smoothed) else "")
                                           + usable_text(fraction, threshold))
    return out


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def status_lines(catalog: Catalog, root: str) -> Iterator[str]:
    """One line per artifact the catalog expects: present, stale (the data, with what is wrong) or missing, and
    its size; per registered assay, whether its result is up to date, stale, missing or skipped (and why)."""
    layout = Layout(root)
    fs = filesystem(root)[0]
    yield f"catalog {catalog.path} (profile {catalog.profile}); root {root}"
    from actstore.data.prepare import data_path, data_problem

    dfs, data = filesystem(data_path(catalog, root))
    there = dfs.exists(data)
    problem = data_problem(catalog, root) if there else None
    state = "missing" if not there else "stale" if problem else "present"
    yield (f"  data      {catalog['data']['source']:<18} {state:<8} {human_bytes(_size(dfs, data))}"
           + (f"  {problem}" if problem else ""))
    scores = _neural_scores(root, float(catalog["analysis"]["usable_ceiling_fraction"]))
    for arch, seed in catalog.models:
        folder = filesystem(layout.model(arch, seed))[1]
        there = fs.exists(join(folder, META))
        name = f"{arch}-s{seed}"
        yield (f"  model     {name:<18} {'present' if there else 'missing':<8} {human_bytes(_size(fs, folder))}"
               + (scores.get((arch, seed), "") if there else ""))
    yield from job_lines(root, "train")
    for name in catalog["stimuli"]:
        path = filesystem(layout.store(name))[1]
        there = fs.exists(join(path, ZARR_MARKER))
        yield (f"  store     {name:<18} {'present' if there else 'missing':<8} {human_bytes(_size(fs, path))}"
               + (f"  {_completed(layout.store(name))}" if there else ""))
        yield from job_lines(root, f"extract-{name}")
    from actstore.assays import registry
    from actstore.assays.base import state

    for assay in registry(catalog):
        path = filesystem(layout.analysis(assay.output))[1]
        try:
            now = state(assay, catalog, root)
        except Exception as e:  # status reports, it never fails on a damaged input
            now = f"unknown ({type(e).__name__})"
        word = now if now in ("up to date", "stale", "missing") else "skipped"
        yield (f"  analysis  {assay.name:<18} {word:<10} {human_bytes(_size(fs, path)):>9}  {assay.summary}"
               + ("" if word != "skipped" else f" ({now})"))


# ---------------------------------------------------------------------- distributed jobs
def job_path(root: str, job: str) -> str:
    """`<root>/jobs/<job>.json`: the progress of the latest distributed `job` (train, extract-<recipe>), written by
    its driver."""
    return join(root, "jobs", f"{job}.json")


class JobProgress:
    """The driver's record of a distributed job, one state per model: queued, running (on which worker), done,
    failed (with its one-line error). Only the driver writes it, whole each time (publish_file: atomic), so `status`
    on any machine that sees the root reads a consistent picture."""

    def __init__(self, root: str, job: str, names: list[str], scheduler: str) -> None:
        import time

        self.url = job_path(root, job)
        self.doc = {"job": job, "scheduler": scheduler, "started": time.time(), "updated": None, "finished": None,
                    "models": {name: {"state": "queued"} for name in names}}
        self.write()

    def set(self, name: str, state: str, **extra: object) -> None:
        entry = self.doc["models"][name]
        if entry.get("state") != state or any(entry.get(k) != v for k, v in extra.items()):
            entry.clear()
            entry.update(state=state, **extra)
            self.write()

    def finish(self) -> None:
        import time

        self.doc["finished"] = time.time()
        self.write()

    def write(self) -> None:
        import json
        import time

        from actstore.store.publish import publish_file

        self.doc["updated"] = time.time()
        publish_file(self.url, json.dumps(self.doc, indent=1, sort_keys=True).encode())


def job_lines(root: str, job: str = "train") -> list[str]:
    """The latest distributed job's progress: one line for the job, one per model that is not simply queued."""
    import json
    import time

    fs, path = filesystem(job_path(root, job))
    try:
        doc = json.loads(fs.cat_file(path))
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        return [f"  job       {job:<18} unreadable progress file {job_path(root, job)}"]
    models = doc.get("models", {})
    counts = {s: sum(m.get("state") == s for m in models.values()) for s in ("done", "running", "failed", "queued")}
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(doc.get("started") or 0))
    state = "finished" if doc.get("finished") else "running"
    lines = [f"  job       {job:<18} {state:<8} since {when} on {doc.get('scheduler')}: "
             + ", ".join(f"{n} {s}" for s, n in counts.items())]
    for name, m in sorted(models.items()):
        detail = {"running": f" on {m.get('worker')}", "failed": f": {m.get('error')}", "done": ""}.get(m["state"], "")
        lines.append(f"    {name:<24} {m['state']}{detail}")
    return lines
