"""What an initialized, untrained encoder's layers tell a linear readout about the synthetic neurons.

Each arch is built and initialized from data exactly as training starts it (`init_encoder`, the profile's
recipe, seed 0). For every layer the catalog names (spaces.layers: early, middle, late) and the encoder output,
the whole map of the last frame of each sample (flattened; at most --dims of its values, a fixed random
subset) is regressed by ridge on the synthetic neurons' true rates at the next bin: fitted on the optimize
split, the strength chosen on the validate split, r per neuron on the test split, averaged over the first
session's neurons. Training starts from what the encoder output holds: where it holds next to nothing, the
readout fit keeps its biases, and the twin starts with nothing to improve on (bench/learning.py's epoch 0).

    .venv/bin/python bench/init_information.py [--profile demo] [--root stores] [--arch A ...] [--bins 6000]

Run `actstore data` for the profile first.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from actstore.allocator import retain_freed_memory
from actstore.catalog import load_catalog
from actstore.data import load_sessions
from actstore.features import captured_outputs
from actstore.models import build_twin
from actstore.train.loop import init_encoder
from actstore.train.metrics import prediction_r

STRENGTHS = (1.0, 10.0, 100.0, 1e3, 1e4)  # ridge, on standardized features


def mean_r(pred: np.ndarray, rates: np.ndarray) -> float:
    """Mean over neurons of the prediction's r with the true rate (`prediction_r`: 0 for a constant prediction)."""
    return float(np.nanmean(prediction_r(pred, rates)))


def readout_r(features: dict[str, np.ndarray], rates: dict[str, np.ndarray]) -> float:
    """Test r of the ridge readout whose strength does best on validate (features and rates per split)."""
    mu, sd = features["optimize"].mean(0), features["optimize"].std(0) + 1e-6
    x = {k: (v - mu) / sd for k, v in features.items()}
    gram, cross = x["optimize"].T @ x["optimize"], x["optimize"].T @ (rates["optimize"] - rates["optimize"].mean(0))
    best, test = -np.inf, np.nan
    for lam in STRENGTHS:
        w = np.linalg.solve(gram + lam * np.eye(len(gram)), cross)
        val = mean_r(x["validate"] @ w, rates["validate"])
        if val > best:
            best, test = val, mean_r(x["test"] @ w, rates["test"])
    return test


def main() -> None:
    retain_freed_memory()  # the allocator setting the command line runs with (actstore/allocator.py)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--root", default="stores")
    ap.add_argument("--arch", action="append", dest="archs")
    ap.add_argument("--bins", type=int, default=6000, help="optimize samples fitted (validate and test: a quarter)")
    ap.add_argument("--dims", type=int, default=2000, help="values of a layer's map kept (a fixed random subset)")
    args = ap.parse_args()
    cat = load_catalog(profile=args.profile)
    sessions = load_sessions(cat, args.root)
    context = int(cat["data"]["context_frames"])
    first = next(iter(sessions.values()))
    picks = {part: first.targets(part, context)[: args.bins if part == "optimize" else args.bins // 4]
             for part in ("optimize", "validate", "test")}
    rates = {part: first.truth["rates"][idx] for part, idx in picks.items()}
    print(f"profile {args.profile}, session {first.name} ({first.n_neurons} neurons), frames {first.frame_shape}; "
          f"samples optimize/validate/test {'/'.join(str(len(v)) for v in picks.values())}; test r of a ridge "
          f"readout of each layer's map (last frame) on the true rates, initialized untrained encoders")
    zoo, layers = cat["zoo"], cat["spaces"]["layers"]
    for arch in args.archs or zoo["archs"]:
        twin = build_twin(arch, first.frame_shape, {m: s.n_neurons for m, s in sessions.items()},
                          zoo["encoder_dim"], zoo["hidden_dim"], seed=0)
        init_encoder(twin, sessions, cat.train_config(arch), 0, context, torch.device("cpu"))
        paths = {name: paths[arch] for name, paths in layers.items() if arch in paths}
        maps: dict[str, dict[str, np.ndarray]] = {name: {} for name in [*paths, "encoder"]}
        twin.eval()
        with torch.inference_mode(), captured_outputs(twin, list(paths.values())) as out:
            for part, idx in picks.items():
                frames = torch.from_numpy(first.frames[idx - 1]).unsqueeze(1)  # each sample's last frame
                maps["encoder"][part] = twin.encoder(frames).numpy()
                for name, path in paths.items():
                    maps[name][part] = out[path].reshape(len(idx), -1).numpy()
        rng = np.random.default_rng(0)
        cells = []
        for name, per_part in maps.items():
            width = per_part["optimize"].shape[1]
            keep = np.sort(rng.choice(width, args.dims, replace=False)) if width > args.dims else slice(None)
            shape = "x".join(map(str, out[paths[name]].shape[1:])) if name in paths else str(width)
            cells.append(f"{name} ({shape}) {readout_r({k: v[:, keep] for k, v in per_part.items()}, rates):.3f}")
        print(f"{arch:<16}" + "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
