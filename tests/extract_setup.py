"""Shared setup for the store and extract tests: a tiny test catalog and an untrained smoke zoo."""
from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import yaml

from actstore.catalog import Catalog, load_catalog
from actstore.store.paths import Layout
from actstore.models import build_twin, save_checkpoint

REPO = Path(__file__).resolve().parent.parent
# 4 x 2 x 4 x 2 = 64 gratings; a 2 KB chunk target gives several chunks per model.
TINY_RDK = {"trials": {"train": 4, "val": 2}, "test": {"trials_per_coherence": 2}}  # 22 clips of 20 frames
TINY_GRID = {"orientation_deg": {"num": 4}, "sf_cpp": {"num": 2}, "phase_deg": {"num": 4}, "contrast": [0.5, 1.0]}


def write_catalog(folder: Path, grid: dict | None = None, batch_size: int = 16, data_seed: int = 0) -> Path:
    """The repository's catalog with a `test` profile: smoke + a tiny tuning grid and small chunks."""
    raw = yaml.safe_load((REPO / "catalog.yaml").read_text())
    profile = copy.deepcopy(raw["profiles"]["smoke"])
    profile["data"].setdefault("synthetic", {})["seed"] = data_seed
    profile.setdefault("recipe_overrides", {})["tuning_grid"] = grid or TINY_GRID
    profile["recipe_overrides"]["rdk_task"] = TINY_RDK
    profile["extract"] = {**profile.get("extract", {}), "batch_size": batch_size, "chunk_mb": 0.002}
    raw["profiles"]["test"] = profile
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "catalog.yaml"
    path.write_text(yaml.safe_dump(raw))
    if not (folder / "recipes").exists():
        (folder / "recipes").symlink_to(REPO / "recipes")
    return path


def make_catalog(folder: Path, **kw) -> Catalog:
    return load_catalog(write_catalog(folder, **kw), "test")


def save_zoo(catalog: Catalog, root: str, init: int = 0) -> dict[tuple[str, int], str]:
    """Untrained checkpoints for every model of the catalog; `init` shifts the weight seed."""
    zoo = catalog["zoo"]
    return {
        (arch, seed): save_checkpoint(
            build_twin(arch, encoder_dim=zoo["encoder_dim"], hidden_dim=zoo["hidden_dim"], seed=seed + init),
            Layout(root).model(arch, seed), {"note": "untrained test model"})
        for arch, seed in catalog.models
    }


def cli(catalog_path: Path, root: str, *args: str) -> subprocess.Popen:
    """`actstore --catalog ... --profile test --root ... <args>` as a real subprocess."""
    return subprocess.Popen(
        [sys.executable, "-m", "actstore.cli", "--catalog", str(catalog_path), "--profile", "test", "--root", root,
         *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
