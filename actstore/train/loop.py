"""Training one twin (design 6.1): resumable, deterministic on CPU; train/zoo.py decides which twins need it.

After every epoch the whole training state (weights, optimizer, scheduler, best weights,
history) is written atomically to `<model folder>/resume.pt`; a killed run restarts from
its last completed epoch. Torch's RNG and the batch order are re-seeded from
(seed, epoch) at each epoch start, so a resumed run ends with the same weights as an
uninterrupted one. A fresh twin is first initialized from real frames (train/datainit.py).
The best-validation weights become the checkpoint (model.<sha>.pt +
model.json, with provenance and test scores); resume.pt is then removed.
"""
from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from torchvision.ops import StochasticDepth
from tqdm.auto import tqdm

from actstore.data.session import Session
from actstore.errors import UserError
from actstore.models.checkpoint import load_checkpoint, save_checkpoint
from actstore.models.twin import DigitalTwin, build_twin
from actstore.store.paths import RESUME
from actstore.store.publish import publish_file
from actstore.store.root import filesystem, join
from actstore.train.datainit import data_dependent_init, fit_readout
from actstore.train.dataset import Batch, epoch_batches, make_batch, select_chunks, window_rates
from actstore.train.evaluate import neural_scores, states, test_targets, validation_scores, validation_targets
from actstore.train.zoo import Spec, model_status

INIT_STREAM = 2**31 - 1  # the init's random draws use a stream no epoch number reaches


def optimizer_for(twin: DigitalTwin, cfg: dict[str, Any]) -> torch.optim.AdamW:
    """AdamW with the three parameter groups of design 6.1: encoder, GRU, readouts."""
    groups = [(twin.encoder, cfg["encoder"]), (twin.gru, cfg["gru"]), (twin.readouts, cfg["readout"])]
    return torch.optim.AdamW([{"params": list(m.parameters()), "lr": g["lr"], "weight_decay": g["weight_decay"]}
                              for m, g in groups])


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's batch order and dropout masks."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _save_resume(folder: str, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    publish_file(join(folder, RESUME), buf.getvalue())


def _load_resume(folder: str, key: dict[str, str]) -> dict[str, Any] | None:
    """The saved training state, when there is one for these same inputs."""
    fs, path = filesystem(join(folder, RESUME))
    if not fs.exists(path):
        return None
    try:
        state = torch.load(io.BytesIO(fs.cat_file(path)), map_location="cpu", weights_only=False)
    except Exception:  # a torn or foreign file: start over rather than fail
        return None
    return state if state.get("key") == key else None


def init_encoder(twin: DigitalTwin, sessions: dict[str, Session], cfg: dict[str, Any], seed: int, context: int,
                 device: torch.device) -> dict[str, np.ndarray]:
    """Data-dependent init of the encoder (and readout biases) from `init_frames` optimize-split frames drawn evenly
    over mice, a pure function of seed; returns each mouse's mean count over its optimize split."""
    rng = np.random.default_rng([seed, INIT_STREAM])
    picks, means = [], {}
    for mouse, session in sessions.items():
        targets = session.targets("optimize", context)
        idx = rng.choice(targets, size=min(len(targets), -(-cfg["init_frames"] // len(sessions))), replace=False)
        picks.append(session.frames[np.sort(idx)])
        means[mouse] = session.counts[targets].mean(axis=0)
    data_dependent_init(twin, torch.from_numpy(np.concatenate(picks)).unsqueeze(1).to(device), means)
    return means


def _init_from_data(twin: DigitalTwin, sessions: dict[str, Session], cfg: dict[str, Any], seed: int, context: int,
                    chunk: int, val_targets: dict[str, np.ndarray], device: torch.device) -> None:
    """Data-dependent init: the encoder (`init_encoder`), then each readout fitted to `init_readout_samples`
    optimize samples (whole chunks, evenly spread) when that is set."""
    means = init_encoder(twin, sessions, cfg, seed, context, device)
    if not cfg["init_readout_samples"]:
        return
    for mouse, session in sessions.items():
        fit = select_chunks(session.targets("optimize", context), chunk, cfg["init_readout_samples"])
        fit_readout(twin, mouse, states(twin, session, fit, context, device), session.counts[fit],
                    states(twin, session, val_targets[mouse], context, device), session.counts[val_targets[mouse]],
                    means[mouse])


def dropout_off(twin: torch.nn.Module) -> None:
    """Dropout and stochastic depth to eval mode (identity) while the rest of the twin (batch norm) trains."""
    for module in twin.modules():
        if isinstance(module, (torch.nn.modules.dropout._DropoutNd, StochasticDepth)):
            module.eval()


def train_step(twin: DigitalTwin, batch: Batch, opt: torch.optim.Optimizer, cfg: dict[str, Any], context: int) -> float:
    """One optimizer step on one mouse's batch: Poisson NLL + l1 * mean|W| of its readout, clipped; returns the NLL."""
    rates = window_rates(twin, batch.frames, batch.mouse, context)
    loss = F.poisson_nll_loss(rates, batch.counts, log_input=False, reduction="mean")
    total = loss + cfg["l1"] * twin.readouts[batch.mouse].weight.abs().mean()
    opt.zero_grad(set_to_none=True)
    total.backward()
    torch.nn.utils.clip_grad_norm_(twin.parameters(), cfg["grad_clip"])
    opt.step()
    return float(loss.detach())


def train_model(spec: Spec, sessions: dict[str, Session], folder: str, device: torch.device,
                progress: bool = True) -> dict[str, Any]:
    """Train (or resume, or skip) one twin; returns its checkpoint's provenance plus 'status'."""
    status, meta = model_status(folder, spec)
    if status == "up to date":
        return {**meta["provenance"], "sha256": meta["sha256"], "status": status}
    if status == "re-score":
        return _rescore(spec, sessions, folder, device)
    cfg, context = spec.train, spec.context
    neurons = {m: s.n_neurons for m, s in sessions.items()}
    frame_shape = next(iter(sessions.values())).frame_shape
    twin = build_twin(spec.arch, frame_shape, neurons, spec.encoder_dim, spec.hidden_dim, seed=spec.seed).to(device)
    opt = optimizer_for(twin, cfg["optimizer"])
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", **cfg["plateau"])
    chunk = spec.evaluation["chunk_samples"]
    for session in sessions.values():  # a test split without a whole chunk is refused before, not after, training
        test_targets(session, context, chunk, spec.evaluation["max_samples"])
    val_targets = validation_targets(sessions, context, chunk, cfg["max_val_samples"])
    state = _load_resume(folder, spec.key)
    t_init = time.perf_counter()
    if state is None and cfg["init_frames"]:
        _init_from_data(twin, sessions, cfg, spec.seed, context, chunk, val_targets, device)
    state = state or {
        "key": spec.key, "epoch": 0, "best_loss": float("inf"), "best_epoch": 0, "bad_epochs": 0,
        "best_weights": None, "history": [], "wall_s": 0.0, "done": False,
    }
    resumed_from = state["epoch"]
    if not state["history"]:  # the initialized twin is epoch 0: training keeps it unless validation improves on it
        val_loss, val_r = validation_scores(twin, sessions, val_targets, context, device, chunk)
        state.update(best_loss=val_loss, best_weights=_cpu_state(twin), wall_s=time.perf_counter() - t_init,
                     history=[{"epoch": 0, "train_loss": None, "val_loss": val_loss, "val_r": val_r,
                               "lr": [g["lr"] for g in opt.param_groups]}])
    elif resumed_from:
        twin.load_state_dict(state["weights"])
        opt.load_state_dict(state["optimizer"])
        plateau.load_state_dict(state["plateau"])
    bar = tqdm(total=cfg["max_epochs"], initial=resumed_from, desc=spec.name, unit="epoch",
               disable=not progress, leave=True, dynamic_ncols=True)
    while not state["done"]:
        t0 = time.perf_counter()
        epoch = state["epoch"]
        rng = np.random.default_rng(epoch_seed(spec.seed, epoch))
        torch.manual_seed(epoch_seed(spec.seed, epoch))
        batches = epoch_batches(sessions, "optimize", cfg["batch_size"], cfg["run_length"], context, rng,
                                cfg["max_batches_per_epoch"])
        if not batches:
            raise UserError(f"train.batch_size: {cfg['batch_size']} is larger than any session's optimize split")
        twin.train()
        if not cfg["dropout"]:
            dropout_off(twin)
        losses = []
        for k, (mouse, starts) in enumerate(batches):
            batch = make_batch(sessions[mouse], mouse, starts, cfg["run_length"], context, device)
            losses.append(train_step(twin, batch, opt, cfg, context))
            bar.set_postfix_str(f"batch {k + 1}/{len(batches)} loss {np.mean(losses):.4f}", refresh=True)
        val_loss, val_r = validation_scores(twin, sessions, val_targets, context, device, chunk)
        plateau.step(val_loss)
        epoch += 1
        if val_loss < state["best_loss"]:
            state.update(best_loss=val_loss, best_epoch=epoch, bad_epochs=0, best_weights=_cpu_state(twin))
        else:
            state["bad_epochs"] += 1
        state["history"].append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss,
                                 "val_r": val_r, "lr": [g["lr"] for g in opt.param_groups]})
        state.update(epoch=epoch, weights=_cpu_state(twin), optimizer=opt.state_dict(),
                     plateau=plateau.state_dict(), wall_s=state["wall_s"] + time.perf_counter() - t0,
                     done=epoch >= cfg["max_epochs"] or state["bad_epochs"] >= cfg["early_stop_patience"])
        _save_resume(folder, state)
        bar.update(1)
        bar.set_postfix_str(f"loss {np.mean(losses):.4f} val_loss {val_loss:.4f} val_r {val_r:.3f}", refresh=True)
    bar.close()
    twin.load_state_dict(state["best_weights"])
    t0 = time.perf_counter()
    scores = neural_scores(twin, sessions, context, spec.evaluation, device)
    provenance = {**spec.key, "arch": spec.arch, "seed": spec.seed, "device": str(device),
                  "torch_threads": torch.get_num_threads(),  # CPU results are bit-identical for the same count
                  "epochs": state["epoch"], "best_epoch": state["best_epoch"], "best_val_loss": state["best_loss"],
                  "resumed_from_epoch": resumed_from, "history": state["history"],
                  "wall_time_s": round(state["wall_s"] + time.perf_counter() - t0, 2),
                  "evaluation": spec.scoring, "neural": scores,
                  "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    provenance["sha256"] = save_checkpoint(twin, folder, provenance)
    fs, path = filesystem(join(folder, RESUME))
    fs.rm(path)
    return {**provenance, "status": "trained"}


def _rescore(spec: Spec, sessions: dict[str, Session], folder: str, device: torch.device) -> dict[str, Any]:
    """Re-score an up-to-date checkpoint whose evaluation settings changed (no retraining)."""
    twin, meta = load_checkpoint(folder, map_location=str(device))
    twin.to(device)
    prov = dict(meta["provenance"])
    prov.update(evaluation=spec.scoring, neural=neural_scores(twin, sessions, spec.context, spec.evaluation, device))
    prov["sha256"] = save_checkpoint(twin, folder, prov)
    return {**prov, "status": "re-scored"}


