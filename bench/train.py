"""Training throughput per architecture: samples per second of one optimizer step, on this machine.

Baseline: independent 5-frame clips (run_length 1, the encoder sees 5 frames per sample).
Measured: runs of consecutive samples (the arch's train.run_length in the profile, after
train_overrides), each frame encoded once per run. Prints both and their ratio, per arch, at the profile's zoo sizes.

    .venv/bin/python bench/train.py [--profile demo] [--arch A ...] [--batch-size 64] [--steps 2]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from actstore.allocator import retain_freed_memory
from actstore.catalog import load_catalog
from actstore.data.session import Session, segment_lengths, split_labels
from actstore.models import build_twin
from actstore.train.dataset import epoch_batches, make_batch
from actstore.train.loop import train_step, optimizer_for

CONTEXT = 5


def random_session(frame_shape: tuple[int, int], neurons: int, bins: int = 4000) -> Session:
    """A session of uniform-noise frames and Poisson counts (throughput does not depend on content)."""
    rng = np.random.default_rng(0)
    train, test = segment_lengths(bins, 10, 0.7)
    block, part = split_labels(train, test, 0.2)
    return Session("bench", rng.random((bins, *frame_shape), dtype=np.float32),
                   rng.poisson(1.0, (bins, neurons)).astype(np.float32), 0.048, np.arange(neurons), block, part)


def samples_per_s(arch: str, session: Session, cfg: dict, enc: int, hid: int, run_length: int, steps: int) -> float:
    """Optimizer steps' throughput after one warm-up step."""
    torch.manual_seed(0)
    twin = build_twin(arch, session.frame_shape, {"bench": session.n_neurons}, enc, hid, seed=0).train()
    opt = optimizer_for(twin, cfg["optimizer"])
    batches = epoch_batches({"bench": session}, "optimize", cfg["batch_size"], run_length, CONTEXT,
                            np.random.default_rng(0), steps + 1)
    step_cfg = {**cfg, "run_length": run_length}
    elapsed, samples = 0.0, 0
    for k, (mouse, starts) in enumerate(batches):
        batch = make_batch(session, mouse, starts, run_length, CONTEXT, torch.device("cpu"))
        t0 = time.perf_counter()
        train_step(twin, batch, opt, step_cfg, CONTEXT)
        if k:
            elapsed += time.perf_counter() - t0
            samples += batch.counts.shape[0]
    return samples / elapsed


def main() -> None:
    retain_freed_memory()  # the allocator setting the command line runs with (actstore/allocator.py)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--arch", action="append", dest="archs")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=2)
    args = ap.parse_args()
    cat = load_catalog(profile=args.profile)
    zoo = cat["zoo"]
    shape = tuple(cat["data"]["synthetic"]["frame_shape"])
    session = random_session(shape, 68)
    print(f"profile {args.profile}: frames {shape}, encoder_dim {zoo['encoder_dim']}, hidden_dim {zoo['hidden_dim']}, "
          f"batch {args.batch_size}, torch threads {torch.get_num_threads()}")
    print(f"{'arch':<16} {'clips (run 1)':>14} {'runs':>12} {'ratio':>7}   samples/s")
    for arch in args.archs or zoo["archs"]:
        cfg = {**cat.train_config(arch), "batch_size": args.batch_size}
        run = cfg["run_length"]
        base = samples_per_s(arch, session, cfg, zoo["encoder_dim"], zoo["hidden_dim"], 1, args.steps)
        fast = samples_per_s(arch, session, cfg, zoo["encoder_dim"], zoo["hidden_dim"], run, args.steps)
        print(f"{arch:<16} {base:14.1f} {fast:12.1f} {fast / base:6.2f}x   (runs of {run})", flush=True)


if __name__ == "__main__":
    main()
