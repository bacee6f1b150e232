"""`actstore run` end to end on the smoke profile: complete, idempotent, and surgical when one input changes."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import xarray as xr

from actstore.store.analysis import open_analysis


def copy_root(src: str, dst: Path) -> str:
    shutil.copytree(src, dst)
    return str(dst)


HEAVY = ("torch", "torchvision", "matplotlib", "sklearn", "distributed")
# the CLI, then at exit one line naming the heavy libraries this process imported
REPORTING_IMPORTS = ("import atexit, sys; atexit.register(lambda: print('imported:', *sorted(m for m in "
                     f"{HEAVY!r} if m in sys.modules))); from actstore.cli import main; main()")


def run_cli(root: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", REPORTING_IMPORTS, "--profile", "smoke", "--root", root, *args],
                          capture_output=True, text=True)


def heavy_imports(proc: subprocess.CompletedProcess) -> list[str]:
    """The heavy libraries a run_cli process imported."""
    return next(ln for ln in proc.stdout.splitlines() if ln.startswith("imported:")).split()[1:]


def step_lines(stdout: str) -> dict[str, str]:
    return {ln[1:8].strip(): ln for ln in stdout.splitlines() if ln.startswith("[")}


def test_run_completes_then_is_up_to_date(smoke_root, tmp_path):
    root = copy_root(smoke_root, tmp_path / "root")
    first = run_cli(root, "run")
    assert first.returncode == 0, first.stderr
    assert set(step_lines(first.stdout)) == {"data", "train", "extract", "analyze", "report"}
    assert (Path(root) / "report" / "index.html").exists()
    walls = next(ln for ln in first.stdout.splitlines() if ln.startswith("wall time per step: "))
    assert [part.split()[0] for part in walls.split(": ", 1)[1].split(", ")] == list(step_lines(first.stdout))
    second = run_cli(root, "run")
    assert second.returncode == 0, second.stderr
    lines = step_lines(second.stdout)
    assert all("] up to date (" in ln for ln in lines.values()), second.stdout
    assert "matplotlib" in heavy_imports(first)  # the check sees a run that did work (the report)
    assert heavy_imports(second) == [], "deciding that nothing is stale must not load torch or matplotlib"
    status = run_cli(root, "status")
    assert status.returncode == 0, status.stderr
    assert heavy_imports(status) == []


def _values(root: str, store: str, arch: str) -> np.ndarray:
    ds = xr.open_zarr(f"{root}/{store}.zarr")
    return ds["encoder"].sel(arch=arch).values


def test_deleted_checkpoint_redoes_only_what_depends_on_it(smoke_root, tmp_path):
    import torch

    from actstore.models import load_checkpoint, save_checkpoint
    from actstore.models.checkpoint import read_meta

    root = copy_root(smoke_root, tmp_path / "root")
    folder = Path(root) / "models" / "alexnet-s0"
    sha = read_meta(str(folder))["sha256"]
    before = {arch: _values(root, "tuning_grid", arch) for arch in ("xu_cnn", "alexnet")}

    # 1. A deleted checkpoint is retrained (alone); CPU training is deterministic, so the new file has the
    #    same content and nothing downstream is stale: staleness is decided by content, not by file times.
    shutil.rmtree(folder)
    proc = run_cli(root, "run")
    assert proc.returncode == 0, proc.stderr
    lines = step_lines(proc.stdout)
    assert "up to date" in lines["data"]
    assert "alexnet" in lines["train"] and "xu_cnn" not in lines["train"], proc.stdout
    assert read_meta(str(folder))["sha256"] == sha
    assert "] up to date (" in lines["extract"] and "] up to date (" in lines["analyze"], proc.stdout

    # 2. A checkpoint whose weights changed is re-extracted (alone) in every store, and the analyses are redone.
    twin, meta = load_checkpoint(str(folder))
    with torch.no_grad():
        twin.encoder.head[-1].bias.add_(1.0)
    save_checkpoint(twin, str(folder), meta["provenance"])
    proc = run_cli(root, "run")
    assert proc.returncode == 0, proc.stderr
    lines = step_lines(proc.stdout)
    assert "trained" not in lines["train"], proc.stdout
    assert "alexnet" in lines["extract"] and "xu_cnn" not in lines["extract"], proc.stdout
    assert "up to date" not in lines["analyze"], proc.stdout
    np.testing.assert_array_equal(_values(root, "tuning_grid", "xu_cnn"), before["xu_cnn"])
    np.testing.assert_allclose(_values(root, "tuning_grid", "alexnet"), before["alexnet"] + 1.0, atol=1e-5)


def test_analyze_on_a_local_cluster_matches_threads(smoke_root, tmp_path):
    from actstore import assays
    from actstore.catalog import default_catalog_path, load_catalog
    from actstore.scheduling import dask_scheduler

    catalog = load_catalog(default_catalog_path(), "smoke")
    results = {}
    for spec in ("threads", "local"):
        root = copy_root(smoke_root, tmp_path / spec)
        for name in ("tuning", "probes", "geometry", "summary"):
            shutil.rmtree(Path(root) / "analysis" / f"{name}.zarr")
        with dask_scheduler(spec, root, workers=2) as client:
            if client is not None:
                assert len(client.scheduler_info()["workers"]) == 2
            assays.run(catalog, root, "all")
        results[spec] = root
    for name in ("tuning", "probes", "geometry", "summary"):
        a = open_analysis(results["threads"], name).load()
        b = open_analysis(results["local"], name).load()
        xr.testing.assert_allclose(a, b)
