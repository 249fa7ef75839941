"""End-to-end online training with size=debug: train, resume, eval, and the errors users hit."""
import json

import pytest
import torch

from ssmrl.cli.main import main
from ssmrl.runs.checkpoint import Checkpointer

# Small 16x16 frames and short episodes keep the whole test in seconds.
ENV = ["env=memory/four-rooms", "env.options.max_steps=40", "env.options.image_size=16"]


def _train(run_dir, *extra):
    return main(["train", "agent=drama", *ENV, "size=debug", "--run-dir", str(run_dir),
                 "train.checkpoint_every=40", *extra])


def _payload(run_dir):
    return Checkpointer(run_dir / "checkpoints").read()


def test_train_resume_continues_counters_and_replay(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert _train(straight, "train.steps=120") == 0
    assert _train(split, "train.steps=80") == 0
    first = _payload(split)
    assert first["step"] == 80
    assert _train(split, "train.steps=120") == 0
    a, b = _payload(straight), _payload(split)
    assert a["step"] == b["step"] == 120
    for key in ("env_steps", "episodes"):
        assert a["objects"]["counters"][key] == b["objects"]["counters"][key]
    assert a["objects"]["agent"]["updates"] == b["objects"]["agent"]["updates"] > 0
    # The replay index of the resumed run continues the committed one: same streams, 120 + episode-end records.
    totals = [s["total"] for s in b["objects"]["replay"]["index"]["streams"]]
    assert totals == [s["total"] for s in a["objects"]["replay"]["index"]["streams"]]
    # The learner's generator continued from its checkpointed state rather than restarting from the seed.
    assert not torch.equal(first["objects"]["learn_gen"]["torch"], b["objects"]["learn_gen"]["torch"])
    scores = [json.loads(l) for l in (split / "scores.jsonl").read_text().splitlines()]
    assert [s["episode"] for s in scores if s["kind"] == "train"] == list(range(1, len(scores) + 1))


def test_eval_of_a_checkpoint_and_clear_errors(tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, "train.steps=80") == 0
    ckpt = run / "checkpoints" / "ckpt-000000040.pt"
    out = tmp_path / "eval.json"
    assert main(["eval", str(ckpt), "--episodes", "2", "--num-envs", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["step"] == 40 and sorted(e["env"] for e in result["per_episode"]) == [0, 1]
    assert all(e["length"] == 40 for e in result["per_episode"])  # full episodes of the time limit
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "nope.pt")]) == 2
    assert "nope.pt" in capsys.readouterr().err
    # A run resumed with another world-model preset is refused before anything is loaded.
    assert main(["train", "agent=rssm", *ENV, "size=debug", "--run-dir", str(run)]) == 2
    assert "cannot change agent" in capsys.readouterr().err
    # A truncated checkpoint is named, and the previous one still evaluates.
    latest = run / "checkpoints" / "ckpt-000000080.pt"
    latest.write_bytes(latest.read_bytes()[:1000])
    assert main(["eval", str(run), "--episodes", "1"]) == 2
    assert "ckpt-000000080.pt" in capsys.readouterr().err
    assert main(["eval", str(ckpt), "--episodes", "1", "--out", str(out)]) == 0


def test_imagine_writes_playable_videos(tmp_path):
    import imageio.v2 as imageio

    run = tmp_path / "run"
    assert _train(run, "train.steps=80", "train.video_every=40", "dreamer.warmup_steps=40") == 0
    periodic = sorted(p.name for p in (run / "videos" / "step-80").iterdir())
    assert periodic == sorted(f"{k}-{i}.{e}" for k in ("open-loop", "policy") for i in (0, 1) for e in ("gif", "mp4"))
    out = tmp_path / "videos"
    assert main(["imagine", str(run), "--sequences", "2", "--context", "3", "--horizon", "4", "--out", str(out)]) == 0
    for name in ("open-loop-0", "open-loop-1", "policy-0", "policy-1"):
        reader = imageio.get_reader(out / f"{name}.mp4")
        frames = [f for f in reader]
        assert len(frames) == 7  # context + horizon
        assert imageio.mimread(out / f"{name}.gif")  # decodes
    # open-loop rows: truth, model, error stacked vertically -> three times a bordered frame plus gaps, right of
    # a 64-pixel label margin and above a 30-pixel legend footer
    first = imageio.get_reader(out / "open-loop-0.mp4").get_data(0)
    assert first.shape[0] - 30 > 2.5 * (first.shape[1] - 64)
    assert first[:-30, :60].max() > 100  # row labels are drawn in the margin
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["sequences"]) == 2 and all(s["open_loop_mse"] >= 0 for s in summary["sequences"])


@pytest.mark.parametrize("agent,env,options", [
    ("drama", "atari100k/Pong", ["env.options.max_frames=400"]),
    ("s5wm", "stori/Breakout/1", ["env.options.max_frames=400"]),
    ("s4wm", "dmc/cartpole-swingup", ["env.options.time_limit=100"]),
    ("rssm", "memory/distracting-100", ["env.options.max_steps=50", "env.options.image_size=16"]),
    ("transformer", "memory/doors-keys-3", ["env.options.max_steps=50", "env.options.image_size=16"]),
])
def test_debug_run_of_every_suite_trains_and_evaluates(tmp_path, agent, env, options):
    run = tmp_path / "run"
    assert main(["train", f"agent={agent}", f"env={env}", "size=debug", "train.steps=100", "dreamer.warmup_steps=50",
                 *options, "--run-dir", str(run)]) == 0
    payload = _payload(run)
    assert payload["step"] == 100 and payload["objects"]["agent"]["updates"] == 5  # 0.1 updates/step after warm-up
    metrics = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(m["wm/loss"])) for m in metrics if "wm/loss" in m)
    out = tmp_path / "eval.json"
    assert main(["eval", str(run), "--episodes", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["episodes"] == 1
    if env.startswith(("atari100k", "stori")):
        assert "normalised_score" in result  # human-normalised with the Atari100k reference scores


def test_video_annotation_names_rows_and_explains_border_colours():
    import numpy as np

    from ssmrl.runs.video import IMAGINED, OBSERVED, annotate

    video = np.zeros((2, 90, 30, 3), np.uint8)
    out = annotate(video, ["truth", "model", "|error|"])
    assert out.shape == (2, 90 + 30, 64 + 30, 3)
    margin = out[0, :90, :64].max(-1)
    for row in range(3):  # text in each row's band of the margin
        assert margin[row * 30:(row + 1) * 30].max() > 100
    footer = out[0, 90:].reshape(-1, 3)
    for colour in (OBSERVED, IMAGINED):  # the legend's swatches
        assert (np.abs(footer.astype(int) - colour).sum(-1) == 0).any()
    assert not annotate(video, ["policy"], legend=False)[:, 90:].size


def test_run_json_records_the_resolved_world_model(tmp_path):
    """config.yaml names the preset, size and overrides; run.json records the architecture they resolve to
    (env-dependent fields included), equal to make_config's for the same env."""
    import dataclasses

    import envs
    from ssmrl.world_models import make_config

    run = tmp_path / "run"
    assert _train(run, "train.steps=40", "wm.overrides.ssm.d_state=8") == 0
    recorded = json.loads((run / "run.json").read_text())["world_model"]
    env = envs.make("memory/four-rooms", max_steps=40, image_size=16)
    want = dataclasses.asdict(make_config("drama", "debug", env=envs.env_spec(env), ssm={"d_state": 8}))
    env.close()
    assert recorded == json.loads(json.dumps(want)) and recorded["ssm"]["d_state"] == 8
