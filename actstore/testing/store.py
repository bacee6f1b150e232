"""A store conformance suite for any root (in the spirit of zarr.testing.store.StoreTests).

Subclass `RootTests` and override the `root` fixture with a fresh, empty root (a folder or an fsspec URL) per
test. Everything is built from numpy features (no torch). The checks read what the store methods left on the
filesystem through fsspec directly (cat_file, pipe_file, ls), never through the methods under test.
"""
from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import pytest
import xarray as xr
from fsspec.implementations.local import LocalFileSystem

from actstore.errors import UserError
from actstore.store import open_store
from actstore.store.analysis import analysis_inputs, open_analysis, write_analysis
from actstore.store.ledger import ledger_entry, verify
from actstore.store.paths import META, REPORT_MARKER, RESUME, ZARR_MARKER, Layout
from actstore.store.publish import publish_file, publish_folder
from actstore.store.root import filesystem, join
from actstore.store.zarrstore import ActivationStore, sha256_of

MODELS = [("a", 0), ("b", 0)]
SPACES = {"encoder": (("unit", 3),)}
NAME = "grid"


def stimuli() -> xr.Dataset:
    """A tiny recipe: 4 orientations x 5 contrasts of 2 frames of 3 x 4 pixels."""
    rng = np.random.default_rng(0)
    frames = rng.random((4, 5, 2, 3, 4), dtype=np.float32)
    return xr.Dataset({"stimulus": (("orientation", "contrast", "frame", "y", "x"), frames)},
                      coords={"orientation": np.arange(4.0) * 45, "contrast": np.linspace(0.1, 1, 5)})


def features(model: tuple[str, int]) -> np.ndarray:
    """A model's known feature values, (orientation, contrast, unit)."""
    return np.random.default_rng(sum(map(ord, model[0])) + model[1]).random((4, 5, 3), dtype=np.float32)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class RootTests:
    """The behaviour every root must show: activation stores, analysis stores, checkpoints, the report."""

    @pytest.fixture
    def root(self) -> str:
        raise NotImplementedError("subclasses give a fresh, empty root per test")

    # ------------------------------------------------------------------ raw access (fsspec only)
    @staticmethod
    def cat(url: str) -> bytes:
        fs, path = filesystem(url)
        return fs.cat_file(path)

    @staticmethod
    def pipe(url: str, data: bytes) -> None:
        fs, path = filesystem(url)
        fs.makedirs(path.rpartition("/")[0], exist_ok=True)
        fs.pipe_file(path, data)

    @staticmethod
    def names(url: str) -> list[str]:
        """The entries of a folder, by base name."""
        fs, path = filesystem(url)
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))

    def assert_no_temporaries(self, url: str) -> None:
        assert not [n for n in self.names(url) if ".tmp" in n]

    # ------------------------------------------------------------------ activation stores
    def create(self, root: str, recipe_hash: str = "r1") -> ActivationStore:
        return ActivationStore.create(Layout(root).store(NAME), stimuli(), MODELS, SPACES, {"recipe_hash": recipe_hash},
                                      target_bytes=5 * 3 * 4)

    def extract(self, store: ActivationStore, model: tuple[str, int]) -> None:
        values = features(model).reshape(20, 3)
        store.begin(*model)
        for first, stop, region in store.runs("encoder"):
            store.write("encoder", *model, region, values[first:stop])
        store.finish(*model, ledger_entry("ckpt", store.attrs["recipe_hash"], "cpu",
                                          {"encoder": sha256_of(store.read("encoder", *model))}))

    def test_activation_store_round_trip(self, root: str) -> None:
        store = self.create(root)
        self.extract(store, MODELS[0])
        url = Layout(root).store(NAME)
        meta = json.loads(self.cat(join(url, ZARR_MARKER)))
        assert meta["attributes"]["format"] == "actstore-store/1" and meta["attributes"]["recipe_hash"] == "r1"
        assert "encoder" in self.names(url) and "complete" in self.names(url)
        self.assert_no_temporaries(root)
        np.testing.assert_array_equal(ActivationStore(url).read("encoder", *MODELS[0]), features(MODELS[0]))
        ds = open_store(NAME, root)
        np.testing.assert_array_equal(ds["encoder"].sel(arch="a", seed=0).values, features(MODELS[0]))
        np.testing.assert_array_equal(ds["stimulus"].values, stimuli()["stimulus"].values)
        assert np.isnan(ds["encoder"].sel(arch="b", seed=0).values).all()
        assert verify(url) == {MODELS[0]: "ok", MODELS[1]: "not extracted"}

    def test_corrupted_chunk_is_detected(self, root: str) -> None:
        store = self.create(root)
        self.extract(store, MODELS[0])
        url = Layout(root).store(NAME)
        fs, path = filesystem(url)
        chunk = sorted(fs.find(f"{path}/encoder/c/0"))[0]
        fs.pipe_file(chunk, fs.cat_file(chunk)[:-3] + b"\x00\x01\x02")
        assert verify(url)[MODELS[0]] in ("encoder unreadable", "encoder fails its checksum")

    def test_first_publisher_wins(self, root: str) -> None:
        self.create(root, "r1")
        second = self.create(root, "r2")
        assert second.attrs["recipe_hash"] == "r1"
        meta = json.loads(self.cat(join(Layout(root).store(NAME), ZARR_MARKER)))
        assert meta["attributes"]["recipe_hash"] == "r1"
        self.assert_no_temporaries(root)

    def test_folder_without_marker_is_not_a_store(self, root: str) -> None:
        url = Layout(root).store(NAME)
        self.pipe(join(url, "encoder", "zarr.json"), b"{}")  # left by an unfinished publish: no root zarr.json
        with pytest.raises(UserError, match="no such store"):
            open_store(NAME, root)
        store = self.create(root)
        assert store.attrs["recipe_hash"] == "r1" and json.loads(self.cat(join(url, ZARR_MARKER)))
        self.pipe(join(Layout(root).analysis("neural"), "x", "zarr.json"), b"{}")
        assert open_analysis(root, "neural") is None

    def test_rival_that_commits_first_wins(self, root: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """A create-once publish loses to a rival that commits while it renames or copies (not only before)."""
        url = Layout(root).report
        fs = filesystem(url)[0]
        copiers = {name: getattr(fs, name) for name in ("cp_file", "copy", "put_file", "put")}  # one or a batch

        def rival(tmp: str) -> None:
            self.pipe(join(tmp, REPORT_MARKER), b"rival")

        def after_rival(name: str):
            def copy(*args: object, **kwargs: object) -> None:
                for each, real in copiers.items():
                    monkeypatch.setattr(fs, each, real)
                assert publish_folder(url, rival, REPORT_MARKER, replace=False)
                copiers[name](*args, **kwargs)
            return copy

        def build(tmp: str) -> None:
            for k in range(40):  # more objects than one copy batch
                self.pipe(join(tmp, f"mine{k}.png"), b"png")
            self.pipe(join(tmp, REPORT_MARKER), b"mine")
            if isinstance(fs, LocalFileSystem):  # renamed into place: the rival commits just before
                assert publish_folder(url, rival, REPORT_MARKER, replace=False)

        for name in copiers:  # copied into place: the rival commits mid-copy
            monkeypatch.setattr(fs, name, after_rival(name))
        assert not publish_folder(url, build, REPORT_MARKER, replace=False)
        assert self.cat(join(url, REPORT_MARKER)) == b"rival"
        self.assert_no_temporaries(root)

    # ------------------------------------------------------------------ analysis stores
    def test_analysis_write_replace_open(self, root: str) -> None:
        old = xr.Dataset({"old": ("x", np.arange(3.0))})
        new = xr.Dataset({"new": ("y", np.arange(5.0))})
        assert open_analysis(root, "neural") is None
        write_analysis(old, root, "neural", {"v": 1})
        url = Layout(root).analysis("neural")
        write_analysis(new, root, "neural", {"v": 2})
        names = self.names(url)
        assert "new" in names and "old" not in names and ZARR_MARKER in names
        assert json.loads(self.cat(join(url, ZARR_MARKER)))["attributes"]["inputs"] == {"v": 2}
        self.assert_no_temporaries(join(root, "analysis"))
        np.testing.assert_array_equal(open_analysis(root, "neural")["new"].values, np.arange(5.0))
        assert analysis_inputs(root, "neural") == {"v": 2}

    def test_failed_build_keeps_the_old_folder(self, root: str) -> None:
        write_analysis(xr.Dataset({"old": ("x", np.arange(3.0))}), root, "neural")
        url = Layout(root).analysis("neural")
        before = self.cat(join(url, ZARR_MARKER))

        def build(tmp: str) -> None:
            self.pipe(join(tmp, "half"), b"x")
            raise RuntimeError("killed mid-build")

        with pytest.raises(RuntimeError):
            publish_folder(url, build, ZARR_MARKER)
        assert self.cat(join(url, ZARR_MARKER)) == before and "half" not in self.names(url)
        self.assert_no_temporaries(join(root, "analysis"))

    # ------------------------------------------------------------------ checkpoints
    def test_checkpoint_files_replace_whole(self, root: str) -> None:
        from actstore.models.checkpoint import FORMAT, read_meta

        folder = Layout(root).model("a", 0)
        for state in (b"first training state", b"second, longer training state"):
            publish_file(join(folder, RESUME), state)
            meta = {"format": FORMAT, "config": {}, "sha256": _sha256(state), "weights": "w"}
            publish_file(join(folder, META), json.dumps(meta).encode())
        assert self.cat(join(folder, RESUME)) == b"second, longer training state"
        assert read_meta(folder)["sha256"] == _sha256(b"second, longer training state")
        assert self.names(folder) == sorted([RESUME, META])

    # ------------------------------------------------------------------ the report
    def test_report_is_replaced_whole(self, root: str) -> None:
        url = Layout(root).report
        for figure in ("a.png", "b.png"):
            def build(tmp: str, figure: str = figure) -> None:
                self.pipe(join(tmp, figure), b"png")
                self.pipe(join(tmp, REPORT_MARKER), figure.encode())

            assert publish_folder(url, build, REPORT_MARKER)
        assert self.names(url) == ["b.png", REPORT_MARKER]
        assert self.cat(join(url, REPORT_MARKER)) == b"b.png"
        self.assert_no_temporaries(root)

    def test_layout_keeps_todays_paths(self, root: str) -> None:
        layout, base = Layout(root), root.rstrip("/")
        assert layout.store("x") == f"{base}/x.zarr" and layout.analysis("x") == f"{base}/analysis/x.zarr"
        assert layout.model("alexnet", 3) == f"{base}/models/alexnet-s3" and layout.report == f"{base}/report"
        assert layout.summary_csv == f"{base}/analysis/summary.csv"


# ---------------------------------------------------------------------- a local S3 endpoint for tests
@contextmanager
def local_s3(bucket: str = "actstore") -> Iterator[str]:
    """Start moto's S3 server on 127.0.0.1 (a free port) for the block; yields its endpoint URL.

    s3:// roots then reach it from this process and from every process started inside the block (subprocesses,
    Dask workers): the dummy AWS credentials and AWS_ENDPOINT_URL go into the environment, which botocore reads,
    and fsspec's config gives s3fs the endpoint as `client_kwargs={"endpoint_url": ...}`. `bucket` is created.
    Everything is put back (environment, fsspec config, s3fs's cached filesystems) and the server stopped after.
    """
    import logging

    import fsspec
    import s3fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}
    saved_env = {k: os.environ.get(k) for k in env}
    saved_conf = fsspec.config.conf.get("s3")
    os.environ.update(env)
    fsspec.config.conf["s3"] = {**(saved_conf or {}), "client_kwargs": {"endpoint_url": endpoint}}
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        fsspec.filesystem("s3").mkdir(bucket)
        yield endpoint
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        if saved_conf is None:
            fsspec.config.conf.pop("s3", None)
        else:
            fsspec.config.conf["s3"] = saved_conf
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()
