"""``ssmrl bench report <suite-dir>``: Markdown report with tables and PNG plots of a finished (or partial) suite.

Tables: per-env mean ± standard error over seeds for every agent, beside the random policy's score on the same env
where the suite has random cells; the normalised average per benchmark family; for Atari100k the human-normalised mean,
median, IQM and optimality gap with 95% stratified-bootstrap intervals, games above human, and the published
agents beside ours (marked *published*); for STORI each type against the deterministic game (type 3.1 or the
plain Atari100k game); for offline datasets the normalised average, and per dataset mean ± std over seeds (final
and late scores) with the agents' order where it holds beyond one standard deviation. Plots: learning curves (mean
and 95% band over seeds; the random policy as a line at its score where a learner shares the env), per-game HNS
bars, performance profiles.
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from ssmrl.bench.suite import collect, normalised_score
from ssmrl.metrics.aggregate import aggregate_with_ci, mean_and_stderr, performance_profile


def family(env: str) -> str:
    """The benchmark family of an env id: its prefix ("atari100k", "stori", "dmc", ...), "d4rl" for the bare ids of
    offline datasets ("hopper-medium-replay")."""
    return env.split("/")[0] if "/" in env else "d4rl"


def _scores(cells: list[dict]) -> dict[str, dict[str, list[float]]]:
    """{agent: {env: [score per seed]}} from done.json rows."""
    table: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for cell in cells:
        table[cell["cell"]["agent"]][cell["cell"]["env"]].append(float(cell["score"]))
    return table


def _curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    path = run_dir / "scores.jsonl"
    if not path.is_file():
        return None
    rows = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
    evals = [(r["step"], r["mean"]) for r in rows if r.get("kind") == "eval"]
    points = evals or [(r["step"], r["episode_return"]) for r in rows if "episode_return" in r]
    if len(points) < 2:
        return None
    steps, values = np.array(points, dtype=np.float64).T
    return steps, values


# Student's t 97.5% quantiles for 1..12 degrees of freedom (a 95% band over few seeds is far wider than ±1.96 s.e.)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179)


def t975(dof: int) -> float:
    """Two-sided 95% quantile of Student's t with ``dof`` degrees of freedom (1.96 beyond the table: within 8%)."""
    return _T975[dof - 1] if dof <= len(_T975) else 1.96


def mean_curve(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Seeds' curves ``[(steps, values)]`` -> (grid, mean, 95% half-width), or None when the seeds' spans do not
    overlap. The grid is the seeds' own evaluation steps within the span every seed covers (no line before the first
    evaluation or past the shortest run); values between a seed's evaluations are interpolated linearly; the
    half-width is Student's t interval of the mean over seeds, 0 for one seed."""
    first, last = max(s[0] for s, _ in curves), min(s[-1] for s, _ in curves)
    grid = np.unique(np.concatenate([s for s, _ in curves]))
    grid = grid[(grid >= first) & (grid <= last)]
    if grid.size == 0:
        return None
    ys = np.stack([np.interp(grid, s, v) for s, v in curves])
    mean = ys.mean(0)
    n = len(ys)
    half = t975(n - 1) * ys.std(0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros_like(mean)
    return grid, mean, half


def curve_series(cells: list[dict]) -> dict[str, dict[str, tuple]]:
    """What each learning-curve panel draws: {env: {agent: series}} over the finished cells.

    A series is ``("curve", grid, mean, half, n)`` (``mean_curve`` over the agent's n seeds), ``("no common span",
    n)``, or, for the random policy on an env where another agent has a curve, ``("level", score, n)``: the mean of
    its cells' scores as a horizontal line. Its own curve would be its training episodes' returns, episode-by-episode
    noise that hides the learner's evaluations; alone on an env it is drawn as that curve."""
    groups: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for cell in cells:
        curve = _curve(Path(cell["directory"]))
        if curve is not None:
            groups[cell["cell"]["env"]][cell["cell"]["agent"]].append(curve)
    random = _scores(cells).get("random", {})
    series: dict[str, dict[str, tuple]] = {}
    for env, per_agent in groups.items():
        level = bool(random.get(env)) and any(agent != "random" for agent in per_agent)
        series[env] = {}
        for agent, curves in sorted(per_agent.items()):
            if agent == "random" and level:
                continue
            curve = mean_curve(curves)
            series[env][agent] = ("no common span", len(curves)) if curve is None else ("curve", *curve, len(curves))
        if level:
            series[env]["random"] = ("level", float(np.mean(random[env])), len(random[env]))
    return series


def learning_curves(cells: list[dict], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = curve_series(cells)
    if not series:
        return None
    envs = sorted(series)
    cols = min(4, len(envs))
    rows = -(-len(envs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, env in zip(axes.flat, envs):
        for agent, (kind, *values) in series[env].items():
            n = values[-1]
            seeds = f"{n} seed{'s' * (n != 1)}"
            if kind == "no common span":  # the seeds' runs share no span: nothing to average
                ax.plot([], [], label=f"{agent} ({seeds}, no common span)")
            elif kind == "level":
                ax.axhline(values[0], color="gray", linestyle="--", linewidth=1, label=f"{agent} ({seeds}, final score)")
            else:
                grid, mean, half = values[:3]
                marker = "o" if len(grid) <= 30 else None  # evaluations marked; dense training-episode curves not
                ax.plot(grid, mean, marker=marker, markersize=3, label=f"{agent} ({seeds})")
                ax.fill_between(grid, mean - half, mean + half, alpha=0.25)
        ax.set_title(env, fontsize=9)
        ax.set_xlabel("updates" if family(env) == "d4rl" else "env steps")
        ax.set_ylabel("return", fontsize=8)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(envs):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _bars_and_profile(hns: dict[str, dict[str, np.ndarray]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    games = sorted({g for per in hns.values() for g in per})
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(games) * max(1, len(hns))), 3.5))
    width = 0.8 / max(1, len(hns))
    for i, (agent, per) in enumerate(sorted(hns.items())):
        ax.bar(np.arange(len(games)) + i * width, [per[g].mean() if g in per else np.nan for g in games], width, label=agent)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(games)) + 0.4 - width / 2, games, rotation=70, fontsize=7)
    ax.set_ylabel("human-normalised score")
    ax.legend(fontsize=7)
    fig.tight_layout()
    bars = out / "per_game_hns.png"
    fig.savefig(bars, dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    taus = np.linspace(0, 3, 61)
    for agent, per in sorted(hns.items()):
        ax.plot(taus, performance_profile(np.concatenate([v for v in per.values()])[None, :], taus), label=agent)
    ax.set_xlabel("human-normalised score tau")
    ax.set_ylabel("fraction of runs > tau")
    ax.legend(fontsize=7)
    fig.tight_layout()
    profile = out / "performance_profile.png"
    fig.savefig(profile, dpi=90)
    plt.close(fig)
    return [bars, profile]


def _fmt(ci: dict) -> str:
    return f"{ci['value']:.3f} [{ci['low']:.3f}, {ci['high']:.3f}]"


def atari_section(scores: dict[str, dict[str, list[float]]], out: Path, changed: list[str] | None = None) -> list[str]:
    """Human-normalised aggregates beside published 100k-step numbers; ``changed``: the words by which the cells
    departed from the default budget and sizes (printed as a warning above the comparison)."""
    from envs.atari100k import REFERENCE_SCORES, human_normalised_score
    from ssmrl.bench.published import ATARI100K

    lines = ["## Atari100k (human-normalised)", ""]
    hns: dict[str, dict[str, np.ndarray]] = {}
    for agent, per_env in scores.items():
        games = {env.split("/")[1]: np.array([human_normalised_score(env.split("/")[1], s) for s in vals])
                 for env, vals in per_env.items() if env.split("/")[0] in ("atari100k", "atari") and env.split("/")[1] in REFERENCE_SCORES}
        if games:
            hns[agent] = games
    if not hns:
        return []
    if changed:
        lines += [f"**Not a like-for-like comparison:** these cells ran with `{' '.join(changed)}`, while the "
                  "published rows are Atari100k runs (100k env steps, full-size models).", ""]
    lines += ["| agent | games | runs | mean | median | IQM | optimality gap | games > human |", "|---|---|---|---|---|---|---|---|"]
    for agent, per in sorted(hns.items()):
        runs = min(len(v) for v in per.values())
        matrix = np.stack([v[:runs] for v in per.values()], axis=1)  # (runs, games)
        agg = aggregate_with_ci(matrix, reps=1000, seed=0)
        above = int((matrix.mean(0) > 1).sum())
        lines.append(f"| {agent} | {len(per)} | {runs} | {_fmt(agg['mean'])} | {_fmt(agg['median'])} | {_fmt(agg['iqm'])} "
                     f"| {_fmt(agg['optimality_gap'])} | {above} |")
    games = sorted({g for per in hns.values() for g in per})  # named: agents above may cover fewer of them
    for name, col in ATARI100K.items():
        vals = np.array([human_normalised_score(g, col[g]) for g in games])[None, :]
        lines.append(f"| {name} (*published*: {', '.join(games)}) | {len(games)} | – | {vals.mean():.3f} "
                     f"| {np.median(vals):.3f} | – | – | {int((vals > 1).sum())} |")
    lines += ["", "Intervals: 95% stratified bootstrap over runs within each game (1,000 resamples).", ""]
    for path in _bars_and_profile(hns, out):
        lines += [f"![{path.stem}]({path.name})", ""]
    return lines


def stori_section(scores: dict[str, dict[str, list[float]]]) -> list[str]:
    """Each STORI type's score beside its deterministic baseline, per agent and game.

    The baseline is the agent's ``stori/<Game>/3.1`` cells, or else its ``atari100k/<Game>`` cells (type 3.1 is the
    plain Atari100k game: ``tests/envs/test_stori.py::test_type31_equals_plain_atari``). ``drop`` = 1 - score /
    baseline, only where the baseline is positive; where the suite has ``random`` cells of the baseline's env,
    ``gain kept`` = (score - random) / (baseline - random), which stays meaningful for games whose scores can be
    negative (Boxing)."""
    def env_scores(per_env: dict[str, list[float]], game: str) -> tuple[str, list[float]] | None:
        for env in (f"stori/{game}/3.1", f"atari100k/{game}"):
            if per_env.get(env):
                return env, per_env[env]
        return None

    rows = []
    for agent, per_env in sorted(scores.items()):
        for env in sorted(per_env):
            parts = env.split("/")
            if parts[0] != "stori" or len(parts) != 3 or parts[2] == "3.1":
                continue
            base = env_scores(per_env, parts[1])
            if base is None:
                continue
            value, reference = float(np.mean(per_env[env])), float(np.mean(base[1]))
            drop = f"{100 * (1 - value / reference):.0f}%" if reference > 0 else "n/a"
            random = scores.get("random", {}).get(base[0])
            floor = float(np.mean(random)) if random else None
            kept = "n/a"
            if floor is not None and agent != "random" and reference != floor:
                kept = f"{(value - floor) / (reference - floor):.2f}"
            rows.append(f"| {agent} | {parts[1]} | {parts[2]} | {len(per_env[env])} | {value:.1f} | `{base[0]}` "
                        f"| {len(base[1])} | {reference:.1f} | {drop} | {kept} |")
    if not rows:
        return []
    return ["## STORI: each type against the deterministic game (means over seeds)", "",
            "| agent | game | type | seeds | score | baseline | seeds | baseline score | drop | gain kept |",
            "|---|---|---|---|---|---|---|---|---|---|", *rows, "",
            "drop = 1 - score / baseline (baseline > 0 only); gain kept = (score - random) / (baseline - random), "
            "with the random policy's cells on the baseline env.", ""]


# evaluations averaged into an offline cell's "late" score: single evaluations swing by tens of points
LATE_EVALS = 3


def _late_normalised(run_dir: Path) -> float | None:
    """Mean dataset-normalised score of the run's last ``LATE_EVALS`` periodic evaluations (None without any)."""
    path = run_dir / "scores.jsonl"
    if not path.is_file():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    values = [v for v in (normalised_score(r) for r in rows if r.get("kind") == "eval") if v is not None]
    return float(np.mean(values[-LATE_EVALS:])) if values else None


def order(means: dict[str, float], stds: dict[str, float | None]) -> str:
    """Agents from best to worst mean, joined by ">" where the gap between neighbours exceeds the larger of their
    two standard deviations and by "≈" where it does not: {"dm": 90, "dt": 85, "bc": 40} with stds 10 -> "dm ≈ dt > bc".
    Only neighbours are compared (a ≈ b ≈ c may hide a > c). A std of None (one seed: no spread to compare with)
    gives "?" between that agent and its neighbours."""
    ranked = sorted(means, key=lambda a: -means[a])
    text = ranked[0]
    for hi, lo in zip(ranked, ranked[1:]):
        if stds[hi] is None or stds[lo] is None:
            text += " ? " + lo
        else:
            text += (" > " if means[hi] - means[lo] > max(stds[hi], stds[lo]) else " ≈ ") + lo
    return text


def offline_section(cells: list[dict]) -> list[str]:
    """Dataset-normalised scores of offline cells per dataset: mean ± standard deviation over seeds of the final
    score and of the late score (the last ``LATE_EVALS`` evaluations' mean), and the agents' order by each."""
    final: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    late: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for c in cells:
        if "normalised" not in c or family(c["cell"]["env"]) != "d4rl":
            continue
        final[c["cell"]["env"]][c["cell"]["agent"]].append(float(c["normalised"]))
        late[c["cell"]["env"]][c["cell"]["agent"]].append(_late_normalised(Path(c["directory"])))
    if not final:
        return []

    def stats(values: list) -> tuple[float, float | None] | None:
        """(mean, std over seeds or None for one seed); None when a cell has no periodic evaluation."""
        if any(v is None for v in values):
            return None
        arr = np.array(values, dtype=np.float64)
        return float(arr.mean()), (float(arr.std(ddof=1)) if len(arr) > 1 else None)

    def cell_text(stat: tuple[float, float | None] | None) -> str:
        if stat is None:
            return "n/a"
        return f"{stat[0]:.1f} ± {stat[1]:.1f}" if stat[1] is not None else f"{stat[0]:.1f} (one seed)"

    def ranking(per_agent: dict[str, tuple | None]) -> str:
        if any(v is None for v in per_agent.values()):
            return "n/a"
        return order({a: v[0] for a, v in per_agent.items()}, {a: v[1] for a, v in per_agent.items()})

    lines = ["## Offline datasets (dataset-normalised, mean ± std over seeds)", "",
             f"Late = the mean of a cell's last {LATE_EVALS} periodic evaluations. Order: \">\" where two neighbours' "
             "means differ by more than the larger of their standard deviations, \"≈\" where they do not, \"?\" where an "
             "agent has one seed; n/a: a cell without periodic evaluations.", "",
             "| dataset | agent | seeds | final | late |", "|---|---|---|---|---|"]
    orders = []
    for env in sorted(final):
        by_final = {agent: stats(final[env][agent]) for agent in sorted(final[env])}
        by_late = {agent: stats(late[env][agent]) for agent in sorted(final[env])}
        for agent in sorted(final[env]):
            lines.append(f"| {env} | {agent} | {len(final[env][agent])} | {cell_text(by_final[agent])} "
                         f"| {cell_text(by_late[agent])} |")
        if len(by_final) > 1:
            orders.append(f"| {env} | {ranking(by_final)} | {ranking(by_late)} |")
    lines.append("")
    if orders:
        lines += ["| dataset | order by final | order by late |", "|---|---|---|", *orders, ""]
    return lines


# words that change what a cell measures relative to a published 100k-step result
_BUDGET_KEYS = ("size", "train", "wm", "dreamer", "ac", "env")


def _estimate(group: list[dict]) -> tuple[float, float | None, int | None]:
    """(mean, standard error, episodes) of one agent's cells on one env: over seeds, or, for a single cell scored by
    a final evaluation of two or more episodes, that evaluation's standard error over its ``episodes`` (None when
    over seeds). The standard error is None where no spread was measured (one seed scored without one)."""
    if len(group) == 1:
        cell = group[0]
        if "stderr" in cell and (cell.get("episodes") or 0) > 1:
            return float(cell["score"]), float(cell["stderr"]), int(cell["episodes"])
        return float(cell["score"]), None, None
    return (*mean_and_stderr([float(c["score"]) for c in group]), None)


def _score_text(mean: float, se: float | None, episodes: int | None) -> str:
    if se is None:
        return f"{mean:.2f} (one seed, no spread)"
    return f"{mean:.2f} ± {se:.2f}" + (f" ({episodes} episodes)" if episodes else "")


def per_env_section(cells: list[dict]) -> list[str]:
    """Every agent's score per env beside the random policy's, and the training wall-clock."""
    walls: dict[tuple[str, str], list[float]] = defaultdict(list)
    by_cell: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for c in cells:
        by_cell[c["cell"]["agent"], c["cell"]["env"]].append(c)
        if c.get("wall_s") is not None:
            walls[c["cell"]["agent"], c["cell"]["env"]].append(float(c["wall_s"]))
    lines = ["## Per environment", "",
             "Score: mean ± standard error over seeds; a one-seed cell scored by a final evaluation shows the standard "
             "error over that evaluation's episodes instead (their number in brackets), which leaves out the spread "
             "between seeds. Random policy: the random agent's score on the same env, where the suite has it; vs "
             "random: the difference, and that difference in units of the two standard errors combined "
             "(√(s.e.² + s.e._random²)) where both were measured and are not zero. Training wall-clock per cell "
             "(mean over seeds, every attempt, without the final evaluation), as the runs recorded it in their "
             "checkpoints; \"–\" for cells that finished before it was recorded.", "",
             "| agent | env | seeds | score | random policy | vs random | training wall-clock (h) |",
             "|---|---|---|---|---|---|---|"]
    for agent, env in sorted(by_cell):
        m, se, episodes = _estimate(by_cell[agent, env])
        floor = gap = "–"
        if agent != "random" and by_cell.get(("random", env)):
            m_r, se_r, episodes_r = _estimate(by_cell["random", env])
            floor, gap = _score_text(m_r, se_r, episodes_r), f"{m - m_r:+.2f}"
            if se and se_r:  # in standard errors only where both spreads were measured and are not zero
                gap += f" ({(m - m_r) / float(np.hypot(se, se_r)):+.1f} s.e.)"
        wall = f"{np.mean(walls[agent, env]) / 3600:.2f}" if walls.get((agent, env)) else "–"
        lines.append(f"| {agent} | {env} | {len(by_cell[agent, env])} | {_score_text(m, se, episodes)} | {floor} "
                     f"| {gap} | {wall} |")
    return [*lines, ""]


def normalised_section(cells: list[dict]) -> list[str]:
    """The normalised score per benchmark family and agent: each env's mean over seeds first (every env weighs the
    same), then the mean ± standard error over envs. Families apart: human-normalised Atari scores and
    dataset-normalised returns do not average."""
    per_env: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for c in cells:
        if "normalised" in c:
            per_env[family(c["cell"]["env"]), c["cell"]["agent"]][c["cell"]["env"]].append(float(c["normalised"]))
    if not per_env:
        return []
    lines = ["## Normalised average per benchmark family", "",
             "Human-normalised for Atari-like families, dataset-normalised (0 = the dataset's random, 100 = its "
             "expert reference) for d4rl. Each env's mean over seeds, then the mean ± standard error over envs; "
             "agents that ran different envs are not comparable here.", "",
             "| family | agent | envs | cells | normalised score |", "|---|---|---|---|---|"]
    for (fam, agent), envs in sorted(per_env.items()):
        m, se = mean_and_stderr([float(np.mean(v)) for v in envs.values()])
        digits = 1 if fam == "d4rl" else 3
        lines.append(f"| {fam} | {agent} | {len(envs)} | {sum(map(len, envs.values()))} "
                     f"| {m:.{digits}f} ± {se:.{digits}f} |")
    return [*lines, ""]


def write_report(suite_dir: Path) -> Path:
    suite_dir = Path(suite_dir)
    cells = collect(suite_dir)
    if not cells:
        raise FileNotFoundError(f"{suite_dir} holds no finished cells (*/*/seed*/done.json)")
    scores = _scores(cells)
    lines = [f"# Benchmark report: {suite_dir.name}", "", f"{len(cells)} finished cells.", ""]
    lines += per_env_section(cells)
    lines += normalised_section(cells)
    changed = sorted({w for c in cells if c["cell"]["env"].split("/")[0] in ("atari100k", "atari")
                      for w in c["cell"].get("words", []) if w.split("=")[0].split(".")[0] in _BUDGET_KEYS})
    lines += atari_section(scores, suite_dir, changed)
    lines += stori_section(scores)
    lines += offline_section(cells)
    curves = learning_curves(cells, suite_dir / "learning_curves.png")
    if curves:
        lines += ["## Learning curves (mean and 95% band over seeds)", "", f"![learning curves]({curves.name})", ""]
    report = suite_dir / "report.md"
    report.write_text("\n".join(lines))
    return report


def report_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ssmrl bench report", description=__doc__)
    parser.add_argument("suite_dir")
    args = parser.parse_args(argv)
    print(f"wrote {write_report(Path(args.suite_dir))}")
    return 0
