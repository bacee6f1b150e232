"""Dask schedulers by name: the same code paths run on threads, processes, a LocalCluster or a remote one."""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from actstore.errors import UserError


def _check_root_is_shared(spec: str, root: str) -> None:
    if spec != "threads" and str(root).startswith("memory://"):
        raise UserError(f"--root {root}: a memory:// root lives in this process only; "
                        f"use a folder or a shared fsspec URL with --scheduler {spec}")


@contextmanager
def _environment_restored() -> Iterator[None]:
    """Undo what distributed's nanny writes into this process's environment for its workers
    (OMP_NUM_THREADS=1 and friends): later subprocesses would otherwise run single-threaded."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def dask_scheduler(spec: str, root: str = "stores", workers: int | None = None,
                   resources: dict[str, float] | None = None) -> Iterator[object | None]:
    """Make `spec` the default Dask scheduler inside the block; yields the distributed Client, if any.

    threads (default) and processes are Dask's local schedulers; local starts a LocalCluster
    sized to the machine (or `workers`), each worker declaring `resources` (e.g. {"GPU": 1}); tcp://HOST:PORT
    connects to a running scheduler whose workers must see the root (a shared folder or an fsspec URL) and declare
    their own resources (`dask worker --resources GPU=1`).
    """
    import dask

    _check_root_is_shared(spec, root)
    if spec in ("threads", "processes"):
        with dask.config.set(scheduler=spec):
            yield None
        return
    from distributed import Client, LocalCluster

    if spec == "local":
        n = workers or max(1, min(os.cpu_count() or 1, 4))
        with _environment_restored(), LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                   dashboard_address=None, resources=resources or None) as cluster, \
                Client(cluster) as client:
            yield client
        return
    if not spec.startswith("tcp://"):
        raise UserError(f"--scheduler {spec!r}; valid: threads, processes, local, tcp://HOST:PORT")
    try:
        client = Client(spec, timeout="10s")
    except (OSError, TimeoutError) as e:
        raise UserError(f"--scheduler {spec}: cannot connect ({e})") from None
    with client:
        if resources:
            _check_resources(client, resources)
        yield client


def parse_resources(text: str | None) -> dict[str, float]:
    """'GPU=1,MEM=2' -> {'GPU': 1.0, 'MEM': 2.0}; anything else is one UserError line."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        name, eq, amount = part.partition("=")
        try:
            value = float(amount)
        except ValueError:
            value = -1.0
        if not eq or not name.strip().isidentifier() or value <= 0:
            raise UserError(f"--resources {text!r}: {part!r} is not NAME=AMOUNT (e.g. GPU=1) with AMOUNT > 0")
        out[name.strip()] = value
    return out


def _check_resources(client: object, resources: dict[str, float]) -> None:
    """Tasks asking for `resources` would wait forever where no worker declares them: one line instead."""
    workers = client.scheduler_info().get("workers", {})
    have = [w.get("resources", {}) for w in workers.values()]
    missing = [k for k, v in resources.items() if not any(r.get(k, 0) >= v for r in have)]
    if workers and missing:
        raise UserError(f"--resources: no worker of {client.scheduler.address} declares "
                        + ", ".join(f"{k}={resources[k]:g}" for k in missing)
                        + " (start workers with `dask worker --resources GPU=1`)")
