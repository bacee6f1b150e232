"""The ledger: per-model provenance + checksums (written before `complete`), verification, and a store's fingerprint.

A model counts as stored only when its flag is set, its entry parses, it was written by
the store's recipe (and, when asked, the expected checkpoint), and every feature space's
region still hashes to the checksum taken when it was written. Corruption is detected,
never trusted.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from actstore import __version__
from actstore.catalog import canonical_hash
from actstore.store.zarrstore import ActivationStore, sha256_of

if TYPE_CHECKING:
    import xarray as xr


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


def store_fingerprint(ds: xr.Dataset | None) -> str | None:
    """Hash of a store's attrs (recipe, stimulus checksum) and its ledger (provenance + complete per model);
    re-extracting any model changes it. None for a missing store."""
    if ds is None:
        return None
    ledger = {name: ds[name].values.tolist() for name in ("complete", "provenance") if name in ds}
    coords = {d: ds[d].values.tolist() for d in ("arch", "seed") if d in ds.coords}
    return canonical_hash({"attrs": ds.attrs, "ledger": ledger, "coords": coords})


def complete_models(ds: xr.Dataset, models: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The given (arch, seed) models that the store holds and its ledger marks complete, in order."""
    archs = [str(a) for a in ds["arch"].values]
    seeds = [int(s) for s in ds["seed"].values]
    flags = ds["complete"].values
    return [(a, s) for a, s in models if a in archs and s in seeds and bool(flags[archs.index(a), seeds.index(s)])]
