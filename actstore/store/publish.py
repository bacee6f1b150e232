"""Putting finished files and folders in place, so a reader sees the old one or the new one, never half of either.

Local disks (plain paths and file://). A file is written beside its target, then os.replace'd over it (atomic).
A folder is built beside its target (`.<name>.<random>.tmp`); when the target is absent it is os.rename'd into
place (atomic; if another publisher got there first the rename fails and `replace=False` keeps theirs). When the
target exists, Linux renameat2(RENAME_EXCHANGE) swaps the two in one step, and the old folder is then removed.
Where that call is missing or refused (not Linux, glibc < 2.28, a filesystem without it), the fallback renames the
old folder aside, then the new one in: between those two renames a reader finds no folder (it never finds half).

Other fsspec roots (memory://, s3://, ...). There is no rename; one object write is taken as atomic (an S3 PUT is).
A folder counts as present only while its commit marker exists (`marker`: the root zarr.json of a Zarr store,
index.html of the report), and readers check the marker. (A checkpoint is not a folder publish: its model.json
switches between weights files named by content, models/checkpoint.py.) The
folder is built beside the target, or, for a Zarr folder, in a local temporary folder (tempfile's; not while a
distributed Dask client schedules, since its workers write chunks themselves), then uploaded (or copied server-side) into place object by
object, in concurrent batches, the marker last. Replacing a folder whose new version overwrites no object a reader
of the old one reads (`_overlap`: successive analysis results alternate their Zarr chunk key layout, the report
names its figures by content) copies the new objects beside the old ones, swaps the marker in one write, then
removes the old objects: readers see the old version whole, then the new one whole, never none. Any other replace
first deletes the old marker (readers see no folder from then on), then the old objects the new folder does not
have, then copies the new ones over the rest: whenever the marker is there, every object under it is of the
marker's version, never a mix; while it copies, the folder is absent (an object store has no atomic swap of many
objects; local disks do). A reader that opened the old version and reads its objects after the swap finds them
gone (a Zarr reader then gets fill values for the missing chunks): reopen after a publish.
With `replace=False` (first publisher wins) the marker is written
with pipe_file(mode="create") and a publisher that finds it taken drops its copy; it also looks for the marker
before each batch of objects it copies (COPY_BATCH, copied concurrently on S3), and stops once a rival has committed. Remaining races: (1) mode="create" is
exclusive only where the filesystem makes it so: LocalFileSystem opens "xb" (O_EXCL); s3fs sends If-None-Match: *
(S3 and moto refuse the second PUT); memory:// checks, then writes, inside one process; fsspec's generic fallback,
used by any backend that does not override it, checks then writes. (2) A losing create-once publisher may copy one
batch of objects over the winner's after the winner committed. Rivals of one recipe build the same objects (metadata,
coordinates, the stimulus: deterministic; per-model chunks and the ledger are never in a template, since empty
chunks are not written), so that copy changes no byte; a rival with other contents (another recipe) could leave
foreign objects, which the stimulus checksum or the ledger then reports. (3) Two concurrent replacers of one
folder can interleave their copies.
"""
from __future__ import annotations

import ctypes
import errno
import os
import sys
import tempfile
import uuid
from typing import Callable

import fsspec
from fsspec.implementations.local import LocalFileSystem

from actstore.store.paths import ZARR_MARKER
from actstore.store.root import filesystem

RENAME_EXCHANGE, AT_FDCWD = 2, -100
COPY_BATCH = 32  # objects copied between two looks at a create-once folder's marker


def _sibling(path: str) -> str:
    """A fresh temporary name in the same folder as `path` (so a rename never crosses filesystems)."""
    parent, _, base = path.rstrip("/").rpartition("/")
    name = f".{base}.{uuid.uuid4().hex[:8]}.tmp"
    return f"{parent}/{name}" if parent else name


def publish_file(url: str, data: bytes) -> None:
    """Write `data` as the file `url`, replacing any older one atomically."""
    fs, path = filesystem(url)
    parent = path.rpartition("/")[0]
    if parent:
        fs.makedirs(parent, exist_ok=True)
    if not isinstance(fs, LocalFileSystem):
        fs.pipe_file(path, data)
        return
    tmp = _sibling(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def publish_folder(url: str, build: Callable[[str], None], marker: str, replace: bool = True) -> bool:
    """Build a folder with `build(temporary_url)`, then put it in place at `url` (`marker`: the file readers key
    on). With `replace` off an existing folder is kept and the new one dropped; returns whether the new one won."""
    fs, final = filesystem(url)
    parent = final.rstrip("/").rpartition("/")[0]
    if parent:
        fs.makedirs(parent, exist_ok=True)
    if isinstance(fs, LocalFileSystem) or marker != ZARR_MARKER or not _stage_locally():
        tmp_url = _sibling(str(url))
        tmp_fs, tmp = fs, filesystem(tmp_url)[1]
    else:  # built on this machine's disk, then uploaded: zarr's many small writes never go over the network twice
        tmp_url = tmp = tempfile.mkdtemp(prefix=f".{final.rstrip('/').rpartition('/')[2]}.", suffix=".tmp")
        tmp_fs = LocalFileSystem()
    try:
        build(tmp_url)
        if isinstance(fs, LocalFileSystem):  # a folder without its marker is not published: it is replaced
            return _move_local(tmp, final, replace or not os.path.exists(f"{final}/{marker}"))
        return _copy_in(fs, tmp_fs, tmp, final, marker, replace)
    finally:
        if tmp_fs.exists(tmp):
            tmp_fs.rm(tmp, recursive=True)


def _stage_locally() -> bool:
    """Whether a Zarr folder for an object store may be built in a local temporary folder: not while a distributed
    Dask client is the scheduler, whose workers (perhaps on other machines) write the chunks of a lazy result
    themselves; they get a temporary folder beside the target instead. (Only Zarr folders: their builders write
    through the URL they are handed; the report's writes with the root's filesystem, so it is built beside.)"""
    from dask.base import get_scheduler

    return type(getattr(get_scheduler(), "__self__", None)).__name__ != "Client"


def _move_local(tmp: str, final: str, replace: bool) -> bool:
    """Rename `tmp` to `final` when absent, else (with `replace`) swap them; the old folder ends up at `tmp`."""
    try:
        os.rename(tmp, final)  # atomic; fails when a non-empty folder is already there
        return True
    except OSError:
        if not os.path.isdir(final):
            raise
    if not replace:
        return False
    if not _exchange(tmp, final):
        os.rename(final, f"{tmp}.old")  # fallback: for an instant no folder is at `final`
        os.rename(tmp, final)
        os.rename(f"{tmp}.old", tmp)
    return True


def _exchange(a: str, b: str) -> bool:
    """Swap two paths atomically with renameat2(RENAME_EXCHANGE); False where the system cannot."""
    if sys.platform != "linux":
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), b)


def _copy_in(fs: fsspec.AbstractFileSystem, src_fs: fsspec.AbstractFileSystem, tmp: str, final: str, marker: str,
             replace: bool) -> bool:
    """Copy the folder `tmp` (on `src_fs`: this machine's disk, or `fs` itself) to `final` object by object, the
    commit marker last (see the module docstring)."""
    committed = f"{final}/{marker}"
    tmp, final = tmp.rstrip("/"), final.rstrip("/")
    new = sorted(path[len(tmp) + 1:] for path in src_fs.find(tmp))
    beside = False  # the new version copied beside the published one, which stays readable until the marker swaps
    if fs.exists(committed):
        if not replace:
            return False
        beside = not _overlap(fs, final, new, marker)
        if not beside:
            fs.rm_file(committed)  # from here on readers see no folder, never a mix of old and new
    if replace and not beside:  # objects of the old folder (or of an unfinished publish) that the new one lacks
        _remove_stale(fs, final, new)
    copy = fs.copy if src_fs is fs else fs.put  # server-side copies, or uploads
    # data objects before metadata objects (an array's own zarr.json names its chunks), the marker last
    todo = sorted((rel for rel in new if rel != marker), key=lambda rel: rel.endswith(f"/{marker}"))
    for first in range(0, len(todo), COPY_BATCH):  # each batch concurrently where the backend can (s3fs)
        if first and not replace and fs.exists(committed):  # a rival committed meanwhile: theirs stays whole
            return False
        part = todo[first:first + COPY_BATCH]
        copy([f"{tmp}/{rel}" for rel in part], [f"{final}/{rel}" for rel in part])
    try:
        fs.pipe_file(committed, src_fs.cat_file(f"{tmp}/{marker}"), mode="overwrite" if replace else "create")
    except FileExistsError:
        return False
    if beside:  # the marker names the new version: the old one's objects go
        _remove_stale(fs, final, new)
    return True


def _overlap(fs: fsspec.AbstractFileSystem, final: str, new: list[str], marker: str) -> bool:
    """Whether copying `new` into `final` would overwrite an object a reader of the published version reads. Only
    the marker and, in a Zarr folder, the arrays' own zarr.json may be shared: readers open the consolidated
    metadata in the root zarr.json and never read those (write_analysis alternates the chunk key encoding so
    that successive versions share no chunk; the report names its figures by content)."""
    old = {path[len(final) + 1:] for path in fs.find(final)}
    ignorable = (lambda rel: rel.endswith(f"/{marker}")) if marker == ZARR_MARKER else (lambda rel: False)
    return any(rel in old and rel != marker and not ignorable(rel) for rel in new)


def _remove_stale(fs: fsspec.AbstractFileSystem, final: str, new: list[str]) -> None:
    """Remove what lies under `final` but is neither one of the `new` objects nor a folder above one of them (the
    folders too: memory:// keeps empty ones, which a listing would show as members)."""
    keep = {final, *(f"{final}/{rel}" for rel in new)}  # (find(withdirs=True) lists the folder itself too)
    keep |= {f"{final}/{rel.rsplit('/', k)[0]}" for rel in new for k in range(1, rel.count("/") + 1)}
    stale = [path for path in fs.find(final) if path not in keep]
    if stale:
        fs.rm(stale)
    for path in sorted((p for p in fs.find(final, withdirs=True) if p not in keep), key=len, reverse=True):
        try:
            fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass
