"""Learning curves per architecture: fraction of the noise ceiling reached against samples seen and wall time.

Each arch is trained by the real training loop (`train_model`, the profile's settings after
train_overrides, optional --set overrides for all archs) into a scratch folder on the prepared
synthetic data of the root. After every epoch the validation r is divided by the validation
noise ceiling (the true rates' r with the counts on the same samples), both r inside the test's
chunks (evaluation.chunk_samples, design 6.1; shorter where a validation stretch is), so the curve
ends where the test column starts; at the end the best
checkpoint's test fraction of the ceiling (chunked r, design 6.1) is printed per mouse, with samples
seen and the wall time (validation and the final test scoring included). The training and validation
losses per epoch beside the curve say whether an arch that stays low underfits (its training loss does
not fall) or overfits (its training loss falls while validation does not); beside them stands the loss of
predicting each neuron's mean count at every bin, where a twin whose features tell its readout nothing stays.
The table's `val gain` is the best checkpoint's validation loss minus that mean-rate loss (0: nothing learned).

    .venv/bin/python bench/learning.py [--profile demo] [--root stores] [--arch A ...] [--set key=value ...]

`--set optimizer.encoder.lr=3e-3` or `--set run_length=4` changes a train key (YAML value) for every arch.
Run `actstore data` for the profile first.
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import numpy as np
import torch
import yaml

from actstore.allocator import retain_freed_memory
from actstore.catalog import load_catalog
from actstore.data import data_fingerprint, load_sessions
from actstore.train.evaluate import chunk_pieces, poisson_loss, validation_targets
from actstore.train.loop import train_model
from actstore.train.zoo import spec_for
from actstore.train.metrics import pieces_neuron_r


def with_setting(cfg: dict, assignment: str) -> dict:
    """A copy of `cfg` with one dotted key set to a YAML value ('a.b=1e-3')."""
    key, _, text = assignment.partition("=")
    out = yaml.safe_load(yaml.safe_dump(cfg))
    node, *path = out, *key.split(".")
    for part in path[:-1]:
        node = node[part]
    if path[-1] not in node:
        raise SystemExit(f"--set {key}: no such train key; valid: {', '.join(node)}")
    value = yaml.safe_load(text)
    try:  # YAML 1.1 reads 3e-3 as a string
        value = float(value) if isinstance(value, str) else value
    except ValueError:
        pass
    node[path[-1]] = value
    return out


def validation_ceiling(sessions: dict, cfg: dict, context: int, chunk: int) -> float:
    """Mean over all neurons of the true rates' r with the counts on the validation samples training scores,
    inside the same pieces as its validation r."""
    rs = []
    for mouse, idx in validation_targets(sessions, context, chunk, cfg["max_val_samples"]).items():
        s = sessions[mouse]
        rs.append(pieces_neuron_r(s.truth["rates"][idx], s.counts[idx], chunk_pieces(idx, chunk)))
    r = np.concatenate(rs)
    return float(np.mean(r[np.isfinite(r)]))


def mean_rate_losses(sessions: dict, cfg: dict, context: int, chunk: int) -> tuple[float, float]:
    """Poisson loss (training samples, validation samples; mean over mice) of predicting every bin by each neuron's
    mean count over its mouse's training samples: a twin that stays there learned nothing its readout biases alone
    do not fit (features that tell the readout nothing about the neurons)."""
    train, val = [], []
    for mouse, idx in validation_targets(sessions, context, chunk, cfg["max_val_samples"]).items():
        s = sessions[mouse]
        fit = s.targets("optimize", context)
        mean = s.counts[fit].mean(0, keepdims=True)
        for targets, out in ((fit, train), (idx, val)):
            counts = s.counts[targets].astype(np.float64)
            out.append(poisson_loss(np.broadcast_to(mean, counts.shape), counts))
    return float(np.mean(train)), float(np.mean(val))


def main() -> None:
    retain_freed_memory()  # the allocator setting the command line runs with (actstore/allocator.py)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--root", default="stores")
    ap.add_argument("--arch", action="append", dest="archs")
    ap.add_argument("--set", action="append", default=[], dest="settings")
    args = ap.parse_args()
    cat = load_catalog(profile=args.profile)
    sessions = load_sessions(cat, args.root)
    fingerprint = data_fingerprint(cat, args.root)
    context, chunk = cat["data"]["context_frames"], cat["evaluation"]["chunk_samples"]
    print(f"profile {args.profile}, frames {next(iter(sessions.values())).frame_shape}, "
          f"torch threads {torch.get_num_threads()}, settings {args.settings or 'as in the catalog'}")
    rows = []
    for arch in args.archs or cat["zoo"]["archs"]:
        spec = spec_for(cat, arch, 0, fingerprint)
        for assignment in args.settings:
            spec = dataclasses.replace(spec, train=with_setting(spec.train, assignment))
        cfg = spec.train
        ceiling = validation_ceiling(sessions, cfg, context, chunk)
        mean_train, mean_val = mean_rate_losses(sessions, cfg, context, chunk)
        per_epoch = cfg["batch_size"] * cfg["max_batches_per_epoch"]
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            result = train_model(spec, sessions, folder, torch.device("cpu"), progress=False)
        wall = time.perf_counter() - t0
        curve = " ".join(f"{h['val_r'] / ceiling:.2f}" for h in result["history"])
        test = {m: s["ceiling_fraction"] for m, s in result["neural"].items()}
        print(f"{arch}: val fraction of ceiling after the init (epoch 0), then per epoch of {per_epoch} samples: "
              f"{curve}")
        losses = " ".join(f"{h['train_loss']:.4f}/{h['val_loss']:.4f}" if h["train_loss"] is not None
                          else f"-/{h['val_loss']:.4f}" for h in result["history"])
        print(f"{arch}: Poisson loss per epoch, train (mean over its batches) / val: {losses}; each neuron's mean "
              f"count predicted at every bin: {mean_train:.4f}/{mean_val:.4f}", flush=True)
        rows.append((arch, result["epochs"], result["best_epoch"], result["epochs"] * per_epoch, wall,
                     result["best_val_loss"] - mean_val, np.mean(list(test.values())), test))
    print(f"\n{'arch':<16} {'epochs':>6} {'best':>5} {'samples':>8} {'wall s':>7} {'samples/s':>9} {'val gain':>9}"
          f" {'test frac':>9}   per mouse")
    for arch, epochs, best, samples, wall, gain, mean, test in rows:
        mice = " ".join(f"{v:.2f}" for v in test.values())
        print(f"{arch:<16} {epochs:6d} {best:5d} {samples:8d} {wall:7.0f} {samples / wall:9.1f} {gain:9.4f} "
              f"{mean:9.2f}   {mice}")


if __name__ == "__main__":
    main()
