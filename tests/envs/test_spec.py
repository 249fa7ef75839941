"""``envs.spec.EnvSpec``: built by ``env_spec`` from real envs (discrete Atari-like images, continuous DMC / MuJoCo
vectors), checked on construction, and what the world-model builder, the Dreamer agent and offline evaluation
read instead of hand-built dicts of spaces."""
from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs.spec import EnvSpec, ObservationSpec, env_spec


def test_a_discrete_atari_env_gives_its_image_and_action_count():
    pytest.importorskip("ale_py")
    env = envs.make("atari100k/Pong", seed=0)  # a bare uint8 Box (H, W, C): the rollout engine's "image"
    spec = env_spec(env)
    env.close()
    assert spec == EnvSpec((ObservationSpec("image", (64, 64, 3), "uint8"),), action_dim=6, discrete=True)
    assert spec.keys == ("image",) and spec.image_shape == (64, 64, 3) and spec.vector_dim is None
    assert spec.action_low is None and spec.action_high is None


def test_a_discrete_dict_image_env():
    env = envs.make("memory/four-rooms", image_size=16)
    spec = env_spec(env)
    assert spec.image_shape == (16, 16, 3) and spec.observation("image").dtype == "uint8"
    assert spec.action_dim == env.action_space.n and spec.discrete and spec.vector_dim is None


def test_a_continuous_dmc_env_gives_vector_image_and_bounds():
    pytest.importorskip("envs.dmc", reason="dm_control is not installed")
    env = envs.make("dmc/cartpole-swingup", seed=0, obs="both", size=(32, 32))
    spec = env_spec(env)
    env.close()
    assert spec.keys == ("image", "vector")
    assert spec.observation("vector") == ObservationSpec("vector", (5,), "float32") and spec.vector_dim == 5
    assert spec.image_shape == (32, 32, 3)
    assert (spec.action_dim, spec.discrete, spec.action_low, spec.action_high) == (1, False, (-1.0,), (1.0,))


def test_a_continuous_mujoco_env_flat_or_dict():
    pytest.importorskip("envs.mujoco", reason="mujoco is not installed")
    dict_spec = env_spec(envs.make("mujoco/Hopper"))
    flat_spec = env_spec(envs.make("mujoco/Hopper", flat_obs=True))
    assert dict_spec == flat_spec  # a bare float Box is the "vector" observation
    assert flat_spec.observations == (ObservationSpec("vector", (11,), "float32"),) and flat_spec.vector_dim == 11
    assert (flat_spec.action_dim, flat_spec.discrete) == (3, False) and flat_spec.image_shape is None
    assert flat_spec.action_low == (-1.0,) * 3 and flat_spec.action_high == (1.0,) * 3


def test_a_vector_env_gives_the_spec_of_one_copy():
    vec = envs.make_vector("memory/four-rooms", 3, image_size=16)
    try:
        assert env_spec(vec) == env_spec(envs.make("memory/four-rooms", image_size=16))
    finally:
        vec.close()


class _Spaces(gym.Env):
    def __init__(self, observation_space, action_space):
        self.observation_space, self.action_space = observation_space, action_space


def test_what_env_spec_cannot_describe_is_an_error_naming_it():
    box = gym.spaces.Box(-1, 1, (3,), np.float32)
    with pytest.raises(ValueError, match="unsupported action space MultiDiscrete"):
        env_spec(_Spaces(box, gym.spaces.MultiDiscrete([2, 3])))
    with pytest.raises(ValueError, match="unsupported action space Box"):
        env_spec(_Spaces(box, gym.spaces.Box(-1, 1, (2, 2), np.float32)))
    with pytest.raises(ValueError, match="observation 'pos': EnvSpec describes Box observations"):
        env_spec(_Spaces(gym.spaces.Dict({"pos": gym.spaces.Discrete(4)}), gym.spaces.Discrete(2)))
    spec = env_spec(_Spaces(gym.spaces.Box(0, 1, (2, 4), np.float64), gym.spaces.Box(-2, 3, (2,), np.float32)))
    assert spec.observation("vector") == ObservationSpec("vector", (2, 4), "float64") and spec.vector_dim == 8
    assert spec.action_low == (-2.0, -2.0) and spec.action_high == (3.0, 3.0)


def test_an_inconsistent_spec_is_refused():
    image = ObservationSpec("image", (8, 8, 3), "uint8")
    vector = ObservationSpec("vector", (4,), "float32")
    with pytest.raises(ValueError, match="distinct keys in sorted order"):
        EnvSpec((vector, image), action_dim=2, discrete=True)
    with pytest.raises(ValueError, match="distinct keys"):
        EnvSpec((), action_dim=2, discrete=True)
    with pytest.raises(ValueError, match="discrete actions have no action_low"):
        EnvSpec((image,), action_dim=2, discrete=True, action_low=(-1.0, -1.0), action_high=(1.0, 1.0))
    with pytest.raises(ValueError, match="continuous actions need action_low and action_high of length action_dim=2"):
        EnvSpec((image,), action_dim=2, discrete=False, action_low=(-1.0,), action_high=(1.0,))
    with pytest.raises(ValueError, match="action_dim must be >= 1"):
        EnvSpec((image,), action_dim=0, discrete=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        EnvSpec((image,), action_dim=2, discrete=True).action_dim = 3


# ---------------------------------------------------------------------------------------------- who reads it


SPEC = EnvSpec((ObservationSpec("image", (16, 16, 3), "uint8"), ObservationSpec("vector", (5,), "float32")),
               action_dim=4, discrete=True)


def test_the_world_model_config_comes_from_the_spec():
    from ssmrl.world_models import make_config

    cfg = make_config("s4wm", "debug", env=SPEC, **{"ssm.d_state": 8})
    assert (cfg.image_shape, cfg.vector_dim, cfg.action_dim, cfg.discrete_actions) == ((16, 16, 3), 5, 4, True)
    assert cfg == make_config("s4wm", "debug", action_dim=4, image_shape=(16, 16, 3), vector_dim=5,
                              discrete_actions=True, **{"ssm.d_state": 8})
    vector_only = EnvSpec((ObservationSpec("vector", (3,), "float32"),), action_dim=2, discrete=False,
                          action_low=(-1.0, -1.0), action_high=(1.0, 1.0))
    cfg = make_config("drama", "debug", env=vector_only)
    assert (cfg.image_shape, cfg.vector_dim, cfg.action_dim, cfg.discrete_actions) == (None, 3, 2, False)
    with pytest.raises(ValueError, match=r"\['action_dim', 'image_shape'\] come from env="):
        make_config("drama", "debug", env=SPEC, action_dim=4, image_shape=(16, 16, 3))
    with pytest.raises(TypeError, match="needs env="):
        make_config("drama", "debug")


def test_the_dreamer_agent_takes_the_spec_and_checks_what_it_needs():
    import torch

    from agents.dreamer.agent import DreamerAgent, check_env_spec
    from agents.dreamer.config import ActorCriticConfig, DreamerConfig, WorldModelSection

    ac = ActorCriticConfig(actor_units=8, critic_units=8, actor_layers=1, critic_layers=1, num_bins=15)
    agent = DreamerAgent(WorldModelSection("drama", "debug"), ac, DreamerConfig(), SPEC, torch.device("cpu"), seed=0)
    assert agent.spec is SPEC and agent.wm.cfg.image_shape == (16, 16, 3) and agent.wm.cfg.vector_dim == 5
    assert agent.ac.action_dim == 4 and agent.ac.discrete
    with pytest.raises(ValueError, match=r"the env also has \['depth'\]"):
        check_env_spec(EnvSpec((ObservationSpec("depth", (8, 8), "float32"), ObservationSpec("image", (8, 8, 3), "uint8")),
                               action_dim=2, discrete=True))
    with pytest.raises(ValueError, match=r"continuous actions must lie in \[-1, 1\] \(got low \(-2.0,\)"):
        DreamerAgent(WorldModelSection("drama", "debug"), ac, DreamerConfig(),
                     EnvSpec((ObservationSpec("vector", (3,), "float32"),), action_dim=1, discrete=False,
                             action_low=(-2.0,), action_high=(2.0,)), torch.device("cpu"), seed=0)


def test_offline_evaluation_refuses_an_env_whose_actions_tanh_cannot_reach():
    from agents.offline.bc import BC
    from agents.offline.config import ModelConfig
    from agents.offline.data import StateStats
    from agents.offline.trainer import evaluate
    from ssmrl.runs.config import ConfigError

    wide = gym.spaces.Box(-2, 2, (2,), np.float32)
    stats = StateStats(state_mean=np.zeros(3, np.float32), state_std=np.ones(3, np.float32), rtg_scale=1.0)
    model = BC(3, 2, ModelConfig(d_model=8, n_layers=1))
    env_fn = lambda s: _Spaces(gym.spaces.Box(-1, 1, (3,), np.float32), wide)  # noqa: E731
    with pytest.raises(ConfigError, match=r"actions lie in \[-2, 2\]; rescale"):
        evaluate(model, stats, env_fn, 1.0, episodes=1, seed=0)
