"""`actstore run`: reconcile the whole chain like make — data, train, extract, analyze, report.

Each step decides by content (hashes recorded with its outputs) whether it is stale and
does nothing when it is not, so a second run with nothing changed only checks.
"""
from __future__ import annotations

import time
from typing import Callable

import click

from actstore.catalog import Catalog


def _steps(catalog: Catalog, root: str, client: object = None,
           resources: dict[str, float] | None = None) -> list[tuple[str, Callable[[], list[str]]]]:
    from actstore import assays
    from actstore.data import prepare_data
    from actstore.extract import extract
    from actstore.report import build_report
    from actstore.train import train_zoo

    def extract_all() -> list[str]:
        lines: list[str] = []
        for name in catalog["stimuli"]:
            lines += extract(catalog, root, name, client=client, resources=resources)
        return lines

    return [
        ("data", lambda: prepare_data(catalog, root)),
        ("train", lambda: train_zoo(catalog, root, client=client, resources=resources, progress=client is None)),
        ("extract", extract_all),
        ("analyze", lambda: assays.run(catalog, root, "all")),
        ("report", lambda: build_report(catalog, root)),
    ]


def _summary(lines: list[str]) -> str:
    """One line per step: 'up to date' when every line says so, else the count of what was done."""
    done = [ln for ln in lines if "up to date" not in ln]
    if not done:
        return "up to date"
    return "; ".join(done) if len(done) <= 2 else f"{done[0]}; ... ({len(done)} items)"


STEPS = ("data", "train", "extract", "analyze", "report")


def run_all(catalog: Catalog, root: str, scheduler: str = "threads",
            steps: tuple[str, ...] = STEPS, workers: int | None = None,
            resources: dict[str, float] | None = None) -> list[str]:
    """Run the named steps in order (each only where stale); returns one summary line per step. On a distributed
    scheduler (local, tcp://) training and extraction are one task per model, each asking for `resources` (e.g.
    {"GPU": 1})."""
    from actstore.scheduling import dask_scheduler

    out: list[str] = []
    walls: dict[str, float] = {}
    t_all = time.perf_counter()
    with dask_scheduler(scheduler, root, workers, resources) as client:
        for name, step in _steps(catalog, root, client, resources):
            if name not in steps:
                continue
            t0 = time.perf_counter()
            lines = step()
            walls[name] = time.perf_counter() - t0
            line = f"[{name:<7}] {_summary(lines)} ({walls[name]:.1f} s)"
            click.echo(line)
            out.append(line)
    where = f"; report: {root.rstrip('/')}/report/index.html" if "report" in steps else ""
    click.echo("wall time per step: " + ", ".join(f"{name} {wall:.1f} s" for name, wall in walls.items()))
    click.echo(f"done in {time.perf_counter() - t_all:.1f} s{where}")
    return out
