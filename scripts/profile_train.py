"""Where the time of one Dreamer update goes: a ``torch.profiler`` breakdown by phase, model part and operator.

The agent and replay are built as ``bench_train.py`` builds them (same presets and overrides), then
``--warmup-updates`` untimed and one profiled update run through the methods the training loop calls
(``train_world_model``, ``imagination_starts``, ``train_actor_critic``).

Attribution:
- phases: the agent's methods, each inside a ``record_function`` range (wall CPU time of the range);
- parts: every top-level module of the world model and the actor-critic (encoder, backbone, decoder, heads, actor,
  critic, ...) runs inside a ``part:<name>`` range (module hooks; the backbone's ``step`` and the latent sampler
  are wrapped too). An operator's self time goes to its innermost part; the backward of an operator goes to the
  part of the forward operator that created it (the autograd node's sequence number links the two);
- operators: self time grouped into conv, norm, activation, matmul, elementwise/other, optimiser.

    OMP_NUM_THREADS=1 python scripts/profile_train.py --threads 1 agent=drama env=atari100k/Boxing \\
        dreamer.batch_size=16 dreamer.seq_len=64 dreamer.imag_batch=1024 dreamer.horizon=15

Prints one JSON object (``--table`` also prints the profiler's operator table to stderr).
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
from collections import defaultdict

import torch
from torch.autograd.profiler import record_function

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_train import setup  # noqa: E402  (the same set-up as the throughput benchmark)

from agents.dreamer.agent import sample_batches  # noqa: E402

from ssmrl.bench.output import emit  # noqa: E402

PHASES = ("train_world_model", "imagination_starts", "train_actor_critic")
SUB_PHASES = (("wm", "posterior_states"), ("wm", "observe"), ("wm", "imagine"), ("ac_learner", "train_step"))
_CATEGORIES = (
    ("conv", ("conv", "mkldnn_convolution")),
    ("norm", ("layer_norm", "rms_norm", "group_norm", "batch_norm")),
    ("activation", ("silu", "gelu", "sigmoid", "tanh", "softplus")),
    ("matmul", ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm", "aten::linear", "aten::matmul")),
    ("softmax", ("softmax",)),
)


def _category(name: str) -> str:
    lower = name.lower()
    for category, keys in _CATEGORIES:
        if any(k in lower for k in keys):
            return category
    return "elementwise/other"


def _wrap(obj, method: str, label: str) -> None:
    """Shadow ``obj.method`` with a version that runs inside ``record_function(label)``."""
    original = getattr(obj, method)

    @functools.wraps(original)
    def wrapped(*args, **kwargs):
        with record_function(label):
            return original(*args, **kwargs)

    setattr(obj, method, wrapped)


def _label_parts(agent) -> None:
    def pre(name):
        def hook(module, args):
            module._profile_range = record_function(f"part:{name}")
            module._profile_range.__enter__()
        return hook

    def post(module, args, output):
        module._profile_range.__exit__(None, None, None)

    for prefix, model in (("wm", agent.wm), ("ac", agent.ac)):
        for name, child in model.named_children():
            # the actor-critic's heads are also called as `.net(...)` directly: label the net
            target = getattr(child, "net", child) if prefix == "ac" else child
            target.register_forward_pre_hook(pre(f"{prefix}.{name}"))
            target.register_forward_hook(post)
    _wrap(agent.wm.backbone, "step", "part:wm.backbone")
    _wrap(agent.wm.latent, "sample", "part:wm.latent")
    for method in PHASES:
        _wrap(agent, method, f"phase:{method}")
    for owner, method in SUB_PHASES:
        _wrap(getattr(agent, owner), method, f"phase:{owner}.{method}")
    for opt, name in ((agent.wm_opt, "wm_optimizer"), (agent.ac_learner.optimizer, "ac_optimizer")):
        _wrap(opt, "step", f"part:{name}")


def _enclosing(event, prefix: str, outermost: bool = False):
    """The name (after ``prefix``) of the innermost (or outermost) range around ``event`` that starts with it."""
    found, node = None, event
    while node is not None:
        if node.name.startswith(prefix):
            found = node.name[len(prefix):]
            if not outermost:
                return found
        node = node.cpu_parent
    return found


def _where(event) -> str:
    """``<phase>/<part>``: the agent method (outermost phase) and the innermost model part around ``event``."""
    phase = _enclosing(event, "phase:", outermost=True) or "outside"
    return f"{phase}/{_enclosing(event, 'part:') or 'glue (loss terms, sampling, copies)'}"


def breakdown(events) -> dict:
    """Phase, part and operator-category seconds from the profiler's events."""
    phases: dict[str, float] = defaultdict(float)
    forward: dict[str, float] = defaultdict(float)
    backward: dict[str, float] = defaultdict(float)
    categories: dict[str, float] = defaultdict(float)
    part_of_sequence: dict[int, str] = {}
    for e in events:
        if e.name.startswith("phase:"):
            phases[e.name[len("phase:"):]] += e.cpu_time_total / 1e6
    for e in events:  # forward operators: remember where each autograd node was created
        if e.name.startswith(("phase:", "part:", "autograd::engine")):
            continue
        if getattr(e, "sequence_nr", -1) >= 0 and _enclosing(e, "autograd::engine") is None:
            part_of_sequence.setdefault(e.sequence_nr, _where(e))
    for e in events:
        if e.name.startswith("autograd::engine::evaluate_function"):
            where = part_of_sequence.get(getattr(e, "sequence_nr", -1), "backward of unlabelled operators")
            backward[where] += e.cpu_time_total / 1e6
            continue
        if e.name.startswith(("phase:", "part:")):
            continue
        if _enclosing(e, "autograd::engine") is None:  # backward kernels are counted with their node above
            forward[_where(e)] += e.self_cpu_time_total / 1e6
        if _enclosing(e, "part:") in ("wm_optimizer", "ac_optimizer"):
            categories["optimiser"] += e.self_cpu_time_total / 1e6
        else:
            categories[_category(e.name)] += e.self_cpu_time_total / 1e6
    parts = sorted(set(forward) | set(backward), key=lambda p: -(forward.get(p, 0) + backward.get(p, 0)))
    total = sum(forward.values()) + sum(backward.values())
    return {
        "phases_s": dict(phases),
        "parts": [{"where": p, "forward_s": forward.get(p, 0.0), "backward_s": backward.get(p, 0.0),
                   "share": (forward.get(p, 0.0) + backward.get(p, 0.0)) / total if total else 0.0} for p in parts],
        "operator_categories_s": dict(sorted(categories.items(), key=lambda kv: -kv[1])),
        "attributed_total_s": total,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("words", nargs="*", help="presets and overrides as on the ssmrl train line")
    parser.add_argument("--warmup-updates", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top", type=int, default=15, help="operators listed by self time")
    parser.add_argument("--table", action="store_true", help="also print the profiler's operator table to stderr")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    words = args.words or ["agent=drama", "env=atari100k/Boxing"]
    cfg, agent, replay, engine, _, _ = setup(words, args.seed)
    engine.close()
    gen = torch.Generator(device=agent.device).manual_seed(args.seed)
    for _ in range(args.warmup_updates):
        agent.update(*sample_batches(replay, agent), gen)
    _label_parts(agent)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        agent.update(*sample_batches(replay, agent), gen)
    events = prof.events()
    table = prof.key_averages()
    top = sorted(table, key=lambda e: -e.self_cpu_time_total)[: args.top]
    if args.table:
        print(table.table(sort_by="self_cpu_time_total", row_limit=args.top), file=sys.stderr)
    out = {
        "benchmark": "profile_train",
        "words": words,
        "batch": [cfg.dreamer.batch_size, cfg.dreamer.seq_len],
        "imagination": {"starts": cfg.dreamer.imag_starts, "batch": cfg.dreamer.imag_batch,
                        "context": cfg.dreamer.imag_context, "horizon": cfg.dreamer.horizon},
        "codec_precision": agent.wm.cfg.image.precision if agent.wm.cfg.image_shape else None,
        "torch_threads": torch.get_num_threads(),
        **breakdown(events),
        "top_operators": [{"name": e.key, "self_s": e.self_cpu_time_total / 1e6, "calls": e.count} for e in top],
    }
    emit(out, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
