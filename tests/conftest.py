"""Shared fixtures: one smoke-profile root built once per test session through the real pipeline."""
from __future__ import annotations

import pytest

from actstore.allocator import retain_freed_memory
from actstore.catalog import default_catalog_path, load_catalog


def pytest_configure(config) -> None:
    """Every worker allocates as the command line does (actstore/allocator.py)."""
    retain_freed_memory()


@pytest.fixture(scope="session")
def smoke_catalog():
    return load_catalog(default_catalog_path(), "smoke")


@pytest.fixture(scope="session")
def smoke_root(tmp_path_factory, smoke_catalog) -> str:
    """A root with smoke data, trained smoke twins, every store and every analysis (no report).

    Built once per test session by `actstore.pipeline.run_all`, also when pytest-xdist runs the suite in several
    workers: the first builds it in the session's shared folder under a file lock, the others then find it up to
    date. Tests must treat it as read-only.
    """
    import os

    from filelock import FileLock

    from actstore.pipeline import run_all

    if "PYTEST_XDIST_WORKER" not in os.environ:  # one process: a folder of its own
        root = tmp_path_factory.mktemp("smoke-root")
    else:  # the workers' folders share the session's parent folder
        root = tmp_path_factory.getbasetemp().parent / "smoke-root"
    with FileLock(f"{root}.lock"):
        run_all(smoke_catalog, str(root), steps=("data", "train", "extract", "analyze"))
    return str(root)
