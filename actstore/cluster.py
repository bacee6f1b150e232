"""Per-model work as Dask tasks on a cluster, the one loop training and extraction share.

Each model is one task, asking the scheduler for `resources` (e.g. {"GPU": 1}: never two on one GPU). Tasks run
in parallel; a task whose worker is lost is rescheduled elsewhere by Dask; each result is reported as it arrives,
and a failing model does not stop the others. `<root>/jobs/<job>.json` (status.JobProgress) records every
model's state for `actstore status`.
"""
from __future__ import annotations

import time
import uuid
from typing import Any, Callable

from actstore.errors import UserError

Task = tuple[Callable[..., dict[str, Any]], tuple[Any, ...]]


class JobFailed(UserError):
    """Some models of a distributed job failed (the others finished); the message names each with its error."""

    exit_code = 1


def one_line(error: BaseException) -> str:
    """'Type: first line of the message'."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def where_running() -> dict[str, Any]:
    """What a task reports about itself when it starts: its worker's address ('local' outside a cluster) and the
    time; the task adds `end` when it is done."""
    try:
        from distributed import get_worker

        worker = get_worker().address
    except (ImportError, ValueError):
        worker = "local"
    return {"worker": worker, "start": time.time()}


def run_tasks(client: Any, root: str, job: str, tasks: dict[str, Task], resources: dict[str, float] | None,
              emit: Callable[[str], None]) -> tuple[dict[str, str], list[str]]:
    """Submit one task per model name (`fn(*args)` returning a dict with its summary `line`, where_running()'s
    fields and `end`), emit each line as it finishes, keep `<root>/jobs/<job>.json` current. Returns each finished
    model's line by name, and '<name> (<error>)' for each model that failed."""
    from distributed import wait

    from actstore.status import JobProgress

    run = uuid.uuid4().hex[:8]
    futures = {client.submit(fn, *args, key=f"actstore-{job}-{name.replace('/', '-')}-{run}",
                             resources=resources or None, pure=False): name
               for name, (fn, args) in tasks.items()}
    progress = JobProgress(root, job, list(tasks), str(client.scheduler.address))
    pending, lines, failed = set(futures), {}, []
    while pending:
        try:
            done = set(wait(pending, timeout=1, return_when="FIRST_COMPLETED").done)
        except TimeoutError:  # nothing finished within the second: only the running states are refreshed
            done = set()
        pending -= done
        for future in done:
            name = futures[future]
            if future.status == "finished":
                out = dict(future.result())
                lines[name] = out.pop("line")
                emit(lines[name])
                progress.set(name, "done", **out)
            else:
                error = one_line(future.exception())
                progress.set(name, "failed", error=error)
                failed.append(f"{name} ({error})")
                emit(f"{name}: failed: {error}")
        if pending:
            where = {key: worker for worker, keys in client.processing().items() for key in keys}
            for future in pending:
                if future.key in where:
                    progress.set(futures[future], "running", worker=where[future.key])
    progress.finish()
    return lines, failed
