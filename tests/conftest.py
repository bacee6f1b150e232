"""Shared fixtures: one smoke-profile root built once per test session through the real pipeline."""
from __future__ import annotations

import pytest

from actstore.catalog import default_catalog_path, load_catalog


@pytest.fixture(scope="session")
def smoke_catalog():
    return load_catalog(default_catalog_path(), "smoke")


@pytest.fixture(scope="session")
def smoke_root(tmp_path_factory, smoke_catalog) -> str:
    """A root with smoke data, trained smoke twins, every store and every analysis (no report).

    Built once by `actstore.pipeline.run_all`; tests must treat it as read-only.
    """
    from actstore.pipeline import run_all

    root = str(tmp_path_factory.mktemp("smoke-root"))
    run_all(smoke_catalog, root, steps=("data", "train", "extract", "analyze"))
    return root
