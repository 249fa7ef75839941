"""Replay buffer: window sampling, episode boundaries, FIFO, samplers (uniform, recency, DFS), torch transfer."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ssmrl.replay import ReplayBuffer, ReplayConfig, to_torch


def chi2_ok(observed: np.ndarray, expected: np.ndarray) -> tuple[bool, float]:
    """Pearson statistic against df + 6 sd of a chi-square(df) (a fixed seed makes the test deterministic)."""
    keep = expected > 0
    stat = float((((observed - expected) ** 2)[keep] / expected[keep]).sum())
    df = int(keep.sum()) - 1
    return stat < df + 6 * np.sqrt(2 * df), stat


def record(stream: int, step: int, first: bool, last: bool = False, terminal: bool = False) -> dict:
    """A step whose content identifies (stream, step)."""
    return {
        "image": np.full((4, 4, 3), (7 * stream + step) % 256, dtype=np.uint8),
        "vector": np.array([stream, step], dtype=np.float32),
        "action": np.int64(step % 3),
        "reward": np.float32(step),
        "is_first": first,
        "is_last": last,
        "is_terminal": terminal,
    }


def fill(buffer: ReplayBuffer, episode_lengths: dict[int, list[int]]) -> dict[tuple[int, int], bool]:
    """Write episodes (lengths in records) per stream, interleaving streams; return the reference is_first map."""
    ref: dict[tuple[int, int], bool] = {}
    plans = {s: [(k == 0, k == n - 1) for n in lens for k in range(n)] for s, lens in episode_lengths.items()}
    longest = max(len(p) for p in plans.values())
    for t in range(longest):
        for s, plan in plans.items():
            if t < len(plan):
                first, last = plan[t]
                buffer.add(record(s, t, first, last, last and t % 2 == 0), stream=s)
                ref[(s, t)] = first
    return ref


EPISODES = {0: [5, 9, 3, 12], 1: [7, 7, 7], 2: [20, 2, 4]}


def make(**kw) -> ReplayBuffer:
    cfg = dict(capacity=300, num_streams=3, verbose=False)
    cfg.update(kw)
    return ReplayBuffer(ReplayConfig(**cfg))


def test_windows_never_mix_streams_and_match_written_content():
    buf = make()
    ref = fill(buf, EPISODES)
    batch = buf.sample(64, 6, with_index=True)
    assert batch["image"].shape == (64, 6, 4, 4, 3) and batch["image"].dtype == np.uint8
    assert batch["action"].dtype == np.int32 and batch["is_first"].dtype == bool
    s, t = batch["stream_id"], batch["step_id"]
    assert (s == s[:, :1]).all()  # one stream per window
    assert (np.diff(t, axis=1) == 1).all()  # consecutive steps
    # the stored content identifies (stream, step): compare with what was written
    np.testing.assert_array_equal(batch["vector"][..., 0], s)
    np.testing.assert_array_equal(batch["vector"][..., 1], t)
    np.testing.assert_array_equal(batch["image"][:, :, 0, 0, 0], (7 * s + t) % 256)
    expected_first = np.vectorize(lambda a, b: ref[(a, b)])(s, t)
    np.testing.assert_array_equal(batch["is_first"], expected_first)
    assert batch["is_first"][:, 1:].any()  # crossing mode does cross episode boundaries somewhere


def test_candidates_equal_brute_force_in_both_modes():
    for within in (False, True):
        buf = make(within_episode=within)
        ref = fill(buf, EPISODES)
        length = 5
        expected = set()
        for s, lens in EPISODES.items():
            total = sum(lens)
            for a in range(total - length + 1):
                if within and any(ref[(s, b)] for b in range(a + 1, a + length)):
                    continue
                expected.add((s, a))
        c = buf.candidates(length)
        assert set(zip(c.stream.tolist(), c.start.tolist())) == expected


def test_within_episode_windows_never_cross():
    buf = make(within_episode=True, sampler="recency", recency_half_life=5.0)
    fill(buf, EPISODES)
    batch = buf.sample(200, 7)
    assert not batch["is_first"][:, 1:].any()
    assert not batch["is_last"][:, :-1].any()
    with pytest.raises(ValueError, match="no window of length 25"):
        buf.sample(4, 25)


def test_fifo_keeps_only_the_newest_steps_per_stream():
    buf = make(capacity=30, num_streams=3)  # 10 per stream
    fill(buf, {0: [5, 9, 3, 12], 1: [7], 2: [20, 2, 4]})
    np.testing.assert_array_equal(buf.totals, [29, 7, 26])
    assert len(buf) == 10 + 7 + 10
    kept = buf.stream_arrays(0)
    np.testing.assert_array_equal(kept["vector"][:, 1], np.arange(19, 29))
    batch = buf.sample(100, 4, with_index=True)
    for s, lo, hi in ((0, 19, 29), (1, 0, 7), (2, 16, 26)):
        rows = batch["stream_id"][:, 0] == s
        assert (batch["step_id"][rows] >= lo).all() and (batch["step_id"][rows] < hi).all()


def test_bad_steps_are_rejected_with_the_key_named():
    buf = make()
    buf.add(record(0, 0, True))
    bad = record(0, 1, False)
    del bad["reward"]
    with pytest.raises(KeyError, match="reward"):
        buf.add(bad)
    bad = record(0, 1, False)
    bad["vector"] = np.zeros(3, dtype=np.float32)
    with pytest.raises(ValueError, match="vector"):
        buf.add(bad)
    bad = record(0, 1, False)
    bad["image"] = bad["image"].astype(np.float32)
    with pytest.raises(TypeError, match="image"):
        buf.add(bad)
    with pytest.raises(IndexError, match="stream 5"):
        buf.add(record(0, 1, False), stream=5)
    with pytest.raises(KeyError, match="is_first"):
        ReplayBuffer(ReplayConfig(verbose=False)).add({"vector": np.zeros(2)})


def test_uniform_frequencies():
    buf = make(num_streams=1, capacity=100, seed=3)
    fill(buf, {0: [10, 10, 10]})
    cands = buf.candidates(4)
    counts = np.zeros(len(cands))
    for _ in range(60):
        batch = buf.sample(100, 4, with_index=True)
        np.add.at(counts, batch["step_id"][:, 0], 1)
    ok, stat = chi2_ok(counts, np.full(len(cands), counts.sum() / len(cands)))
    assert ok, stat


def test_recency_weights_and_frequencies():
    half = 6.0
    buf = make(num_streams=2, capacity=200, sampler="recency", recency_half_life=half, seed=1)
    fill(buf, {0: [15, 10], 1: [12]})
    length = 3
    cands = buf.candidates(length)
    p = buf.sampler.probabilities(cands)
    # reference: age = newest step of the stream - window end, weight 0.5 ** (age / half)
    totals = {0: 25, 1: 12}
    w = np.array([0.5 ** ((totals[s] - (a + length)) / half) for s, a in zip(cands.stream, cands.start)])
    np.testing.assert_allclose(p, w / w.sum(), rtol=1e-12)
    counts = np.zeros(len(cands))
    key = {(s, a): i for i, (s, a) in enumerate(zip(cands.stream.tolist(), cands.start.tolist()))}
    for _ in range(50):
        b = buf.sample(100, length, with_index=True)
        for s, a in zip(b["stream_id"][:, 0].tolist(), b["step_id"][:, 0].tolist()):
            counts[key[(s, a)]] += 1
    expected = counts.sum() * w / w.sum()
    big = expected >= 5  # pool the rare old windows into one cell
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    ok, stat = chi2_ok(obs, exp)
    assert ok, stat
    assert counts[cands.age == 0].sum() > counts[cands.age == cands.age.max()].sum()


def dfs_train_reference(n: np.ndarray, tau: float = 10.0) -> np.ndarray:
    z = np.array([np.exp(-v / tau) for v in n])
    return z / z.sum()


def dfs_imag_reference(n: np.ndarray, m: np.ndarray) -> np.ndarray:
    # Drama: m~ = m / 64, score = n - m~ - max(0, n - m~) with alpha = beta = 1, P = softmax(score / 10)
    scores = []
    for ni, mi in zip(n, m):
        mt = mi / 64.0
        scores.append(ni - mt - max(0.0, ni - mt))
    z = np.exp(np.array(scores) / 10.0)
    return z / z.sum()


def test_dfs_world_model_batches_follow_the_formula():
    buf = make(num_streams=1, capacity=64, sampler="dfs", seed=11)
    fill(buf, {0: [30, 10]})
    length = 8
    cands = buf.candidates(length)
    k = len(cands)
    n_ref = np.zeros(k)  # counts kept by the test from what was sampled
    expected = np.zeros(k)
    observed = np.zeros(k)
    for _ in range(400):
        p_ref = dfs_train_reference(n_ref)
        np.testing.assert_allclose(buf.sampler.probabilities(cands, "train"), p_ref, rtol=1e-10)
        expected += p_ref
        b = buf.sample(1, length, with_index=True)
        i = int(b["step_id"][0, 0])  # single stream: start == candidate index
        observed[i] += 1
        n_ref[i] += 1
    ok, stat = chi2_ok(observed, expected)
    assert ok, stat
    # counts are balanced by design: no start used far more often than others
    assert observed.max() - observed.min() <= 12
    # batches are drawn without replacement and each pick counts once
    before = buf.sampler.n[cands.slot].copy()
    b = buf.sample(k, length, with_index=True)
    starts = b["step_id"][:, 0]
    assert len(set(starts.tolist())) == k
    np.testing.assert_array_equal(buf.sampler.n[cands.slot] - before, np.ones(k))
    with pytest.raises(ValueError, match="without replacement"):
        buf.sample(k + 1, length)


def spread_counts(buf: ReplayBuffer, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Give every slot very different n (0..40) and m (0..3000) through the sampler state."""
    rng = np.random.default_rng(seed)
    state = buf.sampler.state_dict()
    state["n"] = rng.integers(0, 41, size=buf.sampler.num_slots).astype(np.int32)
    state["m"] = rng.integers(0, 3001, size=buf.sampler.num_slots).astype(np.int32)
    buf.sampler.load_state_dict(state)
    return state["n"].copy(), state["m"].copy()


def test_dfs_frequencies_match_the_formula_at_fixed_counts():
    buf = make(num_streams=2, capacity=80, sampler="dfs", seed=5, dfs_imagination_divisor=64.0)
    fill(buf, {0: [20, 20], 1: [40]})
    length = 4
    cands = buf.candidates(length)
    key = {(s, a): i for i, (s, a) in enumerate(zip(cands.stream.tolist(), cands.start.tolist()))}
    n0, m0 = spread_counts(buf, 0)
    n, m = n0[cands.slot].astype(float), m0[cands.slot].astype(float)
    p_train, p_imag = dfs_train_reference(n), dfs_imag_reference(n, m)
    assert p_train.max() / p_train.min() > 20 and p_imag.max() / p_imag.min() > 20  # the test has power
    np.testing.assert_allclose(buf.sampler.probabilities(cands, "train"), p_train, rtol=1e-10)
    np.testing.assert_allclose(buf.sampler.probabilities(cands, "imagination"), p_imag, rtol=1e-10)
    # world-model draws: one start at a time, counts restored after each so p stays fixed
    counts = np.zeros(len(cands))
    for _ in range(6000):
        b = buf.sample(1, length, "train", with_index=True)
        counts[key[(int(b["stream_id"][0, 0]), int(b["step_id"][0, 0]))]] += 1
        buf.sampler.n[:] = n0
    ok, stat = chi2_ok(counts, 6000 * p_train)
    assert ok, stat
    # imagination draws: one start at a time from fixed p (counts restored after each)
    counts = np.zeros(len(cands))
    for _ in range(6000):
        b = buf.sample(1, length, "imagination", with_index=True)
        counts[key[(int(b["stream_id"][0, 0]), int(b["step_id"][0, 0]))]] += 1
        buf.sampler.m[:] = m0
    ok, stat = chi2_ok(counts, 6000 * p_imag)
    assert ok, stat
    np.testing.assert_array_equal(buf.sampler.n, n0)  # imagination leaves n alone
    # a batch of starts is drawn without replacement (Drama), each pick counted once in m
    k = len(cands) // 2
    b = buf.sample(k, length, "imagination", with_index=True)
    picked = [key[(s, a)] for s, a in zip(b["stream_id"][:, 0].tolist(), b["step_id"][:, 0].tolist())]
    assert len(set(picked)) == k
    np.testing.assert_array_equal(buf.sampler.m[cands.slot] - m0[cands.slot], np.isin(np.arange(len(cands)), picked))


def test_dfs_imagination_divisor_is_the_number_of_starts_per_world_model_window():
    from agents.dreamer.agent import replay_config
    from agents.dreamer.config import DreamerConfig

    for batch, starts in ((16, 1024), (8, 128), (4, 8)):
        cfg = replay_config(ReplayConfig(sampler="dfs"), DreamerConfig(batch_size=batch, imag_batch=starts))
        assert cfg.dfs_imagination_divisor == starts / batch
    assert replay_config(ReplayConfig(dfs_imagination_divisor=3.0), DreamerConfig()).dfs_imagination_divisor == 3.0
    buf = make(num_streams=1, capacity=40, sampler="dfs")
    fill(buf, {0: [40]})
    with pytest.raises(ValueError, match="dfs_imagination_divisor"):
        buf.sample(2, 4, "imagination")


def test_dfs_counts_restart_when_a_slot_is_overwritten():
    buf = make(num_streams=1, capacity=10, sampler="dfs", seed=0)
    fill(buf, {0: [10]})
    buf.sample(7, 4)  # all 7 starts once
    assert buf.sampler.n.sum() == 7
    buf.add(record(0, 10, True))  # overwrites slot 0 (step 0)
    assert buf.sampler.n[0] == 0 and buf.sampler.n[1:7].sum() == 6


def test_to_torch_keeps_dtypes_and_values():
    buf = make()
    fill(buf, EPISODES)
    batch = buf.sample(8, 5)
    tb = to_torch(batch, "cpu")
    assert tb["image"].dtype == torch.uint8 and tb["is_first"].dtype == torch.bool
    assert tb["vector"].dtype == torch.float32 and tb["action"].dtype == torch.int32
    for k in batch:
        np.testing.assert_array_equal(tb[k].numpy(), batch[k])


def test_memory_estimate_printed_and_atari_step_size(capsys):
    buf = ReplayBuffer(ReplayConfig(capacity=1000, num_streams=2, sampler="dfs"))
    buf.add({
        "image": np.zeros((64, 64, 3), np.uint8), "action": np.int64(0), "reward": 0.0, "is_first": True,
        "is_last": False, "is_terminal": False, "life_loss": False,
    })
    out = capsys.readouterr().out
    assert "replay:" in out and "MiB" in out
    # 12,288 image bytes + action int32 + reward float32 + 4 flags + 8 bytes of DFS counts
    assert buf.bytes_per_step == 12288 + 4 + 4 + 4 + 8 <= 13 * 1024
