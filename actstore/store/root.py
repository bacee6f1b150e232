"""Roots are local folders or fsspec URLs; these helpers keep that difference in one place."""
from __future__ import annotations

import fsspec


def join(root: str, *parts: str) -> str:
    """root + '/' + parts, for paths and URLs alike."""
    return "/".join([str(root).rstrip("/"), *[p.strip("/") for p in parts]])


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem of a path or URL, and the path inside it."""
    return fsspec.core.url_to_fs(str(url))


def zarr_location(url: str) -> str:
    """What to hand zarr and xarray: a plain path for local roots (file:// included), else the URL."""
    from fsspec.implementations.local import LocalFileSystem

    fs, path = filesystem(url)
    return path if isinstance(fs, LocalFileSystem) else str(url)


def replace_folder(fs: fsspec.AbstractFileSystem, tmp: str, final: str) -> None:
    """Move the finished folder `tmp` to `final`, replacing any older one: readers see old or new, never half."""
    old = None
    if fs.exists(final):
        old = f"{tmp}.old"
        fs.mv(final, old, recursive=True)
    fs.mv(tmp, final, recursive=True)
    if old is not None:
        fs.rm(old, recursive=True)
