"""The world model's architecture values live in configs/world_models.yaml (ssmrl.world_models.config loads them).

``data/wm_configs.json`` (next to this file) holds ``config_to_dict(make_config(preset, size, ...))`` for every
preset x size (for a discrete image env spec, a continuous vector env spec and no env) as computed by the Python
tables that held these values before (commit 27f0800): the YAML must reproduce them exactly (ints stay ints, floats
floats).
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from ssmrl.world_models.config import PRESETS, SIZES, config_to_dict, make_config

FIXTURE = json.loads((Path(__file__).parent / "data" / "wm_configs.json").read_text())
ENVS = {
    "image_discrete": SimpleNamespace(image_shape=(64, 64, 3), vector_dim=None, action_dim=6, discrete=True),
    "vector_continuous": SimpleNamespace(image_shape=None, vector_dim=17, action_dim=6, discrete=False),
}


def _build(key: str):
    preset, size, env = key.split("/")
    return make_config(preset, size, action_dim=3) if env == "no_env" else make_config(preset, size, env=ENVS[env])


def test_fixture_covers_every_preset_and_size():
    assert sorted(FIXTURE) == sorted(f"{p}/{s}/{e}" for p in PRESETS for s in SIZES
                                     for e in (*ENVS, "no_env"))


@pytest.mark.parametrize("key", sorted(FIXTURE))
def test_config_identical_to_the_former_python_tables(key):
    cfg = _build(key)
    # json.dumps tells 1 from 1.0; tuples must stay tuples (dataclass fields typed as tuples)
    assert json.dumps(config_to_dict(cfg), sort_keys=True) == json.dumps(FIXTURE[key], sort_keys=True)
    assert isinstance(cfg.image.channels, tuple)
    assert cfg.image_shape is None or isinstance(cfg.image_shape, tuple)


def _write(tmp_path, text: str):
    path = tmp_path / "world_models.yaml"
    path.write_text(text)
    return path


def test_a_typo_in_the_yaml_names_the_file_entry_and_key(tmp_path):
    from ssmrl.world_models.config import load_world_models

    path = _write(tmp_path, "sizes: {debug: {ssm: {d_stat: 4}}}\npresets: {drama: {structure: drama}}\n")
    with pytest.raises(KeyError, match=r"world_models.yaml: sizes.debug: unknown world-model config key 'ssm.d_stat'"):
        load_world_models(path)
    path = _write(tmp_path, "sizes: {debug: {d_model: 8}}\npresets: {s4wm: {at_size: {debug: {ssm: {d_sate: 4}}}}}\n")
    with pytest.raises(KeyError, match=r"presets.s4wm.at_size.debug: unknown world-model config key 'ssm.d_sate'"):
        load_world_models(path)
    path = _write(tmp_path, "sizes: {debug: {d_model: 8}}\npresets: {s4wm: {at_size: {huge: {d_model: 4}}}}\n")
    with pytest.raises(ValueError, match=r"presets.s4wm.at_size: unknown sizes \['huge'\]"):
        load_world_models(path)
    path = _write(tmp_path, "sizes: {debug: {d_model: 8}}\n")
    with pytest.raises(ValueError, match="expected the mappings 'sizes' and 'presets'"):
        load_world_models(path)


def test_override_typos_and_bad_choices_name_the_key():
    with pytest.raises(KeyError, match="unknown world-model config key 'ssm.d_statee'"):
        make_config("s4wm", "debug", action_dim=2, **{"ssm.d_statee": 8})
    with pytest.raises(ValueError, match=r"WorldModelConfig.ssm.layer must be one of \('mamba2'"):
        make_config("s4wm", "debug", action_dim=2, ssm={"layer": "s4"})


def test_every_ssm_d_state_is_in_the_yaml():
    """No preset/size combination takes ``d_state`` from a Python default: each size sets it."""
    from ssmrl.world_models.config import _WORLD_MODELS

    assert all("d_state" in size["ssm"] for size in _WORLD_MODELS["sizes"].values())
