"""Config merging, overrides and validation (ssmrl.runs.config)."""
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ssmrl.runs.config import ConfigError, deep_merge, from_dict, parse_override, resolve_args, to_dict
from ssmrl.cli.config import Config


@dataclass
class Inner:
    width: int = 4
    rate: float = 0.5
    kind: str = "a"
    optional: int | None = None
    sizes: list[int] = field(default_factory=lambda: [1, 2])


@dataclass
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)


def test_deep_merge_merges_nested_and_replaces_leaves():
    base = {"a": {"b": 1, "c": 2}, "d": [1]}
    out = deep_merge(base, {"a": {"c": 3}, "d": [2]})
    assert out == {"a": {"b": 1, "c": 3}, "d": [2]}
    assert base == {"a": {"b": 1, "c": 2}, "d": [1]}  # inputs untouched


@pytest.mark.parametrize("text,expected", [
    ("a.b=3", {"a": {"b": 3}}),
    ("a=1e-3", {"a": 1e-3}),
    ("a.b.c=true", {"a": {"b": {"c": True}}}),
    ("x=[1, 2]", {"x": [1, 2]}),
    ("x=null", {"x": None}),
    ("x=hello", {"x": "hello"}),
])
def test_parse_override(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize("bad", ["novalue", "=3", "a..b=1"])
def test_parse_override_rejects_malformed(bad):
    with pytest.raises(ConfigError):
        parse_override(bad)


def test_from_dict_builds_typed_tree_and_keeps_defaults():
    cfg = from_dict(Outer, {"inner": {"rate": 2, "optional": 3}})
    assert cfg.inner.rate == 2.0 and isinstance(cfg.inner.rate, float)
    assert cfg.inner.width == 4 and cfg.inner.optional == 3 and cfg.name == "x"
    assert from_dict(Outer, to_dict(cfg)) == cfg


@pytest.mark.parametrize("data,key", [
    ({"inner": {"widht": 3}}, "inner.widht"),
    ({"bogus": 1}, "bogus"),
    ({"inner": {"width": "three"}}, "inner.width"),
    ({"inner": {"width": 2.5}}, "inner.width"),
    ({"inner": {"width": True}}, "inner.width"),
    ({"inner": {"sizes": [1, "x"]}}, "inner.sizes[1]"),
    ({"inner": 3}, "inner"),
    ({"name": 5}, "name"),
])
def test_from_dict_errors_name_the_key(data, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        from_dict(Outer, data)


def _write(root: Path, rel: str, text: str):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_presets_merge_in_group_order_then_overrides(tmp_path):
    _write(tmp_path, "defaults.yaml", "seed: 0\ntrain: {steps: 100, log_every: 7}\n")
    _write(tmp_path, "agent/a.yaml", "agent: a\ntrain: {steps: 1000}\n")
    _write(tmp_path, "size/debug.yaml", "train: {steps: 10}\n")
    _write(tmp_path, "env/suite.yaml", "env: {num_envs: 4}\n")
    # size comes first on the command line but is applied after the agent preset.
    merged, given = resolve_args(["size=debug", "agent=a", "env=suite/Game", "train.log_every=3"], root=tmp_path)
    assert merged["train"] == {"steps": 10, "log_every": 3}
    assert merged["env"] == {"num_envs": 4, "id": "suite/Game"}
    assert merged["agent"] == "a" and merged["size"] == "debug"
    assert given == {"size": "debug", "agent": "a", "env": {"id": "suite/Game"}, "train": {"log_every": 3}}


def test_unknown_preset_lists_valid_ones(tmp_path):
    _write(tmp_path, "agent/a.yaml", "agent: a\n")
    _write(tmp_path, "agent/b.yaml", "agent: b\n")
    with pytest.raises(ConfigError, match=r"unknown agent preset 'c'.*\['a', 'b'\]"):
        resolve_args(["agent=c"], root=tmp_path)


def test_repository_presets_resolve_into_the_schema():
    merged, _ = resolve_args(["size=debug", "seed=3"])
    cfg = from_dict(Config, merged)
    assert cfg.seed == 3 and cfg.size == "debug" and cfg.train.steps == 200
    with pytest.raises(ConfigError, match="train.stepz"):
        from_dict(Config, resolve_args(["train.stepz=3"])[0])


def test_cpu_size_preset_builds_a_stride_two_drama_world_model():
    from ssmrl.world_models import WorldModel, make_config

    cfg = from_dict(Config, resolve_args(["agent=drama", "env=atari100k/Boxing", "size=cpu"])[0])
    assert (cfg.agent, cfg.size, cfg.env.id) == ("drama", "cpu", "atari100k/Boxing")
    assert cfg.dreamer.train_ratio == 0.25 and cfg.env.options["frame_skip"] == 4  # atari100k protocol kept
    wm_cfg = make_config(cfg.wm.preset, cfg.wm.size, action_dim=18, image_shape=(64, 64, 3), **cfg.wm.overrides)
    assert wm_cfg.image.first_stride == 2 and wm_cfg.d_model == 256
    model = WorldModel(wm_cfg, seed=0)
    assert model.encoder.image.out_shape == (32, 4, 4)  # 64 / (2 * 2^3)


def test_partial_mapping_keeps_the_fields_own_default():
    @dataclass
    class Opt:
        lr: float = 1.0
        clip: float = 100.0

    @dataclass
    class Holder:
        opt: Opt = field(default_factory=lambda: Opt(clip=1000.0))

    assert from_dict(Holder, {"opt": {"lr": 0.5}}).opt == Opt(lr=0.5, clip=1000.0)


def test_a_size_preset_that_names_agent_and_env_loads_their_presets(tmp_path):
    _write(tmp_path, "agent/a.yaml", "agent: a\nwm: {size: big, preset: a}\n")
    _write(tmp_path, "agent/b.yaml", "agent: b\nwm: {size: big, preset: b}\n")
    _write(tmp_path, "env/suite.yaml", "env: {num_envs: 4}\ntrain: {steps: 1000}\n")
    _write(tmp_path, "size/job.yaml", "size: job\nagent: a\nenv: {id: suite/x}\nwm: {size: small}\n")
    merged, _ = resolve_args(["size=job"], root=tmp_path)
    assert merged["wm"] == {"size": "small", "preset": "a"} and merged["env"]["num_envs"] == 4
    assert merged["train"]["steps"] == 1000
    merged, _ = resolve_args(["size=job", "agent=b"], root=tmp_path)  # the command line's agent wins
    assert merged["agent"] == "b" and merged["wm"] == {"size": "small", "preset": "b"}


def test_a_preset_extends_another_of_its_group(tmp_path):
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "base.yaml").write_text("env: {num_envs: 2, options: {a: 1, b: 2}}\ntrain: {steps: 10}\n")
    (tmp_path / "env" / "mid.yaml").write_text("extends: base\nenv: {options: {b: 3}}\n")
    (tmp_path / "env" / "top.yaml").write_text("extends: mid\ntrain: {steps: 20}\n")
    merged, _ = resolve_args(["env=top/Game"], root=tmp_path)
    assert merged["env"] == {"id": "top/Game", "num_envs": 2, "options": {"a": 1, "b": 3}}
    assert merged["train"] == {"steps": 20} and "extends" not in merged
    (tmp_path / "env" / "base.yaml").write_text("extends: top\n")
    with pytest.raises(ConfigError, match="cycle"):
        resolve_args(["env=top"], root=tmp_path)


def test_the_atari_suites_share_the_atari100k_protocol():
    """atari, atari100k and stori presets differ only in the env id (one block, in atari100k.yaml)."""
    resolved = {s: resolve_args(["agent=drama", f"env={s}/Pong" + ("/1" if s == "stori" else "")])[0]
                for s in ("atari", "atari100k", "stori")}
    for merged in resolved.values():
        merged["env"].pop("id")
    assert resolved["atari"] == resolved["atari100k"] == resolved["stori"]
    assert resolved["atari"]["env"]["options"]["max_frames"] == 108000
