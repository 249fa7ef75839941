"""Environment throughput: raw ALE frames/s vs the wrapped Atari env, and a vector of N envs vs one.

Prints one JSON object. Targets (issue 4): wrapped frames/s >= 0.7 x raw ALE frames/s; an async vector of 8
envs >= 1.5 x the env-steps/s of one env (only reachable with >= 2 free cores).

"Raw ALE" is the bare emulator (``ALEInterface.act`` per frame, no screen reads): the strict baseline. For
comparison the script also times ale-py's own Gymnasium env at frameskip 1 (one RGB observation per frame), the
unwrapped env most code starts from (``gym_ale_frames_per_s``, ``env_over_gym_ale_frames``).

    python scripts/bench_envs.py --game Breakout --steps 4000 --num-envs 8
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from ssmrl.bench.output import emit


def raw_ale_fps(game: str, frames: int, seed: int) -> float:
    """Frames/s of the bare ALE (frameskip 1, no screen reads), random minimal actions held for 4 frames."""
    from ale_py import ALEInterface, LoggerMode, roms

    from envs.atari_common import rom_id

    ALEInterface.setLoggerMode(LoggerMode.Error)
    ale = ALEInterface()
    ale.setInt("random_seed", seed)
    ale.setFloat("repeat_action_probability", 0.0)
    ale.loadROM(roms.get_rom_path(rom_id(game)))
    actions = ale.getMinimalActionSet()
    picks = np.random.default_rng(seed).integers(len(actions), size=frames // 4 + 1)
    start = time.perf_counter()
    for i in range(frames):
        ale.act(actions[picks[i // 4]])
        if ale.game_over():
            ale.reset_game()
    return frames / (time.perf_counter() - start)


def gym_ale_fps(game: str, frames: int, seed: int) -> float:
    """Frames/s of ale-py's Gymnasium env at frameskip 1 (RGB observation every frame), actions held 4 frames."""
    from ale_py.env import AtariEnv as GymAleEnv

    from envs.atari_common import rom_id

    env = GymAleEnv(game=rom_id(game), frameskip=1, repeat_action_probability=0.0, obs_type="rgb")
    env.reset(seed=seed)
    picks = np.random.default_rng(seed).integers(env.action_space.n, size=frames // 4 + 1)
    start = time.perf_counter()
    for i in range(frames):
        _, _, terminated, truncated, _ = env.step(int(picks[i // 4]))
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return frames / elapsed


def env_steps_per_s(env_id: str, steps: int, seed: int) -> float:
    import envs

    env = envs.make(env_id, seed=seed)
    picks = np.random.default_rng(seed).integers(env.action_space.n, size=steps)
    start = time.perf_counter()
    for a in picks:
        _, _, terminated, truncated, _ = env.step(int(a))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def vector_steps_per_s(env_id: str, num_envs: int, steps: int, seed: int, repeats: int = 1) -> float:
    """Total env-steps/s of an async vector (each vector step advances ``num_envs`` envs): the best of ``repeats``
    runs of ``steps`` vector steps on one vector (the worker start-up is not timed)."""
    import envs

    vec = envs.make_vector(env_id, num_envs, seed=seed, asynchronous=True)
    vec.reset(seed=seed)
    rng = np.random.default_rng(seed)
    n = vec.single_action_space.n
    for _ in range(10):  # warm up the worker processes
        vec.step(rng.integers(n, size=num_envs))
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            vec.step(rng.integers(n, size=num_envs))
        best = max(best, steps * num_envs / (time.perf_counter() - start))
    vec.close()
    return best


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="ssmrl bench envs", description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="Breakout")
    parser.add_argument("--steps", type=int, default=4000, help="agent steps per measurement")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs per measurement")
    parser.add_argument("--skip-vector", action="store_true")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)

    env_id = f"atari100k/{args.game}"
    # raw and wrapped runs alternate so that both see the same background load (the machine is shared)
    raws, ones, gyms = [], [], []
    for _ in range(args.repeats):
        raws.append(raw_ale_fps(args.game, 4 * args.steps, args.seed))
        ones.append(env_steps_per_s(env_id, args.steps, args.seed))
        gyms.append(gym_ale_fps(args.game, 4 * args.steps, args.seed))
    raw, one, gym_ale = max(raws), max(ones), max(gyms)
    paired = sorted(4 * o / r for o, r in zip(ones, raws))
    result = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "game": args.game,
        "steps": args.steps,
        "raw_ale_frames_per_s": round(raw, 1),
        "env_steps_per_s": round(one, 1),
        "env_frames_per_s": round(4 * one, 1),
        "env_over_raw_frames": round(4 * one / raw, 3),
        "env_over_raw_frames_paired_median": round(paired[len(paired) // 2], 3),
        "target_env_over_raw": 0.7,
        "gym_ale_frames_per_s": round(gym_ale, 1),
        "env_over_gym_ale_frames": round(4 * one / gym_ale, 3),
    }
    if not args.skip_vector:
        vec = vector_steps_per_s(env_id, args.num_envs, max(1, args.steps // args.num_envs), args.seed, args.repeats)
        result.update({
            "num_envs": args.num_envs,
            "vector_env_steps_per_s": round(vec, 1),
            "vector_over_one": round(vec / one, 3),
            "target_vector_over_one": 1.5,
        })
    emit(result, args.out)
    return result


if __name__ == "__main__":
    main()
