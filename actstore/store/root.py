"""Roots are local folders or fsspec URLs; these helpers keep that difference in one place."""
from __future__ import annotations

import os
from pathlib import Path

import fsspec

from actstore.errors import UserError

# s3fs answers exists() and info() from its listings cache once it has listed a folder, and never sees what other
# processes (rival publishers, writers of other models, Dask workers) put there since: object-store roots are shared,
# so their listings are always asked afresh. fsspec applies this config to every S3FileSystem, zarr's included.
fsspec.config.conf.setdefault("s3", {}).setdefault("use_listings_cache", False)


def join(root: str, *parts: str) -> str:
    """root + '/' + parts, for paths and URLs alike."""
    return "/".join([str(root).rstrip("/"), *[p.strip("/") for p in parts]])


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem of a path or URL, and the path inside it."""
    return fsspec.core.url_to_fs(str(url))


def checked_root(root: str) -> str:
    """`root` when it is (or can become) a readable folder; a file, a path inside a file, or a folder this user
    cannot read is one UserError line. A URL is only checked when its filesystem answers (no network at start)."""
    if "://" in root:
        try:
            fs, path = filesystem(root)
            is_file = fs.isfile(path)
        except Exception:  # an unreachable or uninstalled filesystem fails later, where the root is used
            return root
        if is_file:
            raise UserError(f"--root {root}: is a file; expected a folder or an fsspec URL of one")
        return root
    path = Path(root)
    first = next(p for p in (path, *path.parents) if p.exists() or p == p.parent)
    if not first.is_dir():
        where = "is a file" if first == path else f"lies inside the file {first}"
        raise UserError(f"--root {root}: {where}; expected a folder (created if missing)")
    if first == path and not os.access(path, os.R_OK | os.X_OK):
        raise UserError(f"--root {root}: this user cannot read the folder; expected a readable folder")
    return root


def zarr_location(url: str) -> str:
    """What to hand zarr and xarray: a plain path for local roots (file:// included), else the URL."""
    from fsspec.implementations.local import LocalFileSystem

    fs, path = filesystem(url)
    return path if isinstance(fs, LocalFileSystem) else str(url)

