"""Where everything lives under a root (a folder or an fsspec URL); the one place that spells the paths."""
from __future__ import annotations

from dataclasses import dataclass

from actstore.store.root import join

META, RESUME = "model.json", "resume.pt"  # a model folder's metadata (its commit marker) and training state


def weights_file(sha256: str) -> str:
    """A checkpoint's weights file, named by its content: a new checkpoint never overwrites the file an older
    model.json names, so model.json can switch from one to the other in a single atomic write."""
    return f"model.{sha256[:16]}.pt"


ZARR_MARKER, REPORT_MARKER = "zarr.json", "index.html"  # written last: a folder without it is not there yet


@dataclass(frozen=True)
class Layout:
    """Every path under `root`: checkpoints, activation stores, analysis stores, the report, the data manifest."""

    root: str

    def model(self, arch: str, seed: int) -> str:
        """`<root>/models/<arch>-s<seed>`: one checkpoint folder (model.<sha>.pt, model.json, resume.pt) per zoo
        model."""
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
