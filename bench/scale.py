"""Training and extracting the zoo as Dask tasks on this machine: wall time on 1 and 2 worker processes, and
GPU=1 placement.

Baseline: the zoo trained, then extracted into every stimulus set of the catalog, on a LocalCluster of 1
single-threaded worker process (one model after another). Measured: the same on 2 worker processes (ratio =
baseline / measured; checkpoints and stored values must be bit-identical). Placement: 2 worker processes of 2
threads each, each declaring GPU=1, every task asking GPU=1, over the zoo with seeds 0 and 1: from each task's
start and end, the most tasks ever running at once on one worker (must be 1) and on the cluster, for training and
for extraction. Runs on CPU: the resource is a label the scheduler counts, which is all placement needs.

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

from actstore.allocator import retain_freed_memory
from actstore.catalog import Catalog, deep_merge, load_catalog
from actstore.data import prepare_data
from actstore.extract import extract
from actstore.scheduling import _environment_restored
from actstore.status import job_path
from actstore.store.paths import META, Layout
from actstore.store.zarrstore import ActivationStore
from actstore.train.zoo import train_zoo


def zoo_on(catalog: Catalog, data: Path, root: Path, workers: int, threads: int = 1,
           resources: dict | None = None) -> tuple[dict[str, float], dict[str, dict]]:
    """Wall time of train_zoo, then of extract over every stimulus set, on one fresh LocalCluster (started before
    the clock), and the job files by job name."""
    shutil.copytree(data, root)
    walls = {}
    with _environment_restored(), LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                                               dashboard_address=None, resources=resources) as cluster, \
            Client(cluster) as client:
        client.run(lambda: __import__("torch"))  # every worker imports torch before the clock starts
        t0 = time.perf_counter()
        train_zoo(catalog, str(root), progress=False, client=client, resources=resources)
        walls["train"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for recipe in catalog["stimuli"]:
            extract(catalog, str(root), recipe, client=client, resources=resources)
        walls["extract"] = time.perf_counter() - t0
    jobs = ["train", *(f"extract-{r}" for r in catalog["stimuli"])]
    return walls, {j: json.loads(Path(job_path(str(root), j)).read_text()) for j in jobs}


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    now = best = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def identities(catalog: Catalog, root: Path) -> dict[str, object]:
    """Each checkpoint's sha256 and each stored model's ledger checksums (sha256 of every space), by model."""
    out: dict[str, object] = {f"{a}-s{s}": json.loads(Path(Layout(str(root)).model(a, s), META).read_text())["sha256"]
                              for a, s in catalog.models}
    for recipe in catalog["stimuli"]:
        store = ActivationStore(Layout(str(root)).store(recipe))
        out.update({f"{recipe}/{a}-s{s}": json.loads(store.entry_json(a, s))["checksums"] for a, s in catalog.models})
    return out


def main() -> None:
    retain_freed_memory()  # the allocator setting the command line runs with (actstore/allocator.py)
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
          f"({', '.join(f'{a}-s{s}' for a, s in catalog.models)}), {catalog['train']['max_epochs']} epochs, "
          f"stimulus sets {', '.join(catalog['stimuli'])}")
    walls, made = {}, {}
    for n in (1, 2):
        root = work / f"w{n}"
        shutil.rmtree(root, ignore_errors=True)
        walls[n], _ = zoo_on(catalog, data, root, n)
        made[n] = identities(catalog, root)
        print(f"{n} worker process{'es' if n > 1 else ''} x 1 thread: train {walls[n]['train']:.1f} s, "
              f"extract {walls[n]['extract']:.1f} s")
    for step in ("train", "extract"):
        print(f"{step} ratio 1 worker / 2 workers: {walls[1][step] / walls[2][step]:.2f}x")
    print(f"checkpoints and stored values bit-identical on 1 and 2 workers: {made[1] == made[2]}")

    zoo = Catalog(catalog.path, catalog.profile, deep_merge(catalog.cfg, {"zoo": {"seeds": [0, 1]}}))
    root = work / "gpu"
    shutil.rmtree(root, ignore_errors=True)
    wall, jobs = zoo_on(zoo, data, root, 2, threads=2, resources={"GPU": 1})
    for step, names in (("train", ["train"]), ("extract", [j for j in jobs if j != "train"])):
        tasks = [m for j in names for m in jobs[j]["models"].values()]
        by_worker: dict[str, list[tuple[float, float]]] = {}
        for m in tasks:
            by_worker.setdefault(m["worker"], []).append((m["start"], m["end"]))
        print(f"GPU=1 placement, {step}: {len(tasks)} tasks on 2 workers of 2 threads, each declaring GPU=1: "
              f"{wall[step]:.1f} s; tasks per worker {sorted(len(s) for s in by_worker.values())}; most at once on "
              f"one worker {max(max_overlap(s) for s in by_worker.values())} (must be 1), on the cluster "
              f"{max_overlap([x for s in by_worker.values() for x in s])}")
    models = jobs["train"]["models"]
    t0 = min(m["start"] for m in models.values())
    for name, m in sorted(models.items(), key=lambda kv: kv[1]["start"]):
        print(f"  train {name:<14} {m['worker']}  {m['start'] - t0:6.1f} .. {m['end'] - t0:6.1f} s")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
