"""Store conformance: one suite over a local folder and fsspec roots (memory://, file://).

Known answers: the stored frames are the generator's, the stored features are the frozen
twin's own encode/recur outputs; damage (truncated chunk, deleted ledger entry, altered
values) is detected by verify and repaired by the next extract.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
import warnings
from pathlib import Path

import fsspec
import numpy as np
import pytest
import torch
import xarray as xr
import zarr

import actstore
from actstore.errors import UserError
from actstore.extract import extract
from actstore.store.paths import Layout
from actstore.models import load_checkpoint
from actstore.stimuli import generate
from actstore.store.layout import chunk_runs, stimulus_chunks
from actstore.store.ledger import verify
from actstore.store.root import filesystem, zarr_location
from actstore.store.zarrstore import ActivationStore, quiet_zarr
from extract_setup import make_catalog, save_zoo

GRID_DIMS = ("orientation", "sf", "phase", "contrast")


def _new_root(kind: str, folder: Path) -> str:
    if kind == "memory":
        return f"memory://store-test-{uuid.uuid4().hex[:8]}"
    return str(folder) if kind == "local" else f"file://{folder}"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return make_catalog(tmp_path_factory.mktemp("cat"))


@pytest.fixture(scope="module", params=["local", "memory", "file"])
def pristine(request, catalog, tmp_path_factory):
    """(root, warnings): both smoke models extracted into a tuning-grid store once per kind of root."""
    root = _new_root(request.param, tmp_path_factory.mktemp("pristine") / "root")
    save_zoo(catalog, root)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        extract(catalog, root, "tuning_grid", device="cpu")
    yield root, [str(w.message) for w in caught]
    fs, path = filesystem(root)
    if request.param == "memory" and fs.exists(path):
        fs.rm(path, recursive=True)


@pytest.fixture
def root(pristine, tmp_path):
    """A fresh copy of the pristine root (checkpoints + store), on the same kind of filesystem."""
    src = pristine[0]
    kind = "memory" if src.startswith("memory://") else "file" if src.startswith("file://") else "local"
    dst = _new_root(kind, tmp_path / "root")
    fs, src_path = filesystem(src)
    dst_path = filesystem(dst)[1]
    fs.copy(src_path, dst_path, recursive=True)
    yield dst
    if kind == "memory" and fs.exists(dst_path):
        fs.rm(dst_path, recursive=True)


@pytest.fixture
def extracted(root):
    return Layout(root).store("tuning_grid")


def _chunk_file(url: str, space: str, arch_index: int) -> str:
    """Path (inside its filesystem) of the first stored chunk of `space` for the model at arch index i."""
    fs, path = filesystem(url)
    files = sorted(f for f in fs.find(f"{path}/{space}/c") if f.split(f"/{space}/c/")[1].startswith(f"{arch_index}/"))
    assert files, f"no chunks of {space} for arch index {arch_index}"
    return files[0]


def test_layout_values_and_frames_are_the_twins(catalog, root, extracted):
    ds = actstore.open_store("tuning_grid", root=root)
    assert ds["encoder"].dims == ("arch", "seed", *GRID_DIMS, "unit")
    assert ds["gru"].dims == ("arch", "seed", *GRID_DIMS, "hidden")
    assert list(ds.arch.values) == ["xu_cnn", "alexnet"] and list(ds.seed.values) == [0]
    assert ds["complete"].values.all()
    stimuli = generate(catalog.recipe("tuning_grid"), catalog["run_seed"])
    np.testing.assert_array_equal(ds["stimulus"].values, stimuli["stimulus"].values)
    np.testing.assert_array_equal(ds["sf"].values, stimuli["sf"].values)
    frames = torch.from_numpy(stimuli["stimulus"].values.reshape(-1, 1, 1, 60, 80))
    for arch in ("xu_cnn", "alexnet"):
        twin, _ = load_checkpoint(Layout(root).model(arch, 0))
        with torch.inference_mode():
            enc = twin.eval().encode(frames)
            gru = twin.recur(enc)
        stored = ds.sel(arch=arch, seed=0)
        np.testing.assert_allclose(stored["encoder"].values.reshape(-1, 16), enc[:, 0].numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stored["gru"].values.reshape(-1, 32), gru.numpy(), rtol=1e-5, atol=1e-6)
    entry = json.loads(str(ds["provenance"].sel(arch="alexnet", seed=0).values))
    assert entry["checkpoint_sha256"] == json.loads(fsspec.open(
        f"{Layout(root).model('alexnet', 0)}/model.json").open().read())["sha256"]
    assert entry["recipe_hash"] == ds.attrs["recipe_hash"] == catalog.recipe_hash("tuning_grid")
    assert {"code_version", "device", "time"} <= entry.keys()
    assert verify(extracted) == {("xu_cnn", 0): "ok", ("alexnet", 0): "ok"}


def test_store_writes_no_unstable_zarr_types(pristine):
    assert not [w for w in pristine[1] if "does not have a Zarr V3 specification" in w]


def test_open_store_missing_names_the_path(root):
    with pytest.raises(UserError, match=r"nope\.zarr: no such store; run `actstore extract --recipe nope`"):
        actstore.open_store("nope", root=root)


def test_truncated_chunk_is_detected_and_reextracted(catalog, root, extracted):
    before = actstore.open_store("tuning_grid", root=root).load()
    fs, _ = filesystem(extracted)
    victim = _chunk_file(extracted, "encoder", 1)
    data = fs.cat_file(victim)
    fs.pipe_file(victim, data[: len(data) // 2])
    assert verify(extracted)[("alexnet", 0)] in ("encoder unreadable", "encoder fails its checksum")
    assert verify(extracted)[("xu_cnn", 0)] == "ok"
    lines = extract(catalog, root, "tuning_grid", device="cpu")
    assert lines[0] == "tuning_grid: xu_cnn-s0 up to date"
    assert lines[1].startswith("tuning_grid: alexnet-s0 re-extracted (encoder")
    after = actstore.open_store("tuning_grid", root=root).load()
    xr.testing.assert_identical(before.drop_vars("provenance"), after.drop_vars("provenance"))


def test_deleted_ledger_entry_is_detected(catalog, root, extracted):
    fs, _ = filesystem(extracted)
    fs.rm(_chunk_file(extracted, "provenance", 0))
    assert verify(extracted) == {("xu_cnn", 0): "ledger entry missing", ("alexnet", 0): "ok"}
    lines = extract(catalog, root, "tuning_grid", device="cpu")
    assert lines[0].startswith("tuning_grid: xu_cnn-s0 re-extracted (ledger entry missing)")
    assert verify(extracted) == {("xu_cnn", 0): "ok", ("alexnet", 0): "ok"}


def test_deleted_complete_flag_means_not_extracted(catalog, root, extracted):
    fs, _ = filesystem(extracted)
    fs.rm(_chunk_file(extracted, "complete", 1))
    ds = actstore.open_store("tuning_grid", root=root)
    assert ds["complete"].values.tolist() == [[True], [False]]
    assert verify(extracted)[("alexnet", 0)] == "not extracted"
    assert np.isnan(ds["gru"].sel(arch="alexnet").values).all()  # written but not complete: not trusted
    assert not np.isnan(ds["gru"].sel(arch="xu_cnn").values).any()


def test_reextraction_removes_the_unfinished_chunk_files_a_killed_writer_left(catalog, root, extracted):
    """A SIGKILL during a chunk write leaves zarr's temporary `<key>.<uuid>.partial` beside the chunk; re-extracting
    that model removes its own leftovers (those of the other model, whose writer may still be live, stay)."""
    if root.startswith("memory://"):
        pytest.skip("only zarr's local store (a folder or file://) writes through temporary files")
    base = Path(filesystem(extracted)[1])
    chunk = Path(_chunk_file(extracted, "encoder", 1))
    leftovers = [chunk.with_name(f"{chunk.name}.{uuid.uuid4().hex}.partial"),
                 base / "complete" / "c" / "1" / f"0.{uuid.uuid4().hex}.partial"]
    other = Path(_chunk_file(extracted, "gru", 0))
    live = other.with_name(f"{other.name}.{uuid.uuid4().hex}.partial")
    for path in (*leftovers, live):
        path.write_bytes(b"")
    fs, _ = filesystem(extracted)
    fs.rm(_chunk_file(extracted, "complete", 1))
    lines = extract(catalog, root, "tuning_grid", device="cpu")
    assert lines[1].startswith("tuning_grid: alexnet-s0 extracted"), lines
    assert not [p for p in leftovers if p.exists()] and live.exists()
    assert verify(extracted) == {("xu_cnn", 0): "ok", ("alexnet", 0): "ok"}


def test_altered_values_fail_their_checksum(catalog, root, extracted):
    store = ActivationStore(extracted)
    region = store.runs("gru")[0]
    store.write("gru", "xu_cnn", 0, region[2], np.zeros((region[1] - region[0], 32), np.float32))
    assert verify(extracted)[("xu_cnn", 0)] == "gru fails its checksum"


def test_streamed_frames_are_the_stored_frames_chunk_by_chunk(extracted):
    """Read in a thread, every slice of the stream is the stored frames' (waiting where it is not yet read)."""
    store = ActivationStore(extracted)
    stored = store.group["stimulus"][...].reshape(-1, 1, 60, 80)  # the tuning grid: one frame per stimulus
    stream = store.stream_frames(0)
    reader = threading.Thread(target=stream.read)
    reader.start()
    for first in range(0, len(stream), 7):
        np.testing.assert_array_equal(stream[first:first + 7], stored[first:first + 7])
    np.testing.assert_array_equal(stream[-3:], stored[-3:])  # waits for the end, as [len - 3:len] does
    reader.join(timeout=60)
    assert not reader.is_alive()
    np.testing.assert_array_equal(stream.values, stored)


def test_stopped_stream_reads_nothing_more_and_its_waiters_get_the_error(extracted):
    stream = ActivationStore(extracted).stream_frames(0)
    stream.stop()
    with pytest.raises(RuntimeError, match="stimulus: reading stopped"):
        stream.read()
    with pytest.raises(RuntimeError, match="stimulus: reading stopped"):
        stream[0:1]


def test_altered_frames_stop_extraction_and_the_model_stays_incomplete(catalog, root, extracted):
    """Frames that fail their creation checksum: one line naming the stimulus array, and the model being
    re-extracted is not marked complete (its last batch waits for the checksum, which fails)."""
    with quiet_zarr():
        zarr.open_group(zarr_location(extracted), mode="r+")["stimulus"][0, 0, 0, 0] = 0.5  # raw write
    fs, _ = filesystem(extracted)
    fs.rm(_chunk_file(extracted, "complete", 1))
    with pytest.raises(UserError, match=r"tuning_grid\.zarr/stimulus: frames fail their checksum .*--rebuild"):
        extract(catalog, root, "tuning_grid", device="cpu")
    store = ActivationStore(extracted)
    assert not store.is_complete("alexnet", 0) and store.is_complete("xu_cnn", 0)


def test_stimulus_chunks_hold_about_the_target():
    # 8 x 6 x 4 x 4 stimuli of 64 B: inner 4 x 4 = 1 KiB whole, sf split in 2s, orientation 1 per chunk
    assert stimulus_chunks((8, 6, 4, 4), 64, 2048) == (1, 2, 4, 4)
    assert stimulus_chunks((8, 6, 4, 4), 64, 10**9) == (8, 6, 4, 4)
    assert stimulus_chunks((100,), 10**7, 8 * 2**20) == (1,)
    assert stimulus_chunks((5000,), 5 * 128 * 4, 8 * 2**20) == (3276,)


def test_chunk_runs_tile_the_stimuli_in_order():
    shape, chunks = (3, 5, 2), (1, 2, 2)
    runs = chunk_runs(shape, chunks)
    index = np.arange(30).reshape(shape)
    assert [r[0] for r in runs] == [0, 4, 8, 10, 14, 18, 20, 24, 28]
    for first, stop, region in runs:
        np.testing.assert_array_equal(index[region].ravel(), np.arange(first, stop))
    assert chunk_runs((7,), (7,)) == [(0, 7, (slice(0, 7),))]


def test_xarray_alone_reads_the_same_numbers(tmp_path, catalog):
    root = str(tmp_path / "root")
    save_zoo(catalog, root)
    extract(catalog, root, "tuning_grid", device="cpu")
    path = Layout(root).store("tuning_grid")
    out = tmp_path / "plain.npz"
    script = (
        "import sys, numpy as np, xarray as xr\n"
        f"ds = xr.open_zarr({path!r})\n"
        "a = ds.sel(arch='alexnet', seed=0)\n"
        f"np.savez({str(out)!r}, encoder=a.encoder.values, gru=a.gru.values, complete=ds.complete.values,"
        " stimulus=ds.stimulus.values, archs=np.array([str(x) for x in ds.arch.values]))\n"
        "assert not any(m.startswith('actstore') for m in sys.modules), 'actstore was imported'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path)
    plain = np.load(out)
    ds = actstore.open_store("tuning_grid", root=root).sel(arch="alexnet", seed=0)
    assert plain["archs"].tolist() == ["xu_cnn", "alexnet"]
    for name in ("encoder", "gru", "stimulus"):
        np.testing.assert_array_equal(plain[name], ds[name].values)
    assert plain["complete"].all()


def test_tensorstore_reads_the_same_numbers(tmp_path, catalog):
    ts = pytest.importorskip("tensorstore")
    root = str(tmp_path / "root")
    save_zoo(catalog, root)
    extract(catalog, root, "tuning_grid", archs=["alexnet"], device="cpu")
    path = Layout(root).store("tuning_grid")
    ds = actstore.open_store("tuning_grid", root=root)

    def read(name: str) -> np.ndarray:
        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": f"{path}/{name}"}}
        return ts.open(spec, read=True).result().read().result()

    for name in ("encoder", "gru", "complete", "stimulus", "seed", "sf"):
        np.testing.assert_array_equal(read(name), ds[name].values)
    assert np.isnan(read("encoder")[0]).all()  # xu_cnn not extracted: NaN fill
    assert read("complete").tolist() == [[False], [True]]
