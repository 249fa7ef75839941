"""Atari100k suite: protocol against a hand-stepped raw ALE, life-loss handling, caps, seeding, reference scores."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

pytest.importorskip("ale_py")
from ale_py import ALEInterface, LoggerMode, roms  # noqa: E402
from gymnasium.utils.env_checker import check_env  # noqa: E402

import envs  # noqa: E402
from envs import atari100k  # noqa: E402


def _raw_ale(rom: str) -> ALEInterface:
    ALEInterface.setLoggerMode(LoggerMode.Error)
    ale = ALEInterface()
    ale.setInt("frame_skip", 1)
    ale.setFloat("repeat_action_probability", 0.0)
    ale.loadROM(roms.get_rom_path(rom))
    ale.reset_game()
    return ale


def _actions(n: int, num_actions: int, seed: int = 0) -> list[int]:
    return [int(a) for a in np.random.default_rng(seed).integers(num_actions, size=n)]


def test_check_env_passes():
    env = envs.make("atari100k/Pong", seed=0)
    check_env(env, skip_render_check=True)


def test_protocol_matches_hand_stepped_ale():
    """4-frame repeat, reward summed, max of the last two frames, INTER_AREA to 64x64, life-loss signal."""
    env = envs.make("atari100k/Breakout", seed=3)
    obs, info = env.reset(seed=3)
    ale = _raw_ale("breakout")
    minimal = ale.getMinimalActionSet()
    assert env.action_space.n == len(minimal) == 4
    assert info["settings"]["frame_skip"] == 4 and info["settings"]["repeat_action_probability"] == 0.0
    first = np.empty((210, 160, 3), np.uint8)
    ale.getScreenRGB(first)
    np.testing.assert_array_equal(obs, cv2.resize(first, (64, 64), interpolation=cv2.INTER_AREA))
    total_reward, life_losses, pooled_differs = 0.0, 0, False
    lives = ale.lives()
    for step, a in enumerate(_actions(400, 4, seed=1)):
        frames, reward = [], 0.0
        for _ in range(4):
            reward += ale.act(minimal[a])
            frames.append(ale.getScreenRGB())
            if ale.game_over():
                break
        over = ale.game_over()
        assert len(frames) == 4 or over
        if len(frames) < 4:  # the game ended inside the repeat: the final frame alone
            frames = [frames[-1]] * 4
        expected = cv2.resize(np.maximum(frames[2], frames[3]), (64, 64), interpolation=cv2.INTER_AREA)
        last_only = cv2.resize(frames[3], (64, 64), interpolation=cv2.INTER_AREA)
        pooled_differs |= not np.array_equal(expected, last_only)
        expected_loss = ale.lives() < lives and not over  # a game over is not reported as a life loss
        lives = ale.lives()
        obs, r, terminated, truncated, info = env.step(a)
        assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
        np.testing.assert_array_equal(obs, expected, err_msg=f"step {step}")
        assert r == reward, f"step {step}"
        assert (info["life_loss"], info["lives"]) == (expected_loss, lives), f"step {step}"
        assert info["frame"] == ale.getEpisodeFrameNumber()
        assert terminated == over and not truncated
        total_reward += r
        life_losses += expected_loss
        if over:
            break
    # the comparison above only means something if these events happened
    assert total_reward > 0 and life_losses >= 1 and pooled_differs


def test_grayscale_is_luminance_of_pooled_frame():
    env = envs.make("atari100k/Breakout", seed=0, grayscale=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 1) and env.observation_space.shape == (64, 64, 1)
    ale = _raw_ale("breakout")
    for a in _actions(20, 4):
        frames = []
        for _ in range(4):
            ale.act(ale.getMinimalActionSet()[a])
            frames.append(ale.getScreenRGB())
        gray = cv2.cvtColor(np.maximum(frames[2], frames[3]), cv2.COLOR_RGB2GRAY)
        obs, *_ = env.step(a)
        np.testing.assert_array_equal(obs[:, :, 0], cv2.resize(gray, (64, 64), interpolation=cv2.INTER_AREA))


def test_life_loss_terminal_continues_the_game():
    env = envs.make("atari100k/Breakout", seed=0, life_loss_terminal=True)
    env.reset(seed=0)
    ale = _raw_ale("breakout")
    acts = _actions(3000, 4, seed=2)
    t, episodes = 0, 0
    while True:
        a = acts[t]
        t += 1
        for _ in range(4):
            ale.act(ale.getMinimalActionSet()[a])
            if ale.game_over():
                break
        obs, _, terminated, truncated, info = env.step(a)
        assert info["lives"] == ale.lives()
        if terminated:
            episodes += 1
            if ale.game_over():
                break
            assert info["life_loss"]
            with pytest.raises(RuntimeError):
                env.step(0)
            obs, info = env.reset()  # continues: same game, same lives, current frame
            assert info["continued"] and info["lives"] == ale.lives()
            screen = ale.getScreenRGB()
            np.testing.assert_array_equal(obs, cv2.resize(screen, (64, 64), interpolation=cv2.INTER_AREA))
    assert episodes == 5  # Breakout: 5 lives, one learner episode per life
    obs, info = env.reset()
    assert not info["continued"] and info["lives"] == 5 and info["frame"] == 0


def test_frame_cap_truncates():
    env = envs.make("atari100k/Pong", seed=0, max_frames=400)
    env.reset(seed=0)
    for step in range(100):
        _, _, terminated, truncated, info = env.step(0)
        assert not terminated
        assert truncated == (step == 99), step
    assert info["frame"] == 400
    _, info = env.reset()
    assert info["frame"] == 0 and not info["continued"]


def test_noop_starts_are_seeded():
    env = envs.make("atari100k/Pong", noop_max=30)
    counts = {}
    for seed in range(8):
        _, info = env.reset(seed=seed)
        assert 1 <= info["noops"] <= 30 and info["frame"] == info["noops"]
        counts[seed] = info["noops"]
    again = {s: env.reset(seed=s)[1]["noops"] for s in range(8)}
    assert again == counts and len(set(counts.values())) > 1


def test_same_seed_same_trajectory_with_sticky_actions():
    def rollout(seed):
        env = envs.make("atari100k/Breakout", repeat_action_probability=0.25)
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for a in _actions(150, 4, seed=5):
            out.append(env.step(a)[0])
        return np.stack(out)

    a, b, c = rollout(7), rollout(7), rollout(8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)  # sticky draws depend on the seed


def test_unknown_game_lists_valid_ids():
    with pytest.raises(ValueError, match=r"valid ids: \['atari100k/Alien'"):
        envs.make("atari100k/Tetris")
    with pytest.raises(ValueError, match="atari100k/UpNDown"):
        atari100k.make("NotAGame")
    with pytest.raises(TypeError, match="frame_skipp"):
        envs.make("atari100k/Pong", frame_skipp=3)
    env = envs.make("atari/Tetris", seed=0)  # any ALE game through the atari/ prefix
    assert env.observation_space.shape == (64, 64, 3)


# rounded as papers print them (docs/references.md#atari-reference-scores, #published-atari100k-scores):
# game -> (random, human, IRIS score)
_TABLE = {
    "Alien": (227.8, 7128, 420.0), "Amidar": (5.8, 1720, 143.0), "Assault": (222.4, 742.0, 1524),
    "Asterix": (210.0, 8503, 853.6), "BankHeist": (14.2, 753.1, 53.1), "BattleZone": (2360, 37188, 13074),
    "Boxing": (0.1, 12.1, 70.1), "Breakout": (1.7, 30.5, 83.7), "ChopperCommand": (811.0, 7388, 1565),
    "CrazyClimber": (10780, 35829, 59324), "DemonAttack": (152.1, 1971, 2034), "Freeway": (0.0, 29.6, 31.1),
    "Frostbite": (65.2, 4335, 259.1), "Gopher": (257.6, 2412, 2236), "Hero": (1027, 30826, 7037),
    "Jamesbond": (29.0, 302.8, 462.7), "Kangaroo": (52.0, 3035, 838.2), "Krull": (1598, 2666, 6616),
    "KungFuMaster": (258.5, 22736, 21760), "MsPacman": (307.3, 6952, 999.1), "Pong": (-20.7, 14.6, 14.6),
    "PrivateEye": (24.9, 69571, 100.0), "Qbert": (163.9, 13455, 745.7), "RoadRunner": (11.5, 7845, 9615),
    "Seaquest": (68.4, 42055, 661.3), "UpNDown": (533.4, 11693, 3546),
}


def test_reference_scores_and_human_normalised_score():
    assert sorted(atari100k.ids()) == sorted(_TABLE) and len(_TABLE) == 26
    for game, (rnd, hum, _) in _TABLE.items():
        ref_rnd, ref_hum = atari100k.REFERENCE_SCORES[game]
        assert abs(ref_rnd - rnd) <= 0.5 and abs(ref_hum - hum) <= 0.5, game
        assert atari100k.human_normalised_score(game, ref_rnd) == pytest.approx(0.0, abs=1e-12)
        assert atari100k.human_normalised_score(game, ref_hum) == pytest.approx(1.0)
        score = 0.3 * hum + 11.0
        assert atari100k.human_normalised_score(game, score) == pytest.approx((score - ref_rnd) / (ref_hum - ref_rnd))
    # IRIS's published aggregate (docs/references.md#published-atari100k-scores): mean HNS 1.046, median 0.289
    hns = [atari100k.human_normalised_score(g, v[2]) for g, v in _TABLE.items()]
    assert np.mean(hns) == pytest.approx(1.046, abs=2e-3)
    assert np.median(hns) == pytest.approx(0.289, abs=2e-3)
    with pytest.raises(ValueError, match="Pong"):
        atari100k.human_normalised_score("Tetris", 1.0)
