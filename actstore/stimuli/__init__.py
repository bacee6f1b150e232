"""Stimulus sets as a pure function of (recipe, seed), identical for every arch (design 6.2-6.4); the probe
tasks are drawn once per model seed (`generate_per_seed`, the study's A.3).

`generate(recipe, seed)` dispatches on the recipe's `kind` and returns an xr.Dataset holding
`stimulus` float32 in [0, 1] over (*stimulus dims, ["frame",] "y", "x") plus the stimulus
coords, with attrs["chunk_frames"] (the GRU runs from a zero state on each chunk).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import xarray as xr

from actstore.errors import UserError
from actstore.stimuli.contrast import contrast_task
from actstore.stimuli.gratings import carriers, gaussian_envelope, gratings, pixel_coordinates, tuning_grid
from actstore.stimuli.orientation import orientation_task
from actstore.stimuli.rdk import dot_trajectories, rdk_task, rendered_dots
from actstore.stimuli.recipes import KINDS, validate_recipe
from actstore.stimuli.reference import reference_clips

__all__ = [
    "KINDS", "DRAWN_KINDS", "generate", "generate_per_seed", "draw_seed", "validate_recipe", "needs_reference",
    "tuning_grid", "orientation_task", "contrast_task", "rdk_task", "reference_clips",
    "gratings", "carriers", "gaussian_envelope", "pixel_coordinates", "dot_trajectories", "rendered_dots",
]

_GENERATORS: dict[str, Callable[[dict, int], xr.Dataset]] = {
    "tuning_grid": tuning_grid,
    "orientation_task": orientation_task,
    "contrast_task": contrast_task,
    "rdk_task": rdk_task,
}


DRAWN_KINDS = ("orientation_task", "contrast_task", "rdk_task")  # kinds whose trials are random draws from the seed


def needs_reference(recipe: dict) -> bool:
    """True when generate() needs the reference session's frames for this recipe."""
    return recipe["kind"] == "reference_clips"


def generate(recipe: dict, seed: int, reference_frames: np.ndarray | None = None) -> xr.Dataset:
    """The stimulus set of a (validated) recipe for run seed `seed`; reference_clips also takes the
    reference session's frames (T, H, W). Raises UserError on a bad recipe or missing frames."""
    where = f"recipe {recipe.get('name', '?')!r}" if isinstance(recipe, dict) else "recipe"
    validate_recipe(recipe, where)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"{where}: seed: invalid value {seed!r}; expected an integer >= 0")
    if needs_reference(recipe):
        if reference_frames is None:
            raise UserError(f"{where}: kind reference_clips needs the reference session's frames")
        return reference_clips(recipe, int(seed), reference_frames)
    return _GENERATORS[recipe["kind"]](recipe, int(seed))


def draw_seed(run_seed: int, model_seed: int) -> int:
    """The stimulus seed of one model seed: the same for every arch, distinct across (run seed, model seed)."""
    return int(np.random.SeedSequence([int(run_seed), int(model_seed)]).generate_state(1)[0])


def generate_per_seed(recipe: dict, run_seed: int, model_seeds: list[int]) -> xr.Dataset:
    """One draw of a drawn-kind recipe per model seed (seeded by `draw_seed`), stacked along a leading `seed`
    dim: `stimulus` (seed, trial, ...) and every per-trial coord (labels, levels, nuisances) gain it, with one
    seed as with three; `split`, the layout every draw shares, keeps its own dims, so plain xarray opens it."""
    if recipe["kind"] not in DRAWN_KINDS:
        raise UserError(f"recipe {recipe.get('name', '?')!r}: kind {recipe['kind']} has no random draws; "
                        f"per-seed stimuli exist for {', '.join(DRAWN_KINDS)}")
    seeds = [int(s) for s in model_seeds]
    sets = [generate(recipe, draw_seed(run_seed, s)) for s in seeds]
    if any(not np.array_equal(s["split"].values, sets[0]["split"].values) for s in sets[1:]):
        raise ValueError(f"recipe {recipe.get('name', '?')!r}: the draws' split layouts differ")
    drawn = [k for k in sets[0].coords if k not in sets[0].dims and k != "split"]
    ds = xr.concat([s.reset_coords(drawn) for s in sets], dim="seed", data_vars="all", coords="minimal",
                   compat="equals", combine_attrs="drop_conflicts").set_coords(drawn)
    ds = ds.assign_coords(seed=("seed", np.array(seeds, dtype=np.int64)))
    ds.attrs.update(draw_seeds=[draw_seed(run_seed, s) for s in seeds])
    return ds
