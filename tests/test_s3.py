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


# ---------------------------------------------------------------------- atomic publishing, seen by a reader
def objects(url: str) -> dict[str, bytes]:
    """Every object under `url` by relative path, read through s3fs (what a reader could fetch now)."""
    fs, path = fsspec.core.url_to_fs(url)
    return {p[len(path) + 1:]: fs.cat_file(p) for p in fs.find(path)}


class Watch:
    """After every call that changes the S3 filesystem, look at one folder as a reader would and record the state.

    `state(url)` names what a reader sees: a version's name, 'absent', or anything else for a broken view. The
    checks run between the publisher's own object writes, so every state it passes through is seen, not sampled.
    """

    MUTATORS = ("pipe_file", "cp_file", "rm_file", "rm", "put_file", "put", "mv", "copy", "touch")

    def __init__(self, monkeypatch: pytest.MonkeyPatch, url: str, state) -> None:
        self.fs = fsspec.core.url_to_fs(url)[0]
        self.url, self.state, self.seen = url, state, [state(url)]
        for name in self.MUTATORS:
            real = getattr(self.fs, name)

            def wrapped(*args, _real=real, **kwargs):
                out = _real(*args, **kwargs)
                self.seen.append(self.state(self.url))
                return out

            monkeypatch.setattr(self.fs, name, wrapped)

    def runs(self) -> list[str]:
        """The states in order, repeats collapsed."""
        return [s for i, s in enumerate(self.seen) if i == 0 or self.seen[i - 1] != s]


def zarr_state(versions: dict[str, dict[str, bytes]]):
    """A reader of a Zarr folder: 'absent' without its root zarr.json, else the version whose objects it holds
    exactly (every object of that version, byte for byte, and nothing else), else 'mixed'."""
    def state(url: str) -> str:
        fs, path = fsspec.core.url_to_fs(url)
        if not fs.exists(f"{path}/zarr.json"):
            return "absent"
        now = objects(url)
        return next((name for name, objs in versions.items() if objs == now), "mixed")
    return state


def test_analysis_store_replaced_on_s3_is_never_seen_half_written(s3, monkeypatch):
    """write_analysis replacing v1 by v2 (different variables, shapes, chunks, a shared variable and a scalar): a
    reader opening the result (consolidated, as open_analysis and xr.open_zarr do) and reading every value sees v1
    whole until the switch, then v2 whole, never nothing and never a mix; then only v2's objects remain."""
    import numpy as np
    import xarray as xr

    from actstore.store.analysis import open_analysis, write_analysis
    from actstore.store.paths import Layout

    v1 = xr.Dataset({"a": ("x", np.arange(40.0)), "shared": ("y", np.zeros(7)), "s": ((), 1.0)}).chunk({"x": 10})
    v2 = xr.Dataset({"b": ("z", np.arange(30.0)), "shared": ("y", np.ones(7)), "s": ((), 2.0)}).chunk({"z": 5})
    versions = {name: ds.assign_attrs(inputs={"v": name}).compute() for name, ds in (("v1", v1), ("v2", v2))}
    root = fresh_root("replace")

    def state(url: str) -> str:
        try:
            now = open_analysis(root, "neural", dask=False)
        except Exception as e:  # a chunk or metadata object missing or of the other version
            return f"broken ({type(e).__name__})"
        if now is None:
            return "absent"
        return next((name for name, ds in versions.items() if now.identical(ds)), "mixed")

    write_analysis(v1, root, "neural", {"v": "v1"})
    url = Layout(root).analysis("neural")
    before = set(objects(url))
    watch = Watch(monkeypatch, url, state)
    write_analysis(v2, root, "neural", {"v": "v2"})
    assert watch.runs() == ["v1", "v2"], watch.runs()
    assert len(watch.seen) > 3  # looked at after each step
    np.testing.assert_array_equal(open_analysis(root, "neural")["b"].values, np.arange(30.0))
    after = set(objects(url))
    assert not any(k.startswith("a/") for k in after)  # v1's variable is gone,
    assert not {k for k in before & after if not k.endswith("zarr.json")}  # and so is every chunk v1 wrote


def test_activation_store_created_on_s3_appears_whole(s3, monkeypatch, tmp_path):
    """ActivationStore.create (create-once): absent until its marker, then the whole template; a second create
    (the first publisher wins) changes nothing a reader sees."""
    from actstore.store.paths import Layout

    suite = RootTests()
    ref = str(tmp_path / "ref")  # the same store on a local disk (renamed into place, not copied)
    suite.create(ref)
    versions = {"store": objects(Layout(ref).store("grid"))}
    root = fresh_root("create")
    watch = Watch(monkeypatch, Layout(root).store("grid"), zarr_state(versions))
    suite.create(root)
    suite.create(root, "r2")
    assert watch.runs() == ["absent", "store"], watch.runs()


@pytest.mark.parametrize("shared", [False, True])
def test_report_replaced_on_s3_is_never_seen_half_written(s3, monkeypatch, shared):
    """The report folder (marker index.html): a reader of index.html and the figures it names sees one report
    whole. New figures under new names (as build_report names them, by content): the old report until the switch,
    then the new one; a figure name the two share (a file the new one overwrites): the old one, none, the new one.
    Either way a figure the new report lacks is gone at the end."""
    from actstore.store.paths import REPORT_MARKER, Layout
    from actstore.store.publish import publish_folder

    def build_report(figures: dict[str, bytes]):
        def build(tmp: str) -> None:
            fs, path = fsspec.core.url_to_fs(tmp)
            for name, data in figures.items():
                fs.pipe_file(f"{path}/{name}", data)
            fs.pipe_file(f"{path}/{REPORT_MARKER}", " ".join(sorted(figures)).encode())
        return build

    old = {"a.1.png": b"old a", "b.1.png": b"old b"}
    new = {"b.1.png" if shared else "b.2.png": b"new b", "c.2.png": b"new c", "d.2.png": b"new d"}
    versions = {name: {**figs, REPORT_MARKER: " ".join(sorted(figs)).encode()}
                for name, figs in (("old", old), ("new", new))}

    def state(url: str) -> str:
        fs, path = fsspec.core.url_to_fs(url)
        try:
            index = fs.cat_file(f"{path}/{REPORT_MARKER}")
        except FileNotFoundError:
            return "absent"
        try:
            now = {name: fs.cat_file(f"{path}/{name}") for name in index.decode().split()}
        except FileNotFoundError:
            return "broken"
        return next((name for name, objs in versions.items() if {**now, REPORT_MARKER: index} == objs), "mixed")

    url = Layout(fresh_root("report")).report
    assert publish_folder(url, build_report(old), REPORT_MARKER)
    watch = Watch(monkeypatch, url, state)
    assert publish_folder(url, build_report(new), REPORT_MARKER)
    assert watch.runs() == (["old", "absent", "new"] if shared else ["old", "new"]), watch.runs()
    assert objects(url) == versions["new"]


def test_checkpoint_replaced_on_s3_never_pairs_metadata_with_other_weights(s3, monkeypatch):
    """save_checkpoint over an older checkpoint: after every object write, model.json is there and the weights it
    names are whole (never absent, never another version's), and only the new weights remain at the end."""
    import hashlib
    import json

    from actstore.models import build_twin, load_checkpoint, save_checkpoint
    from actstore.store.paths import META, Layout, weights_file

    folder = Layout(fresh_root("ckpt")).model("xu_cnn", 0)
    first = save_checkpoint(build_twin("xu_cnn", encoder_dim=16, hidden_dim=32, seed=0), folder, {"n": 1})

    def state(url: str) -> str:
        fs, path = fsspec.core.url_to_fs(url)
        if not fs.exists(f"{path}/{META}"):
            return "absent"
        meta = json.loads(fs.cat_file(f"{path}/{META}"))
        weights = hashlib.sha256(fs.cat_file(f"{path}/{meta['weights']}")).hexdigest()
        return meta["provenance"]["n"] if weights == meta["sha256"] else "mismatch"

    watch = Watch(monkeypatch, folder, state)
    second = save_checkpoint(build_twin("xu_cnn", encoder_dim=16, hidden_dim=32, seed=1), folder, {"n": 2})
    assert first != second
    assert watch.runs() == [1, 2], watch.runs()
    assert load_checkpoint(folder)[1]["sha256"] == second
    fs, path = fsspec.core.url_to_fs(folder)
    assert sorted(p.rpartition("/")[2] for p in fs.ls(path, detail=False)) == sorted([META, weights_file(second)])


# ---------------------------------------------------------------------- writers of one store on S3
# 8 x 3 x 4 x 1 = 96 gratings in batches of 8: many batches and chunks per model, so a kill lands mid-way.
KILL_GRID = {"orientation_deg": {"num": 8}, "sf_cpp": {"num": 3}, "phase_deg": {"num": 4}, "contrast": [1.0]}


def _chunks(url: str) -> dict[str, str]:
    """sha256 of every object of a store by relative path (ledger provenance aside: it holds the time)."""
    import hashlib

    return {rel: hashlib.sha256(data).hexdigest() for rel, data in objects(url).items()
            if not rel.startswith("provenance/c/")}


@pytest.fixture(scope="module")
def kill_reference(tmp_path_factory):
    """(catalog path, local reference store): the kill grid extracted for both smoke models, one uninterrupted run."""
    import actstore
    from actstore.extract import extract
    from actstore.store.paths import Layout
    from extract_setup import save_zoo, write_catalog

    folder = tmp_path_factory.mktemp("s3ref")
    path = write_catalog(folder / "cat", grid=KILL_GRID, batch_size=8)
    root = str(folder / "root")
    catalog = actstore.catalog.load_catalog(path, "test")
    save_zoo(catalog, root)
    extract(catalog, root, "tuning_grid", device="cpu")
    return path, Layout(root).store("tuning_grid")


def _s3_zoo(catalog_path) -> str:
    """A fresh S3 root holding the reference's (untrained, deterministic) checkpoints."""
    import actstore
    from extract_setup import save_zoo

    root = fresh_root("zoo")
    save_zoo(actstore.catalog.load_catalog(catalog_path, "test"), root)
    return root


def test_two_writers_of_one_s3_store_one_sigkilled_resume_bit_identical(s3, kill_reference):
    """Two processes extract different models into one new store on S3 at once; one is SIGKILLed mid-way (its
    first chunks written), the other finishes its model. A rerun extracts only the killed model, and the store
    then holds the same objects as an uninterrupted local run."""
    import os
    import signal
    import time

    import actstore
    from actstore.extract import extract
    from actstore.store.ledger import verify
    from actstore.store.paths import Layout
    from extract_setup import cli

    catalog_path, reference = kill_reference
    root = _s3_zoo(catalog_path)
    store = Layout(root).store("tuning_grid")
    fs, path = fsspec.core.url_to_fs(store)
    survivor, victim = (cli(catalog_path, root, "extract", "--recipe", "tuning_grid", "--arch", arch, "--device", "cpu")
                        for arch in ("xu_cnn", "alexnet"))
    deadline = time.monotonic() + 180
    while victim.poll() is None and not fs.find(f"{path}/encoder/c/1"):  # arch index 1: alexnet's chunks
        assert time.monotonic() < deadline, "alexnet's extraction never started writing"
        time.sleep(0.01)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, victim.stderr.read()
    out, err = survivor.communicate(timeout=300)
    assert survivor.returncode == 0 and "xu_cnn-s0 extracted" in out, err[-2000:]
    assert verify(store) == {("xu_cnn", 0): "ok", ("alexnet", 0): "not extracted"}, "the kill came too late"
    lines = extract(actstore.catalog.load_catalog(catalog_path, "test"), root, "tuning_grid", device="cpu")
    assert [ln.split(":")[1].split()[:2] for ln in lines if "-s0" in ln] == [["xu_cnn-s0", "up"], ["alexnet-s0",
                                                                                                  "extracted"]], lines
    assert verify(store) == {("xu_cnn", 0): "ok", ("alexnet", 0): "ok"}
    assert _chunks(store) == _chunks(reference)
    assert not [p for p in fs.ls(fsspec.core.url_to_fs(root)[1], detail=False) if p.endswith(".tmp")]


# ---------------------------------------------------------------------- the whole pipeline on S3
def test_smoke_run_on_s3_matches_the_local_run_then_is_up_to_date(s3, smoke_catalog, smoke_root, capsys):
    """`actstore run` on s3://: every step, the report, stores whose models are all verified; the same checkpoints
    (sha256) and activation values as the local smoke root; a second run does nothing."""
    import json

    import numpy as np
    import xarray as xr

    from actstore.pipeline import run_all
    from actstore.store.ledger import verify
    from actstore.store.paths import META, REPORT_MARKER, Layout

    root = fresh_root("smoke")
    lines = run_all(smoke_catalog, root)
    assert [ln[1:8].strip() for ln in lines] == ["data", "train", "extract", "analyze", "report"]
    fs = fsspec.core.url_to_fs(root)[0]
    local, remote = Layout(smoke_root), Layout(root)
    assert fs.exists(f"{fsspec.core.url_to_fs(remote.report)[1]}/{REPORT_MARKER}")
    for arch, seed in smoke_catalog.models:
        meta = json.loads(fs.cat_file(fsspec.core.url_to_fs(f"{remote.model(arch, seed)}/{META}")[1]))
        with open(f"{local.model(arch, seed)}/{META}") as f:
            assert meta["sha256"] == json.load(f)["sha256"], f"{arch}-s{seed} trained otherwise on S3"
    for name in smoke_catalog["stimuli"]:
        assert set(verify(remote.store(name)).values()) == {"ok"}, name
        there, here = xr.open_zarr(remote.store(name)), xr.open_zarr(local.store(name))
        np.testing.assert_array_equal(there["encoder"].values, here["encoder"].values)
    assert not [p for p in fs.find(fsspec.core.url_to_fs(root)[1]) if ".tmp" in p]
    capsys.readouterr()
    again = run_all(smoke_catalog, root)
    assert all("] up to date (" in ln for ln in again), again
