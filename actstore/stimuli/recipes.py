"""Recipe validation and the value specs recipes use (grid axes, uniform ranges).

A recipe is a YAML mapping with a `kind`; each kind has a fixed set of keys, checked here
with errors of the form "recipes/x.yaml: key: invalid value ...; expected ...".
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from actstore.catalog import _check, _fail, _float, _int, _list, _str
from actstore.errors import UserError

Checker = Callable[[Any, str], None]
SCALES = ("linear", "log")


def _keys(v: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    """A mapping with all `required` keys and nothing beyond `optional`."""
    if not isinstance(v, dict):
        _fail(where, v, f"a mapping with keys {', '.join(required + optional)}")
    for k in v:
        if k not in required + optional:
            raise UserError(f"{where}.{k}: unknown key; valid keys: {', '.join(required + optional)}")
    for k in required:
        if k not in v:
            raise UserError(f"{where}.{k}: missing key")


def _scale(v: dict, where: str, low: Any, high: Any) -> None:
    """An optional `scale` of linear or log; log needs positive bounds."""
    scale = v.get("scale", "linear")
    _str(SCALES)(scale, f"{where}.scale")
    if scale == "log" and not (low > 0 and high > 0):
        _fail(where, v, "positive bounds for scale: log")


def axis(lo: float, hi: float) -> Checker:
    """A grid axis: a list of distinct numbers in [lo, hi], or {start, stop, num, scale?, endpoint?}."""
    def check(v: Any, where: str) -> None:
        if isinstance(v, list):
            _list(_float(lo, hi), unique=True)(v, where)
            return
        _keys(v, where, ("start", "stop", "num"), ("scale", "endpoint"))
        _float(lo, hi)(v["start"], f"{where}.start")
        _float(lo, hi)(v["stop"], f"{where}.stop")
        _int(1)(v["num"], f"{where}.num")
        if not isinstance(v.get("endpoint", True), bool):
            _fail(f"{where}.endpoint", v["endpoint"], "true or false")
        _scale(v, where, v["start"], v["stop"])
        if v["num"] > 1 and v["start"] == v["stop"]:
            _fail(where, v, "start != stop when num > 1")
    return check


def uniform(lo: float, hi: float) -> Checker:
    """A range drawn uniformly: {low, high, scale?} with lo <= low <= high <= hi (log: log-uniform)."""
    def check(v: Any, where: str) -> None:
        _keys(v, where, ("low", "high"), ("scale",))
        _float(lo, hi)(v["low"], f"{where}.low")
        _float(lo, hi)(v["high"], f"{where}.high")
        if v["low"] > v["high"]:
            _fail(where, v, "low <= high")
        _scale(v, where, v["low"], v["high"])
    return check


def axis_values(spec: list | dict) -> np.ndarray:
    """The values of a validated grid axis, float64."""
    if isinstance(spec, list):
        return np.asarray(spec, dtype=np.float64)
    space = np.geomspace if spec.get("scale", "linear") == "log" else np.linspace
    return space(spec["start"], spec["stop"], spec["num"], endpoint=spec.get("endpoint", True))


def uniform_draws(spec: dict, n: int, rng: np.random.Generator) -> np.ndarray:
    """n independent draws from a validated range, float64."""
    if spec.get("scale", "linear") == "log":
        draws = np.exp(rng.uniform(np.log(spec["low"]), np.log(spec["high"]), n))
        return np.clip(draws, spec["low"], spec["high"])  # exp(log(x)) may round past a bound
    return rng.uniform(spec["low"], spec["high"], n)


# ----------------------------------------------------------------------------- schemas
_FRAME_SHAPE = _list(_int(8), length=2)
_CONTRAST = _float(0.0, 1.0)
_SF = 1e-6, 0.5                     # cycles/px, up to Nyquist
_ANGLE = -3600.0, 3600.0            # deg
_NUISANCE = {
    "sf_cpp": uniform(*_SF),
    "contrast": uniform(0.0, 1.0),
    "noise_sd": uniform(0.0, 1.0),
    "blur_sigma": uniform(0.0, 20.0),
    "luminance": uniform(0.0, 1.0),
    "phase_deg": uniform(*_ANGLE),
}
ORIENTATION_SPLITS = ("train", "val", "test_id", "test_ood")


def _named_nuisance(v: Any, where: str) -> None:
    """{set name: {sf_cpp, contrast, noise_sd, blur_sigma, luminance, phase_deg}}."""
    if not isinstance(v, dict) or not v:
        _fail(where, v, "a mapping of nuisance-set name to ranges")
    for name, ranges in v.items():
        _check(_NUISANCE, ranges, f"{where}.{name}")


SCHEMAS: dict[str, dict[str, Any]] = {
    "tuning_grid": {
        "kind": _str(), "frame_shape": _FRAME_SHAPE, "chunk_frames": _int(1),
        "luminance": _float(0.0, 1.0),
        "orientation_deg": axis(*_ANGLE), "sf_cpp": axis(*_SF), "phase_deg": axis(*_ANGLE),
        "contrast": axis(0.0, 1.0), "main_contrast": _CONTRAST,
    },
    "orientation_task": {
        "kind": _str(), "frame_shape": _FRAME_SHAPE, "chunk_frames": _int(1),
        "classes": _int(2), "orientation_deg": uniform(*_ANGLE),
        "splits": {k: {"trials": _int(1), "nuisance": _str()} for k in ORIENTATION_SPLITS},
        "nuisance": _named_nuisance,
    },
    "contrast_task": {
        "kind": _str(), "frame_shape": _FRAME_SHAPE, "chunk_frames": _int(1), "frames": _int(1),
        "luminance": _float(0.0, 1.0),
        "background": {"noise_sd": _NUISANCE["noise_sd"], "blur_sigma": _NUISANCE["blur_sigma"]},
        "gabor": {"sigma_px": _float(0.1), "sf_cpp": uniform(*_SF), "orientation_deg": uniform(*_ANGLE),
                  "phase_deg": uniform(*_ANGLE)},
        "target_frames": _list(_int(0), unique=True), "train_contrast": uniform(0.0, 1.0),
        "test_contrasts": _list(_CONTRAST, unique=True),
        "trials": {"train": _int(2), "val": _int(2)},
        "test": {"targets_per_contrast": _int(1), "blanks": _int(1)},
    },
    "rdk_task": {
        "kind": _str(), "frame_shape": _FRAME_SHAPE, "chunk_frames": _int(1), "frames": _int(2),
        "background": _float(0.0, 1.0),
        "dots": {"count": _int(1), "radius_px": _float(0.1, 20.0), "speed_px_per_frame": _float(0.0, 40.0),
                 "lifetime_frames": _int(2), "values": _list(_float(0.0, 1.0))},
        "train_coherences": _list(_CONTRAST, unique=True), "test_coherences": _list(_CONTRAST, unique=True),
        "trials": {"train": _int(2), "val": _int(2)},
        "test": {"trials_per_coherence": _int(2)},
    },
    "reference_clips": {
        "kind": _str(), "chunk_frames": _int(1), "frames": _int(1), "clips": _int(1), "draw_seed": _int(0),
    },
}
KINDS = tuple(SCHEMAS)


def _consistent(recipe: dict) -> None:
    """Checks across keys (raised with the dotted key; the caller adds the file)."""
    kind = recipe["kind"]
    if kind == "tuning_grid" and not np.isclose(axis_values(recipe["contrast"]), recipe["main_contrast"]).any():
        _fail("main_contrast", recipe["main_contrast"], "one of the contrast values")
    if kind == "orientation_task":
        for split, spec in recipe["splits"].items():
            if spec["nuisance"] not in recipe["nuisance"]:
                _fail(f"splits.{split}.nuisance", spec["nuisance"], f"one of {', '.join(recipe['nuisance'])}")
    if "frames" in recipe and recipe["frames"] % recipe["chunk_frames"]:
        _fail("frames", recipe["frames"], f"a multiple of chunk_frames ({recipe['chunk_frames']})")
    if kind == "contrast_task":
        for i, t in enumerate(recipe["target_frames"]):
            if t >= recipe["frames"]:
                _fail(f"target_frames[{i}]", t, f"a frame index in 0..{recipe['frames'] - 1}")


def validate_recipe(recipe: Any, where: str) -> None:
    """Check a resolved recipe against its kind's schema; raise UserError "<where>: key: ..."."""
    if not isinstance(recipe, dict):
        raise UserError(f"{where}: expected a mapping at the top level")
    kind = recipe.get("kind")
    if kind not in SCHEMAS:
        raise UserError(f"{where}: kind: invalid value {kind!r}; expected one of {', '.join(KINDS)}")
    body = {k: v for k, v in recipe.items() if k != "name"}
    try:
        if "name" in recipe:
            _str()(recipe["name"], "name")
        _check(SCHEMAS[kind], body, "")
        _consistent(recipe)
    except UserError as e:
        raise UserError(f"{where}: {e}") from None
