"""Bring-your-own twins: any torch module mapping clips (B, T, 1, H, W) to rates, built by an importable function
(catalog `byo.<name>.builder`, "package.module:function") and read through the module paths the catalog names.

actstore reads a twin through two modules: an `encoder` applied to every frame ((N, 1, H, W) -> (N, D)) and a
batch-first `gru` whose final state is the recurrent space; layer spaces are further module paths. The twin's
weights are imported once into an actstore checkpoint (train/zoo.py), whose config names the builder, so every
later step loads it like a zoo twin.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

import torch
from torch import nn

from actstore.errors import UserError


def import_builder(spec: str, where: str) -> Callable[[], nn.Module]:
    """The function `spec` ("package.module:function") names; one UserError line when it cannot be imported."""
    module, _, name = spec.partition(":")
    try:
        builder = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise UserError(f"{where}: cannot import {spec!r} ({type(e).__name__}: {e}); expected 'package.module:"
                        "function' importable in this Python") from None
    if not callable(builder):
        raise UserError(f"{where}: {spec!r} is not callable")
    return builder


class ExternalTwin(nn.Module):
    """A foreign twin (`self.twin`) with the reads actstore's feature spaces use: `encode` and `recur`.

    `config`: arch (the catalog name), builder, frame_shape, encoder and gru (module paths in the twin), and the
    measured encoder_dim and hidden_dim. Module paths of layer spaces are looked up in the foreign twin.
    """

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        self.config = dict(config)
        self.twin = import_builder(config["builder"], f"byo.{config['arch']}.builder")()
        for key in ("encoder", "gru"):
            self.get_submodule(config[key])  # a wrong path fails here, in one line
        if not isinstance(self.recurrent, nn.GRU) or not self.recurrent.batch_first:
            raise UserError(f"byo.{config['arch']}.gru: {config['gru']!r} is not a batch-first torch.nn.GRU")

    def get_submodule(self, target: str) -> nn.Module:
        try:
            return self.twin.get_submodule(target)
        except AttributeError:
            raise UserError(f"byo.{self.config['arch']}: {target!r} is not a module of its twin; valid paths start "
                            f"with {', '.join(n for n, _ in self.twin.named_children())}") from None

    @property
    def encoder(self) -> nn.Module:
        return self.get_submodule(self.config["encoder"])

    @property
    def recurrent(self) -> nn.Module:
        return self.get_submodule(self.config["gru"])

    def encode(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, T, 1, H, W) -> (B, T, D): the twin's encoder applied to every frame."""
        b, t = clips.shape[:2]
        return self.encoder(clips.reshape(b * t, *clips.shape[2:])).reshape(b, t, -1)

    def recur(self, encoded: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, D) -> (B, H): the GRU's final state (last layer), from `state` or zeros."""
        _, h = self.recurrent(encoded, None if state is None else state.unsqueeze(0).contiguous())
        return h[-1]

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.twin(clips)


def external_config(name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """A BYO catalog entry's twin config, with encoder_dim and hidden_dim measured by one forward pass."""
    config = {"arch": name, "builder": entry["builder"], "frame_shape": [int(x) for x in entry["frame_shape"]],
              "encoder": entry["encoder"], "gru": entry["gru"]}
    twin = ExternalTwin(config).eval()
    with torch.no_grad():
        encoded = twin.encode(torch.zeros(1, 1, 1, *config["frame_shape"]))
        state = twin.recur(encoded)
    return {**config, "encoder_dim": int(encoded.shape[-1]), "hidden_dim": int(state.shape[-1])}


def import_weights(name: str, entry: dict[str, Any], data: bytes, folder: str, provenance: dict[str, Any],
                   sizes: dict[str, int]) -> str:
    """Load a BYO twin's state_dict bytes into its builder's module and save it as an actstore checkpoint (the
    catalog entry and the source's sha256 in provenance["byo"]); its encoder and GRU widths must be the zoo's
    (`sizes`), since they share the stores' encoder and gru variables. Returns the checkpoint's sha256."""
    import io

    from actstore.models.checkpoint import save_checkpoint

    config = external_config(name, entry)
    wrong = {k: (config[k], v) for k, v in sizes.items() if config[k] != v}
    if wrong:
        raise UserError(f"byo.{name}: " + ", ".join(f"{k} is {got}, the zoo's is {want}" for k, (got, want)
                                                      in wrong.items()) + "; stores share the encoder and gru spaces")
    twin = ExternalTwin(config)
    try:
        twin.twin.load_state_dict(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True), strict=True)
    except Exception as e:  # torch raises many types for a foreign or mismatched file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"byo.{name}.checkpoint: not a state_dict of {entry['builder']} ({first})") from None
    return save_checkpoint(twin, folder, {"byo": provenance})
