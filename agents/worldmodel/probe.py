"""Does a world model carry the hidden state? A linear probe of its features for the env's true state.

The memory metrics ask whether the reward head predicts the reward. The probe asks the question beneath it: do the
features the heads read (at the query records, in inference and in imagination) hold the true state, e.g. the
hallway position, at all? A ridge regression from features to ``truth/<key>`` is fitted on the query records of
training windows and scored on those and on held-out windows: R², mean absolute error and the exact rate (rounded
prediction = truth). The rounded prediction is then passed through the true-state reward model of
:mod:`agents.worldmodel.ceiling`: the reward accuracy a head would reach if it read the state as well as the linear
probe does.

Reading it on ``memory/distracting-<w>``: a good probe with a reward head at chance means the backbone counts the
steps but the head has not learnt the reward rule (a square wave of the position with ten periods). A linear probe
sees only a linear code: a poor probe beside a good reward head means the state is held nonlinearly (the RSSM of
the benchmark's long run predicts the reward at 0.95 in imagination with a probe R² of 0.47, while S4WM's linear
recurrence holds the position linearly, R² 0.97; docs/results.md); a poor probe beside a poor head points at the
backbone.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agents.worldmodel import ceiling as C
from agents.worldmodel import metrics as M
from agents.worldmodel.evaluate import score_batch

KINDS = ("inference", "imagination")


def fit_ridge(x: np.ndarray, y: np.ndarray, l2: float = 1e-3) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Ridge regression of ``y`` (N,) on standardised features ``x`` (N, F), in closed form.

    Returns (mean (F,), scale (F,), w (F,), b); ``l2`` is per record (the penalty is ``l2 * N * |w|²``)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    mean, scale = x.mean(0), x.std(0) + 1e-8
    z = (x - mean) / scale
    b = float(y.mean())
    w = np.linalg.solve(z.T @ z + l2 * len(z) * np.eye(z.shape[1]), z.T @ (y - b))
    return mean, scale, w, b


def ridge_predict(fit: tuple[np.ndarray, np.ndarray, np.ndarray, float], x: np.ndarray) -> np.ndarray:
    mean, scale, w, b = fit
    return ((np.asarray(x, np.float64) - mean) / scale) @ w + b


def probe_scores(fit, features: np.ndarray, truth: np.ndarray, records: dict[str, np.ndarray],
                 reward_model: C.TruthReward, key: str, bounds: tuple[float, float]) -> dict[str, float]:
    """The probe ``fit`` on one set of query records: ``features`` (N, F), ``truth`` (N,) the true value of
    ``key``, ``records`` the query records (``reward`` (N,) and the truth keys the reward model reads); ``bounds``
    clip the rounded prediction (the values seen)."""
    pred = ridge_predict(fit, features)
    err = pred - truth
    total = float(((truth - truth.mean()) ** 2).sum())
    rounded = np.clip(np.rint(pred), *bounds)
    reward_pred = reward_model.predict({**records, f"truth/{key}": rounded})
    reward_true = M.nearest_class(records["reward"], reward_model.classes)
    return {"r2": 1.0 - float((err ** 2).sum()) / max(total, 1e-12), "mae": float(np.abs(err).mean()),
            "exact": float((rounded == truth).mean()), "reward_acc_via_probe": float((reward_pred == reward_true).mean())}


@torch.no_grad()
def query_features(wm, windows: dict[str, np.ndarray], context: int, query: int, *, batch_size: int = 16,
                   sample: bool = False, generator: torch.Generator | None = None) -> dict[str, np.ndarray]:
    """The features and reward predictions of the query records of ``windows`` ``{key: (E, >= C+Q, ...)}``,
    flattened over windows: ``features_<kind>`` (E*Q, F), ``reward_<kind>`` (E*Q,) for both kinds."""
    was_training = wm.training
    wm.eval()
    parts: dict[str, list[np.ndarray]] = {}
    try:
        for a in range(0, len(windows["reward"]), batch_size):
            batch = {k: v[a:a + batch_size] for k, v in windows.items()}
            out = score_batch(wm, batch, context, query, sample=sample, generator=generator, features=True)
            for kind in KINDS:
                parts.setdefault(f"features_{kind}", []).append(out[f"features_{kind}"])
                parts.setdefault(f"reward_{kind}", []).append(out[f"reward_{kind}"])
    finally:
        wm.train(was_training)
    return {k: np.concatenate(v).reshape(-1, *v[0].shape[2:]) for k, v in parts.items()}


def probe(wm, train_records: dict[str, np.ndarray], sets: dict[str, dict[str, np.ndarray]], context: int,
          query: int, classes: np.ndarray, key: str = "position", l2: float = 1e-3,
          reward_keys: tuple[str, ...] | list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Fit the probe on the first set of ``sets`` (``{name: windows with truth/<key>}``, training windows first)
    and score it on every set, for the features of inference and of imagination. ``train_records`` (with truth)
    fit the true-state reward model on ``reward_keys`` (default ``[key]``; e.g. ``position+cue``, which then reads
    the probed position beside the record's true cue). ``kwargs`` go to :func:`query_features`.

    Returns ``{name: {kind: {r2, mae, exact, reward_acc_via_probe, reward_acc}}}`` (``reward_acc``: the model's own
    head on the same records), per set also ``time_only`` (the probe on the record's time step alone, when the
    records hold ``truth/t``: the scripted walk drifts, so time alone predicts part of the position) and
    ``majority`` (the majority-class rate), plus ``fit_records``, ``features`` (F) and ``key``."""
    reward_model = C.TruthReward(reward_keys or [key], classes).fit(train_records)
    truth_all = np.asarray(train_records[f"truth/{key}"], np.float64)
    bounds = (float(truth_all.min()), float(truth_all.max()))
    scored = {}
    for name, windows in sets.items():
        records = C.query_records(windows, context, query)
        scored[name] = (records, query_features(wm, windows, context, query, **kwargs))
    first = next(iter(scored))
    out: dict[str, Any] = {"key": key, "fit_set": first, "fit_records": int(len(scored[first][0]["reward"])),
                           "features": int(scored[first][1]["features_inference"].shape[-1])}
    fits = {kind: fit_ridge(scored[first][1][f"features_{kind}"], scored[first][0][f"truth/{key}"], l2) for kind in KINDS}
    # the same probe on the record's time step alone: what a model that only counts steps would show
    clock = "truth/t" in scored[first][0]
    if clock:
        fits["time_only"] = fit_ridge(scored[first][0]["truth/t"][:, None], scored[first][0][f"truth/{key}"], l2)
    for name, (records, feats) in scored.items():
        truth = np.asarray(records[f"truth/{key}"], np.float64)
        out[name] = {}
        for kind in KINDS:
            row = probe_scores(fits[kind], feats[f"features_{kind}"], truth, records, reward_model, key, bounds)
            row["reward_acc"] = M.reward_accuracy(feats[f"reward_{kind}"], records["reward"], classes)
            out[name][kind] = row
        if clock:
            out[name]["time_only"] = probe_scores(fits["time_only"], records["truth/t"][:, None], truth, records,
                                                  reward_model, key, bounds)
        out[name]["majority"] = M.majority_accuracy(records["reward"], classes)
    return out
