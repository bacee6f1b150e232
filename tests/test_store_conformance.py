"""actstore.testing.store's conformance suite on the three kinds of root: a local folder, file://, memory://."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator

import fsspec
import pytest

from actstore.testing.store import RootTests


class TestLocalRoot(RootTests):
    @pytest.fixture
    def root(self, tmp_path: Path) -> str:
        return str(tmp_path / "root")


class TestFileURLRoot(RootTests):
    @pytest.fixture
    def root(self, tmp_path: Path) -> str:
        return f"file://{tmp_path / 'root'}"


class TestMemoryRoot(RootTests):
    @pytest.fixture
    def root(self) -> Iterator[str]:
        url = f"memory://conformance-{uuid.uuid4().hex[:8]}"
        yield url
        fs, path = fsspec.core.url_to_fs(url)
        if fs.exists(path):
            fs.rm(path, recursive=True)
