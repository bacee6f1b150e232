"""Where everything lives under a root (a folder or an fsspec URL); the one place that spells the paths."""
from __future__ import annotations

from dataclasses import dataclass

from actstore.store.root import join

WEIGHTS, META, RESUME = "model.pt", "model.json", "resume.pt"  # the files of a model folder
ZARR_MARKER, REPORT_MARKER = "zarr.json", "index.html"  # written last: a folder without it is not there yet


@dataclass(frozen=True)
class Layout:
    """Every path under `root`: checkpoints, activation stores, analysis stores, the report, the data manifest."""

    root: str

    def model(self, arch: str, seed: int) -> str:
        """`<root>/models/<arch>-s<seed>`: one checkpoint folder (model.pt, model.json, resume.pt) per zoo model."""
        return join(self.root, "models", f"{arch}-s{seed}")

    def store(self, name: str) -> str:
        """`<root>/<name>.zarr`: the activation store of stimulus set `name`."""
        return join(self.root, f"{name}.zarr")

    def analysis(self, name: str) -> str:
        """`<root>/analysis/<name>.zarr`: one analysis output."""
        return join(self.root, "analysis", f"{name}.zarr")

    @property
    def summary_csv(self) -> str:
        return join(self.root, "analysis", "summary.csv")

    @property
    def report(self) -> str:
        return join(self.root, "report")

    def data(self, path: str) -> str:
        """A catalog's data.path: absolute paths and URLs as they are, anything else under the root."""
        return path if path.startswith("/") or "://" in path else join(self.root, path)

    def manifest(self, source: str) -> str:
        """`<root>/data/<source>.manifest.json`: the manifest of real (never written to) recordings."""
        return join(self.root, "data", f"{source}.manifest.json")
