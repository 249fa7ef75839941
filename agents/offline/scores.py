"""D4RL normalised scores: ``100 * (return - ref_min) / (ref_max - ref_min)``.

Two references: D4RL's published per-task values (for real D4RL data) and the dataset's own random / expert
returns stored in its metadata (``ref_min_score`` / ``ref_max_score``, for locally generated data: Gymnasium v5
returns are not comparable with D4RL's v2 ones). Every result names the reference it used and the env (id and
version) the return came from. D4RL's references belong to gym's v2/v3 MuJoCo envs: applying them to a return from
another version (this suite evaluates on Gymnasium v5) needs ``allow_other_version=True``
(``offline.d4rl_reference_any_version=true``); otherwise the score is refused with the reason.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# D4RL reference returns (D4RL infos.py REF_MIN_SCORE / REF_MAX_SCORE; docs/references.md#d4rl-reference-scores)
D4RL_REF_SCORES: dict[str, tuple[float, float]] = {
    "halfcheetah": (-280.178953, 12135.0),
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
}


@dataclass
class NormalisedScore:
    score: float
    reference: str  # "d4rl" | "dataset"
    ref_min: float
    ref_max: float
    task: str
    env: str | None = None  # the evaluated env id with its version, e.g. Hopper-v5

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _task(name: str) -> str:
    """``hopper-medium-v2`` / ``Hopper-v5`` / ``mujoco/Hopper`` -> ``hopper``."""
    base = name.split("/")[-1].lower()
    for key in D4RL_REF_SCORES:
        if base.startswith(key):
            return key
    return base.split("-")[0]


D4RL_ENV_VERSIONS = ("v2", "v3")  # the gym MuJoCo versions D4RL's data and references were made with


def normalised_score(ret: float, task: str, metadata: dict[str, Any] | None = None, reference: str = "auto",
                     env: str | None = None, allow_other_version: bool = False) -> NormalisedScore:
    """Normalised score of an episode return (or a mean return) obtained in ``env`` (an id with its version).

    ``reference``: ``"d4rl"`` (published values for ``task``), ``"dataset"`` (``metadata['ref_min_score']`` and
    ``metadata['ref_max_score']``), or ``"auto"``: the dataset's own values when the metadata has both, else D4RL's
    (which then needs ``env`` to be a D4RL version, or ``allow_other_version``).
    """
    if reference not in ("auto", "d4rl", "dataset"):
        raise ValueError(f"reference must be 'auto', 'd4rl' or 'dataset', got {reference!r}")
    key = _task(task)
    meta = metadata or {}
    has_own = meta.get("ref_min_score") is not None and meta.get("ref_max_score") is not None
    if reference == "dataset" or (reference == "auto" and has_own):
        if not has_own:
            raise KeyError("reference='dataset' needs metadata keys 'ref_min_score' and 'ref_max_score'")
        lo, hi, used = float(meta["ref_min_score"]), float(meta["ref_max_score"]), "dataset"
    else:
        if key not in D4RL_REF_SCORES:
            raise KeyError(f"no D4RL reference scores for task {task!r}; known: {sorted(D4RL_REF_SCORES)}")
        version = env.rsplit("-", 1)[-1] if env and "-v" in env else None
        if version not in D4RL_ENV_VERSIONS and not allow_other_version:
            raise KeyError(f"D4RL's reference scores belong to the gym {'/'.join(D4RL_ENV_VERSIONS)} MuJoCo envs, "
                           f"this return came from {env or 'an unnamed env'}; set "
                           "offline.d4rl_reference_any_version=true to apply them anyway")
        (lo, hi), used = D4RL_REF_SCORES[key], "d4rl"
    if hi == lo:
        raise ValueError(f"reference min and max are equal ({lo}); cannot normalise")
    return NormalisedScore(100.0 * (float(ret) - lo) / (hi - lo), used, lo, hi, key, env)
