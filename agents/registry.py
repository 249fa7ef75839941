"""The one list of agents: name -> what trains it, how it is evaluated, which command runs it and which config
sections it reads.

Every other place that needs agent names (the ``ssmrl`` command, ``ssmrl eval``, ``scripts/bench_train.py``,
``agents.offline.run.AGENTS``) reads them from here. Functions are named by ``"module:function"`` strings and
imported only when used, so importing this module costs nothing (no torch, no learner code).

Each agent's preset is ``configs/agent/<name>.yaml``; a run's ``config.yaml`` holds the top-level keys
(:data:`COMMON_KEYS`) plus exactly the agent's ``sections``, and a ``key.sub=value`` word for any other section is
an error (``ssmrl.cli.config``).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

KINDS = ("online", "offline", "worldmodel")
# Top-level keys of every run's config (the sections come on top, per agent).
COMMON_KEYS = ("agent", "size", "seed", "device")


@dataclass(frozen=True)
class AgentEntry:
    """One agent.

    kind: "online" (acts in an env while it learns), "offline" (learns from a dataset file), "worldmodel" (a world
        model alone on episodes of an env, for the memory benchmark).
    command: the ``ssmrl`` sub-command that trains it (``train`` or ``offline``).
    trainer: ``"module:function(run)"``, the training loop on an open :class:`ssmrl.runs.run.Run`.
    sections: the config sections the learner reads besides :data:`COMMON_KEYS` (``dataset`` is a top-level key).
    policy_loader: ``"module:function(run, checkpoint, greedy, num_envs) -> (policy, step)"`` for ``ssmrl eval``
        through the shared rollout engine, or None.
    evaluator: ``"module:function(args, run, checkpoint) -> result dict"``, for agents that evaluate through their
        own acting loop (offline agents), or None. An agent with neither cannot be evaluated by ``ssmrl eval``.
    check: ``"module:function(cfg, env)"``, the learner's own checks before a run directory is created (raising
        ``ConfigError`` naming the key), or None.
    summary: one line for ``ssmrl --help``.
    """

    name: str
    kind: str
    command: str
    trainer: str
    sections: tuple[str, ...]
    policy_loader: str | None = None
    evaluator: str | None = None
    check: str | None = None
    summary: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"agent {self.name}: kind {self.kind!r} is not one of {KINDS}")

    @property
    def keys(self) -> tuple[str, ...]:
        """Every top-level key of this agent's run config."""
        return COMMON_KEYS + self.sections

    def load(self, what: str) -> Callable[..., Any] | None:
        """The function named by field ``what`` (``"trainer"``, ``"policy_loader"``, ...), imported now; None
        when the agent has none."""
        target = getattr(self, what)
        return None if target is None else load_target(target)


def load_target(target: str) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function (importing the module)."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


DREAMER_TRAINER = "agents.dreamer.train:train"
_DREAMER = dict(kind="online", command="train", trainer=DREAMER_TRAINER,
                sections=("env", "train", "wm", "ac", "dreamer", "replay"),
                policy_loader="agents.dreamer.train:load_policy", check="agents.dreamer.train:check")
_OFFLINE = dict(kind="offline", command="offline", trainer="agents.offline.run:train",
                sections=("dataset", "train", "offline"), evaluator="agents.offline.run:evaluate_cli")

AGENTS: dict[str, AgentEntry] = {entry.name: entry for entry in (
    AgentEntry("drama", **_DREAMER, summary="Drama: Mamba-2 world model + imagination actor-critic"),
    AgentEntry("s4wm", **_DREAMER, summary="S4WM: S4D world model + imagination actor-critic"),
    AgentEntry("s5wm", **_DREAMER, summary="S5WM: S5 world model + imagination actor-critic"),
    AgentEntry("rssm", **_DREAMER, summary="DreamerV3's RSSM (GRU) baseline"),
    AgentEntry("transformer", **_DREAMER, summary="Transformer world model baseline"),
    AgentEntry("random", kind="online", command="train", trainer="agents.random_agent:train", sections=("env", "train"),
               policy_loader="agents.random_agent:load_policy", summary="uniformly random actions (the baseline)"),
    AgentEntry("worldmodel", kind="worldmodel", command="train", trainer="agents.worldmodel.train:train",
               sections=("env", "train", "wm", "replay", "worldmodel"),
               summary="a world model alone on scripted-policy episodes (memory benchmark)"),
    AgentEntry("dm", **_OFFLINE, summary="Decision Mamba"),
    AgentEntry("dt", **_OFFLINE, summary="Decision Transformer"),
    AgentEntry("bc", **_OFFLINE, summary="behaviour cloning"),
)}

# Sub-commands that are not agents: ``ssmrl <name>`` -> "module:function(args) -> exit status".
TOOLS: dict[str, str] = {
    "imagine": "agents.dreamer.imagine:imagine_cli",
    "dataset": "agents.sac.dataset_cli:dataset_cli",
}


def names(kind: str | None = None, command: str | None = None, trainer: str | None = None) -> tuple[str, ...]:
    """Agent names, in registry order, optionally only those of a kind, a command or a trainer."""
    return tuple(name for name, e in AGENTS.items()
                 if (kind is None or e.kind == kind) and (command is None or e.command == command)
                 and (trainer is None or e.trainer == trainer))
