"""Layer spaces: module outputs captured by forward hooks in the extraction's single pass, reduced per channel."""
import numpy as np
import pytest
import torch

from actstore.catalog import load_catalog
from actstore.errors import UserError
from actstore.features import SPACES, LayerSpace, batched_features, layer_info, layer_spaces, reduce_map
from actstore.models import build_twin

DEMO = load_catalog(profile="demo")


def test_reduce_rules_pick_the_centre_or_average_each_channel():
    x = torch.arange(2 * 3 * 3 * 4, dtype=torch.float32).reshape(2, 3, 3, 4)
    assert torch.equal(reduce_map(x, "centre"), x[:, :, 1, 2])  # (h // 2, w // 2) of a 3x4 map
    assert torch.allclose(reduce_map(x, "mean"), x.flatten(2).mean(-1))
    assert torch.equal(reduce_map(x[:, :, 0, 0], "centre"), x[:, :, 0, 0])  # already one value per channel


def test_hooked_layer_equals_the_module_applied_by_hand():
    twin = build_twin("resnet18", (30, 40), {"m": 4}, encoder_dim=16, hidden_dim=8, seed=0).eval()
    space = LayerSpace("middle", "middle_unit", "frame", modules={"resnet18": "encoder.layer2"}, widths={"resnet18": 128})
    frames = np.random.default_rng(0).random((6, 3, 30, 40), dtype=np.float32)
    out = np.concatenate([f["middle"] for _, _, f in batched_features(twin, frames, 4, "cpu", 5, (*SPACES, space))])
    e = twin.encoder
    with torch.no_grad():
        x = torch.from_numpy(frames[:, -1:])  # the last frame of each stimulus
        x = e.layer2(e.layer1(e.maxpool(e.relu(e.bn1(e.conv1(x))))))
    want = x[:, :, x.shape[2] // 2, x.shape[3] // 2].numpy()
    assert out.shape == (6, 1, 128)
    np.testing.assert_allclose(out[:, 0], want, rtol=1e-5, atol=1e-6)
    assert not twin.encoder.layer2._forward_hooks  # hooks are removed after the pass


def test_layer_info_reads_width_and_relative_depth_from_the_model():
    twin = build_twin("resnet18", (30, 40), {"m": 1}, encoder_dim=16, hidden_dim=8)
    info = layer_info(twin, (30, 40), ["encoder.layer1", "encoder.layer3"])
    # ResNet-18 has 20 convolutions (17 + 3 downsampling); layer1 ends after 5 of them, layer3 after 15
    assert info == {"encoder.layer1": {"width": 64, "depth": 0.25}, "encoder.layer3": {"width": 256, "depth": 0.75}}


def test_default_catalog_has_three_depths_per_arch_ordered_from_stem_to_output():
    cfg = DEMO["spaces"]
    assert list(cfg["layers"]) == ["early", "middle", "late"]
    for arch in DEMO["zoo"]["archs"]:
        twin = build_twin(arch, (30, 40), {"m": 1}, encoder_dim=128, hidden_dim=512)
        depths = [d["depth"] for d in layer_info(twin, (30, 40), [cfg["layers"][s][arch] for s in cfg["layers"]]).values()]
        assert 0 < depths[0] < depths[1] < depths[2] <= 1, (arch, depths)
    assert {s.name for s in layer_spaces(DEMO, "tuning_grid", (30, 40))} == {"early", "middle", "late"}
    assert layer_spaces(DEMO, "contrast_task", (30, 40)) == ()  # dynamic probes read the GRU only


def test_a_path_that_is_not_a_module_is_one_clear_line():
    twin = build_twin("alexnet", (30, 40), {"m": 1}, encoder_dim=8, hidden_dim=8, seed=0)
    space = LayerSpace("early", "early_unit", "frame", modules={"alexnet": "encoder.layer1"}, widths={"alexnet": 1})
    with pytest.raises(UserError, match="'encoder.layer1' is not a module of the alexnet twin"):
        list(batched_features(twin, np.zeros((1, 1, 30, 40), np.float32), 1, "cpu", 5, (space,)))


def test_median_se_is_the_bootstrap_of_the_median():
    from actstore.analysis.stats import median_and_se

    x = np.random.default_rng(1).normal(size=400)
    median, _, n = median_and_se(np.concatenate([x, [np.nan] * 7]))
    assert n == 400 and median == np.median(x)
    # the SE of a normal sample's median is sqrt(pi / 2) sd / sqrt(n) = 0.0627 (n = 400); the bootstrap estimate
    # varies from sample to sample (it depends on the data near the median), so it is checked on average
    ses = [median_and_se(np.random.default_rng(k).normal(size=400))[1] for k in range(30)]
    assert np.mean(ses) == pytest.approx(np.sqrt(np.pi / 2) / np.sqrt(400), rel=0.1)
    assert median_and_se(np.array([2.0, np.nan]))[1:] == (pytest.approx(np.nan, nan_ok=True), 1)


def test_every_assay_reads_the_layer_spaces_of_the_smoke_zoo(smoke_root):
    """Layer spaces through the whole main job: tuning, the orientation probe and geometry per space."""
    import xarray as xr

    probes = xr.open_zarr(f"{smoke_root}/analysis/probes.zarr")
    tuning = xr.open_zarr(f"{smoke_root}/analysis/tuning.zarr")
    geometry = xr.open_zarr(f"{smoke_root}/analysis/geometry.zarr")
    assert list(probes["space"].values) == ["encoder", "early", "middle", "late"]
    by_space = probes["orientation_id_by_space"]
    np.testing.assert_array_equal(by_space.sel(space="encoder").values, probes["orientation_id"].values)
    assert np.isfinite(by_space.values).all() and (probes["orientation_ood_by_space_se"] > 0).all()
    assert list(tuning["space"].values) == ["encoder", "early", "middle", "late"]
    width = tuning["width"]
    for space in ("early", "middle", "late"):
        rank = geometry[f"effective_rank_{space}"]
        assert (rank > 0).all() and (rank <= width.sel(space=space)).all()  # only the arch's own units
        assert np.isfinite(geometry[f"alpha_{space}"].values).any()
