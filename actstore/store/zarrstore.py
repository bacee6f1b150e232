"""One Zarr v3 group per stimulus set: dense arrays over arch x seed x stimulus, written by region.

Every array is created with the store (NaN / False fill), so metadata and consolidated
metadata never change afterwards and concurrent writers only ever touch their own
model's chunks. A store is built under a temporary name and published whole (store/publish.py).
"""
from __future__ import annotations

import hashlib
import threading
import warnings
from contextlib import contextmanager
from math import prod
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import xarray as xr
import zarr
from zarr.codecs import ZstdCodec

from actstore.errors import UserError
from actstore.store.layout import chunk_runs, stimulus_chunks
from actstore.store.paths import ZARR_MARKER
from actstore.store.publish import publish_folder
from actstore.store.root import zarr_location

STORE_FORMAT = "actstore-store/1"
MODEL_DIMS = ("arch", "seed")
# The feature spaces' chunk codec: zarr's own default chain (bytes, then zstd; any zarr v3 reader opens it) at zstd
# level 1 instead of zarr's default 3. On the demo's activations level 1 takes half the CPU time for the same size
# within 1% (bytes per value of the encoded chunks, level 1 vs 3: tuning_grid alexnet 2.163 vs 2.173, xu_cnn 1.604 vs
# 1.609, resnet18 2.062 vs 2.063; orientation_task alexnet 2.883 vs 2.863). With one chunk per model, all of a
# model's compression follows its last batch, and on a CPU the forward passes saturate it costs them CPU time.
FEATURE_COMPRESSORS = (ZstdCodec(level=1),)
FRAME_DIMS = ("frame", "y", "x")


@contextmanager
def quiet_zarr() -> Iterator[None]:
    """Silence zarr's notice that consolidated metadata is not in the v3 spec (we rely on zarr-python's)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        yield


def sha256_of(values: np.ndarray) -> str:
    """Checksum of an array's float32 C-order bytes."""
    return hashlib.sha256(np.ascontiguousarray(values, dtype=np.float32).tobytes()).hexdigest()


def stimulus_dims(stimuli: xr.Dataset) -> tuple[str, ...]:
    """The recipe's own dims of the `stimulus` variable (everything but seed, frame, y, x)."""
    return tuple(d for d in stimuli["stimulus"].dims if d not in ("seed", *FRAME_DIMS))


def _strings_as_objects(var: xr.Variable) -> xr.Variable:
    """Text as variable-length strings (Zarr's stable `string` type, not fixed-width UTF-32)."""
    if var.dtype.kind in "UTO":
        return var.astype(object)
    return var


def _template(stimuli: xr.Dataset, models: list[tuple[str, int]], spaces: dict[str, tuple[tuple[str, int], ...]],
              target_bytes: int, per_arch: dict[str, dict[str, Any]]) -> tuple[xr.Dataset, dict[str, dict]]:
    """The empty store as a Dataset of lazy fill arrays, and each variable's encoding (chunks); `per_arch` gives
    coordinates along arch (name -> {arch: value})."""
    import dask.array as da

    archs = list(dict.fromkeys(a for a, _ in models))
    seeds = sorted({s for _, s in models})
    per_seed = "seed" in stimuli["stimulus"].dims
    if per_seed and [int(s) for s in stimuli["seed"].values] != seeds:
        raise ValueError(f"stimuli drawn for seeds {stimuli['seed'].values.tolist()}, the store holds {seeds}")
    sdims = stimulus_dims(stimuli)
    sshape = tuple(stimuli.sizes[d] for d in sdims)
    coords = {name: _strings_as_objects(c.variable) for name, c in stimuli.coords.items()}
    coords["arch"] = xr.Variable("arch", np.array(archs, dtype=object))
    coords["seed"] = xr.Variable("seed", np.array(seeds, dtype=np.int64))
    for name, values in per_arch.items():
        coords[name] = _strings_as_objects(xr.Variable("arch", np.array([values[a] for a in archs])))
    data_vars: dict[str, Any] = {}
    encoding: dict[str, dict] = {}
    for name, tail in spaces.items():
        tail_shape = tuple(n for _, n in tail)
        chunks = (1, 1, *stimulus_chunks(sshape, 4 * prod(tail_shape), target_bytes), *tail_shape)
        shape = (len(archs), len(seeds), *sshape, *tail_shape)
        coords.update({d: xr.Variable(d, np.arange(n, dtype=np.int64)) for d, n in tail})
        data_vars[name] = ((*MODEL_DIMS, *sdims, *(d for d, _ in tail)),
                           da.full(shape, np.nan, dtype=np.float32, chunks=chunks))
        encoding[name] = {"chunks": chunks, "compressors": FEATURE_COMPRESSORS}
    stim = stimuli["stimulus"].astype(np.float32)
    frame_shape = stim.shape[per_seed + len(sdims):]
    encoding["stimulus"] = {"chunks": ((1,) * per_seed + stimulus_chunks(sshape, 4 * prod(frame_shape), target_bytes)
                                       + frame_shape)}
    data_vars["stimulus"] = stim.variable
    shape2 = (len(archs), len(seeds))
    data_vars["provenance"] = (MODEL_DIMS, np.full(shape2, "", dtype=object))
    data_vars["complete"] = (MODEL_DIMS, da.zeros(shape2, dtype=bool, chunks=(1, 1)))
    encoding["provenance"] = {"chunks": (1, 1)}
    encoding["complete"] = {"chunks": (1, 1)}
    for name in stimuli.data_vars:
        if name != "stimulus":
            data_vars[name] = _strings_as_objects(stimuli[name].variable)
    return xr.Dataset(data_vars, coords=coords), encoding


class StreamedFrames:
    """One draw's frames (stimuli, frames, y, x), filled chunk by chunk in stimulus order by `read()`: a slice waits
    only until the stimuli it covers are read, so forward passes start after the first chunk rather than after the
    whole set (paper tuning grid: 200 MB, 0.45 s). The checksum taken at creation is updated chunk by chunk, and
    the last stimuli are handed out only once all frames pass it (else every waiter gets the error), so no model's
    last batch, and hence no complete flag, can come from frames that fail it."""

    def __init__(self, array: zarr.Array, index: tuple[int, ...], runs: list[tuple[int, int, tuple[slice, ...]]],
                 shape: tuple[int, ...], want_sha256: str, name: str):
        self.values = np.empty(shape, dtype=np.float32)
        self.shape = shape
        self._array, self._index, self._runs, self._want, self._name = array, index, runs, want_sha256, name
        self._ready = threading.Condition()
        self._filled, self._error = 0, None
        self._stop = threading.Event()

    def __len__(self) -> int:
        return self.shape[0]

    def read(self) -> None:
        """Read every chunk in order, then compare the checksum; an error is raised here and in every waiter."""
        digest = hashlib.sha256()
        try:
            for lo, hi, region in self._runs:
                if self._stop.is_set():
                    raise RuntimeError(f"{self._name}: reading stopped (the extraction ended early)")
                block = self.values[lo:hi]
                block[...] = self._array[(*self._index, *region)].reshape(block.shape)
                digest.update(block)  # C-contiguous float32: what sha256_of hashes, in the same order
                if hi < len(self):
                    self._publish(hi)
            if digest.hexdigest() != self._want:
                raise UserError(f"{self._name}: frames fail their checksum (corrupted store); rerun with --rebuild")
            self._publish(len(self))  # the last stimuli only once all are known intact
        except BaseException as e:
            with self._ready:
                self._error = e
                self._ready.notify_all()
            raise

    def _publish(self, filled: int) -> None:
        with self._ready:
            self._filled = filled
            self._ready.notify_all()

    def stop(self) -> None:
        """Stop reading after the chunk in hand (the frames are no longer wanted); waiters get an error."""
        self._stop.set()

    def __getitem__(self, key: slice) -> np.ndarray:
        """Stimuli key.start:key.stop, once read (a slice of stimuli is all forward passes ask for)."""
        if not isinstance(key, slice):
            raise TypeError("streamed frames are read by slices of stimuli")
        _, stop, _ = key.indices(len(self))
        with self._ready:
            self._ready.wait_for(lambda: self._error is not None or self._filled >= stop)
            if self._error is not None:
                raise self._error
        return self.values[key]


class ActivationStore:
    """A store on disk (or any fsspec URL): model slots, chunk-aligned region writes, the ledger."""

    def __init__(self, url: str):
        self.url = url
        with quiet_zarr():
            self.group = zarr.open_group(zarr_location(url), mode="r+", zarr_format=3)
        self.attrs = dict(self.group.attrs)
        if self.attrs.get("format") != STORE_FORMAT:
            raise UserError(f"{url}: not an actstore store (attrs.format is {self.attrs.get('format')!r}, "
                            f"expected {STORE_FORMAT!r}); remove it or rerun with --rebuild")
        self.archs = [str(a) for a in self.group["arch"][:]]
        self.seeds = [int(s) for s in self.group["seed"][:]]
        self.spaces: dict[str, list[str]] = self.attrs["spaces"]
        self.stim_dims: list[str] = self.attrs["stimulus_dims"]
        self.per_seed = self.attrs.get("stimulus_draws") == "per_seed"
        self.stim_shape = tuple(self.group["stimulus"].shape[self.per_seed:self.per_seed + len(self.stim_dims)])
        self._arrays: dict[str, zarr.Array] = {}

    def array(self, name: str) -> zarr.Array:
        """One variable's zarr array, opened once (metadata never changes after creation, see the module doc)."""
        if name not in self._arrays:
            self._arrays[name] = self.group[name]
        return self._arrays[name]

    # --------------------------------------------------------------------- create / open
    @classmethod
    def create(cls, url: str, stimuli: xr.Dataset, models: list[tuple[str, int]],
               spaces: dict[str, tuple[tuple[str, int], ...]], attrs: dict[str, Any],
               target_bytes: int, per_arch: dict[str, dict[str, Any]] | None = None) -> "ActivationStore":
        """Write the whole empty store under a temporary name, then publish it.

        If another process published the same store first, theirs is kept and opened.
        """
        template, encoding = _template(stimuli, models, spaces, target_bytes, per_arch or {})
        template.attrs = {
            **stimuli.attrs, **attrs, "format": STORE_FORMAT,
            "stimulus_draws": "per_seed" if "seed" in stimuli["stimulus"].dims else "global",
            "stimulus_dims": list(stimulus_dims(stimuli)),
            "spaces": {name: [d for d, _ in tail] for name, tail in spaces.items()},
            "stimulus_sha256": sha256_of(template["stimulus"].values),
        }
        if "seed" in stimuli["stimulus"].dims:  # per-seed draws: each seed's frames are checked on their own
            template.attrs["stimulus_sha256_by_seed"] = [sha256_of(v) for v in template["stimulus"].values]

        def build(tmp_url: str) -> None:
            with quiet_zarr():
                template.to_zarr(zarr_location(tmp_url), mode="w-", zarr_format=3, consolidated=True, compute=False,
                                 encoding=encoding)

        publish_folder(url, build, ZARR_MARKER, replace=False)
        return cls(url)

    # --------------------------------------------------------------------- models
    def slot(self, arch: str, seed: int) -> tuple[int, int]:
        """Index of a model along (arch, seed)."""
        if arch not in self.archs or seed not in self.seeds:
            raise UserError(f"{self.url}: holds archs {self.archs} x seeds {self.seeds}, not {arch}-s{seed}; "
                            "rerun with --rebuild to remake it for the catalog's zoo")
        return self.archs.index(arch), self.seeds.index(seed)

    def frames(self, seed: int) -> np.ndarray:
        """The frames the models of `seed` are shown, as (stimuli, frames, y, x): that seed's own draw when the
        stimuli are drawn per seed (only it is read), else the one shared set; checked against the checksum
        taken at creation."""
        stream = self.stream_frames(seed)
        stream.read()
        return stream.values

    def stream_frames(self, seed: int) -> StreamedFrames:
        """The same frames, to be read chunk by chunk (`read`, e.g. in a thread) while their first stimuli are used."""
        array = self.array("stimulus")
        k = (self.seeds.index(seed),) if self.per_seed else ()
        want = self.attrs["stimulus_sha256_by_seed"][k[0]] if self.per_seed else self.attrs["stimulus_sha256"]
        runs = chunk_runs(self.stim_shape, array.chunks[len(k):len(k) + len(self.stim_dims)])
        tail = array.shape[len(k) + len(self.stim_dims):]  # (frame, y, x), or (y, x) for single frames
        return StreamedFrames(array, k, runs, (prod(self.stim_shape), prod(tail[:-2]), *tail[-2:]), want,
                              f"{self.url}/stimulus")

    def runs(self, space: str) -> list[tuple[int, int, tuple[slice, ...]]]:
        """Chunk-aligned flat stimulus ranges of a feature space, in write order."""
        chunks = self.array(space).chunks[2:2 + len(self.stim_dims)]
        return chunk_runs(self.stim_shape, chunks)

    def write(self, space: str, arch: str, seed: int, region: tuple[slice, ...], values: np.ndarray) -> None:
        """Write one chunk-aligned block (stimuli flat, then the space's own dims) of one model."""
        i, j = self.slot(arch, seed)
        arr = self.array(space)
        shape = tuple(len(range(*s.indices(n))) for s, n in zip(region, self.stim_shape))
        arr[(i, j, *region)] = values.reshape(*shape, *arr.shape[2 + len(shape):])

    def read(self, space: str, arch: str, seed: int) -> np.ndarray:
        i, j = self.slot(arch, seed)
        return self.array(space)[i, j]

    # --------------------------------------------------------------------- ledger
    def is_complete(self, arch: str, seed: int) -> bool:
        """The ledger flag; an unreadable flag counts as not complete."""
        i, j = self.slot(arch, seed)
        try:
            return bool(self.array("complete")[i, j])
        except Exception:  # a truncated or garbled chunk raises codec-specific errors
            return False

    def complete_count(self) -> int:
        return sum(self.is_complete(a, s) for a in self.archs for s in self.seeds)

    def begin(self, arch: str, seed: int) -> None:
        """Mark a model incomplete before its region is (re)written, and remove what a killed writer of that region
        left: zarr's local store writes each chunk to `<key>.<uuid>.partial` and then renames it, so a SIGKILL
        leaves one such file per chunk in flight (object stores write whole objects and leave none)."""
        i, j = self.slot(arch, seed)
        self.array("complete")[i, j] = False
        location = zarr_location(self.url)
        if "://" in location:
            return
        for name in (*self.spaces, "complete", "provenance"):  # every array chunks (arch, seed) one model apiece
            chunks = Path(location, name, "c", str(i))
            for leftover in (*chunks.glob(f"{j}.*.partial"), *(chunks / str(j)).rglob("*.partial")):
                leftover.unlink(missing_ok=True)

    def finish(self, arch: str, seed: int, entry_json: str) -> None:
        """Record the model's ledger entry, then its complete flag (last, once everything is flushed)."""
        i, j = self.slot(arch, seed)
        self.array("provenance")[i, j] = entry_json
        self.array("complete")[i, j] = True

    def entry_json(self, arch: str, seed: int) -> str:
        """The raw ledger entry ('' when none)."""
        i, j = self.slot(arch, seed)
        return str(self.array("provenance")[i, j])

