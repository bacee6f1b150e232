"""Roots on S3 through s3fs, against moto's S3 server that these tests start on 127.0.0.1 themselves.

The store conformance suite (actstore.testing.store.RootTests) on an s3:// root; then what only a shared object
store shows: publishing never lets a reader see half an artifact, writers of different models share one store,
a SIGKILLed extraction resumes bit-identically, and the whole smoke pipeline runs on s3://.
"""
from __future__ import annotations

import uuid
from typing import Iterator

import fsspec
import pytest

from actstore.testing.store import RootTests, local_s3

BUCKET = "actstore-test"


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    """The endpoint URL of a moto S3 server running for this module, with bucket BUCKET."""
    with local_s3(BUCKET) as endpoint:
        yield endpoint


def fresh_root(name: str) -> str:
    return f"s3://{BUCKET}/{name}-{uuid.uuid4().hex[:8]}"


class TestS3Root(RootTests):
    @pytest.fixture
    def root(self, s3: str) -> Iterator[str]:
        url = fresh_root("conformance")
        yield url
        fs, path = fsspec.core.url_to_fs(url)
        if fs.exists(path):
            fs.rm(path, recursive=True)

    def test_root_really_is_on_the_s3_server(self, root: str, s3: str) -> None:
        """The conformance run above is not silently local: the server holds the objects, and s3fs uses it."""
        import boto3

        self.create(root)
        fs = fsspec.core.url_to_fs(root)[0]
        assert type(fs).__name__ == "S3FileSystem" and fs.client_kwargs["endpoint_url"] == s3
        prefix = root.split(f"{BUCKET}/", 1)[1]
        keys = [o["Key"] for o in boto3.client("s3", endpoint_url=s3).list_objects_v2(
            Bucket=BUCKET, Prefix=prefix)["Contents"]]
        assert f"{prefix}/grid.zarr/zarr.json" in keys
