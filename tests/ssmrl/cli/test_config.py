"""The run config's shape (only the sections an agent reads), the agent registry, ``ssmrl config`` and the errors
for keys a run does not read."""
from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from agents.registry import AGENTS, COMMON_KEYS, TOOLS, load_target
from ssmrl.cli.config import SECTIONS, Config, OfflineSection, check, resolve
from ssmrl.cli.main import main
from ssmrl.runs.config import CONFIG_ROOT, ConfigError, from_dict, load_yaml, resolve_args, to_dict
from ssmrl.runs.run import Run

DREAMER_KEYS = ["agent", "size", "seed", "device", "env", "train", "wm", "ac", "dreamer", "replay"]
OFFLINE_KEYS = ["agent", "size", "seed", "device", "train", "dataset", "offline"]


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line
    for needle in needles:
        assert needle in err, err
    return err


# --- the registry -----------------------------------------------------------------------------------------------
def test_every_agent_preset_has_a_registry_entry_and_back():
    presets = {p.stem: load_yaml(p) for p in (CONFIG_ROOT / "agent").glob("*.yaml")}
    assert set(presets) == set(AGENTS)
    for name, data in presets.items():
        assert data["agent"] == name


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_registry_entries_name_real_functions_and_sections(name):
    entry = AGENTS[name]
    assert entry.command in ("train", "offline") and set(entry.sections) <= set(SECTIONS)
    assert (entry.kind == "offline") == (entry.command == "offline") == ("dataset" in entry.sections)
    for what in ("trainer", "policy_loader", "evaluator", "check"):
        if getattr(entry, what) is not None:
            assert callable(entry.load(what)), (name, what)


def test_tools_name_real_functions():
    for target in TOOLS.values():
        assert callable(load_target(target))


# --- what a run's config holds ----------------------------------------------------------------------------------
@pytest.mark.parametrize("words, keys", [
    (["agent=drama", "size=debug"], DREAMER_KEYS),
    (["agent=random", "size=debug"], ["agent", "size", "seed", "device", "env", "train"]),
    (["agent=worldmodel", "size=debug"], ["agent", "size", "seed", "device", "env", "train", "wm", "replay", "worldmodel"]),
    (["agent=dm", "size=debug", "dataset=x.hdf5"], OFFLINE_KEYS),
])
def test_a_config_holds_only_the_sections_its_agent_reads(words, keys):
    cfg = resolve(words)
    assert list(to_dict(cfg)) == keys
    assert [f.name for f in dataclasses.fields(cfg)] == keys


def test_the_offline_section_has_no_second_budget():
    """train.steps is the one number of updates: offline.updates (and the other fields the run sets) are not
    written, and the trainer still gets them (agents.offline.run.offline_config)."""
    from agents.offline.run import offline_config

    cfg = resolve(["agent=bc", "size=debug", "dataset=x.hdf5", "train.steps=7", "seed=3", "device=cpu"])
    assert isinstance(cfg.offline, OfflineSection)
    written = to_dict(cfg)["offline"]
    for key in OfflineSection.__config_hidden__:
        assert key not in written
    ocfg = offline_config(type("R", (), {"config": cfg})())
    assert (ocfg.updates, ocfg.agent, ocfg.seed, ocfg.device) == (7, "bc", 3, "cpu")
    with pytest.raises(ConfigError, match=r"offline.updates is not a key here: it is set by train.steps"):
        from_dict(type(cfg), {"offline": {"updates": 5}})


@pytest.mark.parametrize("words, command, needles", [
    (["agent=drama", "offline.lr=1e-3"], "train", ["offline.lr", "'offline'", "env, train, wm, ac, dreamer, replay"]),
    (["agent=random", "wm.preset=s4wm"], "train", ["wm.preset", "env, train"]),
    (["agent=drama", "worldmodel.episodes=3"], "train", ["worldmodel.episodes"]),
    (["agent=dm", "offline.updates=5"], "offline", ["offline.updates", "train.steps"]),
    (["agent=dm", "offline.eval_every=5"], "offline", ["offline.eval_every", "train.eval_every"]),
    (["agent=dm", "env=mujoco/Hopper"], "offline", ["env.id", "offline.env"]),
    (["agent=drama", "dataset=x.hdf5"], "train", ["dataset", "'dataset'"]),
    (["agent=random", "env.asynchronous=true"], "train", ["env.asynchronous"]),
    (["agent=dm"], "train", ["unknown agent 'dm' for ssmrl train", "runs with ssmrl offline"]),
])
def test_keys_a_run_does_not_read_are_errors(words, command, needles):
    with pytest.raises(ConfigError) as err:
        check(words, command)
    for needle in needles:
        assert needle in str(err.value)


@pytest.mark.parametrize("command, words, needles", [
    ("train", ["agent=drama", "offline.lr=1e-3"], ["offline.lr", "wm"]),
    ("offline", ["agent=dm", "dataset=missing.hdf5", "offline.updates=5"], ["offline.updates", "train.steps"]),
    ("train", ["agent=random", "env.asynchronous=true"], ["env.asynchronous"]),
])
def test_the_cli_refuses_them_with_one_line_and_creates_nothing(tmp_path, capsys, command, words, needles):
    run_dir = tmp_path / "run"
    assert main([command, *words, "--run-dir", str(run_dir)]) == 2
    _one_line_error(capsys, *needles)
    assert not run_dir.exists()


# --- ssmrl config -----------------------------------------------------------------------------------------------
def test_ssmrl_config_prints_the_resolved_tree(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["config", "agent=drama", "env=atari100k/Pong", "size=debug", "dreamer.train_ratio=0.5"]) == 0
    out = capsys.readouterr().out
    tree = yaml.safe_load(out)
    assert list(tree) == DREAMER_KEYS
    assert tree["dreamer"]["train_ratio"] == 0.5 and tree["env"]["id"] == "atari100k/Pong"
    assert tree == to_dict(from_dict(Config, resolve_args(["agent=drama", "env=atari100k/Pong", "size=debug",
                                                           "dreamer.train_ratio=0.5"])[0]))
    assert out.startswith("# agent drama (online; run with: ssmrl train)")
    assert main(["config", "agent=bc", "size=debug"]) == 0
    assert list(yaml.safe_load(capsys.readouterr().out)) == OFFLINE_KEYS
    assert list(tmp_path.iterdir()) == []  # nothing created


@pytest.mark.parametrize("words, needles", [
    (["agent=drama", "dreamer.trian_ratio=2"], ["dreamer.trian_ratio"]),
    (["agent=drama", "offline.lr=1e-3"], ["offline.lr", "dreamer"]),
    (["agent=bc", "offline.updates=10"], ["offline.updates", "train.steps"]),
    (["agent=nobody"], ["unknown agent preset 'nobody'"]),
    (["train.steps=many"], ["train.steps"]),
])
def test_ssmrl_config_with_a_bad_key_fails_naming_it(tmp_path, capsys, monkeypatch, words, needles):
    monkeypatch.chdir(tmp_path)
    assert main(["config", *words]) == 2
    _one_line_error(capsys, *needles)
    assert list(tmp_path.iterdir()) == []


def test_help_lists_agents_presets_and_where_keys_live(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    for name in ["train", "offline", "eval", "imagine", "config", "dataset", "bench", *AGENTS, "quickstart", "debug",
                 "atari100k/<name>", "agents/dreamer/config.py", "ssmrl/runs/schema.py", "agents/offline/config.py"]:
        assert name in out, name


# --- run directories --------------------------------------------------------------------------------------------
def _old_style_config(cfg) -> dict:
    """What config.yaml held before runs kept only their sections: every section, env.asynchronous and the
    offline fields that train.*, seed and device overrode."""
    from agents.dreamer.config import ActorCriticConfig, DreamerConfig, WorldModelSection
    from agents.offline.config import OfflineConfig
    from agents.worldmodel.config import WorldModelTrainConfig
    from ssmrl.replay.config import ReplayConfig

    from ssmrl.runs.schema import EnvConfig, TrainConfig

    data = to_dict(cfg)
    data["env"] = {**data.get("env", to_dict(EnvConfig())), "asynchronous": False}
    for name, section in (("train", TrainConfig), ("wm", WorldModelSection), ("ac", ActorCriticConfig), ("dreamer", DreamerConfig),
                          ("replay", ReplayConfig), ("worldmodel", WorldModelTrainConfig)):
        data.setdefault(name, to_dict(section()))
    data.setdefault("dataset", None)
    data["offline"] = {**dataclasses.asdict(OfflineConfig()), **data.get("offline", {})}
    return data


def test_a_run_writes_only_its_sections_and_old_run_directories_still_resume(tmp_path, capsys):
    run = tmp_path / "run"
    words = ["train", "agent=random", "env=memory/doors-keys-3", "size=debug", "--run-dir", str(run)]
    assert main(words + ["train.steps=40", "train.checkpoint_every=20"]) == 0
    written = load_yaml(run / "config.yaml")
    assert list(written) == list(COMMON_KEYS) + ["env", "train"] and "asynchronous" not in written["env"]
    # an old run directory: every section in config.yaml
    old = _old_style_config(Run.load(run, Config).config)
    (run / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    assert list(to_dict(Run.load(run, Config).config)) == list(COMMON_KEYS) + ["env", "train"]  # loads
    assert main(words + ["train.steps=60"]) == 0  # resumes (and rewrites config.yaml with its sections only)
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["step"] == 60
    assert list(load_yaml(run / "config.yaml")) == list(COMMON_KEYS) + ["env", "train"]
    assert main(["eval", str(run), "--episodes", "1", "--out", str(tmp_path / "e.json")]) == 0
    assert main(["train", "--run-dir", str(run), "train.steps=80"]) == 0  # the run's own agent, no words needed
    capsys.readouterr()
    assert main(["offline", "--run-dir", str(run), "train.steps=100"]) == 2
    _one_line_error(capsys, "agent 'random' runs with ssmrl train")
    # a key of a section the run does not read is refused on resume too, and nothing is rewritten
    before = (run / "config.yaml").read_text()
    capsys.readouterr()
    assert main(words + ["offline.lr=1e-3"]) == 2
    _one_line_error(capsys, "offline.lr", "env, train")
    assert (run / "config.yaml").read_text() == before


@pytest.mark.parametrize("agent", ["drama", "dm", "worldmodel"])
def test_old_configs_of_every_kind_load(tmp_path, agent):
    words = [f"agent={agent}", "size=debug"] + (["dataset=x.hdf5"] if agent == "dm" else [])
    cfg = resolve(words)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(_old_style_config(cfg), sort_keys=False))
    assert Run.load(tmp_path, Config).config == cfg
