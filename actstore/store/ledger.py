"""The ledger: per-model provenance + checksums (written before `complete`), verification, and a store's fingerprint.

A model counts as stored only when its flag is set, its entry parses, it was written by
the store's recipe (and, when asked, the expected checkpoint), and every feature space's
region still hashes to the checksum taken when it was written. Corruption is detected,
never trusted.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import zarr

from actstore import __version__
from actstore.catalog import canonical_hash
from actstore.store.paths import ZARR_MARKER
from actstore.store.root import filesystem, join, zarr_location
from actstore.store.zarrstore import ActivationStore, quiet_zarr, sha256_of


def ledger_entry(checkpoint_sha256: str, recipe_hash: str, device: str, checksums: dict[str, str]) -> str:
    """A model's provenance as JSON: checkpoint, recipe, code version, device, time, region checksums."""
    return json.dumps({
        "checkpoint_sha256": checkpoint_sha256,
        "recipe_hash": recipe_hash,
        "code_version": __version__,
        "device": device,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "checksums": checksums,
    }, sort_keys=True)


def read_entry(store: ActivationStore, arch: str, seed: int) -> dict[str, Any] | None:
    """The parsed ledger entry, or None when absent or unreadable."""
    try:
        entry = json.loads(store.entry_json(arch, seed))
    except Exception:  # a missing, truncated or garbled chunk
        return None
    return entry if isinstance(entry, dict) and isinstance(entry.get("checksums"), dict) else None


def model_problem(store: ActivationStore, arch: str, seed: int, checkpoint_sha256: str | None = None) -> str | None:
    """Why a model's stored values cannot be trusted as current, or None when they can."""
    if not store.is_complete(arch, seed):
        return "not extracted"
    entry = read_entry(store, arch, seed)
    if entry is None:
        return "ledger entry missing"
    if entry.get("recipe_hash") != store.attrs["recipe_hash"]:
        return "written by another recipe"
    if checkpoint_sha256 is not None and entry.get("checkpoint_sha256") != checkpoint_sha256:
        return "checkpoint changed"
    for space in store.spaces:
        try:
            values = store.read(space, arch, seed)
        except Exception:  # truncated chunks fail in the codec
            return f"{space} unreadable"
        if sha256_of(values) != entry["checksums"].get(space):
            return f"{space} fails its checksum"
    return None


def verify(url: str) -> dict[tuple[str, int], str]:
    """Every model slot of a store -> 'ok' or the reason its values are not trusted."""
    store = ActivationStore(url)
    return {(a, s): model_problem(store, a, s) or "ok" for a in store.archs for s in store.seeds}


@dataclass(frozen=True)
class Ledger:
    """What says which models a store holds and whether results computed from it are current: its attrs, model
    axes, `complete` flags and provenance, read straight from Zarr (no xarray dataset, no dask graph)."""

    attrs: dict[str, Any]
    archs: list[str]
    seeds: list[int]
    complete: np.ndarray
    provenance: list[list[str]]


def read_ledger(url: str) -> Ledger | None:
    """The ledger of the store at `url`, or None when it has not been published."""
    fs, path = filesystem(url)
    if not fs.exists(join(path, ZARR_MARKER)):
        return None
    with quiet_zarr():
        group = zarr.open_group(zarr_location(url), mode="r", zarr_format=3, use_consolidated=True)
        names = set(group.array_keys())
        return Ledger(dict(group.attrs), [str(a) for a in group["arch"][:]], [int(s) for s in group["seed"][:]],
                      np.asarray(group["complete"][:], dtype=bool),
                      [[str(e) for e in row] for row in group["provenance"][:]] if "provenance" in names else [])


def store_fingerprint(ledger: Ledger | None) -> str | None:
    """Hash of a store's attrs (recipe, stimulus checksum), axes and ledger (provenance + complete per model);
    re-extracting any model changes it. None for a missing store."""
    if ledger is None:
        return None
    return canonical_hash({"attrs": ledger.attrs, "archs": ledger.archs, "seeds": ledger.seeds,
                           "complete": ledger.complete.tolist(), "provenance": ledger.provenance})


def complete_models(ledger: Ledger, models: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The given (arch, seed) models that the store holds and its ledger marks complete, in order."""
    return [(a, s) for a, s in models if a in ledger.archs and s in ledger.seeds
            and bool(ledger.complete[ledger.archs.index(a), ledger.seeds.index(s)])]
