"""Checkpoints: a folder with `model.pt` (state dict) and `model.json` (config, sha256, provenance).

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
from actstore.store.paths import META, WEIGHTS
from actstore.store.publish import publish_file

if TYPE_CHECKING:
    from actstore.models.twin import DigitalTwin

FORMAT = "actstore-checkpoint/1"


def _join(folder: str, name: str) -> str:
    return f"{str(folder).rstrip('/')}/{name}"


def save_checkpoint(twin: DigitalTwin, folder: str, provenance: dict[str, Any] | None = None) -> str:
    """Write weights then metadata (metadata last: a folder without it is not a checkpoint). Returns the sha256."""
    import torch

    buf = io.BytesIO()
    # keys in sorted order: model.json stores the mice sorted, so a reloaded twin lists its readouts in another
    # order than the one trained; sorted keys make the bytes (and the sha256) depend on the weights alone
    torch.save({k: v.detach().cpu() for k, v in sorted(twin.state_dict().items())}, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    fs, path = fsspec.core.url_to_fs(str(folder))
    if fs.exists(_join(path, META)):  # the old metadata goes first: a reader never pairs it with the new weights
        fs.rm_file(_join(path, META))
    publish_file(_join(str(folder), WEIGHTS), data)
    meta = {"format": FORMAT, "config": twin.config, "sha256": digest, "provenance": provenance or {}}
    publish_file(_join(str(folder), META), json.dumps(meta, indent=2, sort_keys=True).encode())
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
    for key in ("config", "sha256"):
        if key not in meta:
            raise UserError(f"{_join(str(folder), META)}: {key}: missing")
    return meta


def load_checkpoint(folder: str, expect: dict[str, Any] | None = None,
                    map_location: str = "cpu") -> tuple[DigitalTwin, dict[str, Any]]:
    """The twin (a DigitalTwin, or an ExternalTwin when the config names a builder) and its metadata; `expect`
    (e.g. {"arch": ..., "encoder_dim": ...}) must match the config."""
    import torch

    from actstore.models.twin import DigitalTwin

    meta = read_meta(folder)
    where = _join(str(folder), WEIGHTS)
    config = meta["config"]
    for key, want in (expect or {}).items():
        if config.get(key) != want:
            raise UserError(f"{_join(str(folder), META)}: config.{key}: is {config.get(key)!r}, expected {want!r}")
    fs, path = fsspec.core.url_to_fs(str(folder))
    try:
        data = fs.cat_file(_join(path, WEIGHTS))
    except FileNotFoundError:
        raise UserError(f"{where}: missing (checkpoint weights)") from None
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
        else:
            twin = DigitalTwin(config["arch"], tuple(config["frame_shape"]), config["neurons"],
                               config["encoder_dim"], config["hidden_dim"])
        twin.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{where}: weights do not fit config ({first})") from None
    return twin, meta
