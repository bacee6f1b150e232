"""Load and validate the study catalog (catalog.yaml) and its stimulus recipes.

The catalog declares the whole study as data; a profile deep-merges overrides over it.
Every validation error names the file, the dotted key, the bad value and what is valid.
Recipes are resolved here (file + catalog overrides) and hashed canonically, so a
store can tell by content whether it was written by the same recipe.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from actstore import ARCHS
from actstore.errors import UserError
from actstore.features import REDUCE_RULES

DATA_SOURCES = ("synthetic", "xu2023", "parker2022")
FRAME_SCALINGS = ("release", "per_segment", "per_session")
DEVICES = ("auto", "cpu", "cuda")

# ----------------------------------------------------------------------------- schema
# A schema node is either a dict of {key: node} (a mapping with exactly these keys) or a
# checker callable(value, where) -> None that raises UserError naming `where`.

Checker = Callable[[Any, str], None]


def _fail(where: str, value: Any, valid: str) -> None:
    raise UserError(f"{where}: invalid value {value!r}; expected {valid}")


def _int(lo: int | None = None) -> Checker:
    def check(v: Any, where: str) -> None:
        if isinstance(v, bool) or not isinstance(v, int) or (lo is not None and v < lo):
            _fail(where, v, f"an integer >= {lo}" if lo is not None else "an integer")
    return check


def _float(lo: float | None = None, hi: float | None = None) -> Checker:
    def check(v: Any, where: str) -> None:
        ok = not isinstance(v, bool) and isinstance(v, (int, float))
        ok = ok and (lo is None or v >= lo) and (hi is None or v <= hi)
        if not ok:
            _fail(where, v, f"a number in [{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]")
    return check


def _str(choices: tuple[str, ...] | None = None) -> Checker:
    def check(v: Any, where: str) -> None:
        if not isinstance(v, str) or not v or (choices is not None and v not in choices):
            _fail(where, v, f"one of {', '.join(choices)}" if choices else "a non-empty string")
    return check


def _list(item: Checker, min_len: int = 1, length: int | None = None, unique: bool = False) -> Checker:
    def check(v: Any, where: str) -> None:
        if not isinstance(v, list) or len(v) < min_len or (length is not None and len(v) != length):
            n = f"exactly {length}" if length is not None else f"at least {min_len}"
            _fail(where, v, f"a list of {n} items")
        for i, x in enumerate(v):
            item(x, f"{where}[{i}]")
        if unique and len({json.dumps(x) for x in v}) != len(v):
            _fail(where, v, "a list without repeats")
    return check


def _mapping(key: Checker, value: Checker, min_len: int = 0) -> Checker:
    def check(v: Any, where: str) -> None:
        if not isinstance(v, dict) or len(v) < min_len:
            _fail(where, v, f"a mapping with at least {min_len} entries")
        for k, x in v.items():
            key(str(k), f"{where} key")
            value(x, _at(where, k))
    return check


def _bool(v: Any, where: str) -> None:
    if not isinstance(v, bool):
        _fail(where, v, "true or false")


def _any_mapping(v: Any, where: str) -> None:
    if not isinstance(v, dict):
        _fail(where, v, "a mapping")


def _range(lo: float | None = None, hi: float | None = None) -> Checker:
    """[low, high] with both inside [lo, hi] and low <= high."""
    pair = _list(_float(lo, hi), length=2)

    def check(v: Any, where: str) -> None:
        pair(v, where)
        if v[0] > v[1]:
            _fail(where, v, "[low, high] with low <= high")
    return check


def _ou(v: Any, where: str) -> None:
    """[sd, tau_s] of an Ornstein-Uhlenbeck process: sd >= 0, tau_s > 0."""
    _list(_float(0.0), length=2)(v, where)
    if v[1] <= 0:
        _fail(where, v, "[sd >= 0, tau_s > 0]")


_OPT = {"lr": _float(0.0), "weight_decay": _float(0.0)}

TRAIN: dict[str, Any] = {
    "device": _str(DEVICES),
    "batch_size": _int(1),
    "max_epochs": _int(1),
    "max_batches_per_epoch": _int(0),
    "run_length": _int(1),
    "max_val_samples": _int(0),
    "init_frames": _int(0),
    "init_readout_samples": _int(0),
    "dropout": _bool,
    "early_stop_patience": _int(1),
    "grad_clip": _float(0.0),
    "l1": _float(0.0),
    "optimizer": {"encoder": dict(_OPT), "gru": dict(_OPT), "readout": dict(_OPT)},
    "plateau": {"factor": _float(0.0, 1.0), "patience": _int(0), "min_lr": _float(0.0)},
}


def _train_override(v: Any, where: str) -> None:
    """One arch's entry of train_overrides: any subset of the train keys."""
    _check_override(TRAIN, v, where)


BYO_ENTRY = {  # a bring-your-own twin (actstore/models/external.py)
    "builder": _str(),                 # "package.module:function", returns the twin (an nn.Module)
    "checkpoint": _str(),              # its state_dict file, "{seed}" replaced by the seed; relative to the root
    "seeds": _list(_int(0), unique=True),
    "frame_shape": _list(_int(1), length=2),
    "encoder": _str(),                 # module path: applied to every frame, (N, 1, H, W) -> (N, D)
    "gru": _str(),                     # module path: a batch-first torch.nn.GRU over the encoded frames
    "layers": _mapping(_str(), _str()),  # layer space name (catalog spaces.layers) -> module path
}

SCHEMA: dict[str, Any] = {
    "name": _str(),
    "default_profile": _str(),
    "run_seed": _int(0),
    "stimulus_draws": _str(("per_seed", "global")),
    "data": {
        "source": _str(DATA_SOURCES),
        "path": _str(),
        "sessions": _list(_str(), unique=True),
        "reference_session": _str(),
        "segments": _int(1),
        "train_fraction": _float(0.05, 0.95),
        "validation_fraction": _float(0.0, 0.9),
        "context_frames": _int(1),
        "frame_scaling": _str(FRAME_SCALINGS),
        "synthetic": {
            "seed": _int(0),
            "minutes": _float(0.1),
            "frame_shape": _list(_int(8), length=2),
            "bin_ms": _float(1.0),
            "neurons": _mapping(_str(), _int(1), min_len=1),
            "cells": {
                "complex_fraction": _float(0.0, 1.0),
                "sf_cpp": _range(0.001, 0.5),
                "envelope_cycles": _range(0.05),
                "aspect": _range(0.1),
                "rf_margin_sigmas": _float(0.0),
                "c50": _range(0.001, 1.0),
                "nr_exponent": _range(0.1),
                "spontaneous_hz": _range(0.0),
                "mean_rate_hz": _range(0.01),
                "kernel_bins": _int(1),
                "kernel_peak_bins": _range(0.0),
                "kernel_width_bins": _range(0.01),
            },
            "movie": {
                "world_px": _list(_int(16), length=2),
                "spectrum_slope": _float(0.0, 3.0),
                "rms_contrast": _float(0.0, 1.0),
                "deg_per_px": _float(0.01),
                "yaw_velocity": _ou,
                "turn_rate_hz": _float(0.0),
                "turn_deg": _range(0.0),
                "turn_bins": _int(1),
                "pitch": _ou,
                "roll": _ou,
                "eye": _ou,
                "speed": _ou,
                "speed_mean_cm_s": _float(0.0),
                "walk_px_per_cm": _float(0.0),
                "zoom": _ou,
                "luminance": _ou,
                "pupil_px": _float(0.0),
                "pupil": _ou,
            },
        },
    },
    "zoo": {
        "archs": _list(_str(ARCHS), unique=True),
        "seeds": _list(_int(0), unique=True),
        "encoder_dim": _int(1),
        "hidden_dim": _int(1),
    },
    "byo": _mapping(_str(), lambda v, where: _check(BYO_ENTRY, v, where)),
    "spaces": {
        "reduce": _str(REDUCE_RULES),
        "recipes": _list(_str(), min_len=0, unique=True),
        "layers": _mapping(_str(), _mapping(_str(ARCHS), _str(), min_len=1)),
        "readout": _list(_str(), min_len=0, unique=True),
    },
    "train": TRAIN,
    "train_overrides": _mapping(_str(ARCHS), _train_override),
    "evaluation": {"chunk_samples": _int(2), "max_samples": _int(0), "smoothing_bins": _int(1)},
    "extract": {"device": _str(DEVICES), "batch_size": _int(1), "chunk_mb": _float(0.001)},
    "stimuli": _list(_str(), unique=True),
    "recipe_overrides": _mapping(_str(), _any_mapping),
    "analysis": {
        "tuning": {
            "responsive_ptp": _float(0.0),
            "min_curve_range": _float(0.0),
            "min_fit_r2": _float(-1.0, 1.0),
            "dog_starts": _int(1),
            "nr_starts": _int(1),
            "nr_c50_bounds": _list(_float(1e-6), length=2),
            "nr_n_bounds": _list(_float(1e-3), length=2),
        },
        "probes": {
            "l2_grid": _list(_float(0.0)),
            "orientation_train_sizes": _list(_int(2), unique=True),
            "standardize": {"orientation": _bool, "contrast": _bool, "rdk": _bool},
            "max_iter": _int(1),
            "tolerance": _float(0.0),
        },
        "geometry": {
            "n_components": _int(2),
            "ranks": _list(_int(1), length=2),
            "randomized_above": _int(1),
            "power_iterations": _int(0),
            "relative_floor": _float(0.0, 1.0),
            "min_fit_ranks": _int(2),
            "min_fit_fraction": _float(0.0, 1.0),
            "jackknife_groups": _int(2),
        },
        "usable_ceiling_fraction": _float(0.0, 1.0),
    },
}


def _at(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def _check(node: Any, value: Any, where: str) -> None:
    if callable(node):
        node(value, where)
        return
    if not isinstance(value, dict):
        _fail(where, value, f"a mapping with keys {', '.join(node)}")
    for k in value:
        if k not in node:
            raise UserError(f"{_at(where, k)}: unknown key; valid keys: {', '.join(node)}")
    for k, sub in node.items():
        if k not in value:
            raise UserError(f"{_at(where, k)}: missing key")
        _check(sub, value[k], _at(where, k))


def _check_override(node: Any, value: Any, where: str) -> None:
    """A profile may override any subset of keys, each checked against the schema."""
    if callable(node) or not isinstance(value, dict):
        _check(node, value, where)
        return
    for k, v in value.items():
        if k not in node:
            raise UserError(f"{where}.{k}: unknown key; valid keys: {', '.join(node)}")
        _check_override(node[k], v, f"{where}.{k}")


def deep_merge(base: dict, over: dict) -> dict:
    """A copy of `base` with `over` merged in; nested mappings merge, everything else replaces."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def canonical_hash(obj: Any) -> str:
    """sha256 of a canonical JSON rendering: equal content gives an equal hash, whatever the key order."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def default_catalog_path() -> Path:
    """`./catalog.yaml` when present, else the catalog beside the package (the repository's)."""
    here = Path("catalog.yaml")
    return here if here.exists() else Path(__file__).resolve().parent.parent / "catalog.yaml"


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}:{at} malformed YAML ({getattr(e, 'problem', None) or e})") from None


@dataclass(frozen=True)
class Catalog:
    """A validated catalog with one profile applied. `cfg` is the merged plain dict."""

    path: Path
    profile: str
    cfg: dict = field(repr=False)

    def __getitem__(self, key: str) -> Any:
        return self.cfg[key]

    @property
    def recipes_dir(self) -> Path:
        return self.path.parent / "recipes"

    @property
    def models(self) -> list[tuple[str, int]]:
        """Every (arch, seed) of the zoo, then every bring-your-own twin's (name, seed), in catalog order."""
        return ([(a, s) for a in self.cfg["zoo"]["archs"] for s in self.cfg["zoo"]["seeds"]]
                + [(name, s) for name, entry in self.cfg["byo"].items() for s in entry["seeds"]])

    @property
    def archs(self) -> list[str]:
        """The architecture axis of every result: the zoo's archs, then the bring-your-own twins' names."""
        return [*self.cfg["zoo"]["archs"], *self.cfg["byo"]]

    def select(self, archs: list[str] | None = None, seeds: list[int] | None = None) -> list[tuple[str, int]]:
        """The models limited to `archs`/`seeds` (None or empty: all); each asked one must be in the catalog."""
        zoo = self.cfg["zoo"]
        for flag, asked, valid in (("--arch", archs, self.archs), ("--seed", seeds, zoo["seeds"])):
            bad = [x for x in (asked or []) if x not in valid]
            if bad:
                raise UserError(f"{flag} {bad[0]}: not in the zoo of profile {self.profile} ({self.path}); "
                                f"valid: {', '.join(map(str, valid))}")
        return [(a, s) for a, s in self.models if (not archs or a in archs) and (not seeds or s in seeds)]

    def train_config(self, arch: str) -> dict:
        """The training settings of `arch`: `train` with that arch's `train_overrides` entry merged in."""
        return deep_merge(self.cfg["train"], self.cfg["train_overrides"].get(arch, {}))

    def recipe(self, name: str) -> dict:
        """The resolved recipe: recipes/<name>.yaml with the catalog's overrides merged in."""
        if name not in self.cfg["stimuli"]:
            raise UserError(f"{self.path}: stimuli: unknown recipe {name!r}; valid: {', '.join(self.cfg['stimuli'])}")
        rpath = self.recipes_dir / f"{name}.yaml"
        raw = _read_yaml(rpath)
        if not isinstance(raw, dict):
            raise UserError(f"{rpath}: expected a mapping at the top level")
        merged = deep_merge(raw, self.cfg["recipe_overrides"].get(name, {}))
        merged["name"] = name
        validate = _recipe_validator()
        if validate is not None:
            validate(merged, str(rpath))
        return merged

    def recipe_hash(self, name: str) -> str:
        return canonical_hash(self.recipe(name))

    def to_dict(self) -> dict:
        return copy.deepcopy(self.cfg)


def _recipe_validator() -> Callable[[dict, str], None] | None:
    """The stimuli package validates recipe contents (each generator knows its parameters)."""
    try:
        from actstore.stimuli import validate_recipe
    except ImportError:
        return None
    return validate_recipe


def load_catalog(path: str | Path | None = None, profile: str | None = None) -> Catalog:
    """Read, merge the profile, and validate. Raises UserError naming file and key."""
    p = Path(path) if path is not None else default_catalog_path()
    raw = _read_yaml(p)
    if not isinstance(raw, dict):
        raise UserError(f"{p}: expected a mapping at the top level")
    profiles = raw.pop("profiles", {}) or {}
    if not isinstance(profiles, dict):
        raise UserError(f"{p}: profiles: expected a mapping of profile name to overrides")
    try:
        _check(SCHEMA, raw, "")
        name = profile or raw["default_profile"]
        if name not in profiles:
            raise UserError(f"profiles: unknown profile {name!r}; valid: {', '.join(profiles)}")
        over = profiles.get(name) or {}
        _check_override(SCHEMA, over, f"profiles.{name}")
        cfg = deep_merge(raw, over)
        _check(SCHEMA, cfg, f"profiles.{name}")
        _check_consistency(cfg, f"profiles.{name}")
    except UserError as e:
        raise UserError(f"{p}: {e}") from None
    return Catalog(path=p, profile=name, cfg=cfg)


def _check_consistency(cfg: dict, where: str) -> None:
    data = cfg["data"]
    if data["reference_session"] not in data["sessions"]:
        raise UserError(
            f"{where}: data.reference_session: {data['reference_session']!r} is not in data.sessions "
            f"({', '.join(data['sessions'])})"
        )
    if data["source"] == "synthetic":
        missing = [s for s in data["sessions"] if s not in data["synthetic"]["neurons"]]
        if missing:
            raise UserError(f"{where}: data.synthetic.neurons: no neuron count for session(s) {', '.join(missing)}")
        if data["frame_scaling"] == "per_segment":
            raise UserError(f"{where}: data.frame_scaling: per_segment does not apply to synthetic data (its cells "
                            f"are calibrated on the movie scaled per session); expected release or per_session")
    for key in ("nr_c50_bounds", "nr_n_bounds"):
        lo, hi = cfg["analysis"]["tuning"][key]
        if lo >= hi:
            raise UserError(f"{where}: analysis.tuning.{key}: {[lo, hi]} must be [low, high] with low < high")
    lo, hi = cfg["analysis"]["geometry"]["ranks"]
    if lo > hi:
        raise UserError(f"{where}: analysis.geometry.ranks: {[lo, hi]} must be [low, high] with low <= high")
    for name, entry in cfg["byo"].items():
        if name in ARCHS:
            raise UserError(f"{where}: byo.{name}: a zoo architecture's name; choose another name")
        stray = [s for s in entry["seeds"] if s not in cfg["zoo"]["seeds"]]
        if stray:
            raise UserError(f"{where}: byo.{name}.seeds: {stray} not in zoo.seeds {cfg['zoo']['seeds']} (stores hold "
                            "one grid of seeds, and per-seed stimulus draws follow the zoo's)")
        if sorted(entry["layers"]) != sorted(cfg["spaces"]["layers"]):
            raise UserError(f"{where}: byo.{name}.layers: names {sorted(entry['layers'])}; expected one module path "
                            f"for each of spaces.layers: {sorted(cfg['spaces']['layers'])}")
    for name, paths in cfg["spaces"]["layers"].items():
        if name in ("encoder", "gru") or not name.isidentifier():
            raise UserError(f"{where}: spaces.layers.{name}: expected a new identifier, not encoder or gru")
        missing = [a for a in cfg["zoo"]["archs"] if a not in paths]
        if missing:
            raise UserError(f"{where}: spaces.layers.{name}: no module path for arch(s) {', '.join(missing)}")
    for name in cfg["recipe_overrides"]:
        if name not in cfg["stimuli"]:
            raise UserError(f"{where}: recipe_overrides.{name}: not a recipe in stimuli ({', '.join(cfg['stimuli'])})")
