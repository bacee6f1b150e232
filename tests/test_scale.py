"""Training the zoo as Dask tasks: one task per (arch, seed) on a LocalCluster of single-threaded worker processes.

Known answers come from a sequential run in this process with the workers' torch thread count (1): CPU training is
bit-identical for the same intra-op thread count, and only for it (README, Scaling out).
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import fsspec
import pytest
import torch

from actstore.catalog import Catalog, deep_merge
from actstore.cluster import JobFailed
from actstore.scheduling import dask_scheduler
from actstore.extract import extract
from actstore.status import job_lines, job_path
from actstore.store.paths import META, RESUME, Layout
from actstore.store.zarrstore import ActivationStore
from actstore.train.zoo import train_zoo


def shas(catalog: Catalog, root: str) -> dict[str, str]:
    return {f"{a}-s{s}": json.loads(Path(Layout(root).model(a, s), META).read_text())["sha256"]
            for a, s in catalog.models}


def job(root: str, name: str = "train") -> dict:
    fs, path = fsspec.core.url_to_fs(job_path(root, name))
    return json.loads(fs.cat_file(path))


def with_train(catalog: Catalog, **over) -> Catalog:
    return Catalog(catalog.path, catalog.profile, deep_merge(catalog.cfg, over))


@pytest.fixture(scope="module")
def data_root(smoke_catalog, tmp_path_factory) -> Path:
    """The smoke recordings alone (no models)."""
    from actstore.data import prepare_data

    root = tmp_path_factory.mktemp("scale-data") / "root"
    prepare_data(smoke_catalog, str(root))
    return root


def fresh(data_root: Path, tmp_path: Path) -> str:
    import shutil

    root = tmp_path / "root"
    shutil.copytree(data_root, root)
    return str(root)


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """This process computing as the single-threaded workers do."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained_root(smoke_catalog, data_root, tmp_path_factory) -> Path:
    """The smoke zoo trained one after another here, with 1 torch thread (no stores yet)."""
    import shutil

    root = tmp_path_factory.mktemp("scale-seq") / "root"
    shutil.copytree(data_root, root)
    with one_torch_thread():
        train_zoo(smoke_catalog, str(root), progress=False)
    return root


@pytest.fixture(scope="module")
def sequential(smoke_catalog, trained_root) -> dict[str, str]:
    """Checkpoint sha256 per model of the sequential run."""
    return shas(smoke_catalog, str(trained_root))


def test_zoo_on_two_workers_matches_the_sequential_run(smoke_catalog, data_root, sequential, tmp_path):
    root = fresh(data_root, tmp_path)
    with dask_scheduler("local", root, workers=2) as client:
        lines = train_zoo(smoke_catalog, root, progress=False, client=client)
    assert shas(smoke_catalog, root) == sequential
    assert sum(" trained (" in ln for ln in lines) == len(smoke_catalog.models)
    models = job(root)["models"]
    assert {m["state"] for m in models.values()} == {"done"} and job(root)["finished"]
    assert len({m["worker"] for m in models.values()}) == 2, "one model per worker"
    (a, b) = sorted(models.values(), key=lambda m: m["start"])
    assert b["start"] < a["end"], "the two twins trained at the same time"
    assert [ln.split()[-1] for ln in job_lines(root)[1:]] == ["done", "done"]


def test_sigkilled_worker_task_is_retried_and_resumes_to_the_same_weights(smoke_catalog, data_root, sequential,
                                                                          tmp_path):
    root = fresh(data_root, tmp_path)
    victim = Layout(root).model("xu_cnn", 0)
    out: dict = {}
    with dask_scheduler("local", root, workers=2) as client:
        pids = client.run(os.getpid)  # worker address -> pid
        thread = threading.Thread(target=lambda: out.update(lines=train_zoo(smoke_catalog, root, progress=False,
                                                                            client=client)))
        thread.start()
        deadline = time.monotonic() + 120
        while not Path(victim, RESUME).exists():  # its first epoch is saved, its checkpoint not yet
            assert time.monotonic() < deadline and thread.is_alive(), "training never saved an epoch"
            time.sleep(0.02)
        running = {key: w for w, keys in client.processing().items() for key in keys}
        worker = next(w for key, w in running.items() if "-xu_cnn-s0-" in key)
        assert not Path(victim, META).exists(), "xu_cnn finished before the kill"
        while job(root)["models"]["xu_cnn-s0"]["state"] != "running":  # the driver refreshes it every second
            assert time.monotonic() < deadline, job(root)
            time.sleep(0.05)
        assert f"    {'xu_cnn-s0':<24} running on {worker}" in job_lines(root)  # what `actstore status` shows
        os.kill(pids[worker], signal.SIGKILL)
        thread.join(300)
    assert "lines" in out, "train_zoo did not finish"
    assert shas(smoke_catalog, root) == sequential
    killed = job(root)["models"]["xu_cnn-s0"]
    assert killed["state"] == "done" and killed["resumed_from_epoch"] >= 1, killed


def test_a_failing_model_does_not_stop_the_others(smoke_catalog, data_root, tmp_path, capsys):
    """alexnet cannot train (a batch larger than the data): xu_cnn still trains, and the summary names alexnet with
    its one-line error (worker threads here: the isolation is the scheduler's, not the processes')."""
    from distributed import Client, LocalCluster

    from actstore.cli import main

    root = fresh(data_root, tmp_path)
    broken = with_train(smoke_catalog, train={"max_epochs": 1, "max_batches_per_epoch": 2},
                        train_overrides={"alexnet": {"batch_size": 10 ** 6}})
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        with pytest.raises(JobFailed, match=r"^1 of 2 models failed: alexnet-s0 \(UserError: train\.batch_size"):
            train_zoo(broken, root, progress=False, client=client)
    assert Path(Layout(root).model("xu_cnn", 0), META).exists()
    assert not Path(Layout(root).model("alexnet", 0), META).exists()
    models = job(root)["models"]
    assert models["xu_cnn-s0"]["state"] == "done"
    assert models["alexnet-s0"]["state"] == "failed" and "batch_size" in models["alexnet-s0"]["error"]
    assert any(ln.split()[:2] == ["alexnet-s0", "failed:"] for ln in job_lines(root))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["--profile", "smoke", "--root", root, "--scheduler", "local", "train", "--resources", "GPU"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "actstore: error: --resources 'GPU': 'GPU' is not NAME=AMOUNT (e.g. GPU=1) with AMOUNT > 0"]


def test_gpu_resource_is_never_shared_by_two_twins(smoke_catalog, data_root, tmp_path):
    """One worker with two threads declaring GPU=1: tasks asking for GPU=1 run one at a time (task timestamps);
    without the resource the same worker runs both at once (so the check can fail). bench/scale.py shows the same
    on two worker processes."""
    from distributed import Client, LocalCluster

    tiny = with_train(smoke_catalog, train={"max_epochs": 1, "max_batches_per_epoch": 2, "max_val_samples": 100,
                                            "init_frames": 0, "init_readout_samples": 0},
                      zoo={"archs": ["xu_cnn"], "seeds": [0, 1]})
    spans = {}
    for ask in ({"GPU": 1}, None):
        root = fresh(data_root, tmp_path / str(bool(ask)))
        with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None,
                          resources={"GPU": 1}) as cluster, Client(cluster) as client:
            train_zoo(tiny, root, progress=False, client=client, resources=ask)
        runs = sorted((m["start"], m["end"]) for m in job(root)["models"].values())
        assert len(runs) == 2
        spans[bool(ask)] = runs
    assert all(later[0] >= earlier[1] for earlier, later in zip(spans[True], spans[True][1:])), spans[True]
    assert any(later[0] < earlier[1] for earlier, later in zip(spans[False], spans[False][1:])), spans[False]


def stored_checksums(catalog: Catalog, root: str, recipe: str) -> dict[str, dict[str, str]]:
    """Each model's ledger checksums (sha256 of every space's values) in `<root>/<recipe>.zarr`."""
    store = ActivationStore(Layout(root).store(recipe))
    assert all(store.is_complete(a, s) for a, s in catalog.models)
    return {f"{a}-s{s}": json.loads(store.entry_json(a, s))["checksums"] for a, s in catalog.models}


def test_extraction_on_two_workers_matches_the_sequential_run(smoke_catalog, trained_root, tmp_path):
    """Each model is one task; the two write their own regions of one store at the same time, and every space's
    values hash as the sequential run's."""
    import shutil

    alone, spread = str(tmp_path / "alone"), str(tmp_path / "spread")
    for root in (alone, spread):
        shutil.copytree(trained_root, root)
    with one_torch_thread():
        extract(smoke_catalog, alone, "tuning_grid")
    with dask_scheduler("local", spread, workers=2) as client:
        lines = extract(smoke_catalog, spread, "tuning_grid", client=client)
    assert stored_checksums(smoke_catalog, spread, "tuning_grid") == stored_checksums(smoke_catalog, alone,
                                                                                      "tuning_grid")
    assert sorted(ln.split()[1] for ln in lines if " extracted: " in ln) == ["alexnet-s0", "xu_cnn-s0"]
    models = job(spread, "extract-tuning_grid")["models"]
    assert {m["state"] for m in models.values()} == {"done"} and len({m["worker"] for m in models.values()}) == 2
    (a, b) = sorted(models.values(), key=lambda m: m["start"])
    assert b["start"] < a["end"], "the two models were extracted at the same time"
    with dask_scheduler("local", spread, workers=2) as client:
        again = extract(smoke_catalog, spread, "tuning_grid", client=client)
    assert all(ln.endswith(" up to date") for ln in again), again


def test_a_failing_extraction_does_not_stop_the_others(smoke_catalog, trained_root, tmp_path):
    """alexnet's weights are truncated: xu_cnn is still extracted and marked complete, alexnet is named with its
    error and left incomplete, and `status` shows the job."""
    import shutil

    from distributed import Client, LocalCluster

    root = str(tmp_path / "root")
    shutil.copytree(trained_root, root)
    folder = Layout(root).model("alexnet", 0)
    weights = Path(folder, json.loads(Path(folder, META).read_text())["weights"])
    weights.write_bytes(weights.read_bytes()[:1000])
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        with pytest.raises(JobFailed, match=r"^tuning_grid: 1 of 2 models failed: tuning_grid/alexnet-s0 \("):
            extract(smoke_catalog, root, "tuning_grid", client=client)
    store = ActivationStore(Layout(root).store("tuning_grid"))
    assert store.is_complete("xu_cnn", 0) and not store.is_complete("alexnet", 0)
    models = job(root, "extract-tuning_grid")["models"]
    assert models["tuning_grid/xu_cnn-s0"]["state"] == "done"
    assert models["tuning_grid/alexnet-s0"]["state"] == "failed"
    assert any(ln.split()[:2] == ["tuning_grid/alexnet-s0", "failed:"] for ln in job_lines(root, "extract-tuning_grid"))
