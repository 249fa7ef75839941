"""Benchmark runner and report: cells run, resume without redoing finished ones, reports render."""
import json
import time
from pathlib import Path

import numpy as np
import pytest

from envs.atari100k import human_normalised_score
from ssmrl.bench.published import ATARI100K
from ssmrl.bench.report import write_report
from ssmrl.bench.suite import collect, make_cells, run_suite

from tests import ROOT

WORDS = ["size=debug", "train.steps=60", "train.checkpoint_every=30", "env.options.max_steps=20", "env.options.image_size=16"]
ENVS = ["memory/four-rooms", "memory/doors-keys-3"]


def _finished_cell(suite: Path, agent: str, env: str, seed: int, **result) -> Path:
    """A suite cell as ``run_suite`` leaves it when finished: its run directory with a done.json holding ``result``."""
    run = suite / agent / env.replace("/", "__") / f"seed{seed}"
    run.mkdir(parents=True)
    (run / "done.json").write_text(json.dumps({"cell": {"agent": agent, "env": env, "seed": seed, "run_dir": str(run)},
                                               "returncode": 0, **result}))
    return run


@pytest.mark.parametrize("name,mean,median", [("IRIS", 1.046, 0.289), ("STORM", 1.222, 0.425),
                                              ("DreamerV3", 1.124, 0.485), ("DIAMOND", 1.459, 0.373)])
def test_published_columns_reproduce_published_hns(name, mean, median):
    hns = [human_normalised_score(g, s) for g, s in ATARI100K[name].items()]
    assert len(hns) == 26
    assert np.mean(hns) == pytest.approx(mean, abs=5e-4) and np.median(hns) == pytest.approx(median, abs=5e-4)


def test_local_suite_runs_resumes_and_reports(tmp_path):
    out = tmp_path / "suite"
    summary = run_suite("memory", ["random"], [0, 1], out, envs=ENVS, words=WORDS, workers=2)
    assert not summary["failed"] and all(c["status"] == "done" for c in summary["cells"])
    cells = make_cells("memory", ["random"], [0, 1], out, envs=ENVS, words=WORDS)
    assert len(collect(out)) == 4
    # "Interrupt" one cell: it has a checkpoint but no done marker; the others must not run again.
    victim = cells[0]
    first_wall = json.loads(victim.done_file.read_text())["wall_s"]
    assert 0 < first_wall < 600
    victim.done_file.unlink()
    stamps = {c.run_dir: c.done_file.stat().st_mtime_ns for c in cells[1:]}
    time.sleep(0.01)
    summary = run_suite("memory", ["random"], [0, 1], out, envs=ENVS, words=WORDS, workers=2)
    assert all(c["status"] == "done" for c in summary["cells"])
    assert {c.run_dir: c.done_file.stat().st_mtime_ns for c in cells[1:]} == stamps
    log = victim.log_file.read_text()
    assert "resuming" in log
    # the finished run resumes from its last checkpoint: its training wall-clock is the one recorded there
    assert json.loads(victim.done_file.read_text())["wall_s"] == pytest.approx(first_wall, abs=0.05)
    report = write_report(out).read_text()
    assert "| random | memory/four-rooms | 2 |" in report and "learning_curves.png" in report
    row = next(line for line in report.splitlines() if line.startswith("| random | memory/four-rooms |"))
    assert float(row.split("|")[7]) == pytest.approx(0.0, abs=0.2)  # hours
    assert (out / "learning_curves.png").stat().st_size > 1000


def test_atari_report_tables_and_plots(tmp_path):
    """Report on synthetic finished Atari cells: aggregates match hand-computed HNS."""
    rng = np.random.default_rng(0)
    games = ["Pong", "Boxing", "Breakout"]
    for game in games:
        for seed in range(3):
            _finished_cell(tmp_path, "drama", f"atari100k/{game}", seed, score=float(rng.uniform(0, 20)))
    report = write_report(tmp_path).read_text()
    cells = collect(tmp_path)
    hns = {}
    for c in cells:
        hns.setdefault(c["cell"]["env"], []).append(human_normalised_score(c["cell"]["env"].split("/")[1], c["score"]))
    expected_mean = np.mean([np.mean(v) for v in hns.values()])
    assert f"| drama | 3 | 3 | {expected_mean:.3f} [" in report
    assert "STORM (*published*: Boxing, Breakout, Pong)" in report
    assert (tmp_path / "per_game_hns.png").is_file() and (tmp_path / "performance_profile.png").is_file()
    assert "Not a like-for-like comparison" not in report  # default cells
    done = tmp_path / "drama" / "atari100k__Pong" / "seed0" / "done.json"
    record = json.loads(done.read_text())
    record["cell"]["words"] = ["size=cpu", "seed=0"]
    done.write_text(json.dumps(record))
    assert "Not a like-for-like comparison:** these cells ran with `size=cpu`" in write_report(tmp_path).read_text()


def test_ray_backend_runs_and_skips_finished_cells(tmp_path):
    ray = pytest.importorskip("ray")
    out = tmp_path / "suite"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_suite("memory", ["random"], [0], out, envs=ENVS, words=WORDS, backend="ray")
        assert not summary["failed"] and len(collect(out)) == 2
        cells = make_cells("memory", ["random"], [0], out, envs=ENVS, words=WORDS)
        cells[1].done_file.unlink()
        stamp = cells[0].done_file.stat().st_mtime_ns
        summary = run_suite("memory", ["random"], [0], out, envs=ENVS, words=WORDS, backend="ray")
        assert all(c["status"] == "done" for c in summary["cells"])
        assert cells[0].done_file.stat().st_mtime_ns == stamp
    finally:
        ray.shutdown()


def test_suite_words_after_envs_are_overrides_and_unknown_env_ids_are_refused(tmp_path, monkeypatch, capsys):
    """`--envs memory/four-rooms size=debug` used to make size=debug a second env id (and run full size)."""
    import argparse

    import ssmrl.bench.suite as suite
    from ssmrl.bench import bench_cli

    seen = {}

    def fake_run_suite(name, agents, seeds, out, envs, words, *rest):
        seen.update(agents=agents, envs=envs, words=words)
        return {"cells": [], "failed": []}

    monkeypatch.setattr(suite, "run_suite", fake_run_suite)
    rest = ["memory", "--agents", "random", "seed=1", "--envs", "memory/four-rooms", "size=debug",
            "--out", str(tmp_path / "s")]
    assert bench_cli(argparse.Namespace(name="suite", rest=rest)) == 0
    assert seen == {"agents": ["random"], "envs": ["memory/four-rooms"], "words": ["seed=1", "size=debug"]}
    with pytest.raises(SystemExit) as exit_info:
        bench_cli(argparse.Namespace(name="suite", rest=["memory", "--agents", "random", "--envs", "Pong"]))
    assert exit_info.value.code == 2 and "not env ids of the memory suite" in capsys.readouterr().err


def test_a_cell_that_logged_no_score_is_evaluated_instead_of_crashing(tmp_path):
    from ssmrl.bench.suite import run_cell

    cell = make_cells("memory", ["drama"], [0], tmp_path, envs=["memory/four-rooms"],
                      words=["size=debug", "train.steps=40", "train.eval_every=0", "train.checkpoint_every=40",
                             "env.options.max_steps=100", "env.options.image_size=16"])[0]
    result = run_cell(cell)
    assert result["returncode"] == 0 and result["source"].startswith("eval of the last checkpoint")
    assert np.isfinite(result["score"]) and (tmp_path / "drama" / "memory__four-rooms" / "seed0" / "done.json").is_file()


def _campaign():
    import importlib.util

    spec = importlib.util.spec_from_file_location("campaign_under_test", ROOT / "scripts" / "campaign.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_campaign_status_lists_runs_with_progress_and_resume_commands(tmp_path, capsys):
    from ssmrl.cli.main import main
    from ssmrl.runs.run import Run
    from ssmrl.cli.config import Config

    root = tmp_path / "runs"
    words = ["agent=random", "env=memory/four-rooms", "size=debug", "env.options.max_steps=20",
             "env.options.image_size=16", "train.checkpoint_every=30"]
    assert main(["train", *words, "train.steps=30", "--run-dir", str(root / "done")]) == 0
    assert main(["train", *words, "train.steps=30", "--run-dir", str(root / "partial")]) == 0
    Run.open(root / "partial", ["train.steps=90"], Config).close()  # budget raised: unfinished now
    campaign = _campaign()
    capsys.readouterr()
    assert campaign.main([str(root), "--json"]) == 0
    runs = {Path(r["run"]).name: r for r in json.loads(capsys.readouterr().out)["runs"]}
    assert runs["done"]["finished"] and runs["done"]["checkpoint_step"] == 30
    assert 0 < runs["done"]["wall_s"] < 600
    assert not runs["partial"]["finished"] and runs["partial"]["progress"] == pytest.approx(1 / 3)
    # 30 of 90 steps took wall_s: 60 more take twice that
    assert runs["partial"]["eta_h"] * 3600 == pytest.approx(2 * runs["partial"]["wall_s"]) and runs["done"]["eta_h"] is None
    assert not runs["partial"]["running"]
    assert campaign.main([str(root), "--resume-commands"]) == 0
    commands = capsys.readouterr().out.strip().splitlines()
    assert len(commands) == 1 and str(root / "partial") in commands[0]
    held = Run.open(root / "partial", [], Config)  # a live holder of the lock counts as running
    assert campaign.status(root / "partial")["running"]
    held.close()


def test_results_written_before_the_normalised_rename_still_read(tmp_path):
    from ssmrl.bench.suite import final_score

    run = tmp_path / "drama" / "atari100k__Pong" / "seed0"
    run.mkdir(parents=True)
    (run / "scores.jsonl").write_text(json.dumps({"kind": "eval", "step": 10, "mean": 1.0, "normalized_score": 0.5}) + "\n")
    assert final_score(run)["normalised"] == 0.5
    (run / "done.json").write_text(json.dumps({"cell": {"agent": "drama"}, "score": 1.0, "normalized": 0.5}))
    assert collect(tmp_path)[0]["normalised"] == 0.5


def test_final_episodes_scores_a_cell_by_a_fresh_eval_of_its_last_checkpoint(tmp_path):
    from ssmrl.bench.suite import final_score, run_cell

    words = [*WORDS, "train.eval_every=30", "train.eval_episodes=1"]
    cell = make_cells("memory", ["random"], [0], tmp_path, envs=ENVS[:1], words=words, final_episodes=3)[0]
    result = run_cell(cell)
    assert result["returncode"] == 0 and result["episodes"] == 3
    evaluation = json.loads((tmp_path / "random" / "memory__four-rooms" / "seed0" / "eval-final.json").read_text())
    returns = [e["return"] for e in evaluation["per_episode"]]
    assert len(returns) == 3 and result["score"] == pytest.approx(np.mean(returns))
    assert result["stderr"] == pytest.approx(np.std(returns, ddof=1) / np.sqrt(3))
    assert result["last_periodic_eval"] == final_score(cell.run_dir)  # the periodic score is kept beside it
    assert json.loads(cell.done_file.read_text())["score"] == result["score"]


def test_d4rl_suite_trains_on_the_files_of_datasets_dir_and_scores_their_normalised_returns(tmp_path, capsys):
    import argparse

    from ssmrl.bench import bench_cli
    from tests.agents.offline import write_tiny_d4rl

    data = tmp_path / "data"
    data.mkdir()
    hopper = write_tiny_d4rl(data / "hopper-medium-replay-v5-seed0.hdf5", n=200)
    write_tiny_d4rl(data / "hopper-medium-v5-seed0.hdf5", n=200)  # a neighbour the id must not pick up
    out = tmp_path / "suite"
    rest = ["d4rl", "--agents", "bc", "--envs", "hopper-medium-replay", "--datasets-dir", str(data), "--out", str(out),
            "size=debug", "train.steps=10", "train.eval_every=0", "train.eval_episodes=1", "train.checkpoint_every=10",
            "offline.max_eval_steps=10"]
    assert bench_cli(argparse.Namespace(name="suite", rest=rest)) == 0
    (done,) = collect(out)
    assert done["cell"]["dataset"] == str(Path(hopper).resolve()) and done["source"] == "eval"
    last = json.loads((out / "bc" / "hopper-medium-replay" / "seed0" / "scores.jsonl").read_text().splitlines()[-1])
    assert done["score"] == last["mean"] and done["normalised"] == pytest.approx(100 * (last["mean"] + 20) / 320)
    campaign = _campaign()
    assert campaign.main([str(out)]) == 0  # the campaign listing names the cell's dataset
    assert "bc/hopper-medium-replay/seed0" in capsys.readouterr().out.replace("\\", "/")
    assert campaign.status(out / "bc" / "hopper-medium-replay" / "seed0")["env"] == Path(hopper).name
    # --final-episodes on an offline cell: the score is the fresh eval's mean, normalised with the dataset's references.
    from ssmrl.bench.suite import run_cell

    cell = make_cells("d4rl", ["bc"], [1], out, envs=["hopper-medium-replay"], final_episodes=2, datasets_dir=data,
                      words=["size=debug", "train.steps=10", "train.eval_every=0", "train.eval_episodes=1",
                             "train.checkpoint_every=10", "offline.max_eval_steps=10"])[0]
    result = run_cell(cell)
    evaluation = json.loads((Path(cell.run_dir) / "eval-final.json").read_text())
    assert result["episodes"] == 2 and result["score"] == pytest.approx(np.mean(evaluation["returns"]))
    assert result["normalised"] == pytest.approx(100 * (result["score"] + 20) / 320)
    # A missing or ambiguous file is named before any cell starts, and nothing is created.
    write_tiny_d4rl(data / "hopper-medium-replay-v2.hdf5", n=200)
    for args in (["--envs", "hopper-medium-replay", "--datasets-dir", str(data)],
                 ["--envs", "walker2d-medium", "--datasets-dir", str(data)], ["--envs", "hopper-medium"]):
        with pytest.raises(SystemExit) as exit_info:
            bench_cli(argparse.Namespace(name="suite", rest=["d4rl", "--agents", "bc", *args, "--out", str(tmp_path / "x")]))
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and ("files" in err or "no file" in err or "--datasets-dir" in err), err
    assert not (tmp_path / "x").exists()


def test_offline_report_gives_mean_and_std_over_seeds_and_the_order_beyond_one_std(tmp_path):
    """Synthetic finished d4rl cells: final = the cell's normalised score, late = the mean of its last 3
    evaluations; the order joins neighbours with ">" only when their means differ by more than either's std."""
    from ssmrl.bench.report import order

    evals = {"dm": [[10, 80, 90, 100], [20, 70, 80, 90], [30, 60, 70, 80]],  # late 90, 80, 70
             "dt": [[0, 85, 85, 85], [0, 80, 80, 80], [0, 90, 90, 90]],        # late 85, 80, 90
             "bc": [[0, 10, 20, 30], [0, 20, 30, 40], [0, 30, 40, 50]]}        # late 20, 30, 40
    for agent, per_seed in evals.items():
        for seed, values in enumerate(per_seed):
            run = tmp_path / agent / "hopper-medium-replay" / f"seed{seed}"
            run.mkdir(parents=True)
            (run / "scores.jsonl").write_text("\n".join(json.dumps({"step": 5000 * (i + 1), "kind": "eval", "mean": 0.0,
                                                                    "normalised_score": v}) for i, v in enumerate(values)))
            # run_dir as recorded by a suite that ran elsewhere (relative, since moved): read from where done.json is
            (run / "done.json").write_text(json.dumps({"cell": {"agent": agent, "env": "hopper-medium-replay", "seed": seed,
                                                                 "run_dir": f"runs/moved/{agent}/seed{seed}"}, "score": 0.0,
                                                        "normalised": values[-1], "returncode": 0}))
    report = write_report(tmp_path).read_text()
    assert "| hopper-medium-replay | dm | 3 | 90.0 ± 10.0 | 80.0 ± 10.0 |" in report
    assert "| hopper-medium-replay | dt | 3 | 85.0 ± 5.0 | 85.0 ± 5.0 |" in report
    assert "| hopper-medium-replay | bc | 3 | 40.0 ± 10.0 | 30.0 ± 10.0 |" in report
    assert "| hopper-medium-replay | dm ≈ dt > bc | dt ≈ dm > bc |" in report
    assert order({"a": 3.0, "b": 1.0}, {"a": 1.0, "b": 1.9}) == "a > b"
    assert order({"a": 3.0, "b": 1.0}, {"a": 2.0, "b": 0.0}) == "a ≈ b"
    assert order({"a": 3.0, "b": 1.0, "c": 0.0}, {"a": None, "b": 0.1, "c": 0.1}) == "a ? b > c"  # one seed: no claim


def test_stori_report_sets_each_type_against_type_31_or_the_plain_atari_game(tmp_path):
    """Baseline: the agent's stori/<Game>/3.1 cells, else its atari100k/<Game> cells; drop only for a positive
    baseline; gain kept against the random policy's cells on the baseline env."""
    scores = {("drama", "atari100k/Boxing"): [10.0, 14.0], ("drama", "stori/Boxing/1"): [5.0, 7.0],
              ("drama", "stori/Boxing/3.2C"): [12.0], ("random", "atari100k/Boxing"): [0.0, 2.0],
              ("drama", "atari100k/Breakout"): [99.0], ("drama", "stori/Breakout/3.1"): [-4.0],
              ("drama", "stori/Breakout/1"): [-2.0]}
    for (agent, env), values in scores.items():
        for seed, score in enumerate(values):
            _finished_cell(tmp_path, agent, env, seed, score=score)
    report = write_report(tmp_path).read_text()
    # base 12, random 1: drop 1 - 6/12, gain kept (6 - 1) / (12 - 1)
    assert "| drama | Boxing | 1 | 2 | 6.0 | `atari100k/Boxing` | 2 | 12.0 | 50% | 0.45 |" in report
    assert "| drama | Boxing | 3.2C | 1 | 12.0 | `atari100k/Boxing` | 2 | 12.0 | 0% | 1.00 |" in report
    # type 3.1 wins over the plain game; a negative baseline gives no drop, and no random cells no gain kept
    assert "| drama | Breakout | 1 | 1 | -2.0 | `stori/Breakout/3.1` | 1 | -4.0 | n/a | n/a |" in report
    assert "| drama | Breakout | 3.1 |" not in report


def test_report_sets_each_cell_beside_the_random_policy_and_averages_normalised_scores_per_family(tmp_path):
    """One-seed cells scored by a final evaluation show that evaluation's standard error; the random policy's score
    on the same env stands beside every other agent's; normalised scores average within a benchmark family only,
    and online cells never enter the offline table."""
    rows = [("drama", "atari100k/Pong", 0, {"score": -15.0, "stderr": 1.25, "episodes": 20, "normalised": 0.16}),
            ("random", "atari100k/Pong", 0, {"score": -20.0, "stderr": 0.5, "episodes": 20, "normalised": 0.02}),
            ("random", "atari100k/Pong", 1, {"score": -21.0, "stderr": 0.5, "episodes": 20, "normalised": 0.0}),
            ("drama", "dmc/cartpole-swingup", 0, {"score": 300.0, "normalised": 0.3}),
            ("drama", "dmc/cartpole-swingup", 1, {"score": 500.0, "normalised": 0.5}),
            ("dm", "hopper-medium-replay", 0, {"score": 900.0, "normalised": 80.0})]
    for agent, env, seed, result in rows:
        _finished_cell(tmp_path, agent, env, seed, **result)
    report = write_report(tmp_path).read_text()
    # the random policy over its two seeds: -20.5, s.e. std 0.71 / sqrt 2 = 0.5; the gap 5.5 / hypot(1.25, 0.5)
    assert "| drama | atari100k/Pong | 1 | -15.00 ± 1.25 (20 episodes) | -20.50 ± 0.50 | +5.50 (+4.1 s.e.) | – |" in report
    assert "| random | atari100k/Pong | 2 | -20.50 ± 0.50 | – | – | – |" in report
    assert "| drama | dmc/cartpole-swingup | 2 | 400.00 ± 100.00 | – | – | – |" in report
    assert "| atari100k | drama | 1 | 1 | 0.160 ± 0.000 |" in report
    assert "| dmc | drama | 1 | 2 | 0.400 ± 0.000 |" in report and "| d4rl | dm | 1 | 1 | 80.0 ± 0.0 |" in report
    offline = report.split("## Offline datasets")[1]
    assert "hopper-medium-replay | dm | 1 | 80.0 (one seed)" in offline and "cartpole" not in offline


def test_mean_curve_spans_the_evaluations_every_seed_has():
    from ssmrl.bench.report import mean_curve

    a = (np.array([5000.0, 10000.0, 15000.0, 20000.0]), np.array([10.0, 20.0, 30.0, 40.0]))
    b = (np.array([2500.0, 7500.0, 12500.0]), np.array([0.0, 10.0, 20.0]))
    grid, mean, half = mean_curve([a, b])
    assert grid.tolist() == [5000.0, 7500.0, 10000.0, 12500.0]  # from the later first to the earlier last evaluation
    assert mean.tolist() == pytest.approx([(10 + 5) / 2, (15 + 10) / 2, (20 + 15) / 2, (25 + 20) / 2])
    # the seeds differ by 5 throughout; Student's t with one degree of freedom
    assert half == pytest.approx(12.706 * np.std([10.0, 5.0], ddof=1) / np.sqrt(2))
    grid, mean, half = mean_curve([a])
    assert grid.tolist() == a[0].tolist() and mean.tolist() == a[1].tolist() and not half.any()
    assert mean_curve([a, (np.array([30000.0, 40000.0]), np.array([1.0, 2.0]))]) is None  # no common span


def test_t_quantiles_match_scipy():
    from scipy import stats

    from ssmrl.bench.report import t975

    for dof in range(1, 13):
        assert t975(dof) == pytest.approx(stats.t.ppf(0.975, dof), abs=1e-3)
    assert t975(40) == pytest.approx(stats.t.ppf(0.975, 40), rel=0.05)


def test_report_gives_no_standard_error_units_where_no_spread_was_measured(tmp_path):
    """A one-seed cell without a final evaluation's standard error, or seeds with identical scores, cannot be set
    against the random policy in standard errors; the family average weighs every env the same."""
    rows = [("drama", "atari100k/Pong", 0, {"score": -15.0, "normalised": 0.2}),
            ("drama", "atari100k/Breakout", 0, {"score": 5.0, "normalised": 0.1}),
            ("drama", "atari100k/Breakout", 1, {"score": 5.0, "normalised": 0.1}),
            ("drama", "atari100k/Breakout", 2, {"score": 5.0, "normalised": 0.1}),
            ("random", "atari100k/Pong", 0, {"score": -20.0, "stderr": 0.5, "episodes": 20}),
            ("random", "atari100k/Breakout", 0, {"score": 1.0, "stderr": 0.2, "episodes": 20})]
    for agent, env, seed, result in rows:
        _finished_cell(tmp_path, agent, env, seed, **result)
    report = write_report(tmp_path).read_text()
    assert "| drama | atari100k/Pong | 1 | -15.00 (one seed, no spread) | -20.00 ± 0.50 (20 episodes) | +5.00 | – |" in report
    assert "| drama | atari100k/Breakout | 3 | 5.00 ± 0.00 | 1.00 ± 0.20 (20 episodes) | +4.00 | – |" in report
    # Pong 0.2 (one seed) and Breakout 0.1 (three seeds) weigh the same: 0.15, not (0.2 + 3 * 0.1) / 4
    assert "| atari100k | drama | 2 | 4 | 0.150 ± 0.050 |" in report


def test_curves_draw_the_random_policy_as_its_score_where_a_learner_shares_the_env(tmp_path):
    from ssmrl.bench.report import curve_series

    def cell(agent, env, seed, score, rows):
        run = _finished_cell(tmp_path, agent, env, seed, score=score)
        (run / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    def episodes(returns):  # the random policy logs training episodes only
        return [{"step": 100 * (i + 1), "kind": "train", "episode_return": r} for i, r in enumerate(returns)]

    evals = [{"step": 2500, "kind": "eval", "mean": 2.0}, {"step": 5000, "kind": "eval", "mean": 6.0}]
    cell("drama", "atari100k/Breakout", 0, 5.5, evals)
    cell("random", "atari100k/Breakout", 0, 1.0, episodes([0.0, 5.0, 2.0]))
    cell("random", "atari100k/Breakout", 1, 2.0, episodes([4.0, 0.0]))
    cell("random", "atari100k/MsPacman", 0, 250.0, episodes([200.0, 300.0]))
    series = curve_series(collect(tmp_path))
    breakout = series["atari100k/Breakout"]
    assert breakout["random"] == ("level", 1.5, 2)  # the mean of its cells' scores, not its episodes' returns
    kind, grid, mean, half, n = breakout["drama"]
    assert kind == "curve" and grid.tolist() == [2500.0, 5000.0] and mean.tolist() == [2.0, 6.0] and n == 1
    kind, grid, mean, _, n = series["atari100k/MsPacman"]["random"]  # alone on its env: its own curve
    assert kind == "curve" and mean.tolist() == [200.0, 300.0] and n == 1
    assert write_report(tmp_path).read_text().count("learning_curves.png") == 1
