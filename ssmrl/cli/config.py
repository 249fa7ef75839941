"""The run config: the composition root of the config tree.

A run's config holds the top-level keys ``agent``, ``size``, ``seed``, ``device`` and exactly the sections its
agent reads (``agents.registry``: e.g. an online Dreamer agent reads ``env``, ``train``, ``wm``, ``ac``,
``dreamer``, ``replay``; an offline one ``dataset``, ``train``, ``offline``). Each section's dataclass lives with
the code it configures (:data:`SECTIONS`). Presets may set sections the chosen agent does not read (``size=debug``
shrinks every agent): those are dropped. A ``key.sub=value`` word the agent does not read is an error naming the
key and the sections the agent reads (:func:`check_words`).

:class:`Config` is the schema to hand to ``Run.open`` / ``Run.load`` / ``from_dict``: it builds the dataclass of
the data's agent. Everything here is imported lazily by name, so that ``ssmrl --help`` loads no learner code.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from agents.offline.config import OfflineConfig
from agents.registry import AGENTS, COMMON_KEYS, AgentEntry, load_target
from ssmrl.runs.config import CONFIG_ROOT, ConfigError, flatten, from_dict, load_yaml, resolve_args

# section -> "module:dataclass" of its type, in the order config.yaml lists them. ``dataset`` is a top-level
# string (the offline agents' data file).
SECTIONS: dict[str, str] = {
    "env": "ssmrl.runs.schema:EnvConfig",
    "train": "ssmrl.runs.schema:TrainConfig",
    "wm": "agents.dreamer.config:WorldModelSection",
    "ac": "agents.dreamer.config:ActorCriticConfig",
    "dreamer": "agents.dreamer.config:DreamerConfig",
    "replay": "ssmrl.replay.config:ReplayConfig",
    "worldmodel": "agents.worldmodel.config:WorldModelTrainConfig",
    "dataset": "",
    "offline": "ssmrl.cli.config:OfflineSection",
}
TOP_LEVEL = {"agent": (str, "random"), "size": (str, "default"), "seed": (int, 0), "device": (str, "auto"),
             "dataset": (str | None, None)}
# Keys that older run directories may hold and that are no longer read: dropped when such a config.yaml is loaded,
# an error (with this reason) when given.
REMOVED: dict[str, str] = {
    "env.asynchronous": "env.asynchronous: no longer a key (learners step their env.num_envs envs in this "
                        "process; envs.make_vector(..., asynchronous=True) is the library call for worker processes)",
}
# For an agent that lacks a section, where the setting a user may mean lives instead.
HINTS: dict[tuple[str, str], str] = {
    ("offline", "env"): "an offline run's evaluation env is offline.env=<hopper|halfcheetah|walker2d|ant|Gymnasium id>",
}


@dataclass
class OfflineSection(OfflineConfig):
    """The run's ``offline`` section: :class:`agents.offline.config.OfflineConfig` less the fields the run's own
    keys set (``agents.offline.run.offline_config`` copies them in). One place for each setting: the number of
    updates is ``train.steps``, never ``offline.updates``."""

    __config_hidden__: ClassVar[dict[str, str]] = {
        "agent": "agent", "seed": "seed", "device": "device", "updates": "train.steps",
        "eval_every": "train.eval_every", "eval_episodes": "train.eval_episodes", "log_every": "train.log_every",
    }


def section_type(name: str) -> Any:
    if name in TOP_LEVEL:
        return TOP_LEVEL[name][0]
    if name not in SECTIONS:
        raise KeyError(name)
    return load_target(SECTIONS[name])


@functools.lru_cache(maxsize=None)
def config_class(sections: tuple[str, ...]) -> type:
    """The dataclass of a run that reads ``sections``: the top-level keys, then the sections in
    :data:`SECTIONS` order (each section's default is its dataclass's default)."""
    fields = [(key, TOP_LEVEL[key][0], dataclasses.field(default=TOP_LEVEL[key][1])) for key in COMMON_KEYS]
    for name in [s for s in SECTIONS if s in sections]:
        if name in TOP_LEVEL:
            fields.append((name, TOP_LEVEL[name][0], dataclasses.field(default=TOP_LEVEL[name][1])))
        else:
            tp = section_type(name)
            fields.append((name, tp, dataclasses.field(default_factory=tp)))
    cls = dataclasses.make_dataclass("RunConfig_" + "_".join(sections), fields)
    cls.__module__ = __name__
    cls.__doc__ = f"A run config with sections {', '.join(sections)}."
    globals()[cls.__name__] = cls  # picklable by name
    return cls


def entry_for(agent: Any, command: str | None = None) -> AgentEntry:
    """The registry entry of ``agent`` (for ``ssmrl <command>`` when given); ConfigError naming the key."""
    valid = sorted(n for n, e in AGENTS.items() if command is None or e.command == command)
    entry = AGENTS.get(agent) if isinstance(agent, str) else None
    if entry is None or (command is not None and entry.command != command):
        where = f" for ssmrl {command}" if command else ""
        hint = f" (agent {agent!r} runs with ssmrl {entry.command})" if entry is not None else ""
        raise ConfigError(f"agent: unknown agent {agent!r}{where}{hint}; valid agents: {valid}")
    return entry


def _drop_removed(data: dict) -> dict:
    data = dict(data)
    for dotted in REMOVED:
        section, _, key = dotted.partition(".")
        if isinstance(data.get(section), dict) and key in data[section]:
            data[section] = {k: v for k, v in data[section].items() if k != key}
    return data


class Config:
    """The run config's schema: ``from_dict(Config, data)`` builds the config of ``data["agent"]`` (see
    :func:`config_class`): sections the agent does not read are dropped, as are keys older run directories may
    hold (:data:`REMOVED`, and the ``offline`` fields the run's own keys set)."""

    @classmethod
    def select_schema(cls, data: dict) -> tuple[type, dict]:
        entry = entry_for(data.get("agent", TOP_LEVEL["agent"][1]))
        data = {k: v for k, v in _drop_removed(data).items() if k in entry.keys}
        if "offline" in entry.sections and isinstance(data.get("offline"), dict):
            hidden = OfflineSection.__config_hidden__
            data["offline"] = {k: v for k, v in data["offline"].items() if k not in hidden}
        return config_class(entry.sections), data


def check_words(given: dict, entry: AgentEntry) -> None:
    """Refuse what the command line set (``given``, from ``resolve_args``) that ``entry``'s runs do not read:
    ConfigError naming the key, the sections the agent reads, or the key to use instead."""
    for dotted in flatten(given):
        if dotted in REMOVED:
            raise ConfigError(REMOVED[dotted])
    for section, value in given.items():
        if section in entry.keys:
            continue
        key = next(iter(flatten({section: value})))
        hint = HINTS.get((entry.kind, section))
        raise ConfigError(f"{key}: agent {entry.name!r} ({entry.kind}) does not read the {section!r} section; "
                          f"its config has {', '.join(entry.keys)}" + (f"; {hint}" if hint else ""))
    if "offline" in entry.sections and isinstance(given.get("offline"), dict):
        for key in given["offline"]:
            if key in OfflineSection.__config_hidden__:
                right = OfflineSection.__config_hidden__[key]
                raise ConfigError(f"offline.{key}: an offline run takes this from {right} "
                                  f"(set {right}=... instead; offline.{key} is not a key)")


def recorded_agent(run_dir: str | Path | None) -> str | None:
    """The agent of an existing run directory's config.yaml (None when there is none)."""
    if run_dir is None:
        return None
    config_file = Path(run_dir) / "config.yaml"
    return load_yaml(config_file).get("agent") if config_file.is_file() else None


def check(words: list[str], command: str | None = None, run_dir: str | Path | None = None,
          root: Path = CONFIG_ROOT) -> tuple[dict, AgentEntry]:
    """Command-line words -> (merged config dict, registry entry), checked as ``ssmrl <command>`` checks them: the
    agent (of the run in ``run_dir`` when that exists, else of the words) must run with ``command``, and every key
    the words set must be one it reads. ConfigError naming the key; nothing is created."""
    merged, given = resolve_args(words, root)
    entry = entry_for(recorded_agent(run_dir) or merged.get("agent"), command)
    check_words(given, entry)
    return merged, entry


def resolve(words: list[str], command: str | None = None, root: Path = CONFIG_ROOT) -> Any:
    """Command-line words -> the typed config they make (checked as :func:`check` does)."""
    merged, _ = check(words, command, root=root)
    return from_dict(Config, merged)


def sections_help() -> str:
    """Where each section's keys are defined and which sections each agent reads, for ``ssmrl --help``."""
    files: dict[str, list[str]] = {}
    for name, target in SECTIONS.items():
        if target:
            module = "agents.offline.config" if name == "offline" else target.partition(":")[0]
            files.setdefault(module.replace(".", "/") + ".py", []).append(name + ".")
    lines = [f"  {' '.join(keys):<21} {path}" + (" (OfflineConfig less updates, eval_every, ...: train.* keys)"
                                                  if "offline." in keys else "") for path, keys in files.items()]
    lines.append(f"  {'dataset=PATH':<21} top level: the offline agents' data file")
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, entry in AGENTS.items():
        groups.setdefault(entry.sections, []).append(name)
    lines.append("sections each agent reads:")
    lines += [f"  {', '.join(agents)}: {' '.join(sections)}" for sections, agents in groups.items()]
    return "\n".join(lines)
