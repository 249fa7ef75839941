"""STORI suite: seed determinism for every type and each type's effect, checked against plain Atari / raw ALE."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

pytest.importorskip("ale_py")
from ale_py import ALEInterface, LoggerMode, roms  # noqa: E402
from gymnasium.utils.env_checker import check_env  # noqa: E402

import envs  # noqa: E402
from envs import stori  # noqa: E402


def _actions(n: int, num_actions: int, seed: int = 0) -> list[int]:
    return [int(a) for a in np.random.default_rng(seed).integers(num_actions, size=n)]


def _rollout(env_id: str, seed: int, actions, **overrides):
    """Obs (T+1, 64, 64, 3), rewards (T,), RAM after each step (T+1, 128), infos; stops at the end of a game."""
    env = envs.make(env_id, **overrides)
    obs, info = env.reset(seed=seed)
    out = {"obs": [obs], "rew": [], "ram": [env.unwrapped.ale.getRAM().copy()], "info": [info]}
    for a in actions:
        obs, r, terminated, truncated, info = env.step(a)
        out["obs"].append(obs)
        out["rew"].append(r)
        out["ram"].append(env.unwrapped.ale.getRAM().copy())
        out["info"].append(info)
        if terminated or truncated:
            break
    return {k: (v if k == "info" else np.asarray(v)) for k, v in out.items()}


def _same(a, b) -> bool:
    return all(np.array_equal(a[k], b[k]) for k in ("obs", "rew", "ram"))


def _raw_pooled_frames(rom: str, actions):
    """Hand-stepped raw ALE: the reset frame, then max of frames 3 and 4 of each 4-frame repeat."""
    ALEInterface.setLoggerMode(LoggerMode.Error)
    ale = ALEInterface()
    ale.setFloat("repeat_action_probability", 0.0)
    ale.loadROM(roms.get_rom_path(rom))
    ale.reset_game()
    out = [ale.getScreenRGB()]
    for a in actions:
        frames = []
        for _ in range(4):
            ale.act(ale.getMinimalActionSet()[a])
            frames.append(ale.getScreenRGB())
        out.append(np.maximum(frames[2], frames[3]))
    return out


def _resize(raw):
    return cv2.resize(raw, (64, 64), interpolation=cv2.INTER_AREA)


def test_check_env_passes():
    check_env(envs.make("stori/Boxing/3.2C", seed=0), skip_render_check=True)


# (id, overrides making draws frequent, whether different seeds must give different trajectories)
_DETERMINISM = [
    ("Breakout/1", {}, True),
    ("Breakout/2.1", {"event_prob": 1.0}, False),
    ("Breakout/2.2", {"drift_threshold": 5, "drift_to": "3.2", "hide": "circle", "hide_prob": 0.5}, True),
    ("Breakout/3.1", {}, False),
    ("Breakout/3.2A", {}, False),
    ("Breakout/3.2B", {}, True),
    ("Breakout/3.2C", {}, True),
    ("Boxing/2.1", {"event_prob": 0.3}, True),
    ("Boxing/3.2C", {}, True),
    ("Gopher/2.1", {"event_prob": 1.0}, False),
    ("Gopher/2.2", {"drift_threshold": 5}, False),
    ("BankHeist/1", {}, True),
    ("BankHeist/2.1", {"event_prob": 0.2}, True),
    ("BankHeist/3.2", {}, True),
    ("Pong/3.2-crop-top", {"hide_prob": 0.5}, True),
]


@pytest.mark.parametrize("granularity", ["per_frame", "per_step"])
@pytest.mark.parametrize("name,overrides,stochastic", _DETERMINISM, ids=[d[0] for d in _DETERMINISM])
def test_same_seed_same_trajectory(name, overrides, stochastic, granularity):
    env_id = f"stori/{name}"
    n = envs.make(env_id).action_space.n
    acts = _actions(30, n, seed=1)
    a = _rollout(env_id, 11, acts, granularity=granularity, **overrides)
    b = _rollout(env_id, 11, acts, granularity=granularity, **overrides)
    assert _same(a, b)
    assert a["info"][0]["settings"]["granularity"] == granularity
    if stochastic:
        assert not _same(a, _rollout(env_id, 12, acts, granularity=granularity, **overrides))


@pytest.mark.parametrize("granularity", ["per_frame", "per_step"])
def test_type1_with_p1_ignores_the_chosen_action(granularity):
    fixed = [0] * 60
    varied = _actions(60, 4, seed=3)
    a = _rollout("stori/Breakout/1", 5, fixed, action_prob=1.0, granularity=granularity)
    b = _rollout("stori/Breakout/1", 5, varied, action_prob=1.0, granularity=granularity)
    assert _same(a, b)  # the chosen action never matters: every unit draws its own
    assert a["info"][-1]["stori"]["replaced"] == (4 if granularity == "per_frame" else 1)
    c = _rollout("stori/Breakout/1", 5, fixed, action_prob=0.0, granularity=granularity)
    d = _rollout("stori/Breakout/1", 5, varied, action_prob=0.0, granularity=granularity)
    assert not _same(c, d)  # ... while without corruption it does


def test_type1_replacement_rates():
    # per frame (upstream): a step runs entirely as chosen with probability 0.7**4 = 0.24 (docs/references.md#stori)
    per_frame = _rollout("stori/Pong/1", 0, [0] * 1200, granularity="per_frame")
    clean = np.mean([i["stori"]["replaced"] == 0 for i in per_frame["info"][1:]])
    assert clean == pytest.approx(0.7**4, abs=0.045)
    per_step = _rollout("stori/Pong/1", 0, [0] * 1200, granularity="per_step")
    assert np.mean([i["stori"]["replaced"] for i in per_step["info"][1:]]) == pytest.approx(0.3, abs=0.045)


def test_bankheist_type1_draws_from_the_first_ten_actions():
    env = envs.make("stori/BankHeist/1", seed=0, action_prob=1.0, granularity="per_step")
    assert env.action_space.n == 18 and env.unwrapped.settings()["random_action_count"] == 10
    drawn = {int(env.unwrapped._maybe_replace(17)) for _ in range(300)}
    assert drawn == set(range(10))


def test_type31_equals_plain_atari():
    acts = _actions(400, 4, seed=1)
    a = _rollout("stori/Breakout/3.1", 4, acts)
    b = _rollout("atari100k/Breakout", 4, acts)
    assert _same(a, b) and a["rew"].sum() > 0


@pytest.mark.parametrize("half", ["left", "right", "top", "bottom"])
def test_crop_blacks_the_named_half(half):
    acts = _actions(40, 4, seed=2)
    a = _rollout(f"stori/Breakout/3.2-crop-{half}", 0, acts, hide_prob=1.0)
    plain = _rollout("atari100k/Breakout", 0, acts)
    # 160 columns -> 64 (2.5 each): raw columns [0, 80) map exactly onto [0, 32); 210 rows: [0, 105) -> [0, 32)
    black, kept = {"left": (np.s_[:, :, :32], np.s_[:, :, 32:]), "right": (np.s_[:, :, 32:], np.s_[:, :, :32]),
                   "top": (np.s_[:, :32], np.s_[:, 32:]), "bottom": (np.s_[:, 32:], np.s_[:, :32])}[half]
    assert (a["obs"][black] == 0).all()
    np.testing.assert_array_equal(a["obs"][kept], plain["obs"][kept])
    assert plain["obs"][black].any()


def test_circle_and_blackout_match_masked_raw_frames():
    acts = _actions(30, 4, seed=6)
    raw = _raw_pooled_frames("breakout", acts)
    yy, xx = np.ogrid[:210, :160]
    circ = _rollout("stori/Breakout/3.2C", 1, acts, granularity="per_step")
    for t, frame in enumerate(raw):
        cx, cy = circ["info"][t]["stori"]["circle"]
        outside = (xx - cx) ** 2 + (yy - cy) ** 2 > 75**2
        masked = frame.copy()
        masked[outside] = 0
        np.testing.assert_array_equal(circ["obs"][t], _resize(masked), err_msg=f"step {t}")
    blk = _rollout("stori/Breakout/3.2A", 1, acts)  # ball hidden outside the middle band
    for t, frame in enumerate(raw):
        masked = frame.copy()
        masked[105:131, 8:152] = 0
        masked[157:183, 8:152] = 0
        np.testing.assert_array_equal(blk["obs"][t], _resize(masked), err_msg=f"step {t}")


def test_ram_hiding_changes_only_the_view():
    acts = _actions(80, 18, seed=4)
    hid = _rollout("stori/Boxing/3.2C", 2, acts, hide_prob=1.0)
    plain = _rollout("atari100k/Boxing", 2, acts)
    # the game is untouched: RAM read after every restore is the real game's RAM, rewards are the same
    np.testing.assert_array_equal(hid["ram"], plain["ram"])
    np.testing.assert_array_equal(hid["rew"], plain["rew"])
    ring = np.s_[:, 12:54, 13:51]  # inside the ring: the enemy is the only dark object
    darkest = lambda obs: obs[ring].astype(int).sum(-1).min(axis=(1, 2))  # noqa: E731
    assert (darkest(plain["obs"]) < 100).all()
    assert (darkest(hid["obs"]) > 200).all()


def test_breakout_block_hit_cancel():
    acts = _actions(400, 4, seed=1)
    plain = _rollout("atari100k/Breakout", 3, acts)
    canc = _rollout("stori/Breakout/2.1", 3, acts, event_prob=1.0)
    assert plain["rew"].sum() > 0 and (plain["ram"][:, :36] != plain["ram"][0, :36]).any()
    assert canc["rew"].sum() == 0  # every brick hit cancelled, reward 0
    assert (canc["ram"][:, :36] == canc["ram"][0, :36]).all()  # the bricks are always restored
    assert sum(i["stori"]["events"] for i in canc["info"][1:]) >= 1


def test_boxing_colour_swap_toggles():
    # the game rewrites its colour bytes every frame, so the swap is rewritten before every frame and is checked
    # on the rendered screens: white (player) and black (enemy) boxer pixels trade places on odd steps
    swap = envs.make("stori/Boxing/2.1", event_prob=1.0, granularity="per_step", render_mode="rgb_array")
    plain = envs.make("atari100k/Boxing", render_mode="rgb_array")
    swap.reset(seed=0)
    plain.reset(seed=0)
    ring = np.s_[36:177, 32:128]
    white, black = np.array([214, 214, 214]), np.array([0, 0, 0])
    for t, a in enumerate(_actions(12, 18, seed=1), start=1):
        swap.step(a)
        plain.step(a)
        s, p = swap.render()[ring], plain.render()[ring]
        p_white, p_black = (p == white).all(-1), (p == black).all(-1)
        assert p_white.any() and p_black.any()
        if t % 2:
            assert (s[p_white] == black).all() and (s[p_black] == white).all(), t
        else:
            np.testing.assert_array_equal(s, p)


def test_gopher_fill_cancel_keeps_holes_open():
    acts = _actions(1000, 8, seed=0)
    plain = _rollout("atari100k/Gopher", 0, acts)
    canc = _rollout("stori/Gopher/2.1", 0, acts, event_prob=1.0)
    assert (plain["rew"] == 20).any()  # the farmer filled holes in the plain game
    assert not (canc["rew"] == 20).any()  # ... never rewarded here
    events = sum(i["stori"]["events"] for i in canc["info"][1:])
    assert events >= 1


def test_bankheist_teleport_changes_city():
    run = _rollout("stori/BankHeist/2.1", 0, [0] * 12, event_prob=1.0, granularity="per_step")
    cities = run["ram"][:, 0] % 4
    assert (cities[1:] != cities[:-1]).all()


def test_drift_switches_at_the_threshold_and_reset_reverts():
    acts = [1] * 12
    a = _rollout("stori/Breakout/2.2", 0, acts, drift_threshold=5, hide="crop", crop_half="left",
                 granularity="per_step")
    plain = _rollout("atari100k/Breakout", 0, acts)
    concepts = [i["stori"]["concept"] for i in a["info"][1:]]
    assert concepts == ["3.1"] * 5 + ["3.2"] * 7
    np.testing.assert_array_equal(a["obs"][:6], plain["obs"][:6])  # reset frame + steps 0..4
    assert (a["obs"][6:, :, :32] == 0).all() and plain["obs"][6:, :, :32].any()
    env = envs.make("stori/Gopher/2.2", seed=0, drift_threshold=3)  # cyclic
    seen = [env.step(0)[4]["stori"]["concept"] for _ in range(9)]
    assert seen == ["3.1"] * 3 + ["3.2"] * 3 + ["3.1"] * 3
    _, info = env.reset()
    assert info["stori"]["concept"] == "3.1" and env.step(0)[4]["stori"]["concept"] == "3.1"


def test_bad_ids_and_settings_raise_clear_errors():
    with pytest.raises(ValueError, match=r"valid types: \['1', '2.1'"):
        stori.make("Breakout/9")
    with pytest.raises(ValueError, match="unknown environment id"):
        envs.make("stori/Breakout/9")
    with pytest.raises(ValueError, match="2.1 is available only for"):
        stori.make("Pong/3.1", stori_type="2.1")
    with pytest.raises(ValueError, match=r"region in \['scores_clock'\]"):
        stori.make("Boxing/3.2A", region="nope")
    with pytest.raises(ValueError, match="granularity"):
        stori.make("Breakout/1", granularity="sometimes")
    assert stori.accepts("Pong/3.2-circle") and not stori.accepts("Pong/2.1")
    assert "Breakout/3.2C" in stori.ids()
