"""Neural prediction on the test split (design 6.1): each model's scores, computed once after training and
kept in its checkpoint's provenance (the neural assay, assays/neural.py, assembles them into
`analysis/neural.zarr`)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from actstore.errors import UserError
from actstore.data.session import Session
from actstore.models.twin import DigitalTwin
from actstore.train.dataset import consecutive_runs, select_chunks, whole_chunks, window_states
from actstore.train.metrics import chunked_neuron_r, overall_r, pieces_neuron_r, smoothed_neuron_r

EVAL_RUN = 256  # targets per encoder call when predicting


@torch.no_grad()
def states(twin: DigitalTwin, session: Session, targets: np.ndarray, context: int, device: torch.device) -> torch.Tensor:
    """GRU states (len(targets), H) for sorted bin indices, in eval mode, each frame encoded once."""
    was_training = twin.training
    twin.eval()
    out = []
    for run in consecutive_runs(targets, EVAL_RUN):
        frames = session.frames[run[0] - context: run[-1]]
        clip = torch.from_numpy(np.ascontiguousarray(frames)).to(device).unsqueeze(0)
        out.append(window_states(twin, clip, context))
    twin.train(was_training)
    return torch.cat(out) if out else torch.zeros((0, twin.gru.hidden_size), device=device)


@torch.no_grad()
def predict(twin: DigitalTwin, session: Session, mouse: str, targets: np.ndarray, context: int,
            device: torch.device) -> np.ndarray:
    """Predicted rates (len(targets), N) for sorted bin indices, in eval mode, each frame encoded once."""
    return twin.rates(states(twin, session, targets, context, device), mouse).cpu().numpy().astype(np.float64)


def nan_mean(x: np.ndarray) -> float:
    """Mean over finite entries; NaN (without a warning) when there are none (e.g. constant predictions)."""
    finite = np.isfinite(x)
    return float(np.mean(x[finite])) if finite.any() else float("nan")


def poisson_loss(rates: np.ndarray, counts: np.ndarray, eps: float = 1e-8) -> float:
    """Mean Poisson NLL (log_input=False, without the Stirling term), as torch.nn.PoissonNLLLoss computes it."""
    return float(np.mean(rates - counts * np.log(rates + eps)))


def validation_scores(twin: DigitalTwin, sessions: dict[str, Session], targets: dict[str, np.ndarray],
                      context: int, device: torch.device, chunk: int) -> tuple[float, float]:
    """(loss, r) on the validation samples: Poisson NLL averaged over mice, and the per-neuron r inside pieces of
    at most `chunk` consecutive samples (`chunk_pieces`: the test's chunks where the samples fill them), mean over
    all neurons. A plain r over the whole split would also reward the slow luminance drift, as the test does not."""
    losses, rs = [], []
    for mouse, session in sessions.items():
        pred = predict(twin, session, mouse, targets[mouse], context, device)
        obs = session.counts[targets[mouse]].astype(np.float64)
        losses.append(poisson_loss(pred, obs))
        rs.append(pieces_neuron_r(pred, obs, chunk_pieces(targets[mouse], chunk)))
    return float(np.mean(losses)), nan_mean(np.concatenate(rs))


def validation_targets(sessions: dict[str, Session], context: int, chunk: int, max_samples: int) -> dict[str, np.ndarray]:
    """Each mouse's validation samples that training scores: whole chunks of its validate split, at most
    `max_samples` of them, evenly spread (0 = all)."""
    return {m: select_chunks(s.targets("validate", context), chunk, max_samples) for m, s in sessions.items()}


def chunk_pieces(targets: np.ndarray, chunk: int) -> list[int]:
    """The lengths of the sorted `targets`' runs of consecutive bins, each cut into pieces of at most `chunk`."""
    return [len(run) for run in consecutive_runs(targets, chunk)]


def test_targets(session: Session, context: int, chunk: int, max_samples: int) -> np.ndarray:
    """The test samples scored: whole chunks inside each test segment, at most `max_samples` of them (0 = all).
    A test split without one whole chunk is a configuration error (one line)."""
    targets = session.targets("test", context)
    scored = whole_chunks(targets, chunk)
    if len(scored) == 0:
        longest = max((len(run) for run in consecutive_runs(targets, len(targets) or 1)), default=0)
        raise UserError(f"evaluation.chunk_samples: {chunk} is longer than every test segment of {session.name} "
                        f"(longest {longest} samples); use fewer data.segments or a shorter chunk")
    return select_chunks(scored, chunk, max_samples)


def noise_ceiling(session: Session, targets: np.ndarray, chunk: int) -> np.ndarray | None:
    """Per-neuron ceiling of the chunked r on these samples: the true rates' r with the counts (else the session's)."""
    if "rates" in session.truth:
        return chunked_neuron_r(session.truth["rates"][targets], session.counts[targets], chunk)
    return session.noise_ceiling


def mean_and_se(per_neuron: np.ndarray) -> tuple[float, float, int]:
    """Mean over the finite neurons, its SE over neurons (NaN below two) and their count."""
    n = int(np.isfinite(per_neuron).sum())
    se = float(np.nanstd(per_neuron, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return nan_mean(per_neuron), se, n


def neural_scores(twin: DigitalTwin, sessions: dict[str, Session], context: int, evaluation: dict[str, Any],
                  device: torch.device) -> dict[str, dict[str, float]]:
    """Per mouse: r_neuron (chunked per-neuron r, mean over neurons), its SE over neurons r_neuron_se and the
    neurons it averages n_neurons, xu_smoothed_r (and _se: the published pipeline's smoothed whole-test-set r),
    r_overall, ceiling, ceiling_fraction, n_samples, and per neuron `neuron_r` and `neuron_ceiling` (lists, NaN
    where undefined): the error profile. `evaluation` is the catalog's evaluation section."""
    chunk, bins = int(evaluation["chunk_samples"]), int(evaluation["smoothing_bins"])
    scores: dict[str, dict[str, float]] = {}
    for mouse, session in sessions.items():
        idx = test_targets(session, context, chunk, int(evaluation["max_samples"]))
        pred = predict(twin, session, mouse, idx, context, device)
        obs = session.counts[idx]
        per_neuron = chunked_neuron_r(pred, obs, chunk)
        r_neuron, r_neuron_se, n_neurons = mean_and_se(per_neuron)
        pieces = [len(run) for run in consecutive_runs(idx, len(idx) or 1)]
        smoothed, smoothed_se, _ = mean_and_se(smoothed_neuron_r(pred, obs, pieces, bins))
        ceil = noise_ceiling(session, idx, chunk)
        ceiling = nan_mean(ceil) if ceil is not None else float("nan")
        scores[mouse] = {
            "r_neuron": r_neuron,
            "r_neuron_se": r_neuron_se,
            "n_neurons": n_neurons,
            "xu_smoothed_r": smoothed,
            "xu_smoothed_r_se": smoothed_se,
            "r_overall": overall_r(pred, obs),
            "ceiling": ceiling,
            "ceiling_fraction": r_neuron / ceiling if np.isfinite(ceiling) and ceiling > 0 else float("nan"),
            "n_samples": int(len(idx)),
            "neuron_r": [float(v) for v in per_neuron],
            "neuron_ceiling": [float(v) for v in ceil] if ceil is not None else [float("nan")] * len(per_neuron),
        }
    return scores
