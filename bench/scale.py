"""Training the zoo as Dask tasks on this machine: wall time on 1 and 2 worker processes, and GPU=1 placement.

Baseline: the zoo trained on a LocalCluster of 1 single-threaded worker process (one model after another).
Measured: the same on 2 worker processes (ratio = baseline / measured; the checkpoints must be bit-identical).
Placement: 2 worker processes of 2 threads each, each declaring GPU=1, every task asking GPU=1, over the zoo with
seeds 0 and 1: from each task's start and end, the most tasks ever running at once on one worker (must be 1) and
on the cluster. Runs on CPU: the resource is a label the scheduler counts, which is all placement needs.

    .venv/bin/python bench/scale.py [--profile smoke] [--epochs N] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from distributed import Client, LocalCluster

from actstore.catalog import Catalog, deep_merge, load_catalog
from actstore.data import prepare_data
from actstore.scheduling import _environment_restored
from actstore.status import job_path
from actstore.store.paths import META, Layout
from actstore.train.zoo import train_zoo


def train_on(catalog: Catalog, data: Path, root: Path, workers: int, threads: int = 1,
             resources: dict | None = None) -> tuple[float, dict]:
    """Wall time of train_zoo on a fresh LocalCluster (started before the clock), and the job file."""
    shutil.copytree(data, root)
    with _environment_restored(), LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                                               dashboard_address=None, resources=resources) as cluster, \
            Client(cluster) as client:
        client.run(lambda: __import__("torch"))  # every worker imports torch before the clock starts
        t0 = time.perf_counter()
        train_zoo(catalog, str(root), progress=False, client=client, resources=resources)
        wall = time.perf_counter() - t0
    return wall, json.loads(Path(job_path(str(root), "train")).read_text())


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    now = best = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def shas(catalog: Catalog, root: Path) -> dict[str, str]:
    return {f"{a}-s{s}": json.loads(Path(Layout(str(root)).model(a, s), META).read_text())["sha256"]
            for a, s in catalog.models}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--epochs", type=int, default=None, help="override train.max_epochs")
    parser.add_argument("--keep", metavar="DIR", help="work here (kept) instead of a temporary folder")
    args = parser.parse_args()
    catalog = load_catalog(profile=args.profile)
    if args.epochs:
        catalog = Catalog(catalog.path, catalog.profile, deep_merge(catalog.cfg, {"train": {"max_epochs": args.epochs}}))
    work = Path(args.keep or tempfile.mkdtemp(prefix="actstore-scale-"))
    data = work / "data-only"
    if not data.exists():
        prepare_data(catalog, str(data))
    print(f"profile {catalog.profile}: {len(catalog.models)} models "
          f"({', '.join(f'{a}-s{s}' for a, s in catalog.models)}), {catalog['train']['max_epochs']} epochs")
    walls, trained = {}, {}
    for n in (1, 2):
        root = work / f"w{n}"
        shutil.rmtree(root, ignore_errors=True)
        walls[n], _ = train_on(catalog, data, root, n)
        trained[n] = shas(catalog, root)
        print(f"train on {n} worker process{'es' if n > 1 else ''} x 1 thread: {walls[n]:.1f} s")
    print(f"ratio 1 worker / 2 workers: {walls[1] / walls[2]:.2f}x; checkpoints bit-identical: {trained[1] == trained[2]}")

    zoo = Catalog(catalog.path, catalog.profile, deep_merge(catalog.cfg, {"zoo": {"seeds": [0, 1]}}))
    root = work / "gpu"
    shutil.rmtree(root, ignore_errors=True)
    wall, job = train_on(zoo, data, root, 2, threads=2, resources={"GPU": 1})
    models = job["models"]
    by_worker: dict[str, list[tuple[float, float]]] = {}
    for m in models.values():
        by_worker.setdefault(m["worker"], []).append((m["start"], m["end"]))
    per_worker = {w: max_overlap(s) for w, s in by_worker.items()}
    print(f"GPU=1 placement: {len(models)} models on 2 workers of 2 threads, each declaring GPU=1: {wall:.1f} s; "
          f"tasks per worker {sorted(len(s) for s in by_worker.values())}; most at once on one worker "
          f"{max(per_worker.values())} (must be 1), on the cluster {max_overlap([x for s in by_worker.values() for x in s])}")
    t0 = min(m["start"] for m in models.values())
    for name, m in sorted(models.items(), key=lambda kv: kv[1]["start"]):
        print(f"  {name:<14} {m['worker']}  {m['start'] - t0:6.1f} .. {m['end'] - t0:6.1f} s")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
