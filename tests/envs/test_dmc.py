"""DMC suite wrapper: action rescaling, repeat and time limit against a raw dm_control env, check_env, pixels."""
import json

import numpy as np
import pytest

dmc = pytest.importorskip("envs.dmc", reason="dm_control is not installed (pip install 'ssmrl[dmc]')")
from dm_control import suite  # noqa: E402  (imported after envs.dmc chose MUJOCO_GL)
from gymnasium.utils.env_checker import check_env  # noqa: E402

import envs  # noqa: E402


def test_presets_and_names():
    assert len(dmc.ids()) == 20 and len(set(dmc.ids())) == 20
    for name in dmc.ids():
        assert dmc.accepts(name), name
    assert dmc.parse("cup-catch") == ("ball_in_cup", "catch")
    settings = dmc.make("cup-catch").reset(seed=0)[1]["settings"]
    assert (settings["env_id"], settings["domain"], settings["camera"]) == ("dmc/cup-catch", "ball_in_cup", 0)
    assert dmc.accepts("manipulator-bring_ball") and not dmc.accepts("walker-fly")
    assert not dmc.accepts("lqr-lqr_2_1")  # unbounded actions cannot be rescaled from [-1, 1]
    with pytest.raises(ValueError, match="valid ids"):
        envs.make("dmc/walker-fly")
    with pytest.raises(TypeError, match="unknown dmc setting"):
        dmc.make("walker-walk", repeat=2)
    with pytest.raises(ValueError, match="obs must be"):
        dmc.make("walker-walk", obs="rgb")


def test_rescale_formula():
    low, high = np.array([-1.0, -0.8, 0.0]), np.array([1.1, 0.8, 4.0])
    np.testing.assert_allclose(dmc.rescale(-np.ones(3), low, high), low)
    np.testing.assert_allclose(dmc.rescale(np.ones(3), low, high), high)
    np.testing.assert_allclose(dmc.rescale(np.zeros(3), low, high), [0.05, 0.0, 2.0])
    np.testing.assert_allclose(dmc.rescale(np.array([5.0, -5.0, 0.5]), low, high), [1.1, -0.8, 3.0])


def test_actions_reach_physics_rescaled_to_actuator_bounds():
    env = dmc.make("quadruped-walk")  # bounds differ from [-1, 1]: [-1, 1.1] and [-0.8, 0.8]
    env.reset(seed=0)
    bounds = env.physics.model.actuator_ctrlrange.copy()  # independent source of the bounds
    assert not np.allclose(bounds, [-1, 1])
    assert env.action_space.low.min() == -1 and env.action_space.high.max() == 1
    rng = np.random.default_rng(0)
    for _ in range(3):
        a = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        env.step(a)
        expected = bounds[:, 0] + (a.astype(np.float64) + 1) / 2 * (bounds[:, 1] - bounds[:, 0])
        np.testing.assert_allclose(env.physics.data.ctrl, expected, rtol=1e-6, atol=1e-6)


def test_repeat_rewards_and_obs_match_raw_dm_control():
    seed, repeat = 7, 3
    env = dmc.make("cartpole-swingup", action_repeat=repeat)
    obs, info = env.reset(seed=seed)
    # the wrapper seeds the task from its np_random, which is default_rng(seed)
    raw = suite.load("cartpole", "swingup", task_kwargs={"random": int(np.random.default_rng(seed).integers(2**31))})
    ts = raw.reset()
    flat = lambda o: np.concatenate([np.asarray(v, np.float32).ravel() for v in o.values()])  # noqa: E731
    np.testing.assert_allclose(obs["vector"], flat(ts.observation), rtol=1e-6)
    rng = np.random.default_rng(1)
    for _ in range(5):
        a = rng.uniform(-1, 1, (1,)).astype(np.float32)
        obs, r, term, trunc, info = env.step(a)
        total = 0.0
        for _ in range(repeat):
            ts = raw.step(a.astype(np.float64))
            total += ts.reward
        np.testing.assert_allclose(obs["vector"], flat(ts.observation), rtol=1e-5, atol=1e-6)
        assert r == pytest.approx(total)
    assert info["env_steps"] == 5 * repeat


def test_time_limit_in_underlying_steps():
    env = dmc.make("cartpole-balance")
    _, info = env.reset(seed=0)
    assert info["settings"]["action_repeat"] == 2 and info["settings"]["time_limit"] == 1000
    assert info["settings"]["agent_steps_per_episode"] == 500
    json.dumps(info["settings"])  # the run writes settings to run.json
    a = np.zeros(1, np.float32)
    for t in range(1, 501):
        _, _, term, trunc, info = env.step(a)
        assert not term
        assert trunc == (t == 500), t
    assert info["env_steps"] == 1000
    with pytest.raises(RuntimeError, match="reset"):
        env.step(a)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([np.nan], np.float32))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(2, np.float32))
    env = dmc.make("cartpole-balance", action_repeat=3, time_limit=10)
    env.reset(seed=0)
    steps = [env.step(a)[4]["env_steps"] for _ in range(4)]
    assert steps == [3, 6, 9, 10]  # the last agent step is cut short at the limit


def test_check_env_and_seed_determinism():
    env = envs.make("dmc/walker-walk", seed=0)
    check_env(env, skip_render_check=True)
    obs1, _ = env.reset(seed=3)
    traj1 = [env.step(np.full(6, 0.3, np.float32))[0]["vector"] for _ in range(5)]
    obs2, _ = env.reset(seed=3)
    traj2 = [env.step(np.full(6, 0.3, np.float32))[0]["vector"] for _ in range(5)]
    np.testing.assert_array_equal(obs1["vector"], obs2["vector"])
    np.testing.assert_array_equal(np.stack(traj1), np.stack(traj2))
    obs3, _ = env.reset(seed=4)
    assert not np.array_equal(obs1["vector"], obs3["vector"])  # walker's initial pose is random


def test_pixels_fast_render():
    env = dmc.make("quadruped-run", obs="both", fast_render=True)
    try:
        obs, info = env.reset(seed=0)
    except Exception as err:  # no usable OpenGL on this machine
        pytest.skip(f"headless rendering unavailable: {err!r}")
    settings = info["settings"]
    assert settings["camera"] == 2 and settings["render_backend"] in ("egl", "osmesa")
    img = obs["image"]
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8 and img.std() > 5
    assert obs["vector"].dtype == np.float32 and obs["vector"].shape == env.observation_space["vector"].shape
    obs2, _, _, _, _ = env.step(np.ones(12, np.float32))
    for _ in range(3):
        obs2, _, _, _, _ = env.step(np.ones(12, np.float32))
    assert not np.array_equal(img, obs2["image"])  # the body moved
    env.close()
    check_env(dmc.make("cartpole-balance", obs="pixels", fast_render=True), skip_render_check=True)


def test_select_gl_keeps_user_choice_and_probes_in_order(monkeypatch):
    from envs import rendering

    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    assert rendering.select_gl() == "osmesa"  # a user's setting is never overridden
    with pytest.raises(ValueError, match="order"):
        rendering.select_gl(order=("vulkan",))
    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)
    expected = next((b for b in ("egl", "osmesa") if rendering.probe(b)), "disable")
    assert rendering.select_gl() == expected == rendering.gl_info()["mujoco_gl"]
    monkeypatch.delenv("MUJOCO_GL")
    assert rendering.select_gl(order=()) == "disable"  # nothing to try: rendering off, proprio still works


def test_probe_keeps_mesa_out_of_the_process_and_triton_loads_first():
    """Mesa's LLVM followed by a triton import segfaults: the probe runs in a child, envs.dmc preloads triton."""
    import importlib.util
    import os
    import subprocess
    import sys

    code = (
        "import os; os.environ.pop('MUJOCO_GL', None)\n"
        "from envs.rendering import select_gl; select_gl()\n"
        "maps = open('/proc/self/maps').read()\n"
        "print(any(k in maps for k in ('LLVM', 'EGL_mesa', 'OSMesa')))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
    if importlib.util.find_spec("triton") is not None and dmc.gl_info()["mujoco_gl"] in ("egl", "osmesa"):
        assert "triton" in sys.modules  # imported by envs.dmc before dm_control opened the display
