"""Training the twins: clip dataset, loss going down, deterministic resume (in-process and after SIGKILL), up-to-date skips.

Sessions here are tiny linear-nonlinear Poisson populations driven by random smooth frames
(real arrays); twins use the smoke profile's sizes (encoder_dim 16, hidden_dim 32).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from actstore.catalog import load_catalog
from actstore.data.session import Session, segment_lengths, split_labels
from actstore.models import build_twin, load_checkpoint
from actstore.train import loop, zoo
from actstore.train.dataset import consecutive_runs, epoch_batches, gather, run_starts, select_chunks, whole_chunks, window_rates
from actstore.train.evaluate import chunk_pieces, predict, validation_scores, validation_targets
from actstore.train.metrics import box_smoothed, chunked_neuron_r, pieces_neuron_r, prediction_r, smoothed_neuron_r

SHAPE = (30, 40)
CONTEXT = 5


def lnp_sessions(seed: int = 0, bins: int = 800, neurons: tuple[int, ...] = (6, 4)) -> dict[str, Session]:
    """Mice whose neurons fire Poisson(exp(b + g * <filter, frame at t-1>)): smooth random frames, smooth filters."""
    rng = np.random.default_rng(seed)
    out = {}
    for m, n in enumerate(neurons):
        coarse = rng.random((bins, SHAPE[0] // 5, SHAPE[1] // 5)).astype(np.float32)
        frames = np.kron(coarse, np.ones((1, 5, 5), np.float32))
        filters = np.kron(rng.standard_normal((n, SHAPE[0] // 5, SHAPE[1] // 5)), np.ones((1, 5, 5)))
        drive = np.einsum("thw,nhw->tn", frames - 0.5, filters) / np.sqrt(frames[0].size)
        drive = np.vstack([np.zeros((1, n)), drive[:-1]])  # frame t-1 drives bin t
        rates = np.exp(-0.5 + 2.0 * drive / drive.std()).astype(np.float32)
        train, test = segment_lengths(bins, 2, 0.7)  # test parts of 120: one whole 100-sample chunk each
        block, part = split_labels(train, test, 0.2)
        out[f"mouse{m}"] = Session(name=f"mouse{m}", frames=frames, counts=rng.poisson(rates).astype(np.float32),
                                   bin_s=0.048, neuron_ids=np.arange(n), block=block, part=part,
                                   truth={"rates": rates})
    return out


def smoke_spec(max_epochs: int = 3, max_samples: int = 200, **train) -> zoo.Spec:
    """The smoke profile's training settings for alexnet, seed 0, with a few overrides."""
    cat = load_catalog(profile="smoke")
    cfg = {**cat["train"], "max_epochs": max_epochs, **train}
    return zoo.Spec("alexnet", 0, cfg, dict(cat["evaluation"], max_samples=max_samples),
                     cat["zoo"]["encoder_dim"], cat["zoo"]["hidden_dim"], CONTEXT, "fingerprint-of-lnp-sessions")


@pytest.fixture(scope="module")
def sessions():
    return lnp_sessions()


@pytest.fixture(scope="module")
def uninterrupted(sessions, tmp_path_factory):
    """A 3-epoch training run that nothing interrupts: its result and final weights."""
    folder = str(tmp_path_factory.mktemp("whole") / "alexnet-s0")
    result = loop.train_model(smoke_spec(), sessions, folder, torch.device("cpu"), progress=False)
    twin, meta = load_checkpoint(folder)
    return result, twin.state_dict(), meta


# ------------------------------------------------------------------ the clip dataset

def test_consecutive_runs_and_run_starts():
    t = np.array([5, 6, 7, 8, 9, 20, 21, 22, 40])
    assert [r.tolist() for r in consecutive_runs(t, 3)] == [[5, 6, 7], [8, 9], [20, 21, 22], [40]]
    assert run_starts(t, 2).tolist() == [5, 7, 20]
    assert run_starts(t, 2, offset=1).tolist() == [6, 8, 21]


def test_select_chunks_keeps_whole_evenly_spread_chunks():
    t = np.arange(1000)
    picked = select_chunks(t, 100, 300)
    assert picked.tolist() == [*range(0, 100), *range(400, 500), *range(900, 1000)] or \
        picked.tolist() == [*range(0, 100), *range(500, 600), *range(900, 1000)]
    assert select_chunks(t, 100, 0) is t
    short = np.arange(50)                                   # no stretch holds a whole chunk: all of it, no error
    assert select_chunks(short, 100, 20) is short


def test_scored_chunks_never_straddle_two_segments():
    """Two test segments of 250 and 150 bins: chunks of 100 lie inside one segment, each tail is dropped."""
    t = np.concatenate([np.arange(0, 250), np.arange(1000, 1150)])
    every = whole_chunks(t, 100)
    np.testing.assert_array_equal(every, np.concatenate([np.arange(0, 200), np.arange(1000, 1100)]))
    np.testing.assert_array_equal(select_chunks(t, 100, 200), np.concatenate([np.arange(0, 100), np.arange(1000, 1100)]))
    assert all(np.ptp(c) == 99 for c in every.reshape(-1, 100))


def test_smoothed_r_boxes_each_piece_then_correlates_the_whole_test_set():
    """Hand-computed 3-bin box (zeros beyond each piece's ends) over pieces of 3 and 4 samples, then one r."""
    pred = np.array([[3.0], [0.0], [3.0], [0.0], [6.0], [0.0], [3.0]])
    obs = np.array([[0.0], [3.0], [0.0], [3.0], [0.0], [3.0], [0.0]])
    # piece 1: (3+0)/3, (3+0+3)/3, (0+3)/3; piece 2: (0+6)/3, (0+6+0)/3, (6+0+3)/3, (0+3)/3
    smooth_pred = np.array([1.0, 2.0, 1.0, 2.0, 2.0, 3.0, 1.0])
    smooth_obs = np.array([1.0, 1.0, 1.0, 1.0, 2.0, 1.0, 1.0])
    expected = np.corrcoef(smooth_pred, smooth_obs)[0, 1]
    np.testing.assert_allclose(smoothed_neuron_r(pred, obs, [3, 4], bins=3), [expected], rtol=1e-12)
    with pytest.raises(ValueError):
        smoothed_neuron_r(pred, obs, [3, 3], bins=3)
    np.testing.assert_allclose(box_smoothed(np.ones((3, 1)), 41), np.full((3, 1), 3 / 41))  # shorter than the box


def test_samples_pair_five_frames_with_the_next_bin(sessions):
    s = sessions["mouse0"]
    starts = np.array([10, 300])
    frames, counts = gather(s, starts, 3, CONTEXT)
    assert frames.shape == (2, 3 + CONTEXT - 1, *SHAPE) and counts.shape == (6, s.n_neurons)
    np.testing.assert_array_equal(frames[1, 0], s.frames[300 - CONTEXT])
    np.testing.assert_array_equal(frames[1, -1], s.frames[300 + 3 - 2])
    np.testing.assert_array_equal(counts[3:], s.counts[300:303])


def test_epoch_batches_cycle_over_mice_within_optimize_blocks(sessions):
    a = epoch_batches(sessions, "optimize", 16, 4, CONTEXT, np.random.default_rng(1))
    b = epoch_batches(sessions, "optimize", 16, 4, CONTEXT, np.random.default_rng(1))
    assert [m for m, _ in a[:4]] == ["mouse0", "mouse1", "mouse0", "mouse1"]
    assert all((x == y).all() for (_, x), (_, y) in zip(a, b))
    for mouse, starts in a:
        s = sessions[mouse]
        assert len(starts) == 4
        for i in (starts[:, None] + np.arange(4)).ravel():  # every sample's frames and target in one optimize block
            assert s.part[i] == 0 and s.block[i - CONTEXT] == s.block[i]
    capped = epoch_batches(sessions, "optimize", 16, 4, CONTEXT, np.random.default_rng(1), max_batches=3)
    assert len(capped) == 3


def test_window_rates_equal_the_twin_on_each_clip(sessions):
    s = sessions["mouse0"]
    twin = build_twin("xu_cnn", SHAPE, {"mouse0": s.n_neurons}, 16, 32, seed=0).eval()
    frames, _ = gather(s, np.array([50, 200]), 4, CONTEXT)
    x = torch.from_numpy(frames)
    with torch.no_grad():
        shared = window_rates(twin, x, "mouse0", CONTEXT)
        clips = torch.stack([x[r, j:j + CONTEXT] for r in range(2) for j in range(4)]).unsqueeze(2)
        direct = twin(clips, "mouse0")
    torch.testing.assert_close(shared, direct, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ training

def test_training_lowers_validation_loss(sessions, uninterrupted):
    result, weights, meta = uninterrupted
    spec = smoke_spec()
    twin = build_twin("alexnet", SHAPE, {m: s.n_neurons for m, s in sessions.items()}, 16, 32, seed=0)
    val = validation_targets(sessions, CONTEXT, 100, spec.train["max_val_samples"])
    before, _ = validation_scores(twin, sessions, val, CONTEXT, torch.device("cpu"), 100)
    assert result["best_val_loss"] < before
    assert result["status"] == "trained" and result["epochs"] == 3
    prov = meta["provenance"]
    assert prov["config_hash"] == spec.key["config_hash"] and prov["data_fingerprint"] == spec.key["data_fingerprint"]
    assert prov["code_version"] and prov["device"] == "cpu" and prov["wall_time_s"] > 0
    assert meta["sha256"] == result["sha256"]
    for mouse, score in prov["neural"].items():
        assert -1 <= score["r_neuron"] <= 1 and 0 < score["ceiling"] <= 1 and score["n_samples"] == 200


def test_validation_r_is_the_test_score_inside_chunks(sessions):
    """Validation r is the test's per-neuron r inside chunks of consecutive samples (a stretch's short tail is a
    shorter piece, never joined to the next stretch), so a slow drift across chunks earns nothing."""
    targets = np.r_[np.arange(100, 350), np.arange(600, 700)]  # 2.5 chunks, then one chunk after a gap
    assert chunk_pieces(targets, 100) == [100, 100, 50, 100]
    twin = build_twin("alexnet", SHAPE, {m: s.n_neurons for m, s in sessions.items()}, 16, 32, seed=0)
    mouse, session = next(iter(sessions.items()))
    _, r = validation_scores(twin, {mouse: session}, {mouse: targets}, CONTEXT, torch.device("cpu"), 100)
    pred = predict(twin, session, mouse, targets, CONTEXT, torch.device("cpu"))
    obs = session.counts[targets].astype(np.float64)
    pieces = [prediction_r(pred[a:b], obs[a:b]) for a, b in ((0, 100), (100, 200), (200, 250), (250, 350))]
    assert r == pytest.approx(float(np.mean(np.nanmean(pieces, axis=0))), abs=1e-12)
    whole = np.r_[0:200, 250:350]
    assert np.allclose(pieces_neuron_r(pred[whole], obs[whole], [100] * 3), chunked_neuron_r(pred[whole], obs[whole]),
                       equal_nan=True)
    drift = np.repeat(np.arange(3.0), 100)[:, None] + 0 * obs[whole]  # constant inside each chunk
    obs_drift = obs[whole] + 10 * drift
    assert (prediction_r(drift, obs_drift) > 0.1).all()  # a plain r rewards the drift
    assert np.nanmax(np.abs(chunked_neuron_r(drift, obs_drift, 100))) == 0  # the chunked r does not


@pytest.mark.parametrize("arch", ["xu_cnn", "efficientnet_b0"])  # dropout in every block; stochastic depth
def test_dropout_off_makes_training_mode_deterministic_and_keeps_batch_norm_training(arch):
    twin = build_twin(arch, SHAPE, {"mouse0": 4}, 16, 32, seed=0)
    clips = torch.rand(4, CONTEXT, 1, *SHAPE, generator=torch.Generator().manual_seed(0))
    twin.train()
    with torch.no_grad():
        assert not torch.equal(twin(clips, "mouse0"), twin(clips, "mouse0"))  # dropout draws anew
        loop.dropout_off(twin)
        torch.testing.assert_close(twin(clips, "mouse0"), twin(clips, "mouse0"), rtol=0, atol=0)
    norms = [m for m in twin.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.training for m in norms)


def test_killed_then_resumed_training_ends_with_the_same_weights(sessions, uninterrupted, tmp_path, monkeypatch):
    class Killed(Exception):
        pass

    real_save = loop._save_resume

    def save_then_die(folder, state):  # the process dies right after epoch 2's state reached disk
        real_save(folder, state)
        if state["epoch"] == 2:
            raise Killed

    folder = str(tmp_path / "alexnet-s0")
    monkeypatch.setattr(loop, "_save_resume", save_then_die)
    with pytest.raises(Killed):
        loop.train_model(smoke_spec(), sessions, folder, torch.device("cpu"), progress=False)
    monkeypatch.setattr(loop, "_save_resume", real_save)
    assert (tmp_path / "alexnet-s0" / loop.RESUME).exists() and not (tmp_path / "alexnet-s0" / "model.json").exists()
    result = loop.train_model(smoke_spec(), sessions, folder, torch.device("cpu"), progress=False)
    assert result["resumed_from_epoch"] == 2 and result["epochs"] == 3
    assert result["history"] == uninterrupted[0]["history"]
    twin, _ = load_checkpoint(folder)
    for name, tensor in twin.state_dict().items():
        assert torch.equal(tensor, uninterrupted[1][name]), name
    assert not (tmp_path / "alexnet-s0" / loop.RESUME).exists()


def test_sigkilled_subprocess_resumes_from_its_last_epoch(sessions, uninterrupted, tmp_path):
    folder = tmp_path / "alexnet-s0"
    script = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_train import lnp_sessions, smoke_spec
        from actstore.train import loop
        loop.train_model(smoke_spec(), lnp_sessions(), {str(folder)!r}, torch.device("cpu"), progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 120
    while not (folder / loop.RESUME).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (folder / "model.json").exists(), "the subprocess finished before it was killed"
    result = loop.train_model(smoke_spec(), sessions, str(folder), torch.device("cpu"), progress=False)
    assert 1 <= result["resumed_from_epoch"] < 3 and result["epochs"] == 3
    twin, _ = load_checkpoint(str(folder))
    for name, tensor in twin.state_dict().items():
        assert torch.equal(tensor, uninterrupted[1][name]), name


def test_up_to_date_model_is_skipped_and_changes_retrain_or_rescore(sessions, uninterrupted, tmp_path, monkeypatch):
    folder = str(tmp_path / "alexnet-s0")
    spec = smoke_spec(max_epochs=1)
    first = loop.train_model(spec, sessions, folder, torch.device("cpu"), progress=False)
    again = loop.train_model(spec, sessions, folder, torch.device("cpu"), progress=False)
    assert again["status"] == "up to date" and again["sha256"] == first["sha256"]
    rescored = loop.train_model(smoke_spec(max_epochs=1, max_samples=100), sessions, folder, torch.device("cpu"), progress=False)
    assert rescored["status"] == "re-scored" and rescored["sha256"] == first["sha256"]
    assert all(s["n_samples"] == 100 for s in rescored["neural"].values())
    monkeypatch.setattr(zoo, "SCORING_VERSION", zoo.SCORING_VERSION + 1)  # the metrics changed
    new_metric = loop.train_model(smoke_spec(max_epochs=1, max_samples=100), sessions, folder, torch.device("cpu"),
                                  progress=False)
    assert new_metric["status"] == "re-scored" and new_metric["sha256"] == first["sha256"]
    monkeypatch.undo()
    changed = loop.train_model(smoke_spec(max_epochs=1, l1=0.5), sessions, folder, torch.device("cpu"), progress=False)
    assert changed["status"] == "trained" and changed["config_hash"] != first["config_hash"]


def test_spec_takes_its_archs_train_overrides(tmp_path):
    import yaml

    raw = yaml.safe_load((Path(__file__).resolve().parent.parent / "catalog.yaml").read_text())
    raw["profiles"]["smoke"]["train_overrides"] = {"xu_cnn": {"max_epochs": 48, "run_length": 8}}
    (tmp_path / "catalog.yaml").write_text(yaml.safe_dump(raw))
    cat = load_catalog(tmp_path / "catalog.yaml", "smoke")
    xu, alex = (zoo.spec_for(cat, arch, 0, "fingerprint") for arch in ("xu_cnn", "alexnet"))
    assert xu.train == cat.train_config("xu_cnn") != cat["train"] == alex.train
    plain = zoo.Spec("xu_cnn", 0, cat["train"], cat["evaluation"], xu.encoder_dim, xu.hidden_dim, xu.context,
                      "fingerprint")
    assert xu.key["config_hash"] != plain.key["config_hash"]


# ------------------------------------------------------------------ the zoo on real (synthetic) data

def test_train_zoo_scores_every_model_into_neural_zarr(smoke_catalog, smoke_root):
    import xarray as xr

    from actstore.models.checkpoint import read_meta
    from actstore.status import status_lines
    from actstore.train import train_zoo

    ds = xr.open_zarr(f"{smoke_root}/analysis/neural.zarr")
    assert dict(ds.sizes) == {"arch": 2, "seed": 1, "mouse": 3, "neuron": int(ds["recorded_neurons"].max())}
    assert list(ds["mouse"].values) == smoke_catalog["data"]["sessions"] and bool(ds["complete"].all())
    np.testing.assert_allclose(ds["neural_r"], ds["r_neuron"].mean("mouse"))
    np.testing.assert_allclose(ds["ceiling_fraction"], ds["r_neuron"] / ds["ceiling"])
    assert bool((ds["ceiling"] > 0).all())  # the synthetic mouse has a noise ceiling
    assert bool(np.isfinite(ds["xu_smoothed_r"]).all())  # the published pipeline's score, beside the chunked r
    np.testing.assert_allclose(ds["xu_smoothed_neural_r"], ds["xu_smoothed_r"].mean("mouse"))
    for arch, seed in smoke_catalog.models:
        prov = read_meta(f"{smoke_root}/models/{arch}-s{seed}")["provenance"]
        assert ds["r_neuron"].sel(arch=arch, seed=seed).values.tolist() == \
            [prov["neural"][m]["r_neuron"] for m in smoke_catalog["data"]["sessions"]]
        assert {"data_fingerprint", "config_hash", "code_version", "device", "epochs", "wall_time_s"} <= set(prov)
        for k, m in enumerate(smoke_catalog["data"]["sessions"]):  # the error profile: each neuron's r, mean = r_neuron
            per_neuron = ds["neuron_r"].sel(arch=arch, seed=seed, mouse=m).values[:int(ds["recorded_neurons"][k])]
            np.testing.assert_allclose(per_neuron, prov["neural"][m]["neuron_r"])
            assert np.nanmean(per_neuron) == pytest.approx(prov["neural"][m]["r_neuron"])
    lines = train_zoo(smoke_catalog, smoke_root, progress=False)
    assert lines == ["xu_cnn-s0: up to date", "alexnet-s0: up to date", "neural: up to date"]
    model_lines = [ln for ln in status_lines(smoke_catalog, smoke_root) if ln.startswith("  model")]
    assert len(model_lines) == 2 and all("test r" in ln and "of ceiling" in ln and "smoothed r" in ln
                                         for ln in model_lines)


def test_train_zoo_rejects_models_outside_the_zoo(smoke_catalog, tmp_path):
    from actstore.errors import UserError
    from actstore.train import train_zoo

    with pytest.raises(UserError, match=r"--arch resnet18: not in the zoo of profile smoke .*; valid: xu_cnn, alexnet"):
        train_zoo(smoke_catalog, str(tmp_path), archs=["resnet18"])
    with pytest.raises(UserError, match=r"--seed 7: .*valid: 0"):
        train_zoo(smoke_catalog, str(tmp_path), seeds=[7])


def test_data_dependent_init_restores_input_driven_variation(sessions):
    from actstore.train.datainit import data_dependent_init

    s = sessions["mouse0"]
    frames = torch.from_numpy(s.frames[:64]).unsqueeze(1)
    clips = torch.from_numpy(s.frames[100:150]).reshape(10, 5, 1, *SHAPE)
    fresh = build_twin("alexnet", SHAPE, {"mouse0": s.n_neurons}, 16, 32, seed=0).eval()
    init = build_twin("alexnet", SHAPE, {"mouse0": s.n_neurons}, 16, 32, seed=0)
    mean = s.counts.mean(axis=0)
    data_dependent_init(init, frames, {"mouse0": mean})
    init.eval()
    with torch.no_grad():
        out = init.encoder(frames)
        torch.testing.assert_close(out.mean(0), torch.zeros(16), atol=1e-4, rtol=0)  # the head has a bias
        torch.testing.assert_close(out.std(0), torch.ones(16), atol=1e-3, rtol=0)
        assert init.encode(clips).std(0).mean() > 100 * fresh.encode(clips).std(0).mean()
        rates = torch.nn.functional.softplus(init.readouts["mouse0"].bias)
    np.testing.assert_allclose(rates.numpy(), mean, rtol=1e-4)


def test_fit_readout_recovers_a_known_linear_readout():
    """Counts drawn from softplus(b + W h) with known W: the ridge readout's rates track the true ones on new states."""
    from actstore.train.datainit import fit_readout

    rng = np.random.default_rng(0)
    twin = build_twin("xu_cnn", SHAPE, {"mouse0": 20}, 16, 32, seed=0)
    w, b = rng.normal(0, 0.15, (20, 32)), rng.uniform(-1.5, 0.5, 20)
    h, h_val, h_new = (torch.as_tensor(rng.normal(size=(n, 32)) * 2 + 1, dtype=torch.float32) for n in (4000, 500, 500))

    def true_rates(s):
        return np.log1p(np.exp(s.numpy() @ w.T + b))

    counts, val_counts = rng.poisson(true_rates(h)), rng.poisson(true_rates(h_val))
    fit_readout(twin, "mouse0", h, counts, h_val, val_counts, counts.mean(0))
    with torch.no_grad():
        pred = twin.rates(h_new, "mouse0").numpy()
    r = [np.corrcoef(pred[:, i], true_rates(h_new)[:, i])[0, 1] for i in range(20)]
    assert np.min(r) > 0.9, r
    np.testing.assert_allclose(pred.mean(0), true_rates(h_new).mean(0), rtol=0.25)


def test_fit_readout_never_does_worse_on_validation_than_the_bias_only_init():
    """States that say nothing about the counts, fitted on a sample whose mean count is off the whole training
    split's: the readout chosen is no worse on validation than the bias-only init (each neuron's split mean)."""
    from actstore.train.datainit import fit_readout, mean_count_bias
    from actstore.train.evaluate import poisson_loss

    rng = np.random.default_rng(1)
    twin = build_twin("xu_cnn", SHAPE, {"mouse0": 20}, 16, 32, seed=0)
    split_mean = rng.uniform(0.2, 2.0, 20)
    h, h_val = (torch.as_tensor(rng.normal(size=(n, 32)), dtype=torch.float32) for n in (2000, 2000))
    counts, val_counts = rng.poisson(1.3 * split_mean, (2000, 20)), rng.poisson(split_mean, (2000, 20))
    loss = fit_readout(twin, "mouse0", h, counts, h_val, val_counts, split_mean)
    init = torch.nn.functional.softplus(mean_count_bias(torch.as_tensor(split_mean, dtype=torch.float32)))
    assert loss <= poisson_loss(np.broadcast_to(init.numpy().astype(np.float64), val_counts.shape), val_counts) + 1e-9


def test_the_initialized_twin_is_the_checkpoint_unless_an_epoch_beats_it(sessions, tmp_path):
    """With every learning rate 0 no epoch can improve on the init: the checkpoint is epoch 0's ridge-fitted twin."""
    zero = {g: {"lr": 0.0, "weight_decay": 0.0} for g in ("encoder", "gru", "readout")}
    spec = smoke_spec(max_epochs=2, init_readout_samples=200, optimizer=zero)
    result = loop.train_model(spec, sessions, str(tmp_path / "m"), torch.device("cpu"), progress=False)
    assert result["best_epoch"] == 0 and [h["epoch"] for h in result["history"]] == [0, 1, 2]
    assert result["history"][0]["val_loss"] == result["best_val_loss"]
    spec = smoke_spec(max_epochs=1, init_readout_samples=0, optimizer=zero)
    unfitted = loop.train_model(spec, sessions, str(tmp_path / "b"), torch.device("cpu"), progress=False)
    assert result["history"][0]["val_r"] > unfitted["history"][0]["val_r"] + 0.02, (result["history"][0],
                                                                                 unfitted["history"][0])
