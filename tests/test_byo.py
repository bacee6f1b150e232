"""Bring your own twin: a torch twin defined here, outside the zoo, through train (import), extract, analyze,
query and report, in stores shared with a zoo model."""
import copy
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import actstore
from actstore.catalog import load_catalog
from actstore.errors import UserError
from actstore.models.checkpoint import read_meta
from actstore.store.analysis import open_analysis
from actstore.store.paths import Layout
from actstore.pipeline import run_all
from actstore.train.zoo import train_zoo
from byo_twin import build
from extract_setup import REPO

ENTRY = {"builder": "byo_twin:build", "checkpoint": "brought/byo-{seed}.pt", "seeds": [0], "frame_shape": [60, 80],
         "encoder": "frames", "gru": "rnn", "layers": {"early": "frames.1", "middle": "frames.3", "late": "frames.5"}}


def byo_catalog(folder, entry=ENTRY):
    raw = yaml.safe_load((REPO / "catalog.yaml").read_text())
    profile = copy.deepcopy(raw["profiles"]["smoke"])
    profile["zoo"]["archs"] = ["xu_cnn"]
    profile["byo"] = {"mytwin": entry}
    raw["profiles"]["byo"] = profile
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "catalog.yaml"
    path.write_text(yaml.safe_dump(raw))
    (folder / "recipes").symlink_to(REPO / "recipes")
    return load_catalog(path, "byo")


@pytest.fixture(scope="module")
def brought(tmp_path_factory):
    folder = tmp_path_factory.mktemp("byo")
    root = str(folder / "root")
    torch.manual_seed(3)
    twin = build()
    (folder / "root" / "brought").mkdir(parents=True)
    torch.save(twin.state_dict(), folder / "root" / "brought" / "byo-0.pt")
    catalog = byo_catalog(folder)
    lines = run_all(catalog, root)
    return catalog, root, twin.eval(), lines


def test_a_brought_twin_is_imported_once_and_extracted_beside_the_zoo(brought):
    catalog, root, twin, lines = brought
    assert catalog.models == [("xu_cnn", 0), ("mytwin", 0)]
    meta = read_meta(Layout(root).model("mytwin", 0))
    source = Path(root) / "brought" / "byo-0.pt"
    assert meta["provenance"]["byo"]["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert meta["config"]["builder"] == "byo_twin:build" and meta["config"]["encoder_dim"] == 16
    assert train_zoo(catalog, root)[1].startswith("mytwin-s0: up to date (brought")
    ds = actstore.open_store("tuning_grid", root)
    assert list(ds["arch"].values) == ["xu_cnn", "mytwin"] and ds["complete"].values.all()
    frames = torch.from_numpy(ds["stimulus"].values.reshape(-1, 1, *ds["stimulus"].shape[-2:]))
    with torch.no_grad():
        encoder = twin.frames(frames).numpy()
        early = twin.frames[:2](frames)
    stored = ds["encoder"].sel(arch="mytwin", seed=0).values.reshape(len(frames), -1)
    np.testing.assert_allclose(stored, encoder, rtol=1e-5, atol=1e-6)
    h, w = early.shape[-2:]
    width = int(ds["early_width"].sel(arch="mytwin"))
    assert width == 8 and str(ds["early_module"].sel(arch="mytwin").values) == "frames.1"
    layer = ds["early"].sel(arch="mytwin", seed=0).values.reshape(len(frames), -1)
    np.testing.assert_allclose(layer[:, :width], early[:, :, h // 2, w // 2].numpy(), rtol=1e-5, atol=1e-6)
    assert np.isnan(layer[:, width:]).all()  # padding up to xu_cnn's 128 channels


def test_assays_query_and_report_cover_the_brought_twin(brought):
    catalog, root, _, lines = brought
    rows = actstore.query("arch == 'mytwin' & space == 'early'", root)
    assert len(rows) == 8 and rows["depth"].tolist() == pytest.approx([1 / 3] * 8, abs=1e-4)  # 1 of its 3 convolutions
    probes = open_analysis(root, "probes")
    assert np.isfinite(probes["orientation_id_by_space"].sel(arch="mytwin").values).all()
    assert np.isfinite(probes["rdk_auc"].sel(arch="mytwin").values).all()
    geometry = open_analysis(root, "geometry")
    assert np.isfinite(geometry["alpha_gru"].sel(arch="mytwin").values).all()
    assert any(line.startswith("[report ]") and "index.html" in line for line in lines)


def test_a_state_dict_of_another_twin_is_one_clear_line(tmp_path):
    catalog = byo_catalog(tmp_path)
    (tmp_path / "root" / "brought").mkdir(parents=True)
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "root" / "brought" / "byo-0.pt")
    with pytest.raises(UserError, match="byo.mytwin.checkpoint: not a state_dict of byo_twin:build"):
        train_zoo(catalog, str(tmp_path / "root"), archs=["mytwin"])
    with pytest.raises(UserError, match="byo.mytwin.builder: cannot import 'byo_twin:missing'"):
        train_zoo(byo_catalog(tmp_path / "b", {**ENTRY, "builder": "byo_twin:missing"}), str(tmp_path / "root"),
                  archs=["mytwin"])
