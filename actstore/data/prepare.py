"""Prepare, fingerprint and load the recordings the catalog names.

`prepare_data` synthesizes the synthetic mouse or validates real files, then writes a manifest
(the generating config's hash and every file's sha256) LAST, so a killed run is redone and an
unchanged one does nothing. Synthetic data lives with its manifest (`<path>/manifest.json`);
real data is never written to: its manifest goes to `<root>/data/<source>.manifest.json`.
"""
from __future__ import annotations

import hashlib
import json

from actstore.catalog import Catalog, canonical_hash
from actstore.data import xu2023
from actstore.data.session import Session
from actstore.errors import UserError
from actstore.store.paths import Layout
from actstore.store.root import filesystem, join

MANIFEST_FORMAT = 1
READER_VERSION = 2  # what the real-data readers return for the same files (NaN policy, dropped bins); bump on change
RELEASE_SCALING = {"xu2023": "per_segment", "parker2022": "per_session", "synthetic": "per_session"}


def data_path(catalog: Catalog, root: str) -> str:
    """data.path resolved: absolute paths and URLs as they are, anything else under the root."""
    return Layout(root).data(catalog["data"]["path"])


def manifest_path(catalog: Catalog, root: str) -> str:
    """Where the manifest of the catalog's data lives (see the module docstring)."""
    if catalog["data"]["source"] == "synthetic":
        return join(data_path(catalog, root), "manifest.json")
    return Layout(root).manifest(catalog["data"]["source"])


def frame_scaling(data: dict) -> str:
    """data.frame_scaling resolved: `release` is the source's own convention (RELEASE_SCALING)."""
    asked = data["frame_scaling"]
    return RELEASE_SCALING[data["source"]] if asked == "release" else asked


def data_config(catalog: Catalog, root: str) -> dict:
    """Everything that decides the prepared sessions' content (and so the fingerprint).

    Real data adds the resolved frame scaling and the readers' version. Synthetic data is always scaled
    per session (the catalog refuses per_segment there; SIM_VERSION covers it), so the key stays out of its hash."""
    data = catalog.to_dict()["data"]
    cfg = {k: v for k, v in data.items() if k not in ("path", "reference_session", "synthetic", "frame_scaling")}
    if data["source"] == "synthetic":
        from actstore.data.synthetic import SIM_VERSION

        cfg.update(synthetic=data["synthetic"], simulator=SIM_VERSION,
                   chunk_samples=catalog["evaluation"]["chunk_samples"])
    else:
        cfg.update(path=data_path(catalog, root), frame_scaling=frame_scaling(data), reader=READER_VERSION)
    return cfg


def _sha256(path: str) -> str:
    fs, p = filesystem(path)
    h = hashlib.sha256()
    with fs.open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _data_files(catalog: Catalog, root: str) -> list[str]:
    """Every file the catalog's sessions are read from, relative to data.path's folder (sorted)."""
    base = data_path(catalog, root)
    if catalog["data"]["source"] == "parker2022":
        return [base.rsplit("/", 1)[-1]]
    files = []
    for name in catalog["data"]["sessions"]:
        fs, p = filesystem(xu2023.session_folder(base, name))
        files += [f"{name}/{f.rsplit('/', 1)[-1]}" for f in fs.ls(p, detail=False) if f.endswith(".npy")]
    return sorted(files)


def _file_hashes(catalog: Catalog, root: str, files: list[str]) -> dict[str, str]:
    """sha256 of each file named relative to data.path's folder."""
    base = data_path(catalog, root)
    folder = base.rsplit("/", 1)[0] if catalog["data"]["source"] == "parker2022" else base
    return {f: _sha256(join(folder, f)) for f in sorted(files)}


def _read_manifest(catalog: Catalog, root: str) -> dict | None:
    fs, p = filesystem(manifest_path(catalog, root))
    try:
        with fs.open(p, "r") as f:
            manifest = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT else None


def _current_manifest(catalog: Catalog, root: str) -> dict | None:
    """The manifest when it was written for this catalog's data config, else None (no file hashing)."""
    manifest = _read_manifest(catalog, root)
    if manifest is None or manifest.get("config_hash") != canonical_hash(data_config(catalog, root)):
        return None
    return manifest


def data_problem(catalog: Catalog, root: str) -> str | None:
    """Why the prepared data is not up to date for this catalog, in one line (None when it is): the one check
    `actstore data` and `actstore status` make (manifest, data settings, missing or new files, changed hashes)."""
    if _read_manifest(catalog, root) is None:
        return "not prepared; run `actstore data`"
    manifest = _current_manifest(catalog, root)
    if manifest is None:
        return "prepared for other data settings; run `actstore data`"
    try:
        files = _data_files(catalog, root)
    except (UserError, FileNotFoundError, NotADirectoryError) as e:
        return f"unreadable ({e}); run `actstore data`"
    for what, names in (("missing", sorted(set(manifest["files"]) - set(files))),
                        ("new", sorted(set(files) - set(manifest["files"])))):
        if names:
            return f"{len(names)} file(s) {what} since prepared ({', '.join(names[:3])}); run `actstore data`"
    try:
        hashes = _file_hashes(catalog, root, files)
    except OSError as e:
        return f"unreadable ({e}); run `actstore data`"
    changed = [f for f, h in hashes.items() if manifest["files"][f] != h]
    if changed:
        return f"{len(changed)} file(s) changed since prepared ({', '.join(changed[:3])}); run `actstore data`"
    return None


def _write_manifest(catalog: Catalog, root: str) -> dict:
    config_hash = canonical_hash(data_config(catalog, root))
    hashes = _file_hashes(catalog, root, _data_files(catalog, root))
    manifest = {"format": MANIFEST_FORMAT, "source": catalog["data"]["source"], "config_hash": config_hash,
                "files": hashes, "fingerprint": canonical_hash({"config": config_hash, "files": hashes})}
    fs, p = filesystem(manifest_path(catalog, root))
    fs.makedirs(p.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(p, "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    return manifest


def _remove_manifest(catalog: Catalog, root: str) -> None:
    fs, p = filesystem(manifest_path(catalog, root))
    if fs.exists(p):
        fs.rm(p)


def prepare_data(catalog: Catalog, root: str) -> list[str]:
    """Synthesize or validate the catalog's sessions unless the manifest says they are up to date."""
    source = catalog["data"]["source"]
    if data_problem(catalog, root) is None:
        return [f"data: {source}, {len(catalog['data']['sessions'])} sessions up to date"]
    _remove_manifest(catalog, root)
    lines = []
    if source == "synthetic":
        from actstore.data.synthetic import synthesize, write_synthetic

        base = data_path(catalog, root)
        data = catalog.to_dict()["data"]
        for name in data["sessions"]:
            session, movie = synthesize(name, data, catalog["evaluation"]["chunk_samples"])
            folder = join(base, name)
            fs, p = filesystem(folder)
            if fs.exists(p):
                fs.rm(p, recursive=True)
            write_synthetic(folder, session, movie, data)
            lines.append(_describe("synthesized", session))
    else:
        for session in load_sessions(catalog, root).values():
            lines.append(_describe("validated", session))
    _write_manifest(catalog, root)
    return lines


def _describe(verb: str, s: Session) -> str:
    minutes = len(s.counts) * s.bin_s / 60
    rate = float(s.counts.mean()) / s.bin_s
    line = f"data: {verb} {s.name}: {s.n_neurons} neurons, {len(s.counts)} bins ({minutes:.1f} min), mean rate {rate:.1f} Hz"
    if s.noise_ceiling is not None:
        line += f", mean noise ceiling {float(s.noise_ceiling.mean()):.2f}"
    line += f", frames scaled {s.frame_scaling.replace('_', ' ')}"
    if sum(s.behaviour_filled.values()):
        line += f", {sum(s.behaviour_filled.values())} behaviour NaN(s) filled ({s.behaviour_nan})"
    if s.dropped_bins:
        line += f", {s.dropped_bins} inactive or NaN bins dropped"
    return line


def data_fingerprint(catalog: Catalog, root: str) -> str:
    """The content hash of the prepared data (from its manifest); UserError when it is not prepared."""
    manifest = _current_manifest(catalog, root)
    if manifest is None:
        raise UserError(f"{manifest_path(catalog, root)}: data not prepared for this catalog; run `actstore data`")
    return manifest["fingerprint"]


def load_sessions(catalog: Catalog, root: str) -> dict[str, Session]:
    """Every session of the catalog, in catalog order (frames in [0, 1], split labels, any ground truth).

    Synthetic data must be prepared first (`actstore data`); real files are read and validated as they are.
    """
    data = catalog["data"]
    base = data_path(catalog, root)
    scaling = frame_scaling(data)
    if data["source"] == "synthetic":
        data_fingerprint(catalog, root)
        syn = data["synthetic"]
        return {name: xu2023.read_session(base, name, data["segments"], data["validation_fraction"], scaling,
                                          tuple(syn["frame_shape"]), syn["bin_ms"] / 1000.0)
                for name in data["sessions"]}
    if data["source"] == "xu2023":
        return {name: xu2023.read_session(base, name, data["segments"], data["validation_fraction"], scaling)
                for name in data["sessions"]}
    from actstore.data import parker2022

    return {name: parker2022.read_session(base, name, data["segments"], data["train_fraction"],
                                          data["validation_fraction"], scaling)
            for name in data["sessions"]}
