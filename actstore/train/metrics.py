"""Neural-prediction metrics (design 6.1): per-neuron r inside test chunks, and overall r."""
from __future__ import annotations

import numpy as np


def pearson_columns(pred: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Pearson r of each column pair; NaN where either column is constant."""
    p = pred - pred.mean(axis=0)
    o = obs - obs.mean(axis=0)
    den = np.sqrt((p * p).sum(axis=0) * (o * o).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (p * o).sum(axis=0) / np.where(den > 0, den, 1.0), np.nan)


def prediction_r(pred: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Pearson r of each predicted column with its observed one: 0 where the prediction is constant but the
    observation varies (it explains none of the variation), NaN where the observation is constant."""
    r = pearson_columns(pred, obs)
    flat_pred, flat_obs = np.ptp(pred, axis=0) == 0, np.ptp(obs, axis=0) == 0
    return np.where(flat_pred & ~flat_obs, 0.0, r)


def chunked_neuron_r(pred: np.ndarray, obs: np.ndarray, chunk: int = 100) -> np.ndarray:
    """Per-neuron r (`prediction_r`) computed inside non-overlapping `chunk`-sample chunks (a short tail is
    dropped), then averaged over chunks, ignoring chunks where the neuron's observation is constant. (T, N) -> (N,)."""
    return pieces_neuron_r(pred, obs, [chunk] * (len(pred) // chunk))


def pieces_neuron_r(pred: np.ndarray, obs: np.ndarray, pieces: list[int]) -> np.ndarray:
    """Per-neuron r inside consecutive pieces of the given lengths (in order, from the first sample), averaged
    over pieces, ignoring pieces where the neuron's observation is constant; NaN without any. (T, N) -> (N,)."""
    if not pieces:
        return np.full(pred.shape[1], np.nan)
    edges = np.cumsum([0, *pieces])
    p, o = np.asarray(pred, dtype=np.float64), np.asarray(obs, dtype=np.float64)
    rs = np.stack([prediction_r(p[a:b], o[a:b]) for a, b in zip(edges[:-1], edges[1:])])
    ok = np.isfinite(rs)
    count = ok.sum(axis=0)
    total = np.where(ok, rs, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def overall_r(pred: np.ndarray, obs: np.ndarray) -> float:
    """Pearson r over all (sample, neuron) entries at once."""
    return float(pearson_columns(np.ravel(pred)[:, None], np.ravel(obs)[:, None])[0])


def box_smoothed(x: np.ndarray, bins: int) -> np.ndarray:
    """Each column convolved with a `bins`-wide box (mean), same length, zeros beyond the ends: numpy's
    convolve mode 'same' (the published pipeline's smoothing), also for pieces shorter than the box.
    (T, N) -> (T, N)."""
    x = np.asarray(x, dtype=np.float64)
    kernel, first = np.ones(bins) / bins, (bins - 1) // 2
    columns = [np.convolve(col, kernel, mode="full")[first:first + len(x)] for col in x.T]
    return np.stack(columns, axis=1).reshape(x.shape)


def smoothed_neuron_r(pred: np.ndarray, obs: np.ndarray, pieces: list[int], bins: int = 41) -> np.ndarray:
    """Per-neuron r over the whole test set after box-smoothing prediction and data (Xu et al.'s Table-2 score,
    2 s at 48 ms bins = 41). Smoothing runs inside each contiguous piece (`pieces`: their lengths, in order),
    never across a gap in time. (T, N) -> (N,)."""
    edges = np.cumsum([0, *pieces])
    if edges[-1] != len(pred):
        raise ValueError(f"pieces cover {edges[-1]} samples, the predictions {len(pred)}")
    smooth = [(box_smoothed(pred[a:b], bins), box_smoothed(obs[a:b], bins)) for a, b in zip(edges[:-1], edges[1:])]
    return prediction_r(np.concatenate([p for p, _ in smooth]), np.concatenate([o for _, o in smooth]))
