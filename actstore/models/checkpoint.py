"""Checkpoints: a folder with `model.<sha>.pt` (state dict) and `model.json` (config, sha256, the weights' file
name, provenance).

Replacing a checkpoint writes the new weights under their own name, then model.json in one atomic write, then
removes the old weights: on every root, a reader always finds a model.json and the weights it names (one that read
the old model.json just before the switch finds its weights gone and reads model.json again).

Loading verifies the weights' sha256 against model.json, rebuilds the twin from the config
and loads strictly, so a truncated, foreign or mismatched file fails with one clear line
(UserError) instead of a traceback or silently wrong weights. Reading the metadata
(`read_meta`) needs no torch, so up-to-date checks stay light.
"""
from __future__ import annotations

import hashlib
import io
import json
from typing import TYPE_CHECKING, Any

import fsspec

from actstore.errors import UserError
from actstore.store.paths import META, weights_file
from actstore.store.publish import publish_file

if TYPE_CHECKING:
    from actstore.models.twin import DigitalTwin

FORMAT = "actstore-checkpoint/2"  # /2: weights named by content in model.json


def _join(folder: str, name: str) -> str:
    return f"{str(folder).rstrip('/')}/{name}"


def save_checkpoint(twin: DigitalTwin, folder: str, provenance: dict[str, Any] | None = None) -> str:
    """Write the weights, then switch model.json to them, then remove older weights (module doc). Returns the
    sha256."""
    import torch

    buf = io.BytesIO()
    # keys in sorted order: model.json stores the mice sorted, so a reloaded twin lists its readouts in another
    # order than the one trained; sorted keys make the bytes (and the sha256) depend on the weights alone
    torch.save({k: v.detach().cpu() for k, v in sorted(twin.state_dict().items())}, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    name = weights_file(digest)
    publish_file(_join(str(folder), name), data)
    meta = {"format": FORMAT, "config": twin.config, "sha256": digest, "weights": name, "provenance": provenance or {}}
    publish_file(_join(str(folder), META), json.dumps(meta, indent=2, sort_keys=True).encode())
    fs, path = fsspec.core.url_to_fs(str(folder))
    for old in fs.glob(_join(path, weights_file("*"))):
        if old.rstrip("/").rpartition("/")[2] != name:
            fs.rm_file(old)
    return digest


def read_meta(folder: str) -> dict[str, Any]:
    """model.json of a checkpoint folder, validated as actstore's."""
    fs, path = fsspec.core.url_to_fs(str(folder))
    meta_path = _join(path, META)
    if not fs.exists(meta_path):
        raise UserError(f"{_join(str(folder), META)}: missing; not an actstore checkpoint folder")
    try:
        meta = json.loads(fs.cat_file(meta_path))
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"{_join(str(folder), META)}: not valid JSON (corrupt checkpoint metadata)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{_join(str(folder), META)}: format: expected {FORMAT!r} (a foreign file?)")
    for key in ("config", "sha256", "weights"):
        if key not in meta:
            raise UserError(f"{_join(str(folder), META)}: {key}: missing")
    return meta


def read_weights(folder: str) -> tuple[dict[str, Any], bytes]:
    """model.json and the bytes of the weights it names, as one pair: where a newer checkpoint replaced the weights
    between the two reads, model.json is read again (it names the new ones)."""
    fs, path = fsspec.core.url_to_fs(str(folder))
    tried = None
    while True:
        meta = read_meta(folder)
        if meta["weights"] == tried:
            raise UserError(f"{_join(str(folder), tried)}: missing (the weights model.json names)")
        tried = meta["weights"]
        try:
            return meta, fs.cat_file(_join(path, tried))
        except FileNotFoundError:
            continue


def _twin_to_load(config: dict[str, Any]) -> DigitalTwin:
    """The config's twin without initialised weights where it can be built on the meta device (the file's tensors
    replace them: no initialisation computed, e.g. AlexNet's 58M-parameter classifier, and no RNG drawn); builders
    that read tensor values while building (torchvision's RegNet computes its widths with tensors) build normally."""
    import torch

    from actstore.models.twin import DigitalTwin

    args = (config["arch"], tuple(config["frame_shape"]), config["neurons"], config["encoder_dim"],
            config["hidden_dim"])
    try:
        with torch.device("meta"):
            return DigitalTwin(*args)
    except (NotImplementedError, RuntimeError):
        return DigitalTwin(*args)


def load_checkpoint(folder: str, expect: dict[str, Any] | None = None,
                    map_location: str = "cpu") -> tuple[DigitalTwin, dict[str, Any]]:
    """The twin (a DigitalTwin, or an ExternalTwin when the config names a builder) and its metadata; `expect`
    (e.g. {"arch": ..., "encoder_dim": ...}) must match the config."""
    import torch

    meta, data = read_weights(folder)
    where = _join(str(folder), meta["weights"])
    config = meta["config"]
    for key, want in (expect or {}).items():
        if config.get(key) != want:
            raise UserError(f"{_join(str(folder), META)}: config.{key}: is {config.get(key)!r}, expected {want!r}")
    if hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise UserError(f"{where}: sha256 does not match model.json (truncated or replaced file)")
    try:
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for a foreign or corrupt file
        raise UserError(f"{where}: not a readable state dict ({type(e).__name__})") from None
    try:
        if "builder" in config:  # a bring-your-own twin (models/external.py)
            from actstore.models.external import ExternalTwin

            twin = ExternalTwin(config)
            twin.load_state_dict(state, strict=True)
        else:
            twin = _twin_to_load(config)
            twin.load_state_dict(state, strict=True, assign=True)
            if any(t.is_meta for t in (*twin.parameters(), *twin.buffers())):
                raise ValueError("a tensor of the twin is not in the state dict")
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{where}: weights do not fit config ({first})") from None
    return twin, meta
