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
def dask_scheduler(spec: str, root: str = "stores", workers: int | None = None) -> Iterator[object | None]:
    """Make `spec` the default Dask scheduler inside the block; yields the distributed Client, if any.

    threads (default) and processes are Dask's local schedulers; local starts a LocalCluster
    sized to the machine (or `workers`); tcp://HOST:PORT connects to a running scheduler whose workers must
    see the root (a shared folder or an fsspec URL).
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
                                                   dashboard_address=None) as cluster, Client(cluster) as client:
            yield client
        return
    if not spec.startswith("tcp://"):
        raise UserError(f"--scheduler {spec!r}; valid: threads, processes, local, tcp://HOST:PORT")
    try:
        client = Client(spec, timeout="10s")
    except (OSError, TimeoutError) as e:
        raise UserError(f"--scheduler {spec}: cannot connect ({e})") from None
    with client:
        yield client
