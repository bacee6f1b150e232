"""Feature spaces and the one batched forward loop that feeds them all.

Each batch is encoded once; every feature space is a thin reader of that shared pass:
`encoder` keeps the encoder output per frame, `gru` runs the GRU from a zero state over
each chunk of `chunk_frames` frames and keeps the final state of each chunk, and each
layer space (catalog `spaces.layers`) keeps one encoder module's output, captured by a
forward hook during the same pass, for the last frame of each stimulus, its spatial map
reduced to one value per channel by the catalog's `spaces.reduce` rule, and each readout
space (catalog `spaces.readout`) one mouse's predicted rates for the stimulus held still.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from actstore.errors import UserError

if TYPE_CHECKING:  # torch loads only when features are computed: planning an extraction needs none
    import torch

    from actstore.models import DigitalTwin

REDUCE_RULES = ("centre", "mean")  # a (C, h, w) map -> C: the channel at (h // 2, w // 2), or its spatial mean


def chunk_count(n_frames: int, chunk_frames: int) -> int:
    """How many GRU chunks a stimulus of `n_frames` frames splits into (a short one is one chunk)."""
    if n_frames <= chunk_frames:
        return 1
    if n_frames % chunk_frames:
        raise UserError(f"stimulus has {n_frames} frames, not a multiple of chunk_frames={chunk_frames}")
    return n_frames // chunk_frames


@dataclass(frozen=True)
class FeatureSpace:
    """A stored variable: its name, its unit dim, and how it reads the shared encoder pass."""

    name: str
    unit_dim: str
    step_dim: str

    def steps(self, n_frames: int, chunk_frames: int) -> int:
        raise NotImplementedError

    def width(self, config: dict) -> int:
        """Units per model in the store (the widest arch's, for layers)."""
        raise NotImplementedError

    def dims(self, n_frames: int, chunk_frames: int, config: dict) -> tuple[tuple[str, int], ...]:
        """The variable's own trailing dims after the stimulus dims: (step?, unit)."""
        n = self.steps(n_frames, chunk_frames)
        step = ((self.step_dim, n),) if n > 1 else ()
        return (*step, (self.unit_dim, self.width(config)))

    def module(self, twin: DigitalTwin) -> str | None:
        """The twin's module whose output this space reads through a hook (None: it reads the encoder pass)."""
        return None

    def compute(self, twin: DigitalTwin, encoded: torch.Tensor, captured: dict[str, torch.Tensor],
                chunk_frames: int) -> torch.Tensor:
        """(B, T, D) encoded frames (and the hooked module outputs) -> (B, steps, units)."""
        raise NotImplementedError


class EncoderSpace(FeatureSpace):
    def steps(self, n_frames: int, chunk_frames: int) -> int:
        return n_frames

    def width(self, config: dict) -> int:
        return int(config["encoder_dim"])

    def compute(self, twin: DigitalTwin, encoded: torch.Tensor, captured: dict[str, torch.Tensor],
                chunk_frames: int) -> torch.Tensor:
        return encoded


class GruSpace(FeatureSpace):
    def steps(self, n_frames: int, chunk_frames: int) -> int:
        return chunk_count(n_frames, chunk_frames)

    def width(self, config: dict) -> int:
        return int(config["hidden_dim"])

    def compute(self, twin: DigitalTwin, encoded: torch.Tensor, captured: dict[str, torch.Tensor],
                chunk_frames: int) -> torch.Tensor:
        b, t, d = encoded.shape
        c = chunk_count(t, chunk_frames)
        return twin.recur(encoded.reshape(b * c, t // c, d)).reshape(b, c, -1)


@dataclass(frozen=True)
class LayerSpace(FeatureSpace):
    """One encoder module per arch (`modules`: arch -> module path in the twin), last frame, reduced per channel.

    Archs differ in width: the store pads every model to `widths`' largest with NaN and records each
    arch's own width, so plain xarray opens it (see README, "Layer spaces").
    """

    modules: dict[str, str] = field(default_factory=dict)
    reduce: str = "centre"
    widths: dict[str, int] = field(default_factory=dict)
    depths: dict[str, float] = field(default_factory=dict)

    def steps(self, n_frames: int, chunk_frames: int) -> int:
        return 1

    def width(self, config: dict) -> int:
        return max(self.widths.values())

    def module(self, twin: DigitalTwin) -> str:
        arch = twin.config["arch"]
        if arch not in self.modules:
            raise UserError(f"spaces.layers.{self.name}: no module for arch {arch}; valid archs: "
                            f"{', '.join(self.modules)}")
        return self.modules[arch]

    def compute(self, twin: DigitalTwin, encoded: torch.Tensor, captured: dict[str, torch.Tensor],
                chunk_frames: int) -> torch.Tensor:
        out = captured[self.module(twin)]
        b, t = encoded.shape[:2]
        last = out.reshape(b, t, *out.shape[1:])[:, -1]
        return reduce_map(last, self.reduce).unsqueeze(1)


@dataclass(frozen=True)
class ReadoutSpace(FeatureSpace):
    """One mouse's predicted rates: the twin's readout of the GRU state after each stimulus's last frame is held
    for `context` frames (the steady response to a static stimulus), one unit per recorded neuron. A twin without
    that mouse's readout (a brought twin) fills it with NaN."""

    mouse: str = ""
    neurons: int = 0
    context: int = 5

    def steps(self, n_frames: int, chunk_frames: int) -> int:
        return 1

    def width(self, config: dict) -> int:
        return self.neurons

    def compute(self, twin: DigitalTwin, encoded: torch.Tensor, captured: dict[str, torch.Tensor],
                chunk_frames: int) -> torch.Tensor:
        if self.mouse not in getattr(twin, "readouts", {}):
            return encoded.new_zeros(encoded.shape[0], 1, 0)
        held = encoded[:, -1:].expand(-1, self.context, -1)  # the last frame, encoded once, seen context times
        return twin.rates(twin.recur(held), self.mouse).unsqueeze(1)


def readout_spaces(catalog: Any, recipe_name: str, neurons: dict[str, int]) -> tuple[ReadoutSpace, ...]:
    """The readout spaces of a recipe in spaces.readout: one per session of the catalog, `neurons` its count."""
    if recipe_name not in catalog["spaces"]["readout"]:
        return ()
    context = int(catalog["data"]["context_frames"])
    return tuple(ReadoutSpace(f"readout_{m}", f"neuron_{m}", "frame", mouse=m, neurons=int(neurons[m]), context=context)
                 for m in catalog["data"]["sessions"])


def readout_identity(catalog: Any, recipe_name: str) -> dict[str, Any]:
    """What a store's readout spaces are (its attrs['readout']): the mice and their space names, and the frames a
    stimulus is held; {} for a recipe without them. From the catalog alone."""
    if recipe_name not in catalog["spaces"]["readout"]:
        return {}
    return {"spaces": {m: f"readout_{m}" for m in catalog["data"]["sessions"]},
            "context": int(catalog["data"]["context_frames"])}


def reduce_map(x: torch.Tensor, rule: str) -> torch.Tensor:
    """(N, C, h, w) -> (N, C) by `rule` (REDUCE_RULES); (N, C) passes through."""
    if x.dim() == 2:
        return x
    if rule == "centre":
        return x[:, :, x.shape[2] // 2, x.shape[3] // 2]
    return x.mean(dim=(2, 3))


SPACES: tuple[FeatureSpace, ...] = (
    EncoderSpace("encoder", "unit", "frame"),
    GruSpace("gru", "hidden", "chunk"),
)


@contextmanager
def captured_outputs(twin: DigitalTwin, paths: list[str]) -> Iterator[dict[str, torch.Tensor]]:
    """While open, the latest output of each module path of `twin` (forward hooks, removed on exit)."""
    out: dict[str, Any] = {}
    handles = []
    try:
        for path in dict.fromkeys(paths):
            try:
                module = twin.get_submodule(path)
            except AttributeError:
                raise UserError(f"spaces.layers: {path!r} is not a module of the {twin.config['arch']} twin; "
                                f"valid paths start with {', '.join(n for n, _ in twin.named_children())}") from None
            handles.append(module.register_forward_hook(lambda m, i, o, path=path: out.__setitem__(path, o)))
        yield out
    finally:
        for handle in handles:
            handle.remove()


def layer_info(twin: Any, frame_shape: tuple[int, int], paths: list[str]) -> dict[str, dict[str, Any]]:
    """Per module path of `twin`: its channel count (`width`) and relative depth (`depth`, the fraction of the
    encoder's convolutions run when the module's output appears), from one forward pass of a blank frame."""
    import torch
    from torch import nn

    twin.eval()
    convs = [m for m in twin.encoder.modules() if isinstance(m, nn.Conv2d)]
    done = [0]
    depth: dict[str, float] = {}
    counters = [m.register_forward_hook(lambda *a: done.__setitem__(0, done[0] + 1)) for m in convs]
    with captured_outputs(twin, paths) as out, torch.no_grad():
        marks = [twin.get_submodule(p).register_forward_hook(
            lambda m, i, o, p=p: depth.__setitem__(p, done[0] / max(1, len(convs)))) for p in dict.fromkeys(paths)]
        twin.encode(torch.zeros(1, 1, 1, *frame_shape))
    for h in counters + marks:
        h.remove()
    return {p: {"width": int(out[p].shape[1]), "depth": round(depth[p], 4)} for p in paths}


def layer_modules(catalog: Any) -> dict[str, dict[str, str]]:
    """Layer space -> {arch: module path} for every zoo arch (spaces.layers) and bring-your-own twin (its layers)."""
    archs = list(catalog["zoo"]["archs"])
    return {name: {**{a: paths[a] for a in archs}, **{b: e["layers"][name] for b, e in catalog["byo"].items()}}
            for name, paths in catalog["spaces"]["layers"].items()}


def blank_twin(catalog: Any, arch: str, frame_shape: tuple[int, int]) -> Any:
    """An untrained twin of a zoo arch or a bring-your-own twin, to read its layers' shapes."""
    if arch in catalog["byo"]:
        from actstore.models.external import ExternalTwin, external_config

        return ExternalTwin(external_config(arch, catalog["byo"][arch]))
    from actstore.models import build_twin

    return build_twin(arch, frame_shape, {"m": 1}, int(catalog["zoo"]["encoder_dim"]), int(catalog["zoo"]["hidden_dim"]))


def layer_spaces(catalog: Any, recipe_name: str, frame_shape: tuple[int, int]) -> tuple[LayerSpace, ...]:
    """The catalog's layer spaces for a recipe (none unless it is in spaces.recipes), widths from the models."""
    cfg = catalog["spaces"]
    if recipe_name not in cfg["recipes"] or not cfg["layers"]:
        return ()
    modules = layer_modules(catalog)
    archs = list(next(iter(modules.values())))
    info = {a: layer_info(blank_twin(catalog, a, frame_shape), frame_shape, [modules[s][a] for s in modules])
            for a in archs}
    return tuple(LayerSpace(name, f"{name}_unit", "frame", modules=paths, reduce=cfg["reduce"],
                            widths={a: info[a][paths[a]]["width"] for a in archs},
                            depths={a: info[a][paths[a]]["depth"] for a in archs})
                 for name, paths in modules.items())


def layers_identity(catalog: Any, recipe_name: str) -> dict[str, Any]:
    """What a store's layer spaces are made of (its attrs['layers']): the reduce rule and each space's module per
    model arch; {} for a recipe without layer spaces. Read from the catalog alone (no model is built)."""
    cfg = catalog["spaces"]
    if recipe_name not in cfg["recipes"] or not cfg["layers"]:
        return {}
    return {"reduce": cfg["reduce"], "modules": layer_modules(catalog)}


def resolve_device(device: str | None) -> str:
    """'auto' (or None) -> cuda when available, else cpu."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available; valid here: auto, cpu")
    return device


def batched_features(twin: DigitalTwin, frames: np.ndarray, batch_size: int, device: str, chunk_frames: int,
                     spaces: tuple[FeatureSpace, ...] = SPACES) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
    """(S, T, H, W) frames -> per batch (first, stop, {space: (B, steps, units) float32}), frozen and in order."""
    import torch

    twin.eval().to(device)
    hooked = [p for p in (s.module(twin) for s in spaces) if p is not None]
    with torch.inference_mode(), captured_outputs(twin, hooked) as captured:
        for first in range(0, len(frames), batch_size):
            stop = min(first + batch_size, len(frames))
            clips = torch.from_numpy(np.ascontiguousarray(frames[first:stop])).to(device).unsqueeze(2)
            encoded = twin.encode(clips)
            yield first, stop, {s.name: s.compute(twin, encoded, captured, chunk_frames).float().cpu().numpy()
                                for s in spaces}
