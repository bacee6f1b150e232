"""`actstore extract`: idempotence, staleness by content, clear refusals, multi-chunk features,
resume after SIGKILL (bit-identical) and two concurrent writer processes."""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import actstore
from actstore.cli import main
from actstore.data import data_fingerprint, load_sessions, prepare_data
from actstore.errors import UserError
from actstore.extract import extract
from actstore.store.paths import Layout
from actstore.models import build_twin, load_checkpoint, save_checkpoint
from actstore.stimuli import draw_seed, generate
from actstore.store.ledger import verify
from extract_setup import cli, make_catalog, save_zoo, write_catalog

# 8 x 3 x 4 x 1 = 96 gratings in batches of 8: many batches and chunks per model, so a kill lands mid-way.
KILL_GRID = {"orientation_deg": {"num": 8}, "sf_cpp": {"num": 3}, "phase_deg": {"num": 4}, "contrast": [1.0]}


def _files(store: str) -> dict[str, str]:
    """sha256 of every file of a store by relative path (ledger provenance aside: it holds the time)."""
    out = {}
    for path in sorted(Path(store).rglob("*")):
        rel = path.relative_to(store).as_posix()
        if path.is_file() and not rel.startswith("provenance/c/"):
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _copy_models(src: str, dst: str) -> None:
    shutil.copytree(Path(src) / "models", Path(dst) / "models")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """(catalog path, root): the kill grid extracted for both smoke models in one uninterrupted run."""
    folder = tmp_path_factory.mktemp("ref")
    path = write_catalog(folder / "cat", grid=KILL_GRID, batch_size=8)
    root = str(folder / "root")
    catalog = actstore.catalog.load_catalog(path, "test")
    save_zoo(catalog, root)
    extract(catalog, root, "tuning_grid", device="cpu")
    return path, root


@pytest.fixture
def catalog(tmp_path):
    return make_catalog(tmp_path / "cat")


def test_second_run_does_no_forward_pass_and_writes_nothing(catalog, tmp_path):
    root = str(tmp_path / "root")
    save_zoo(catalog, root)
    first = extract(catalog, root, "tuning_grid", device="cpu")
    assert [line.split(" extracted")[0] for line in first] == ["tuning_grid: xu_cnn-s0", "tuning_grid: alexnet-s0"]
    store = Path(Layout(root).store("tuning_grid"))
    before = {p: p.stat().st_mtime_ns for p in store.rglob("*")}
    calls = []
    hook = torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: calls.append(type(m).__name__))
    try:
        again = extract(catalog, root, "tuning_grid", device="cpu")
    finally:
        hook.remove()
    assert again == ["tuning_grid: xu_cnn-s0 up to date", "tuning_grid: alexnet-s0 up to date"]
    assert calls == []
    assert {p: p.stat().st_mtime_ns for p in store.rglob("*")} == before


def test_changed_checkpoint_reextracts_only_that_model(catalog, tmp_path):
    root = str(tmp_path / "root")
    save_zoo(catalog, root)
    extract(catalog, root, "tuning_grid", device="cpu")
    alexnet_before = actstore.open_store("tuning_grid", root=root)["encoder"].sel(arch="alexnet").values
    save_checkpoint(build_twin("xu_cnn", encoder_dim=16, hidden_dim=32, seed=7), Layout(root).model("xu_cnn", 0))
    lines = extract(catalog, root, "tuning_grid", device="cpu")
    assert lines[0].startswith("tuning_grid: xu_cnn-s0 re-extracted (checkpoint changed)")
    assert lines[1] == "tuning_grid: alexnet-s0 up to date"
    ds = actstore.open_store("tuning_grid", root=root)
    np.testing.assert_array_equal(ds["encoder"].sel(arch="alexnet").values, alexnet_before)
    twin, _ = load_checkpoint(Layout(root).model("xu_cnn", 0))
    with torch.inference_mode():
        enc = twin.eval().encode(torch.from_numpy(ds["stimulus"].values.reshape(-1, 1, 1, 60, 80)))
    np.testing.assert_allclose(ds["encoder"].sel(arch="xu_cnn", seed=0).values.reshape(-1, 16), enc[:, 0].numpy(),
                               rtol=1e-5, atol=1e-6)


def test_changed_recipe_is_refused_unless_rebuilt(catalog, tmp_path):
    root = str(tmp_path / "root")
    save_zoo(catalog, root)
    extract(catalog, root, "tuning_grid", archs=["xu_cnn"], device="cpu")
    before = _files(Layout(root).store("tuning_grid"))
    other = make_catalog(tmp_path / "cat2", grid={"orientation_deg": {"num": 3}, "sf_cpp": {"num": 2},
                                                  "phase_deg": {"num": 2}, "contrast": [1.0]})
    with pytest.raises(UserError, match=r"tuning_grid\.zarr: written by another version of recipe 'tuning_grid' "
                                        r".*rerun `actstore extract --recipe tuning_grid --rebuild`") as err:
        extract(other, root, "tuning_grid", archs=["xu_cnn"], device="cpu")
    assert "\n" not in str(err.value)
    assert _files(Layout(root).store("tuning_grid")) == before
    lines = extract(other, root, "tuning_grid", archs=["xu_cnn"], device="cpu", rebuild=True)
    assert len(lines) == 1 and lines[0].startswith("tuning_grid: xu_cnn-s0 extracted: 12 stimuli on cpu")
    ds = actstore.open_store("tuning_grid", root=root)
    assert ds.sizes["orientation"] == 3 and ds.sizes["contrast"] == 1
    assert ds["complete"].values.tolist() == [[True], [False]]


def test_missing_checkpoint_is_one_clear_line(catalog, tmp_path, capsys):
    root = str(tmp_path / "root")
    with pytest.raises(SystemExit) as exit_:
        main(["--catalog", str(catalog.path), "--profile", "test", "--root", root,
              "extract", "--recipe", "tuning_grid", "--arch", "alexnet"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err == (f"actstore: error: {root}/models/alexnet-s0: no checkpoint for alexnet-s0; "
                   "run `actstore train --arch alexnet --seed 0` first\n")
    assert not Path(Layout(root).store("tuning_grid")).exists()


def test_arch_outside_the_zoo_is_refused(catalog, tmp_path):
    with pytest.raises(UserError, match=r"--arch resnet18: not in the zoo of profile test .*; valid: xu_cnn, alexnet"):
        extract(catalog, str(tmp_path / "root"), "tuning_grid", archs=["resnet18"])


def test_clips_keep_frames_and_gru_restarts_each_chunk(catalog, tmp_path):
    root = str(tmp_path / "root")
    save_zoo(catalog, root)
    extract(catalog, root, "rdk_task", archs=["xu_cnn"], device="cpu", batch_size=7)
    ds = actstore.open_store("rdk_task", root=root).sel(arch="xu_cnn", seed=0)
    assert ds["encoder"].dims == ("trial", "frame", "unit") and ds.sizes["frame"] == 20
    assert ds["gru"].dims == ("trial", "chunk", "hidden") and ds.sizes["chunk"] == 4
    stimuli = generate(catalog.recipe("rdk_task"), draw_seed(catalog["run_seed"], 0))  # seed 0's own draw
    np.testing.assert_array_equal(ds["label"].values, stimuli["label"].values)
    assert set(ds["split"].values.tolist()) == {"train", "val", "test"}
    whole = actstore.open_store("rdk_task", root=root)       # one seed: the per-seed layout all the same
    assert whole["label"].dims == ("seed", "trial") and whole["split"].dims == ("trial",)
    twin, _ = load_checkpoint(Layout(root).model("xu_cnn", 0))
    clips = torch.from_numpy(stimuli["stimulus"].values[:, :, None])
    with torch.inference_mode():
        enc = twin.eval().encode(clips)
        last = twin.recur(enc[:, 15:20])  # the last chunk, from a zero state
        whole = twin.recur(enc)  # the whole clip in one run differs: chunks restart
    np.testing.assert_allclose(ds["encoder"].values, enc.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ds["gru"].values[:, 3], last.numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(ds["gru"].values[:, 3], whole.numpy(), atol=1e-4)


def test_reference_clips_are_the_sessions_frames_and_tied_to_the_data(catalog, tmp_path):
    root = str(tmp_path / "root")
    prepare_data(catalog, root)
    save_zoo(catalog, root)
    extract(catalog, root, "reference_clips", archs=["xu_cnn"], device="cpu")
    ds = actstore.open_store("reference_clips", root=root)
    frames = load_sessions(catalog, root)[catalog["data"]["reference_session"]].frames
    clips = generate(catalog.recipe("reference_clips"), catalog["run_seed"], reference_frames=frames)
    np.testing.assert_array_equal(ds["stimulus"].values, clips["stimulus"].values)
    assert ds["encoder"].dims == ("arch", "seed", "trial", "frame", "unit") and ds.sizes["frame"] == 5
    assert ds.attrs["data_fingerprint"] == data_fingerprint(catalog, root)
    other = make_catalog(tmp_path / "cat2", data_seed=1)
    prepare_data(other, root)
    with pytest.raises(UserError, match=r"reference_clips\.zarr: drawn from other recorded data .* --rebuild`"):
        extract(other, root, "reference_clips", archs=["xu_cnn"], device="cpu")


def test_sigkill_mid_extraction_resumes_bit_identical(reference, tmp_path):
    catalog_path, ref_root = reference
    root = str(tmp_path / "root")
    _copy_models(ref_root, root)
    proc = cli(catalog_path, root, "extract", "--recipe", "tuning_grid", "--device", "cpu")
    first_chunks = Path(Layout(root).store("tuning_grid")) / "encoder" / "c" / "0"
    deadline = time.monotonic() + 120
    while not (first_chunks.exists() and any(first_chunks.rglob("*"))) and proc.poll() is None:
        assert time.monotonic() < deadline, "extraction never started writing"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    store = Layout(root).store("tuning_grid")
    assert verify(store) != {("xu_cnn", 0): "ok", ("alexnet", 0): "ok"}, "the kill came too late"
    catalog = actstore.catalog.load_catalog(catalog_path, "test")
    lines = extract(catalog, root, "tuning_grid", device="cpu")
    assert any(" extracted: " in line for line in lines)
    assert _files(store) == _files(Layout(ref_root).store("tuning_grid"))


def test_two_processes_extract_different_models_at_once(reference, tmp_path):
    catalog_path, ref_root = reference
    root = str(tmp_path / "root")
    _copy_models(ref_root, root)
    procs = [cli(catalog_path, root, "extract", "--recipe", "tuning_grid", "--arch", arch, "--device", "cpu")
             for arch in ("xu_cnn", "alexnet")]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    assert "xu_cnn-s0 extracted" in outs[0][0] and "alexnet-s0 extracted" in outs[1][0]
    store = Layout(root).store("tuning_grid")
    assert verify(store) == {("xu_cnn", 0): "ok", ("alexnet", 0): "ok"}
    assert _files(store) == _files(Layout(ref_root).store("tuning_grid"))
    assert not [p.name for p in Path(root).iterdir() if p.name.endswith(".tmp")]


def _two_seed_catalog(tmp_path: Path, **top) -> actstore.catalog.Catalog:
    """The test catalog with xu_cnn over seeds 0 and 1, a small orientation task, and top-level overrides."""
    from actstore.catalog import Catalog, deep_merge

    base = make_catalog(tmp_path / "cat")
    small = {"splits": {"train": {"trials": 16}, "val": {"trials": 8}, "test_id": {"trials": 8},
                        "test_ood": {"trials": 8}}}
    return Catalog(base.path, base.profile, deep_merge(base.cfg, {
        "zoo": {"archs": ["xu_cnn"], "seeds": [0, 1]}, "recipe_overrides": {"orientation_task": small}, **top}))


def test_task_stimuli_are_drawn_per_model_seed_and_plain_xarray_opens_them(tmp_path):
    """The study's A.3: each model seed sees its own draw (the same for every arch within it); the features of
    seed 1 are the twin's response to seed 1's frames."""
    import xarray as xr

    catalog, root = _two_seed_catalog(tmp_path), str(tmp_path / "root")
    save_zoo(catalog, root)
    extract(catalog, root, "orientation_task", device="cpu")
    ds = xr.open_zarr(Layout(root).store("orientation_task"))
    assert ds["stimulus"].dims == ("seed", "trial", "y", "x") and ds["label"].dims == ("seed", "trial")
    assert ds["split"].dims == ("trial",)                            # the same layout in every draw
    recipe = catalog.recipe("orientation_task")
    for seed in (0, 1):
        own = generate(recipe, draw_seed(catalog["run_seed"], seed))
        np.testing.assert_array_equal(ds["stimulus"].sel(seed=seed).values, own["stimulus"].values)
        np.testing.assert_array_equal(ds["label"].sel(seed=seed).values, own["label"].values)
    assert not np.array_equal(ds["label"].sel(seed=0).values, ds["label"].sel(seed=1).values)
    twin, _ = load_checkpoint(Layout(root).model("xu_cnn", 1))
    frames = torch.from_numpy(ds["stimulus"].sel(seed=1).values[:4, None, None])
    with torch.inference_mode():
        want = twin.eval().encode(frames)[:, 0].numpy()
    np.testing.assert_allclose(ds["encoder"].sel(arch="xu_cnn", seed=1).values[:4], want, rtol=1e-5, atol=1e-6)
    shared, shared_root = _two_seed_catalog(tmp_path / "global", stimulus_draws="global"), str(tmp_path / "global_root")
    save_zoo(shared, shared_root)
    extract(shared, shared_root, "orientation_task", device="cpu")
    one = xr.open_zarr(Layout(shared_root).store("orientation_task"))
    assert one["stimulus"].dims == ("trial", "y", "x") and one.attrs["stimulus_draws"] == "global"
    np.testing.assert_array_equal(one["label"].values, generate(recipe, catalog["run_seed"])["label"].values)


def test_a_changed_run_seed_is_refused_in_one_line_then_rebuilt(tmp_path):
    """The store's identity covers every input of its stimuli: a new run_seed never reuses the old draws."""
    import xarray as xr
    from actstore.catalog import Catalog, deep_merge

    catalog, root = _two_seed_catalog(tmp_path), str(tmp_path / "root")
    save_zoo(catalog, root)
    extract(catalog, root, "orientation_task", device="cpu")
    moved = Catalog(catalog.path, catalog.profile, deep_merge(catalog.cfg, {"run_seed": 7}))
    with pytest.raises(UserError) as err:
        extract(moved, root, "orientation_task", device="cpu")
    assert str(err.value) == (f"{Layout(root).store('orientation_task')}: drawn with run_seed 0, the catalog now has 7; "
                              "rerun `actstore extract --recipe orientation_task --rebuild` to replace it")
    extract(moved, root, "orientation_task", device="cpu", rebuild=True)
    ds = xr.open_zarr(Layout(root).store("orientation_task"))
    own = generate(moved.recipe("orientation_task"), draw_seed(7, 1))
    np.testing.assert_array_equal(ds["label"].sel(seed=1).values, own["label"].values)
    assert int(ds.attrs["run_seed"]) == 7 and bool(ds["complete"].all())


def _slot_values(root: str, arch: str) -> dict[str, np.ndarray]:
    from actstore.store.zarrstore import ActivationStore

    store = ActivationStore(Layout(root).store("tuning_grid"))
    return {space: store.read(space, arch, 0) for space in store.spaces}


def test_slow_chunk_writes_never_stall_the_forward_passes(catalog, tmp_path, monkeypatch):
    """Chunks are compressed and written beside the forward passes, not in their way: with every chunk write
    slowed to 0.1 s, all batches are handed to the writer long before the writes are done (a writer that wrote
    each chunk itself would block the batches behind its queue for most of that time), and the model's values,
    checksums and ledger are those of an ordinary run."""
    import actstore.extract as ex
    from actstore.store.zarrstore import ActivationStore

    reference = str(tmp_path / "reference")
    save_zoo(catalog, reference)
    extract(catalog, reference, "tuning_grid", archs=["xu_cnn"], device="cpu", batch_size=4)
    root = str(tmp_path / "root")
    save_zoo(catalog, root)
    write, put = ActivationStore.write, ex.RegionWriter.put
    writes, handed = [], {}

    def slow_write(self, *args):
        time.sleep(0.1)
        writes.append(args[0])
        return write(self, *args)

    def timed_put(self, *item):
        put(self, *item)
        handed[item[0]] = time.perf_counter()

    monkeypatch.setattr(ActivationStore, "write", slow_write)
    monkeypatch.setattr(ex.RegionWriter, "put", timed_put)
    started = time.perf_counter()
    extract(catalog, root, "tuning_grid", archs=["xu_cnn"], device="cpu", batch_size=4)  # 16 batches
    done = time.perf_counter()
    slept = 0.1 * len(writes)
    assert len(writes) >= 20, writes
    assert handed["finish"] - started < 0.25 * slept, (handed["finish"] - started, slept)
    assert done - started >= slept / 4  # four writers at a time: the writes themselves did take their time
    assert verify(Layout(root).store("tuning_grid"))[("xu_cnn", 0)] == "ok"
    want, got = _slot_values(reference, "xu_cnn"), _slot_values(root, "xu_cnn")
    for space in want:
        np.testing.assert_array_equal(got[space], want[space])


def test_a_failed_chunk_write_is_raised_and_leaves_the_model_incomplete(catalog, tmp_path, monkeypatch):
    """A chunk write fails in a writer thread: extraction raises that error, the model is not marked complete,
    and the next run re-extracts it whole."""
    from actstore.store.zarrstore import ActivationStore

    root = str(tmp_path / "root")
    save_zoo(catalog, root)
    write, calls = ActivationStore.write, []

    def failing(self, *args):
        calls.append(args[0])
        if len(calls) == 3:
            raise OSError("No space left on device (test)")
        return write(self, *args)

    monkeypatch.setattr(ActivationStore, "write", failing)
    with pytest.raises(OSError, match=r"No space left on device \(test\)"):
        extract(catalog, root, "tuning_grid", archs=["xu_cnn"], device="cpu", batch_size=4)
    store = Layout(root).store("tuning_grid")
    assert verify(store)[("xu_cnn", 0)] == "not extracted"
    monkeypatch.undo()
    lines = extract(catalog, root, "tuning_grid", archs=["xu_cnn"], device="cpu", batch_size=4)
    assert lines[0].startswith("tuning_grid: xu_cnn-s0 extracted")
    assert verify(store)[("xu_cnn", 0)] == "ok"
