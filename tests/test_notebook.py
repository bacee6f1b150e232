"""examples/explore.ipynb runs headless, start to finish, against the smoke root (ACTSTORE_ROOT)."""
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "explore.ipynb"


def test_explore_notebook_executes_against_the_smoke_root(smoke_root, tmp_path, monkeypatch):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("ACTSTORE_ROOT", smoke_root)
    NotebookClient(nb, kernel_name="python3", timeout=180, resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"root: {smoke_root}" in text and "orientation-selective" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2  # the tuning curves and the comparison
