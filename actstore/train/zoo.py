"""The zoo's plan: what each model's training depends on, whether its checkpoint is up to date, and
`train_zoo`, which trains only the stale ones. Nothing here imports torch: an up-to-date zoo is
decided from checkpoint metadata alone, and train/loop.py loads only when a model has work.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import actstore
from actstore.assays.base import reconcile
from actstore.assays.neural import SCORING_VERSION, Neural
from actstore.catalog import Catalog, canonical_hash
from actstore.cluster import JobFailed, run_tasks, where_running
from actstore.errors import UserError
from actstore.models.checkpoint import read_meta
from actstore.status import ceiling_text
from actstore.store.paths import META, Layout
from actstore.store.root import filesystem, join


@dataclass
class Spec:
    """Everything one model's training depends on, and the key that decides whether it is up to date."""

    arch: str
    seed: int
    train: dict[str, Any]
    evaluation: dict[str, Any]
    encoder_dim: int
    hidden_dim: int
    context: int
    data_fingerprint: str
    config: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        train = {k: v for k, v in self.train.items() if k != "device"}
        self.config = {"arch": self.arch, "seed": self.seed, "train": train, "encoder_dim": self.encoder_dim,
                       "hidden_dim": self.hidden_dim, "context_frames": self.context}

    @property
    def key(self) -> dict[str, str]:
        """Inputs of the training: a checkpoint with the same key is up to date."""
        return {"config_hash": canonical_hash(self.config), "data_fingerprint": self.data_fingerprint,
                "code_version": actstore.__version__}

    @property
    def scoring(self) -> dict[str, Any]:
        """What the test scores depend on besides the weights: a checkpoint scored otherwise is re-scored."""
        return {**self.evaluation, "scoring_version": SCORING_VERSION}

    @property
    def name(self) -> str:
        return f"{self.arch}-s{self.seed}"


def spec_for(catalog: Catalog, arch: str, seed: int, fingerprint: str) -> Spec:
    """The Spec of (arch, seed) under this catalog; the data (neurons, frame shape) is covered by `fingerprint`."""
    return Spec(arch, seed, catalog.train_config(arch), catalog["evaluation"], catalog["zoo"]["encoder_dim"],
                catalog["zoo"]["hidden_dim"], catalog["data"]["context_frames"], fingerprint)


def model_status(folder: str, spec: Spec) -> tuple[str, dict[str, Any] | None]:
    """('up to date' | 're-score' | 'train', model.json): re-score when only the scoring (settings, metric) changed."""
    fs, path = filesystem(join(folder, META))
    if not fs.exists(path):
        return "train", None
    try:
        meta = read_meta(folder)
    except UserError:  # unreadable metadata: the checkpoint is rebuilt
        return "train", None
    prov = meta.get("provenance", {})
    if not all(prov.get(k) == v for k, v in spec.key.items()) or "neural" not in prov:
        return "train", meta
    return ("up to date" if prov.get("evaluation") == spec.scoring else "re-score"), meta


def result_line(name: str, result: dict[str, Any]) -> str:
    """One log line: what happened, epochs, wall time, and test r (with fraction of ceiling where known)."""
    if result["status"] == "up to date":
        return f"{name}: up to date"
    parts = []
    for mouse, s in result["neural"].items():
        parts.append(f"{mouse} r={s['r_neuron']:.3f}{ceiling_text(s['ceiling_fraction'])}")
    return (f"{name}: {result['status']} ({result['epochs']} epochs, best {result['best_epoch']}, "
            f"{result['wall_time_s']:.0f} s on {result['device']}); test " + ", ".join(parts))


def train_zoo(catalog: Catalog, root: str, archs: list[str] | None = None, seeds: list[int] | None = None,
              device: str | None = None, progress: bool = True,
              log: Callable[[str], None] | None = None, client: Any = None,
              resources: dict[str, float] | None = None) -> list[str]:
    """Train every (selected) zoo model that is missing or stale, then rewrite analysis/neural.zarr.

    With a distributed `client`, each model to train is one task on the cluster (asking for `resources` per task,
    e.g. {"GPU": 1}), run in parallel, retried elsewhere (resuming from resume.pt) when its worker is lost; a
    failing model does not stop the others, and JobFailed names each failed one after the rest are done.
    Returns one line per model and one for neural.zarr; `log` also receives each line as it is done.
    """
    from actstore.data import data_fingerprint, load_sessions

    models = catalog.select(archs, seeds)
    fingerprint = data_fingerprint(catalog, root) if any(a not in catalog["byo"] for a, _ in models) else ""
    sessions = None
    lines = []

    def emit(line: str) -> None:
        lines.append(line)
        if log is not None:
            log(line)

    todo = []
    for arch, seed in models:
        folder = Layout(root).model(arch, seed)
        if arch in catalog["byo"]:  # brought, not trained: its weights are imported into a checkpoint once
            emit(byo_line(catalog, root, arch, seed, folder))
            continue
        spec = spec_for(catalog, arch, seed, fingerprint)
        if model_status(folder, spec)[0] == "up to date":
            emit(result_line(spec.name, {"status": "up to date"}))
        elif client is not None:
            todo.append((arch, seed))
        else:  # work to do: only now torch and the recordings load
            import torch

            from actstore.features import resolve_device
            from actstore.train.loop import train_model

            sessions = sessions if sessions is not None else load_sessions(catalog, root)
            dev = torch.device(resolve_device(device or catalog["train"]["device"]))
            emit(result_line(spec.name, train_model(spec, sessions, folder, dev, progress)))
    tasks = {f"{a}-s{s}": (train_task, (catalog, root, a, s, fingerprint, device)) for a, s in todo}
    failed = run_tasks(client, root, "train", tasks, resources, emit)[1] if todo else []
    for line in reconcile(Neural.from_catalog(catalog), catalog, root):
        emit(line)
    if failed:
        raise JobFailed(f"{len(failed)} of {len(models)} models failed: " + "; ".join(failed))
    return lines


def train_task(catalog: Catalog, root: str, arch: str, seed: int, fingerprint: str,
               device: str | None) -> dict[str, Any]:
    """One model's training as a cluster task: its line, checkpoint sha256, and when and where it ran."""
    import time

    placed = where_running()
    import torch

    from actstore.data import load_sessions
    from actstore.features import resolve_device
    from actstore.train.loop import train_model

    spec = spec_for(catalog, arch, seed, fingerprint)
    dev = torch.device(resolve_device(device or catalog["train"]["device"]))
    result = train_model(spec, load_sessions(catalog, root), Layout(root).model(arch, seed), dev, progress=False)
    return {"line": result_line(spec.name, result), "sha256": result.get("sha256"), **placed, "end": time.time(),
            "resumed_from_epoch": result.get("resumed_from_epoch", 0)}


def byo_source(catalog: Catalog, root: str, name: str, seed: int) -> str:
    """Where a bring-your-own twin's state_dict lies: `byo.<name>.checkpoint` with {seed}, relative to the root."""
    path = catalog["byo"][name]["checkpoint"].format(seed=seed)
    return path if path.startswith("/") or "://" in path else join(root, path)


def byo_line(catalog: Catalog, root: str, name: str, seed: int, folder: str) -> str:
    """Import a bring-your-own twin's weights into its checkpoint folder unless its checkpoint already holds these
    bytes under this catalog entry (checked from metadata and the file's sha256, without torch); one line."""
    import hashlib

    source = byo_source(catalog, root, name, seed)
    fs, path = filesystem(source)
    if not fs.exists(path):
        raise UserError(f"byo.{name}.checkpoint: {source}: not found; expected the twin's state_dict file")
    data = fs.cat_file(path)
    digest = hashlib.sha256(data).hexdigest()
    entry = catalog["byo"][name]
    mfs, meta_path = filesystem(join(folder, META))
    try:
        byo = read_meta(folder).get("provenance", {}).get("byo", {}) if mfs.exists(meta_path) else {}
    except UserError:  # unreadable or of an older checkpoint format: imported again
        byo = {}
    if byo.get("source_sha256") == digest and byo.get("entry") == entry:
        return f"{name}-s{seed}: up to date (brought: {source})"
    from actstore.models.external import import_weights

    import_weights(name, entry, data, folder, {"source": source, "source_sha256": digest, "entry": entry},
                   {k: int(catalog["zoo"][k]) for k in ("encoder_dim", "hidden_dim")})
    return f"{name}-s{seed}: imported (brought: {source})"
