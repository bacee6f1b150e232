"""`actstore extract`: every frozen model of the zoo x one stimulus set -> `<root>/<recipe>.zarr`.

Models already stored with the same checkpoint and recipe (and intact checksums) are
skipped; the rest run in eval mode under inference_mode, batched, while a writer thread
assembles and checksums each model and hands every chunk-aligned region it completes to
chunk writers that compress and write it. A model is marked complete only after all of it is written.
"""
from __future__ import annotations

import hashlib
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

import numpy as np
import xarray as xr
import yaml
from tqdm import tqdm

from actstore.catalog import Catalog, canonical_hash
from actstore.cluster import JobFailed, run_tasks, where_running
from actstore.errors import UserError
from actstore.features import (SPACES, FeatureSpace, LayerSpace, ReadoutSpace, batched_features, layer_spaces,
                               layers_identity, readout_identity, readout_spaces, resolve_device)
from actstore.models.checkpoint import load_checkpoint, read_meta
from actstore.store.ledger import ledger_entry, model_problem
from actstore.store.paths import META, ZARR_MARKER, Layout
from actstore.store.root import filesystem, join
from actstore.store.zarrstore import ActivationStore, StreamedFrames

Model = tuple[str, int]


def checkpoint_sha(root: str, arch: str, seed: int) -> str:
    """The checkpoint's sha256 from its metadata; a missing checkpoint is one clear line."""
    folder = Layout(root).model(arch, seed)
    fs, path = filesystem(folder)
    if not fs.exists(join(path, META)):
        raise UserError(f"{folder}: no checkpoint for {arch}-s{seed}; "
                        f"run `actstore train --arch {arch} --seed {seed}` first")
    return read_meta(folder)["sha256"]


def zoo_sizes(catalog: Catalog) -> dict[str, int]:
    """The feature sizes every checkpoint of the zoo must have."""
    return {"encoder_dim": int(catalog["zoo"]["encoder_dim"]), "hidden_dim": int(catalog["zoo"]["hidden_dim"])}


def data_identity(catalog: Catalog, root: str, recipe: dict) -> str:
    """The prepared data's fingerprint for recipes drawn from recordings ('' for synthetic stimuli)."""
    from actstore.stimuli import needs_reference

    if not needs_reference(recipe):
        return ""
    from actstore.data import data_fingerprint

    return data_fingerprint(catalog, root)


def draws(catalog: Catalog, recipe: dict) -> dict[str, Any]:
    """What a store's stimuli are drawn from besides the recipe and the data: for the drawn kinds the run seed,
    and whether each model seed gets its own draw (catalog stimulus_draws); nothing for deterministic kinds."""
    from actstore.stimuli import DRAWN_KINDS

    if recipe["kind"] not in DRAWN_KINDS:
        return {}
    return {"run_seed": int(catalog["run_seed"]), "stimulus_draws": catalog["stimulus_draws"]}


def generate_stimuli(catalog: Catalog, root: str, recipe: dict) -> xr.Dataset:
    """The recipe's stimulus Dataset: one draw per model seed where the catalog asks for it (draws), else one
    set; reference clips draw on the reference session's frames."""
    from actstore.stimuli import generate, generate_per_seed, needs_reference

    if draws(catalog, recipe).get("stimulus_draws") == "per_seed":
        return generate_per_seed(recipe, catalog["run_seed"], sorted(catalog["zoo"]["seeds"]))
    reference = None
    if needs_reference(recipe):
        from actstore.data import load_sessions

        reference = load_sessions(catalog, root)[catalog["data"]["reference_session"]].frames
    return generate(recipe, catalog["run_seed"], reference_frames=reference)


def stored_spaces(store: ActivationStore) -> tuple[FeatureSpace, ...]:
    """The feature spaces a store holds, layer spaces rebuilt from its attrs and per-arch width coords, readout
    spaces from its attrs and their widths."""
    layers, readout = store.attrs.get("layers", {}), store.attrs.get("readout", {})
    return (*(s for s in SPACES if s.name in store.spaces),
            *(LayerSpace(name, f"{name}_unit", "frame", modules=modules, reduce=layers["reduce"],
                         widths=dict(zip(store.archs, (int(w) for w in store.array(f"{name}_width")[:]))))
              for name, modules in layers.get("modules", {}).items()),
            *(ReadoutSpace(name, f"neuron_{mouse}", "frame", mouse=mouse, neurons=int(store.array(name).shape[-1]),
                           context=int(readout["context"]))
              for mouse, name in readout.get("spaces", {}).items()))


def zoo_neurons(catalog: Catalog, root: str) -> dict[str, int]:
    """Each session's neuron count, from the first trained zoo twin's checkpoint metadata ({} before any)."""
    for arch, seed in catalog.models:
        folder = Layout(root).model(arch, seed)
        fs, path = filesystem(join(folder, META))
        if arch not in catalog["byo"] and fs.exists(path):
            neurons = read_meta(folder)["config"].get("neurons", {})
            if all(m in neurons for m in catalog["data"]["sessions"]):
                return {m: int(neurons[m]) for m in catalog["data"]["sessions"]}
    return {}


def open_or_create(catalog: Catalog, root: str, recipe: dict, stimuli_fn: Any, rebuild: bool) -> ActivationStore:
    """The recipe's store: the existing one if written by the same recipe and zoo layout, else a new one.

    A store from another recipe or zoo is an error unless `rebuild` replaces it.
    `stimuli_fn()` returns the stimulus Dataset (only called when a store is created).
    """
    name, rhash = recipe["name"], canonical_hash(recipe)
    data, drawn = data_identity(catalog, root, recipe), draws(catalog, recipe)
    url = Layout(root).store(name)
    fs, path = filesystem(url)
    config = zoo_sizes(catalog)
    if fs.exists(path) and rebuild:
        fs.rm(path, recursive=True)
    if fs.exists(join(path, ZARR_MARKER)):  # a folder without its marker was never published (store/publish.py)
        store = ActivationStore(url)
        sizes = {s.name: store.group[s.name].shape[-1] for s in SPACES}
        layers = layers_identity(catalog, name)
        mismatch = [
            f"written by another version of recipe {name!r} (hash {str(store.attrs.get('recipe_hash'))[:12]}, "
            f"now {rhash[:12]})" if store.attrs.get("recipe_hash") != rhash else "",
            f"drawn from other recorded data (fingerprint {str(store.attrs.get('data_fingerprint'))[:12]}, "
            f"now {data[:12]})" if store.attrs.get("data_fingerprint", "") != data else "",
            f"holds {sizes}, the catalog's zoo has {want}" if sizes != (want := {s.name: s.width(config) for s in SPACES})
            else "",
            f"holds layer spaces {store.attrs.get('layers', {})}, the catalog's spaces section gives {layers}"
            if store.attrs.get("layers", {}) != layers else "",
            f"holds readout spaces {store.attrs.get('readout', {})}, the catalog's spaces.readout gives {readout}"
            if store.attrs.get("readout", {}) != (readout := readout_identity(catalog, name) if zoo_neurons(catalog, root)
                                                  else {}) else "",
            *(f"drawn with {key} {store.attrs.get(key)!r}, the catalog now has {value!r}"
              for key, value in drawn.items() if store.attrs.get(key) != value),
        ]
        for why in filter(None, mismatch):
            raise UserError(f"{url}: {why}; rerun `actstore extract --recipe {name} --rebuild` to replace it")
        return store
    stimuli = stimuli_fn()
    attrs = {"recipe_name": name, "recipe_hash": rhash, "recipe_yaml": yaml.safe_dump(recipe, sort_keys=True),
             "data_fingerprint": data, **drawn}
    layers = layer_spaces(catalog, name, tuple(stimuli["stimulus"].shape[-2:]))
    if layers:
        attrs["layers"] = layers_identity(catalog, name)
    neurons = zoo_neurons(catalog, root)
    readouts = readout_spaces(catalog, name, neurons) if neurons else ()  # counts known from a trained twin
    if readouts:
        attrs["readout"] = readout_identity(catalog, name)
    n_frames, chunk_frames = stimuli.sizes.get("frame", 1), int(stimuli.attrs["chunk_frames"])
    dims = {s.name: s.dims(n_frames, chunk_frames, config) for s in (*SPACES, *layers, *readouts)}
    per_arch = {f"{s.name}_{key}": getattr(s, f"{key}s") for s in layers for key in ("width", "depth", "module")}
    target = int(catalog["extract"]["chunk_mb"] * 2**20)
    return ActivationStore.create(url, stimuli, catalog.models, dims, attrs, target, per_arch)


class RegionWriter:
    """A background thread that writes each model's chunks as soon as the forward passes cover them.

    The thread copies each batch into its model's buffer (padding narrow layers with NaN) and updates the
    checksums; every chunk the batches complete goes to a pool of `writers` threads that compress and write it
    (zstd releases the GIL), so chunks are written side by side, and beside the next batches, rather than one
    after another. A model's ledger entry and complete flag follow only once all its chunks are written.
    """

    def __init__(self, store: ActivationStore, depth: int = 4, writers: int = 4):
        self.store = store
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.buffers: dict[str, np.ndarray] = {}
        self.pending: dict[str, list] = {}
        self.hashes: dict[str, Any] = {}
        self.writes: list[Future] = []  # the current model's chunk writes, in flight or done
        self.filled = 0  # stimuli received so far for the current model
        self.pool = ThreadPoolExecutor(writers, thread_name_prefix="actstore-chunks")
        self.thread = threading.Thread(target=self._loop, name="actstore-writer", daemon=True)
        self.thread.start()

    def put(self, *item: Any) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(item)

    def close(self) -> None:
        """Wait until everything queued is written; re-raise a write error."""
        self.queue.put(None)
        self.thread.join()
        self.pool.shutdown(wait=True)
        if self.error is not None:
            raise self.error

    def _loop(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    getattr(self, f"_{item[0]}")(*item[1:])
                except BaseException as e:  # handed to the main thread by put/close
                    self.error = e

    def _begin(self, arch: str, seed: int) -> None:
        n = int(np.prod(self.store.stim_shape))
        self.buffers = {}
        self.pending = {}
        self.hashes, self.filled, self.writes = {}, 0, []
        for space in self.store.spaces:
            tail = self.store.array(space).shape[2 + len(self.store.stim_dims):]
            self.buffers[space] = np.empty((n, *tail), dtype=np.float32)
            self.pending[space] = self.store.runs(space)
            self.hashes[space] = hashlib.sha256()

    def _data(self, arch: str, seed: int, first: int, stop: int, feats: dict[str, np.ndarray]) -> None:
        """Batches arrive in stimulus order, so each space's checksum (sha256_of its whole buffer) is updated
        here, while the forward passes run, rather than over the whole buffer at the end."""
        if first != self.filled:
            raise RuntimeError(f"{arch}-s{seed}: batch at stimulus {first}, expected {self.filled}")
        self.filled = stop
        for space, values in feats.items():  # a layer narrower than the store's widest is padded with NaN
            buf = self.buffers[space]
            values = values.reshape(stop - first, *buf.shape[1:-1], values.shape[-1])
            buf[first:stop, ..., :values.shape[-1]] = values
            buf[first:stop, ..., values.shape[-1]:] = np.nan
            self.hashes[space].update(buf[first:stop])  # C-contiguous float32: the bytes sha256_of hashes
            runs = self.pending[space]
            while runs and runs[0][1] <= stop:  # each chunk is written once, whole, never touched again
                lo, hi, region = runs.pop(0)
                write = self.pool.submit(self.store.write, space, arch, seed, region, buf[lo:hi])
                write.add_done_callback(self._failed)
                self.writes.append(write)

    def _failed(self, write: Future) -> None:
        """A chunk write's error stops the writer at once (no later item is written, put raises it)."""
        if write.exception() is not None and self.error is None:
            self.error = write.exception()

    def _finish(self, arch: str, seed: int, checkpoint_sha256: str, device: str) -> None:
        left = [s for s, runs in self.pending.items() if runs]
        if left:
            raise RuntimeError(f"{arch}-s{seed}: unwritten chunks in {left}")
        for write in self.writes:  # every chunk on disk (or its error raised) before the ledger
            write.result()
        checksums = {space: h.hexdigest() for space, h in self.hashes.items()}
        entry = ledger_entry(checkpoint_sha256, self.store.attrs["recipe_hash"], device, checksums)
        self.store.finish(arch, seed, entry)


def extract_models(store: ActivationStore, root: str, todo: list[tuple[Model, str]], shas: dict[Model, str],
                   config: dict, device: str, batch_size: int) -> dict[Model, str]:
    """Run each model over the store's frames and write its region, overlapping compute with writes."""
    shown: dict[int, StreamedFrames] = {}  # the last seed's frames: a per-seed store holds one draw in memory
    chunk_frames = int(store.attrs["chunk_frames"])
    name = store.attrs["recipe_name"]
    spaces = stored_spaces(store)
    lines = {}
    writer, reading = RegionWriter(store), ThreadPoolExecutor(1, thread_name_prefix="actstore-frames")
    try:
        for (arch, seed), reason in sorted(todo, key=lambda t: t[0][1]):  # seed by seed: each draw read once
            started = time.perf_counter()
            if seed not in shown:  # read chunk by chunk while the checkpoint loads and the first batches run
                shown = {seed: store.stream_frames(seed)}
                reading.submit(shown[seed].read)
            folder = Layout(root).model(arch, seed)
            twin, _ = load_checkpoint(folder, expect={"arch": arch, **config})
            frames = shown[seed]
            if tuple(twin.config["frame_shape"]) != frames.shape[-2:]:
                raise UserError(f"{folder}: model frames {twin.config['frame_shape']} "
                                f"differ from the {name} stimuli's {list(frames.shape[-2:])}")
            store.begin(arch, seed)
            writer.put("begin", arch, seed)
            with tqdm(total=len(frames), desc=f"{name} {arch}-s{seed}", unit="stim", disable=None) as bar:
                for first, stop, feats in batched_features(twin, frames, batch_size, device, chunk_frames, spaces):
                    writer.put("data", arch, seed, first, stop, feats)
                    bar.update(stop - first)
            writer.put("finish", arch, seed, shas[(arch, seed)], device)
            what = "extracted" if reason == "not extracted" else f"re-extracted ({reason})"
            lines[(arch, seed)] = (f"{name}: {arch}-s{seed} {what}: {len(frames)} stimuli on {device} "
                                   f"in {time.perf_counter() - started:.1f} s")
    finally:
        for stream in shown.values():  # a failed model: its draw's remaining chunks are not read
            stream.stop()
        reading.shutdown()
        writer.close()
    return lines


def extract(catalog: Catalog, root: str, recipe_name: str, archs: list[str] | None = None,
            seeds: list[int] | None = None, device: str | None = None, batch_size: int | None = None,
            rebuild: bool = False, client: Any = None, resources: dict[str, float] | None = None,
            log: Callable[[str], None] | None = None) -> list[str]:
    """Bring `<root>/<recipe>.zarr` up to date for the selected models; one summary line per model.

    With a distributed `client`, each model to extract is one task on the cluster (asking for `resources`, e.g.
    {"GPU": 1}), writing its own model's chunks of the one store side by side with the others; a failing model
    does not stop the others, and JobFailed names each failed one after the rest are done."""
    recipe = catalog.recipe(recipe_name)
    models = catalog.select(archs, seeds)
    shas = {m: checkpoint_sha(root, *m) for m in models}
    store = open_or_create(catalog, root, recipe, lambda: generate_stimuli(catalog, root, recipe), rebuild)
    problems = {model: model_problem(store, *model, shas[model]) for model in models}
    todo = [(model, problem) for model, problem in problems.items() if problem is not None]
    device, batch_size = device or catalog["extract"]["device"], batch_size or catalog["extract"]["batch_size"]
    done: dict[Model, str] = {}
    if todo and client is None:
        done = extract_models(store, root, todo, shas, zoo_sizes(catalog), resolve_device(device), batch_size)
    elif todo:
        tasks = {f"{recipe_name}/{a}-s{s}": (extract_task, (catalog, root, recipe_name, (a, s), why, shas[(a, s)],
                                                            device, batch_size)) for (a, s), why in todo}
        finished, failed = run_tasks(client, root, f"extract-{recipe_name}", tasks, resources, log or (lambda _: None))
        if failed:
            raise JobFailed(f"{recipe_name}: {len(failed)} of {len(models)} models failed: " + "; ".join(failed))
        done = {m: finished[f"{recipe_name}/{m[0]}-s{m[1]}"] for m, _ in todo}
    return [done.get((a, s), f"{recipe_name}: {a}-s{s} up to date") for a, s in models]


def extract_task(catalog: Catalog, root: str, recipe_name: str, model: Model, reason: str, sha: str, device: str,
                 batch_size: int) -> dict[str, Any]:
    """One model's extraction as a cluster task, into the published store: its line, and when and where it ran."""
    placed = where_running()
    store = ActivationStore(Layout(root).store(recipe_name))
    line = extract_models(store, root, [(model, reason)], {model: sha}, zoo_sizes(catalog), resolve_device(device),
                          batch_size)[model]
    return {"line": line, **placed, "end": time.time()}
