"""`actstore analyze probes`: the three linear probes of design 6.3 for every complete model -> analysis/probes.zarr.

Features: orientation = the encoder output of the single frame (and, at the largest train size, every layer
space: `orientation_<test>_by_space` along the hierarchy); contrast = the GRU final state; RDK = the last chunk's
GRU final state. Standardization (train-split statistics) per task is set by
catalog analysis.probes.standardize (paper: RDK only). Each task is one batched solve over models x L2 per
stimulus draw: where the store's stimuli are drawn per model seed, each seed's models are probed on their own
draw (the study's A.3). Test level grids come from the recipe (store attrs), never from the data.

Every accuracy-type result `<name>` comes with `<name>_se`, its binomial standard error over the test
trials, and `<name>_n`, the test trials it rests on (balanced accuracy: `contrast_bacc_n_target` and
`contrast_bacc_n_blank`); the functions and their assumptions are in actstore.analysis.scores.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from actstore.analysis import scores as sc
from actstore.assays.base import Assay, Sources
from actstore.assays.inputs import model_grid, per_draw, stack_models
from actstore.errors import UserError
from actstore.store.ledger import complete_models

VERSION = "probes/5"  # 5: the orientation probe on every layer space too
TASKS = {"orientation": "orientation_task", "contrast": "contrast_task", "rdk": "rdk_task"}


def _split(ds: xr.Dataset) -> np.ndarray:
    return np.array([str(v) for v in ds["split"].values])


def _features(ds: xr.Dataset, models: list[tuple[str, int]], space: str) -> np.ndarray:
    """(M, trials, F) features of the models: the last chunk of the GRU state or the last frame of the encoder or
    a layer. A layer's padding beyond an arch's own width is NaN in the store and 0 here: a constant-zero feature
    gets zero weight under L2, so the probe is the one on the arch's own units."""
    var = ds[space]
    for dim in ("chunk", "frame"):
        if dim in var.dims:
            var = var.isel({dim: -1})
    x = stack_models(var, models).transpose("model", "trial", ...).values.astype(np.float64)
    return np.nan_to_num(x, nan=0.0) if f"{space}_width" in ds.coords else x


def _sets(x: np.ndarray, ds: xr.Dataset, names: tuple[str, ...], standardize: bool) -> list[np.ndarray]:
    """Feature sets for the named splits (first = the train split), standardized with train statistics if asked."""
    split = _split(ds)
    sets = [x[:, split == n] for n in names]
    return sc.standardized(*sets) if standardize else sets


def _with_error(name: str, value: np.ndarray, se: np.ndarray, n: np.ndarray | int) -> dict[str, np.ndarray]:
    """`name`, its standard error `name_se` and the test trials it rests on `name_n`, all of value's shape."""
    return {name: value, f"{name}_se": se, f"{name}_n": np.broadcast_to(n, np.shape(value)).astype(np.float64)}


def orientation(ds: xr.Dataset, models: list[tuple[str, int]], cfg: dict, seed: int) -> dict[str, np.ndarray]:
    """Sample-efficiency sweep: per train size the chosen L2 and ID/OOD accuracy; AUCs over log2 size.
    Every size is scored on the same test trials, so the AUCs' SEs keep the sizes' covariance (paired_auc_se)."""
    from actstore.analysis.probes import (
        fit_selected,  # torch: loaded only when probes are fitted
    )

    x = _features(ds, models, "encoder")
    split, label = _split(ds), np.asarray(ds["label"].values).astype(int)
    k = int(label.max()) + 1
    y = {n: label[split == n] for n in ("train", "val", "test_id", "test_ood")}
    sizes = sc.feasible_sizes(y["train"], cfg["orientation_train_sizes"], k)
    if not sizes:
        raise ValueError(f"orientation_task: train split too small for any of {cfg['orientation_train_sizes']}")
    train, val, test_id, test_ood = (x[:, split == n] for n in ("train", "val", "test_id", "test_ood"))
    correct: dict[str, list[np.ndarray]] = {"id": [], "ood": []}
    l2 = []
    subsets = sc.balanced_subsets(y["train"], sizes, k, seed)
    for idx in subsets:
        sets = [train[:, idx], val, test_id, test_ood]
        if cfg["standardize"]["orientation"]:
            sets = sc.standardized(*sets)
        probes, chosen = fit_selected(sets[0], y["train"][idx], sets[1], y["val"], k, cfg["l2_grid"],
                                         cfg["max_iter"], cfg["tolerance"])
        for test, features in (("id", sets[2]), ("ood", sets[3])):
            correct[test].append(probes.predict(features)[:, 0] == y[f"test_{test}"])
        l2.append(chosen)
    by_space = {"id": [correct["id"][-1]], "ood": [correct["ood"][-1]]}  # the encoder at the largest size
    layers = [name for name in ds.attrs["spaces"] if f"{name}_width" in ds.coords]
    for space in layers:  # the same largest balanced subset, L2 chosen on val per space
        f = _features(ds, models, space)
        sets = [f[:, split == "train"][:, subsets[-1]], *(f[:, split == n] for n in ("val", "test_id", "test_ood"))]
        if cfg["standardize"]["orientation"]:
            sets = sc.standardized(*sets)
        probes, _ = fit_selected(sets[0], y["train"][subsets[-1]], sets[1], y["val"], k, cfg["l2_grid"],
                                 cfg["max_iter"], cfg["tolerance"])
        for test, features in (("id", sets[2]), ("ood", sets[3])):
            by_space[test].append(probes.predict(features)[:, 0] == y[f"test_{test}"])
    out = {"train_size": np.array(sizes), "chance": 1.0 / k, "orientation_l2": np.stack(l2, 1),
           "space": np.array(["encoder", *layers], dtype=object)}
    for test, hits in by_space.items():
        acc = np.stack(hits, 1).mean(-1)  # (M, spaces)
        out.update(_with_error(f"orientation_{test}_by_space", acc, sc.binomial_se(acc, len(y[f"test_{test}"])),
                               len(y[f"test_{test}"])))
    log_sizes = np.log2(sizes)
    for test in ("id", "ood"):
        hits = np.stack(correct[test], 1)  # (M, sizes, test trials): each trial correct or not
        acc, n = hits.mean(-1), hits.shape[-1]
        se = sc.binomial_se(acc, n)
        if len(sizes) > 1:
            auc, auc_se = sc.normalized_auc(acc, log_sizes), sc.paired_auc_se(hits, log_sizes)
        else:
            auc = auc_se = np.full(len(models), np.nan)
        out.update(_with_error(f"orientation_acc_{test}", acc, se, n))
        out.update(_with_error(f"orientation_{test}", acc[:, -1], se[:, -1], n))
        out.update(_with_error(f"orientation_auc_{test}", auc, auc_se, n))
        out.update(_with_error(f"orientation_auc_adj_{test}", sc.chance_adjusted(auc, 1.0 / k),
                               auc_se / (1.0 - 1.0 / k), n))
    return out


def _binary(ds: xr.Dataset, models: list[tuple[str, int]], cfg: dict, task: str) -> tuple[np.ndarray, np.ndarray]:
    """Fit the binary probe on the GRU features (L2 chosen on val); test-split predictions (M, n_test), chosen L2."""
    from actstore.analysis.probes import (
        fit_selected,  # torch: loaded only when probes are fitted
    )

    x = _features(ds, models, "gru")
    split, label = _split(ds), np.asarray(ds["label"].values).astype(int)
    train, val, test = _sets(x, ds, ("train", "val", "test"), cfg["standardize"][task])
    probes, chosen = fit_selected(train, label[split == "train"], val, label[split == "val"], 2,
                                     cfg["l2_grid"], cfg["max_iter"], cfg["tolerance"])
    return probes.predict(test)[:, 0], chosen


LEVELS = {"contrast": ("contrast", "test_contrasts"), "rdk": ("coherence", "test_coherences")}


def level_grid(ds: xr.Dataset, task: str, label: np.ndarray, level: np.ndarray) -> np.ndarray:
    """The recipe's test levels (store attrs), checked against the test trials: a level without trials (targets,
    for contrast) or a trial at a level outside the grid is an error naming the store and the level."""
    name, attr = LEVELS[task]
    grid = np.asarray(ds.attrs[attr], dtype=np.float64)
    scored = level[label == 1] if task == "contrast" else level  # contrast: blanks are no level's trials
    counts = sc.level_counts(scored, grid)
    where = f"{TASKS[task]}.zarr"
    if (counts == 0).any():
        raise UserError(f"{where}: no test trials at {name} {grid[counts == 0].tolist()}, which the recipe's "
                        f"{attr} lists; rerun `actstore extract --recipe {TASKS[task]} --rebuild`")
    stray = ~np.isclose(scored[:, None], grid[None]).any(1)
    if stray.any():
        raise UserError(f"{where}: {int(stray.sum())} test trial(s) at {name} {sorted(set(scored[stray].tolist()))}, "
                        f"outside the recipe's {attr} {grid.tolist()}")
    return grid


def _test_levels(ds: xr.Dataset, models: list[tuple[str, int]], cfg: dict,
                 task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A binary task's test predictions, chosen L2, test labels, each test trial's level and the level grid."""
    pred, chosen = _binary(ds, models, cfg, task)
    test = _split(ds) == "test"
    label, level = np.asarray(ds["label"].values).astype(int)[test], ds[LEVELS[task][0]].values[test]
    return pred, chosen, label, level, level_grid(ds, task, label, level)


def contrast(ds: xr.Dataset, models: list[tuple[str, int]], cfg: dict) -> dict[str, np.ndarray]:
    """Balanced accuracy per test contrast and its area over the grid index, normalized to [0, 1]; the AUC's
    SE counts the blanks once, as every level shares them (balanced_auc_se)."""
    pred, chosen, label, level, grid = _test_levels(ds, models, cfg, "contrast")
    bacc = sc.balanced_accuracy_by_level(pred, label, level, grid)
    hit, rejection, n_target, n_blank = sc.detection_rates(pred, label, level, grid)
    auc_se = sc.balanced_auc_se(hit, n_target, rejection, n_blank, np.arange(len(grid)))
    return {"contrast": grid, "contrast_bacc": bacc,
            "contrast_bacc_se": sc.balanced_accuracy_se(hit, n_target, rejection[:, None], n_blank),
            "contrast_bacc_n_target": np.broadcast_to(n_target, bacc.shape).astype(np.float64),
            "contrast_bacc_n_blank": np.full(bacc.shape, float(n_blank)), "contrast_l2": chosen,
            **_with_error("contrast_auc", sc.normalized_auc(bacc, np.arange(len(grid))), auc_se, len(label))}


def rdk(ds: xr.Dataset, models: list[tuple[str, int]], cfg: dict) -> dict[str, np.ndarray]:
    """Accuracy per test coherence and its area over coherence, normalized by the coherence range; the
    levels are disjoint trials, so the AUC's SE propagates theirs through the trapezoid weights."""
    pred, chosen, label, level, grid = _test_levels(ds, models, cfg, "rdk")
    acc = sc.accuracy_by_level(pred, label, level, grid)
    n = sc.level_counts(level, grid)
    se = sc.binomial_se(acc, n)
    return {"coherence": grid, **_with_error("rdk_acc", acc, se, n), "rdk_l2": chosen,
            **_with_error("rdk_auc", sc.normalized_auc(acc, grid), sc.trapezoid_se(se, grid), len(label))}


LEVEL_DIMS = ("train_size", "contrast", "coherence", "space")


def merged(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One task's results of several stimulus draws as one: per-model arrays concatenated along models (in the
    parts' order), level grids and chance shared (they come from the recipe, so every draw has the same)."""
    out = {}
    for name in parts[0]:
        values = [p[name] for p in parts]
        if name in LEVEL_DIMS or name == "chance":
            if any(not np.array_equal(v, values[0]) for v in values[1:]):
                raise ValueError(f"probes: {name} differs between stimulus draws: {values}")
            out[name] = values[0]
        else:
            out[name] = np.concatenate([np.atleast_1d(v) for v in values])
    return out


def _dataset(results: dict[str, dict], models: dict[str, list], archs: list[str], seeds: list[int]) -> xr.Dataset:
    """All task results on the dense (arch, seed[, level]) grid; models without results are NaN."""
    data, coords = {}, {"arch": archs, "seed": seeds}
    for task, res in results.items():
        level = next((d for d in LEVEL_DIMS if d in res), None)
        coords.update({d: res[d] for d in LEVEL_DIMS if d in res})
        for name, values in res.items():
            if name in LEVEL_DIMS or name == "chance":
                continue
            last = "space" if "_by_space" in name else level
            dims = ("arch", "seed") if np.ndim(values) == 1 else ("arch", "seed", last)
            data[name] = (dims, model_grid(values, models[task], archs, seeds))
    ds = xr.Dataset(data, coords=coords)
    ds.attrs = {"l2_convention": "mean loss + l2/2 |W|^2; sklearn C = 1/(l2 n)",
                "contrast_auc": "trapezoid over the contrast grid index / (G - 1)",
                "rdk_auc": "trapezoid over coherence / coherence range",
                "orientation_auc": "trapezoid over log2 train size / log2 range; adj = (auc - chance) / (1 - chance)",
                "se": "<name>_se: binomial SE over the test trials (plug-in, 0 at 0 or 1); <name>_n: test trials"}
    if "orientation" in results:
        ds.attrs["orientation_chance"] = results["orientation"]["chance"]
    return ds


class LinearProbes(Assay):
    """Orientation, contrast and motion decodability of every complete model, on every task store present."""

    name = "probes"
    version = VERSION
    summary = "linear decodability: orientation (sample efficiency, every layer), contrast detection, RDK motion"
    position = 30
    stores = tuple(TASKS.values())
    columns = {"probes": ("orientation_ood", "contrast_auc", "rdk_auc")}
    errors = {"orientation_ood": True, "contrast_auc": True, "rdk_auc": True}  # each seed draws its own test trials
    pairs = (("prediction", "probes"),)

    def compute(self, sources: Sources) -> tuple[xr.Dataset, list[str]]:
        cfg, zoo = self.params, sources.zoo
        results, done, lines = {}, {}, []
        for task, store in TASKS.items():
            ledger = sources.ledgers[store]
            models = complete_models(ledger, zoo.models) if ledger is not None else []
            if not models:
                lines.append(f"probes: {task}: no complete models in {store}.zarr; skipped")
                continue
            ds = sources.stores[store]
            draws = per_draw(ds, models, zoo.run_seed)  # each seed's models on its own stimulus draw
            done[task] = [m for _, group, _ in draws for m in group]
            results[task] = merged([orientation(view, group, cfg, seed) if task == "orientation"
                                    else contrast(view, group, cfg) if task == "contrast" else rdk(view, group, cfg)
                                    for view, group, seed in draws])
            key = {"orientation": "orientation_ood", "contrast": "contrast_auc", "rdk": "rdk_auc"}[task]
            note = ""
            if task == "orientation":
                sizes = results[task]["train_size"]
                skipped = [s for s in cfg["orientation_train_sizes"] if s not in sizes]
                note = f" at n={sizes[-1]}" + (f" (sizes {skipped} skipped: pool too small)" if skipped else "")
            lines.append(f"probes: {task}: {len(models)} models, {key} mean {np.mean(results[task][key]):.3f}{note}")
        return _dataset(results, done, zoo.archs, zoo.seeds), lines

    def report(self, found, sections, figures) -> None:
        from actstore.report import sections as rs

        rs.probes(found, sections, figures)
