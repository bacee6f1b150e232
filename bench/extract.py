"""Extraction overhead: wall time of extracting a model into its store over loading the same model
and running its bare forward passes on the same stimuli (no hooks, no writing), and bytes on disk per model
and feature space.

    .venv/bin/python bench/extract.py [--profile demo] [--recipe tuning_grid] [--arch xu_cnn ...] [--repeats 5]

Extraction includes what `actstore extract` does per model besides the forward passes: the forward hooks
that capture the layer spaces (catalog spaces.layers, for the recipes in spaces.recipes) and their reduction,
reading and checking the stimulus frames, the writer thread's buffer copies, NaN padding and checksums, the
chunk writers' compression and region writes, the ledger entry. Both sides load the checkpoint. The last
row extracts every arch in one call, as `actstore extract` runs a zoo (the frames read once per seed, each
model's writes overlapping the next model's forward passes), against the sum of the bare runs.

Targets, on CPU for every arch, minimum over repeats: wall ratio <= 1.10 with layer spaces (issue 12) and
<= 1.05 (issue 15: compression and writes overlap the forward passes and never stall them; where the forward
pass saturates the CPU, the writers compress at a level that keeps up). The CPU ratio (process CPU time, all
threads) shows the same overhead undisturbed by other load on a shared machine. B/value is the bytes on disk
per stored value of the model (NaN padding of narrower layers included; 4 uncompressed), the price of the
compression level (store/zarrstore.py FEATURE_COMPRESSORS, printed in the header). Untrained checkpoints:
timing does not depend on the weights.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

from actstore.allocator import retain_freed_memory
from actstore.catalog import Catalog, deep_merge, load_catalog
from actstore.extract import extract_models, generate_stimuli, open_or_create, zoo_sizes
from actstore.store.paths import Layout
from actstore.features import batched_features, resolve_device
from actstore.models import build_twin, load_checkpoint, save_checkpoint
from actstore.store.root import filesystem


def timed(fn) -> tuple[float, float]:
    """(wall s, CPU s of this process, all threads) of one call: CPU time is robust to a busy machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def codecs(store) -> str:
    """The compressors of the store's feature chunks, e.g. zstd(level=1, checksum=False)."""
    parts = []
    for codec in store.array("encoder").compressors:
        spec = codec.to_dict()
        parts.append(f"{spec['name']}({', '.join(f'{k}={v}' for k, v in spec.get('configuration', {}).items())})")
    return " + ".join(parts) or "none"


def bare_forward(folder: str, frames, batch_size: int, device: str) -> None:
    """Load the checkpoint (as extraction does) and run the twin's own features() over every batch, discarding them."""
    twin, _ = load_checkpoint(folder)
    twin.eval().to(device)
    with torch.inference_mode():
        for first in range(0, len(frames), batch_size):
            twin.features(torch.from_numpy(frames[first:first + batch_size]).to(device).unsqueeze(2))


def main() -> None:
    retain_freed_memory()  # the allocator setting the command line runs with (actstore/allocator.py)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--arch", action="append", default=None)
    parser.add_argument("--recipe", default="tuning_grid", help="the stimulus set (any catalog recipe)")
    parser.add_argument("--repeats", type=int, default=5, help="bare and extract runs, interleaved; minimum taken")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    archs = args.arch or ["xu_cnn", "alexnet", "resnet18"]
    base = load_catalog(profile=args.profile)
    catalog = Catalog(base.path, base.profile, deep_merge(base.cfg, {"zoo": {"archs": archs, "seeds": [0]}}))
    device = resolve_device(args.device)
    batch_size = catalog["extract"]["batch_size"]
    sizes = zoo_sizes(catalog)
    with tempfile.TemporaryDirectory() as root:
        recipe = catalog.recipe(args.recipe)
        shape = tuple(recipe["frame_shape"])  # the twins see frames of the size they are probed at
        shas = {(a, 0): save_checkpoint(build_twin(a, shape, **sizes, seed=0), Layout(root).model(a, 0))
                for a in archs}
        started = time.perf_counter()
        store = open_or_create(catalog, root, recipe, lambda: generate_stimuli(catalog, root, recipe), rebuild=False)
        frames = store.frames(0)
        print(f"{args.recipe} ({args.profile}): {len(frames)} stimuli of {frames.shape[1]} frames, encoder_dim {sizes['encoder_dim']}, "
              f"hidden_dim {sizes['hidden_dim']}, batch {batch_size}, {device}, torch threads "
              f"{torch.get_num_threads()}; store created in {time.perf_counter() - started:.1f} s; feature chunks "
              f"{codecs(store)}")
        print(f"{'arch':<16}{'bare s':>8}{'extract s':>11}{'wall ratio':>12}{'CPU ratio':>11}{'B/value':>9}"
              + "".join(f"{space + ' MB':>12}" for space in store.spaces))
        fs, path = filesystem(store.url)
        bare_total = 0.0
        for arch in archs:
            twin, _ = load_checkpoint(Layout(root).model(arch, 0))
            list(batched_features(twin, frames[:batch_size], batch_size, device, 5))  # warm-up
            bare, full = [], []
            for _ in range(args.repeats):
                bare.append(timed(lambda: bare_forward(Layout(root).model(arch, 0), frames, batch_size, device)))
                full.append(timed(lambda: extract_models(store, root, [((arch, 0), "bench")], shas, sizes,
                                                         device, batch_size)))
            (bw, bc), (fw, fc) = [tuple(min(x) for x in zip(*t)) for t in (bare, full)]
            bare_total += bw
            i = store.archs.index(arch)
            stored = {space: fs.du(f"{path}/{space}/c/{i}", total=True) for space in store.spaces}
            values = sum(store.group[space][i, 0].size for space in store.spaces)  # padding included
            print(f"{arch:<16}{bw:>8.2f}{fw:>11.2f}{fw / bw:>12.3f}{fc / bc:>11.3f}"
                  f"{sum(stored.values()) / values:>9.2f}" + "".join(f"{b / 2**20:>12.2f}" for b in stored.values()))
        if len(archs) > 1:  # as `actstore extract` runs a zoo: one call, the frames read once per seed
            todo = [((arch, 0), "bench") for arch in archs]
            zoo = min(timed(lambda: extract_models(store, root, todo, shas, sizes, device, batch_size))[0]
                      for _ in range(args.repeats))
            print(f"{'all, one call':<16}{bare_total:>8.2f}{zoo:>11.2f}{zoo / bare_total:>12.3f}")


if __name__ == "__main__":
    main()
