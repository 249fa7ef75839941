"""Memory suites: rules checked directly against independent re-computations, determinism, check_env."""
import json

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.memory import draw, make, scripted_policy
from envs.memory.doors_keys import ROWS
from envs.memory.four_rooms import distances_to, layout, room_of


@pytest.mark.parametrize("name", ["distracting-100", "distracting-200", "distracting-400", "doors-keys-3",
                                  "doors-keys-5", "doors-keys-7", "four-rooms"])
def test_check_env_and_spaces(name):
    env = make(name, max_steps=50)
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert obs["image"].shape == (64, 64, 3) and obs["image"].dtype == np.uint8
    assert info["settings"]["env_id"] == f"memory/{name}" and info["settings"]["max_steps"] == 50
    json.dumps(info["settings"])  # the run writes settings to run.json


def test_factory_ids_and_errors():
    env = envs.make("memory/doors-keys-5", seed=3)
    assert env.unwrapped.n == 5
    assert envs.make("memory/distracting-37").unwrapped.config.width == 37  # accepted beyond the presets
    with pytest.raises(ValueError, match="valid ids"):
        envs.make("memory/doors-keys-9")
    with pytest.raises(TypeError, match="unknown setting"):
        make("four-rooms", room_sise=5)
    with pytest.raises(ValueError, match="fixed by the id"):
        make("distracting-100", width=200)
    env = make("four-rooms", max_steps=5)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(7)


# ---------------------------------------------------------------------------------------- distracting
def test_distracting_reward_follows_position_rule():
    width = 40
    env = make("distracting-40", max_steps=400)
    _, info = env.reset(seed=1)
    assert info["settings"]["segment"] == 4 and info["position"] == 0
    rng = np.random.default_rng(0)
    pos = 0
    rewards = []
    for _ in range(400):
        a = int(rng.choice(3, p=[0.2, 0.2, 0.6]))
        _, r, term, trunc, info = env.step(a)
        pos = min(max(pos + {0: 0, 1: -1, 2: 1}[a], 0), width - 1)  # walls clamp the walk
        assert info["position"] == pos
        assert r == (1.0 if (pos // 4) % 2 == 1 else 0.0)
        assert info["reward_zone"] == (r == 1.0)
        rewards.append(r)
        assert not term
    assert trunc and 0 < sum(rewards) < 400  # both zones were visited


def test_distracting_walls_block():
    env = make("distracting-10", max_steps=100)
    _, info = env.reset(seed=0)
    _, _, _, _, info = env.step(1)  # left at cell 0
    assert info["position"] == 0
    for _ in range(15):
        _, _, _, _, info = env.step(2)
    assert info["position"] == 9


def test_distracting_frame_hides_position():
    """Away from the walls and without distractors, frames repeat with period 2: the position can't be read."""
    env = make("distracting-100", n_distractors=0)
    obs, _ = env.reset(seed=0)
    frames = {}
    for _ in range(60):
        obs, _, _, _, info = env.step(2)
        frames[info["position"]] = obs["image"]
    np.testing.assert_array_equal(frames[10], frames[30])
    np.testing.assert_array_equal(frames[11], frames[51])
    assert not np.array_equal(frames[10], frames[11])  # motion is visible
    assert not np.array_equal(frames[1], frames[11])  # the wall is visible near the start


def test_distracting_cue_flips_the_rule_and_shows_only_on_the_left_wall():
    """With ``cue=True`` the reward is the plain rule with its segments swapped when the cue is 1; the cue is drawn
    after everything else at reset (same seed: the same distractors at reset as without it) and is visible only
    while the left wall is: brown for 0, blue for 1."""
    plain = make("distracting-40", n_distractors=2)
    assert "cue" not in plain.reset(seed=0)[1]
    with pytest.raises(ValueError, match="cue needs start='left'"):
        make("distracting-40", cue=True, start="random")
    with pytest.raises(ValueError, match="cue must be true or false"):
        make("distracting-40", cue="no")
    cues, frames = {}, {}
    for seed in range(12):
        env = make("distracting-40", n_distractors=2, cue=True)
        _, info = env.reset(seed=seed)
        _, plain_info = plain.reset(seed=seed)
        np.testing.assert_array_equal(info["distractor_xy"], plain_info["distractor_xy"])
        cue = cues[seed] = info["cue"]
        for _ in range(30):
            obs, r, _, _, info = env.step(2)
            assert info["cue"] == cue and r == float((info["position"] // 4 + cue) % 2 == 1)
    assert set(cues.values()) == {0, 1}
    for seed in range(12):  # without distractors the draws before the cue differ: find both cues again
        env = make("distracting-40", n_distractors=0, cue=True)
        obs, info = env.reset(seed=seed)
        if info["cue"] in frames:
            continue
        cue = info["cue"]
        frames[cue] = {0: obs["image"]}
        for _ in range(39):
            obs, _, _, _, info = env.step(2)
            frames[cue][info["position"]] = obs["image"]
    assert set(frames) == {0, 1}
    assert not np.array_equal(frames[0][0], frames[1][0])  # the left wall shows the cue
    np.testing.assert_array_equal(frames[0][0], make("distracting-40", n_distractors=0).reset(seed=0)[0]["image"])
    assert tuple(frames[1][0][32, 0]) == (40, 90, 140)  # the blue wall, at the frame's left edge
    np.testing.assert_array_equal(frames[0][20], frames[1][20])  # out of its sight the frames are the same
    np.testing.assert_array_equal(frames[0][39], frames[1][39])  # the far wall does not show it


def test_distracting_distractors_move_inside_frame():
    env = make("distracting-100", n_distractors=5)
    _, info = env.reset(seed=2)
    start = info["distractor_xy"].copy()
    for _ in range(30):
        _, _, _, _, info = env.step(0)
        xy = info["distractor_xy"]
        size = env.unwrapped._d_size[:, None]
        assert (xy >= 0).all() and (xy + size <= 64).all()
    assert not np.array_equal(start, info["distractor_xy"])


def test_distracting_policy_covers_hallway():
    env = make("distracting-100")
    obs, info = env.reset(seed=0)
    policy = scripted_policy(env, np.random.default_rng(0))
    seen = set()
    done = False
    while not done:
        obs, _, term, trunc, info = env.step(policy.act(obs, info))
        seen.add(info["position"])
        done = term or trunc
    assert env.unwrapped.max_steps == 500 and info["t"] == 500
    assert len(seen) == 100  # walked the whole hallway


# ----------------------------------------------------------------------------------------- doors-keys
def _door_cell_pixels(env, info, door):
    """The frame's pixel block of door ``door`` if it is in view, else None."""
    px, half = env.unwrapped.cell_px, env.unwrapped.config.view_cells // 2
    wc = int(info["door_cols"][door]) - int(info["agent"][1]) + half
    if not 0 <= wc < env.unwrapped.config.view_cells:
        return None
    return slice((ROWS - 1) * px, ROWS * px), slice(wc * px, (wc + 1) * px)


def test_doors_open_only_with_matching_key_and_stay_open():
    env = make("doors-keys-3", max_steps=200)
    _, info = env.reset(seed=4)
    base = env.unwrapped
    base.keys_on_floor[:] = False  # keep keys out of the way; hand them over explicitly
    door = 0
    color = int(info["door_colors"][door])
    wrong = (color + 1) % 3
    base.agent[:] = (3, info["door_cols"][door])
    obs, r, _, _, info = env.step(2)  # no key: stays closed
    assert r == 0 and not info["doors_open"][door] and tuple(info["agent"]) == (3, info["door_cols"][door])
    base.inventory[wrong] = True
    obs, r, _, _, info = env.step(2)  # wrong key: stays closed, key kept
    assert r == 0 and not info["doors_open"].any() and info["inventory"][wrong]
    ys, xs = _door_cell_pixels(env, info, door)
    assert (obs["image"][ys, xs] == draw.PALETTE[color]).all()  # closed door: a full cell of its colour
    base.inventory[color] = True
    obs, r, _, _, info = env.step(2)  # matching key: opens, key used up
    assert r == 1.0 and info["doors_open"][door] and info["n_open"] == 1
    assert not info["inventory"][color] and info["inventory"][wrong]
    img = obs["image"][ys, xs]
    assert (img[0, 0] == draw.PALETTE[color]).all() and (img[4, 4] == draw.FLOOR).all()  # open: outline
    obs, r, _, _, info = env.step(2)  # opening again gives nothing
    assert r == 0 and info["n_open"] == 1
    # walk out of view and back: the door is still open and drawn open
    for _ in range(8):
        obs, _, _, _, info = env.step(4)
    assert _door_cell_pixels(env, info, door) is None and info["doors_open"][door]
    for _ in range(8):
        obs, _, _, _, info = env.step(3)
    ys, xs = _door_cell_pixels(env, info, door)
    assert (obs["image"][ys, xs][4, 4] == draw.FLOOR).all() and info["doors_open"][door]


def test_read_doors_from_frames_matches_truth():
    env = make("doors-keys-5", max_steps=600)
    obs, info = env.reset(seed=1)
    policy = scripted_policy(env, np.random.default_rng(1))
    seen_open = seen_closed = 0
    for _ in range(600):
        obs, _, _, _, info = env.step(policy.act(obs, info))
        read = env.unwrapped.read_doors(obs["image"], int(info["agent"][1]))
        assert 1 <= len(read) <= 2  # doors 4 columns apart in a 7-column view
        for door, is_open in read.items():
            assert is_open == info["doors_open"][door]
            seen_open += is_open
            seen_closed += not is_open
    assert seen_open > 0 and seen_closed > 0


def test_keys_pickup_and_walls_block():
    env = make("doors-keys-3", max_steps=100)
    _, info = env.reset(seed=5)
    base = env.unwrapped
    k = 1
    r, c = info["key_cells"][k]
    others = [j for j in range(3) if j != k]
    base.keys_on_floor[others] = False
    start = (r, c - 1) if c > 1 else (r, c + 1)
    base.agent[:] = start
    obs, rew, _, _, info = env.step(4 if start[1] < c else 3)
    assert tuple(info["agent"]) == (r, c) and info["inventory"][k] and not info["keys_on_floor"][k]
    px = base.cell_px
    hud = obs["image"][ROWS * px + 1 + px // 2, k * px + px // 2]
    assert (hud == draw.PALETTE[k]).all()  # the inventory strip shows the key
    base.agent[:] = (1, 1)
    _, _, _, _, info = env.step(1)  # up into the top wall
    assert tuple(info["agent"]) == (1, 1)
    _, _, _, _, info = env.step(3)  # left into the side wall
    assert tuple(info["agent"]) == (1, 1)
    base.agent[:] = (3, 2)  # above the bottom wall, not a door
    _, _, _, _, info = env.step(2)
    assert tuple(info["agent"]) == (3, 2)


def test_doors_keys_policy_opens_all_doors():
    env = make("doors-keys-5", max_steps=1000)
    obs, info = env.reset(seed=0)
    policy = scripted_policy(env, np.random.default_rng(1))
    total, open_steps = 0.0, None
    for t in range(1000):
        obs, r, _, trunc, info = env.step(policy.act(obs, info))
        total += r
        if info["n_open"] == 5 and open_steps is None:
            open_steps = t
    assert trunc and total == 5.0 and open_steps is not None and open_steps < 700


# ----------------------------------------------------------------------------------------- four rooms
def test_four_rooms_walls_doorways_goal():
    env = make("four-rooms", max_steps=2000)
    _, info = env.reset(seed=3)
    base = env.unwrapped
    walls = layout(7, info["doorways"])
    assert walls.shape == (17, 17) and (~walls).sum() == 4 * 49 + 4
    for r, c in info["doorways"]:
        assert room_of(7, (r, c)) == -1 and not walls[r, c]
    # a wall blocks: stand beside the outer wall and push into it
    base.agent[:] = (1, 1)
    base.goal[:] = (5, 5)
    _, _, _, _, info = env.step(1)
    assert tuple(info["agent"]) == (1, 1) and info["room"] == 0
    # doorway cells are passable: stand beside the first doorway and walk through it
    dr, dc = info["doorways"][0]  # in the vertical wall, top half
    base.agent[:] = (dr, dc - 1)
    env.step(4)
    _, _, _, _, info = env.step(4)
    assert tuple(info["agent"]) == (dr, dc + 1) and info["room"] == 1
    # entering the goal pays and moves it to a free cell
    base.agent[:] = (2, 2)
    base.goal[:] = (2, 3)
    _, r, _, _, info = env.step(4)
    assert r == 1.0 and not (info["goal"] == (2, 3)).all() and not walls[tuple(info["goal"])]
    assert not any((info["goal"] == o).all() for o in info["objects"])
    _, r, _, _, _ = env.step(0)
    assert r == 0.0


def test_four_rooms_bfs_matches_manhattan_inside_room():
    walls = layout(7, np.array([[4, 8], [12, 8], [8, 4], [8, 12]]))
    dist = distances_to(walls, (1, 1))
    for r in range(1, 8):
        for c in range(1, 8):
            assert dist[r, c] == (r - 1) + (c - 1)
    assert (dist[~walls] >= 0).all()  # every free cell is reachable
    # into the next room through the doorway (4, 8): |4-1| + |8-1| + 1 more step per cell beyond
    assert dist[4, 9] == 3 + 8


def test_four_rooms_policy_visits_every_room():
    env = make("four-rooms", max_steps=1000)
    obs, info = env.reset(seed=0)
    policy = scripted_policy(env, np.random.default_rng(0))
    rooms = set()
    for _ in range(1000):
        obs, _, _, trunc, info = env.step(policy.act(obs, info))
        rooms.add(info["room"])
    assert trunc and rooms >= {0, 1, 2, 3}


# --------------------------------------------------------------------------------------- determinism
def _rollout(name, seed, policy_seed, steps=150):
    env = make(name)
    obs, info = env.reset(seed=seed)
    policy = scripted_policy(env, np.random.default_rng(policy_seed))
    frames, rewards = [obs["image"]], []
    for _ in range(steps):
        obs, r, _, _, info = env.step(policy.act(obs, info))
        frames.append(obs["image"])
        rewards.append(r)
    return np.stack(frames), np.array(rewards)


@pytest.mark.parametrize("name", ["distracting-100", "doors-keys-7", "four-rooms"])
def test_seed_determinism(name):
    f1, r1 = _rollout(name, 11, 0)
    f2, r2 = _rollout(name, 11, 0)
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(r1, r2)
    f3, _ = _rollout(name, 12, 0)
    assert not np.array_equal(f1, f3)


def test_collect_episode_matches_manual_loop():
    from envs.memory import collect_episode

    env = make("doors-keys-3", max_steps=60)
    ep = collect_episode(env, scripted_policy(env, np.random.default_rng(2)), seed=9)
    assert ep["image"].shape == (61, 64, 64, 3) and ep["action"].shape == (60,)
    assert ep["truncated"][-1] and not ep["truncated"][:-1].any() and not ep["terminated"].any()
    assert ep["truth/doors_open"].shape == (61, 3) and ep["settings"]["n_keys"] == 3
    # replaying the recorded actions from the same seed reproduces frames, rewards and ground truth
    obs, info = env.reset(seed=9)
    np.testing.assert_array_equal(obs["image"], ep["image"][0])
    for t, a in enumerate(ep["action"]):
        obs, r, _, _, info = env.step(int(a))
        np.testing.assert_array_equal(obs["image"], ep["image"][t + 1])
        assert r == ep["reward"][t]
        np.testing.assert_array_equal(info["agent"], ep["truth/agent"][t + 1])


def test_four_rooms_goal_stays_without_respawn():
    env = make("four-rooms", respawn_goal=False)
    env.reset(seed=0)
    base = env.unwrapped
    base.agent[:] = (2, 2)
    base.goal[:] = (2, 3)
    _, r1, _, _, info = env.step(4)
    _, r2, _, _, _ = env.step(3)
    _, r3, _, _, info = env.step(4)
    assert (r1, r2, r3) == (1.0, 0.0, 1.0) and tuple(info["goal"]) == (2, 3)
