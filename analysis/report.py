"""The collaboration report: one self-contained HTML page for one or several run folders.

It answers two questions: did the team collaborate (team against each member alone, how
answers moved along the graph, who followed whom, what the talk cost), and did training
make it collaborate better (held-out team score and team gain over the steps).

``analyse(run)`` computes everything once per run (``RunSummary``, also what
``marl report`` prints); ``write_report(runs, out)`` writes the page. A single run's page
is titled by its folder name, with what it is (the algorithm first) under it. Sections:

1. what was skipped reading each run (a run killed mid-write), at the top;
2. key results: the key table, one row per run, and the team-vs-single bars of every run;
3. training: learning curves with the evaluation points, and the optimiser's diagnostics,
   every run on the same axes;
4. one section per topic read run by run (``RUN_PANELS``): the run's facts, baselines,
   the contribution table of an ablation, communication cost per agent and edge with the
   interaction graph, answer dynamics (agreement and accuracy by round, transition
   heatmaps), influence against the configured graph. Several runs sit side by side in
   it, one column per run, so that the same panel of each run is read across one row;
5. the transcript viewer of each run (rounds as columns, agents as rows).

Layout: the page is as wide as the window (up to 1800 px); figures and tables flow in a
CSS grid of columns at least ``GRID_MIN_PX`` wide (two at 1400 px, one on a phone), each
figure as wide as its cell. A panel that does not apply to a run is left out, with one
line saying why, decided from the run's data: no messages (message panels), a PageRank
where every agent is equal (the influence graph), one round (the by-round chart), a
training series never logged (its diagnostics panel).

Self-contained: CSS inline, figures as inline SVG (sharp at any width; each point of a
curve carries its value as an SVG ``<title>``, shown on hover with no script), a few lines
of inline JS for the "failures only" filter; no URL of any kind, so it opens offline and
leaks nothing. All text from a run (model output above all) is untrusted and goes through
``html.escape``.

Where the numbers come from: scores of `simulate`/`eval` runs from ``summary.json`` (from
the episodes read when it is missing), with a paired bootstrap CI over tasks from
``analysis.metrics.team_gain``; scores of `train` runs from the last held-out evaluation
in ``metrics.jsonl`` (no CI: per-task eval scores are not logged). Cost columns are over
the episodes the run recorded: the team phase, or a training run's rollouts.

Left out: zooming and panning plots (the page stays script-light and prints), and runs'
checkpoints.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from analysis import plots
from analysis.metrics import (
    Cost,
    Dynamics,
    Gain,
    Influence,
    answer_dynamics,
    communication_cost,
    episode_score,
    failed,
    influence,
    records_of,
    scores_by_seed,
    singles_by_seed,
    tasks_of_tree,
    team_gain,
    training_summary,
)
from analysis.rundata import RunData, RunFolderError
from marl.core.stats import MIN_TASKS

VIEWER_EPISODES = 50  # per phase: the viewer shows at most this many episodes
MESSAGE_PREVIEW = 140  # characters of a message shown before it is expanded
TURN_PREVIEW = 70  # characters of a reply shown before it is expanded
SCALAR_METRICS = 10  # an episode's header shows at most this many of its scalar metrics
FINAL_KEYS = ("team_answer", "target")  # episode metrics worth seeing before opening it
GRID_MIN_PX = 520  # a grid column is at least this wide: 2 columns at 1400 px, 1 on a phone
RUN_MIN_PX = 320  # a run's column when runs are compared side by side
NARROW_PX = 760  # below this page width compared runs stack instead


# =========================================================================== analysis


@dataclass
class RunSummary:
    """The numbers of one run the report and ``marl report`` show; None where not applicable."""

    run: RunData
    label: str  # short name in legends and tables
    team: float | None = None
    best_single_agent: str | None = None
    best_single: float | None = None
    gain: float | None = None  # team - best single
    ci: tuple[float, float] | None = None  # bootstrap CI of ``gain``
    consensus: float | None = None
    tasks: int | None = None
    source: str = ""  # where the scores come from, in words
    singles: dict[str, float] = field(default_factory=dict)  # each agent alone
    gain_detail: Gain | None = None
    cost: Cost | None = None
    cost_unit: str = "ep"  # what a cost is per: an episode, or a task (a tree-mode run)
    cost_by_phase: dict[str, Cost] = field(default_factory=dict)
    dynamics: Dynamics | None = None
    influence: Influence | None = None
    training: dict[str, Any] | None = None
    records: list[dict[str, Any]] = field(default_factory=list)  # the team's episodes
    graph: nx.DiGraph | None = None  # the configured interaction graph, if it rebuilds
    notes: list[str] = field(default_factory=list)  # what could not be computed, and why


def analyse(run: RunData, label: str | None = None) -> RunSummary:
    """Every number the report shows for ``run``."""
    out = RunSummary(run, label or run.name)
    try:
        out.graph = run.graph()
    except RunFolderError as err:
        out.notes.append(f"{err}; the configured graph is not drawn or compared")
    if run.kind == "train":
        _training_scores(out)
        out.records = run.training_episodes()
    else:
        _episode_scores(out)
        out.records = records_of(run.episodes, "team")
        for phase in run.phases():
            if records := records_of(run.episodes, phase):
                out.cost_by_phase[phase] = communication_cost(records)
    if out.records:
        nodes = any(r.get("node") for r in out.records)
        out.cost = communication_cost(tasks_of_tree(out.records) if nodes else out.records)
        out.cost_unit = "task" if nodes else "ep"
        out.dynamics = answer_dynamics(out.records)
        edges = None if out.graph is None else list(out.graph.edges)
        out.influence = influence(out.records, edges)
    return out


def analyse_runs(runs: Sequence[RunData]) -> list[RunSummary]:
    """``analyse`` each run, labelled so that side-by-side legends tell them apart."""
    return [analyse(run, label) for run, label in zip(runs, labels_for(runs), strict=True)]


def _episode_scores(out: RunSummary) -> None:
    """Scores of a `simulate` or `eval` run: summary.json, CI from the episodes."""
    run, summary = out.run, out.run.summary
    team_seeds = scores_by_seed(run.episodes, "team")
    singles = singles_by_seed(run.episodes)
    if team_seeds and singles:
        try:
            out.gain_detail = team_gain(team_seeds, singles)
        except ValueError as err:  # no task common to the team and the singles
            out.notes.append(f"no confidence interval: {err}")
    if summary is not None:
        team = summary["phases"]["team"]
        out.team, out.tasks = team["score"], team["episodes"]
        out.consensus = team.get("consensus")
        if "best_single" in summary:  # marl eval
            out.singles = {
                a: summary["singles"][a] for a in run.agent_ids if a in summary["singles"]
            }
            out.best_single_agent = summary["best_single"]["id"]
            out.best_single = summary["best_single"]["score"]
        else:  # marl simulate: its one single agent
            single = summary["phases"]["single"]
            out.singles = {single["agents"][0]: single["score"]}
            out.best_single_agent, out.best_single = single["agents"][0], single["score"]
        out.gain = summary["team_gain"]
        out.source = f"summary.json, {out.tasks} tasks"
    elif out.gain_detail is not None:
        g = out.gain_detail
        out.team, out.tasks = g.team, g.tasks
        out.best_single_agent, out.best_single, out.gain = (
            g.best_single_agent,
            g.best_single,
            g.gain_vs_best,
        )
        out.singles = {a: sum(s.values()) / len(s) for a, s in singles.items()}
        consensus = [
            e["metrics"]["consensus"]
            for e in records_of(run.episodes, "team")
            if "consensus" in e["metrics"]
        ]
        out.consensus = sum(consensus) / len(consensus) if consensus else None
        out.source = f"episodes read ({g.tasks} tasks with every phase; no summary.json)"
    elif team_seeds:
        out.team, out.tasks = sum(team_seeds.values()) / len(team_seeds), len(team_seeds)
        out.source = f"episodes read ({len(team_seeds)} team tasks; no single-agent episodes)"
    if out.gain_detail is not None:
        out.ci = out.gain_detail.ci_vs_best
        if out.ci is None:
            out.notes.append(
                f"no confidence interval: {out.gain_detail.tasks} tasks are too few (at least "
                f"{MIN_TASKS})"
            )


def _training_scores(out: RunSummary) -> None:
    """Scores of a `train` run: its last held-out evaluation."""
    out.training = training_summary(out.run.metrics)
    last = out.training["last_eval"]
    if last is None:
        out.notes.append("no held-out evaluation in metrics.jsonl yet (train.eval_every)")
        return
    out.team = last["team"]
    out.singles = {k.removeprefix("single/"): v for k, v in last.items() if k.startswith("single/")}
    if out.singles:
        out.best_single_agent = max(out.singles, key=out.singles.__getitem__)
        out.best_single = last.get("best_single", out.singles[out.best_single_agent])
        out.gain = last.get("team_gain", out.team - out.best_single)
    out.tasks = out.run.config["train"]["eval_episodes"]
    out.source = f"held-out evaluation at step {last['step']}, {out.tasks} tasks"


def labels_for(runs: Sequence[RunData]) -> list[str]:
    """Short distinct names: the algorithm for training runs when that tells them apart."""
    names = [r.algorithm or r.name for r in runs]
    if len(set(names)) == len(names):
        return [n if r.kind == "train" else r.name for n, r in zip(names, runs, strict=True)]
    return [r.name for r in runs]


# =========================================================================== key table

KEY_COLUMNS = (
    "run",
    "kind",
    "scenario",
    "team",
    "best single",
    "team gain",
    "95% CI (pts)",
    "consensus",
    "msgs/ep",
    "tokens/ep",
    "score/1k tok",
    "vs vote",
    "vs equal compute",
    "tasks",
)


def key_row(s: RunSummary) -> dict[str, str]:
    """One run's key-table cells, formatted (the HTML page and the terminal show the same)."""
    kind = s.run.kind + (f" ({s.run.algorithm})" if s.run.algorithm else "")
    if s.run.algorithm == "grpo":  # trains and evaluates the first agent alone
        kind = f"train (grpo: {s.run.agent_ids[0]} alone)"
    best = "-"
    if s.best_single is not None:
        best = f"{_pct(s.best_single)} ({s.best_single_agent})"
    ci = "-" if s.ci is None else f"[{s.ci[0] * 100:+.1f}, {s.ci[1] * 100:+.1f}]"
    cost = s.cost
    per = "" if s.cost_unit == "ep" else f" per {s.cost_unit}"
    return {
        "run": s.label,
        "kind": kind,
        "scenario": s.run.scenario,
        "team": _pct(s.team),
        "best single": best,
        "team gain": signed_points(s.gain),
        "95% CI (pts)": ci,
        "consensus": _pct(s.consensus),
        "msgs/ep": "-" if cost is None or not cost.per_edge else f"{cost.messages:.1f}{per}",
        "tokens/ep": "-" if cost is None else f"{cost.completion_tokens:.0f}{per}",
        "score/1k tok": _num(cost.score_per_1k_tokens if cost else None, "{:.2f}"),
        "vs vote": _baseline_gain(s, "vote"),
        "vs equal compute": _baseline_gain(s, "self_consistency"),
        "tasks": "-" if s.tasks is None else str(s.tasks),
    }


def _baseline_gain(s: RunSummary, name: str) -> str:
    """The team's gain over a baseline of an eval summary, with its interval; n/a or -."""
    row = ((s.run.summary or {}).get("baselines") or {}).get(name)
    if row is None:
        return "-"
    if "not_applicable" in row:
        return "n/a"
    ci = row.get("gain_ci95")
    shown = signed_points(row["gain"])
    return shown + (f" [{ci[0] * 100:+.1f}, {ci[1] * 100:+.1f}]" if ci else " (no CI)")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def signed_points(value: float | None) -> str:
    """A difference of two scores in percentage points, "-" for none."""
    return "-" if value is None else f"{value * 100:+.1f} pts"


def _num(value: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


# =========================================================================== HTML helpers


def esc(value: Any) -> str:
    """Any value as HTML text: escaped, quotes included (safe inside attributes too)."""
    return html.escape(str(value), quote=True)


def figure(image: bytes | str, alt: str, caption: str = "", *, wide: bool = False) -> str:
    """A figure: PNG bytes as an inline <img> (base64 data URI), or SVG markup from
    ``plots.svg`` inlined as is (it scales to its cell; its points carry hover titles).
    CSS makes it as wide as its grid cell; ``wide`` makes it span the whole grid row."""
    if isinstance(image, bytes):
        encoded = base64.b64encode(image).decode("ascii")
        shown = f'<img alt="{esc(alt)}" src="data:image/png;base64,{encoded}">'
    else:
        shown = image.replace("<svg ", f'<svg role="img" aria-label="{esc(alt)}" ', 1)
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    css = ' class="wide"' if wide else ""
    return f"<figure{css}>{shown}{cap}</figure>"


def chart(drawn: plots.Chart, alt: str, caption: str = "", *, wide: bool = False) -> str:
    """A ``plots`` chart as an inline SVG figure."""
    return figure(plots.svg(drawn), alt, caption, wide=wide)


def grid(*items: str) -> str:
    """Figures and tables in the page's responsive grid: as many columns of at least
    ``GRID_MIN_PX`` as fit (one on a narrow screen), each item as wide as its cell."""
    shown = [item for item in items if item]
    return f"<div class='grid'>{''.join(shown)}</div>" if shown else ""


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    numeric_from: int = 1,
    caption: str = "",
    css: str = "",
) -> str:
    """An HTML table; cells are escaped; columns from ``numeric_from`` on are right-aligned."""
    head = "".join(
        f'<th class="{"num" if i >= numeric_from else ""}">{esc(h)}</th>'
        for i, h in enumerate(header)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"num" if i >= numeric_from else ""}">{esc(c)}</td>'
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (
        f'<div class="table-wrap"><table class="{css}">{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _section(title: str, body: str, anchor: str = "", level: int = 2) -> str:
    ident = f' id="{esc(anchor)}"' if anchor else ""
    return f"<section{ident}><h{level}>{esc(title)}</h{level}>{body}</section>"


def _note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


# =========================================================================== the page


def write_report(runs: Sequence[RunData], out: str | Path) -> Path:
    """Write the report of ``runs`` (side by side when several) to ``out``; return its path."""
    if not runs:
        raise ValueError("write_report needs at least one run")
    out = Path(out)
    out.write_text(render(analyse_runs(runs)))
    return out


def render(summaries: Sequence[RunSummary]) -> str:
    """The whole page as one HTML string: every topic is one section; a topic read per run
    shows the runs side by side, one column each (``_compared``)."""
    several = len(summaries) > 1
    topics = [
        ("key", "Key results", _overview(summaries)),
        ("training", "Training", _training(summaries)),
        ("runs", "Runs" if several else "Run", _compared(summaries, "runs", _facts)),
    ]
    for anchor, title, panel, absent in RUN_PANELS:
        topics.append((anchor, title, _compared(summaries, anchor, panel, absent)))
    topics.append(("transcripts", "Transcripts", _transcripts(summaries)))
    shown = [(anchor, title, body) for anchor, title, body in topics if body]
    nav = " · ".join(f'<a href="#{esc(anchor)}">{esc(title)}</a>' for anchor, title, _ in shown)
    names = ", ".join(s.run.name for s in summaries)
    title = names if not several else f"Collaboration report: {names}"
    generated = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    if several:
        subtitle = (
            "<ol class='compared'>"
            + "".join(
                f"<li><b>{esc(s.label)}</b>"
                + (f" <code>{esc(s.run.name)}</code>" if s.label != s.run.name else "")
                + f": {esc(run_subtitle(s.run))}</li>"
                for s in summaries
            )
            + "</ol>"
        )
    else:
        subtitle = f"<p class='subtitle'>{esc(run_subtitle(summaries[0].run))}</p>"
    header = (
        f"<header><h1>{esc(title)}</h1>{subtitle}<p class='meta'>collaboration report "
        f"generated {esc(generated)} from {len(summaries)} run folder{'s' * several}: "
        + ", ".join(f"<code>{esc(s.run.path)}</code>" for s in summaries)
        + f"</p><nav>{nav}</nav></header>"
    )
    page_title = title if several else f"{title}: collaboration report"
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        # no network at all: the page only shows inline images and runs its own inline script
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<title>{esc(page_title)}</title><style>{CSS}</style></head><body><main>"
        + header
        + _problems(summaries)
        + "".join(_section(title, body, anchor) for anchor, title, body in shown)
        + f"</main><script>{JS}</script></body></html>\n"
    )


def run_subtitle(run: RunData) -> str:
    """What a run is, in one line under its name: the algorithm first, for training runs."""
    if run.algorithm:
        what = f"{run.algorithm} training, {run.config['train']['policy']} policy"
    else:
        what = {"simulate": "simulation", "eval": "evaluation"}[run.kind]
    agents = run.agent_ids
    return f"{what} · {run.scenario} · {len(agents)} agent{'s' * (len(agents) != 1)}: " + (
        ", ".join(agents)
    )


def _compared(
    summaries: Sequence[RunSummary],
    anchor: str,
    panel: Callable[[RunSummary], str],
    absent: str = "",
) -> str:
    """One topic of every run: the panel of a single run as it is; several runs side by
    side, one column per run, headed by its name (a narrow screen stacks them). A run
    without the topic gets the line ``absent``; no run with it, no section ("")."""
    bodies = [panel(s) for s in summaries]
    if not any(bodies):
        return ""
    if len(summaries) == 1:
        return bodies[0]
    columns = ""
    for k, (s, body) in enumerate(zip(summaries, bodies, strict=True)):
        folder = f" <span class='muted'>{esc(s.run.name)}</span>" if s.label != s.run.name else ""
        columns += (
            f"<div class='run' id='{esc(anchor)}-{k + 1}'>"
            f"<h3 class='run-name'>{esc(s.label)}{folder}</h3>{body or _note(absent)}</div>"
        )
    return f"<div class='runs' style='--runs:{len(summaries)}'>{columns}</div>"


def _problems(summaries: Sequence[RunSummary]) -> str:
    items = [(s.label, p) for s in summaries for p in s.run.problems + s.notes]
    if not items:
        return ""
    body = (
        "<ul>" + "".join(f"<li><b>{esc(label)}</b>: {esc(p)}</li>" for label, p in items) + "</ul>"
    )
    return (
        "<section id='problems' class='problems'><h2>What was skipped</h2>"
        "<p>The report was built from everything that could be read; these parts could "
        f"not be used:</p>{body}</section>"
    )


def _overview(summaries: Sequence[RunSummary]) -> str:
    rows = [list(key_row(s).values()) for s in summaries]
    sources = "; ".join(f"{s.label}: {s.source}" for s in summaries if s.source)
    body = table(
        KEY_COLUMNS,
        rows,
        numeric_from=3,
        css="key",
        caption="team gain = team minus the best agent alone on the same tasks, in "
        "percentage points; CI: paired bootstrap over tasks. msgs/tokens per episode are "
        "over the team's recorded episodes (training rollouts for train runs). Training "
        "runs: scores of the last held-out evaluation, no CI (per-task scores are not logged).",
    )
    body += _note(f"Scores from: {sources}.") if sources else ""
    groups = {}
    for s in summaries:
        if s.team is None:
            continue
        who = f"{s.run.agent_ids[0]} alone" if s.run.algorithm == "grpo" else "team"
        bars = [plots.Bar(who, s.team, _team_interval(s), highlight=True)]
        bars += [plots.Bar(a, v) for a, v in s.singles.items()]
        groups[s.label] = bars
    if groups:
        body += grid(
            chart(
                plots.score_bars(groups),
                "team against each agent alone",
                "The team (coloured) and each agent alone (grey) on the same tasks. Whiskers: "
                "95% bootstrap interval of the team score implied by the gain's interval.",
            )
        )
    if len(summaries) > 1:
        body += _comparison(summaries)
    return body


def _team_interval(s: RunSummary) -> tuple[float, float] | None:
    """The team bar's whisker: best single plus the gain's CI (where the gain is read)."""
    if s.ci is None or s.best_single is None:
        return None
    return (s.best_single + s.ci[0], s.best_single + s.ci[1])


def _comparison(summaries: Sequence[RunSummary]) -> str:
    """Side by side: configuration differences and cost of each run."""
    rows = []
    for s in summaries:
        config = s.run.config
        train = config.get("train") or {}
        graph = config.get("graph") or {}
        rows.append(
            [
                s.label,
                ", ".join(s.run.agent_ids),
                _graph_words(graph),
                train.get("algorithm", "-"),
                train.get("policy", "-"),
                str(len(s.run.metrics)),
                str(len(s.run.episodes)),
                _num(s.cost.prompt_tokens if s.cost else None, "{:.0f}"),
            ]
        )
    return _section(
        "Side by side",
        table(
            (
                "run",
                "agents",
                "graph",
                "algorithm",
                "policy",
                "metrics lines",
                "records",
                "prompt tok/ep",
            ),
            rows,
            numeric_from=5,
        ),
        level=3,
    )


def _graph_words(graph: Mapping[str, Any]) -> str:
    if graph.get("rounds"):
        return f"{len(graph['rounds'])} graphs by round"
    for key in ("preset", "file"):
        if graph.get(key):
            return str(graph[key]) + (f" (hub {graph['hub']})" if graph.get("hub") else "")
    if graph.get("edges") is not None:
        return f"{len(graph['edges'])} explicit edges"
    if graph.get("random"):
        return f"random {graph['random']['kind']}"
    return "complete"


# --------------------------------------------------------------------------- training


def _training(summaries: Sequence[RunSummary]) -> str:
    trained = [s for s in summaries if s.training is not None]
    if not trained:
        return ""
    series = [(s.label, s.training) for s in trained]
    evaluated = any(t["eval"]["steps"] for _, t in series)
    stepped = any(y is not None for _, t in series for y in t["score_mean"])
    notes = []
    if not evaluated:
        notes.append(
            "No held-out evaluation in these runs (train.eval_every): its panel is left out."
        )
    if not stepped:
        notes.append("No training step logged yet: the rollout panel is left out.")
    figures = []
    if evaluated or stepped:
        figures.append(
            chart(
                plots.training_curves(series),
                "learning curves",
                "Left: held-out success of the team (filled) and of the best agent alone "
                "(hollow, dashed) at each evaluation; the gap between them is the team gain. "
                "Right: success of the training rollouts. Each run has its own colour, marker "
                "and line width; hover a point for its value.",
                wide=True,
            )
        )
    logged = plots.logged_diagnostics(series)
    if logged:
        figures.append(
            chart(
                plots.training_diagnostics(series),
                "training diagnostics",
                "Optimiser health per step. Flat groups give no gradient; a growing KL means "
                "the policy moves away from its reference.",
                wide=True,
            )
        )
    unlogged = [title for key, title in plots.TRAINING_SERIES if (key, title) not in logged]
    if unlogged and stepped:
        notes.append(f"Not logged in these runs, so left out: {', '.join(unlogged)}.")
    body = grid(*figures) + "".join(_note(n) for n in notes)
    rows = []
    agents = _eval_agents(trained)
    # train.eval_baselines: the equal-compute line beside the curve
    equal = any(y is not None for s in trained for y in s.training["eval"]["self_consistency"])
    for s in trained:
        ev = s.training["eval"]
        for k, step in enumerate(ev["steps"]):
            singles = [_pct(ev["singles"].get(a, [None] * (k + 1))[k]) for a in agents]
            rows.append(
                [
                    s.label,
                    step,
                    _pct(ev["team"][k]),
                    _pct(ev["best_single"][k]),
                    signed_points(ev["team_gain"][k]),
                    *([_pct(ev["self_consistency"][k])] if equal else []),
                    *singles,
                ]
            )
    if rows:
        body += table(
            (
                "run",
                "step",
                "team",
                "best single",
                "team gain",
                *(["self-consistency (equal tokens)"] if equal else []),
                *(f"alone: {a}" for a in agents),
            ),
            rows,
            caption="held-out evaluations (step 0: before training)",
        )
    changes = []
    for s in trained:
        change = s.training["eval_change"]
        if change:
            first, last = s.training["first_eval"], s.training["last_eval"]
            changes.append(
                f"{s.label}: team {_pct(first['team'])} → {_pct(last['team'])} "
                f"({signed_points(change['team'])}) from step {first['step']} to {last['step']}"
                + (
                    f"; team gain {signed_points(first['team_gain'])} → "
                    f"{signed_points(last['team_gain'])} "
                    f"(a change of {signed_points(change['team_gain'])})"
                    if change.get("team_gain") is not None
                    else ""
                )
            )
    if changes:
        body += "<ul class='findings'>" + "".join(f"<li>{esc(c)}</li>" for c in changes) + "</ul>"
    return body


def _eval_agents(trained: Sequence[RunSummary]) -> list[str]:
    return list(dict.fromkeys(a for s in trained for a in s.training["eval"]["singles"]))


# --------------------------------------------------------------------------- one run


def _facts(s: RunSummary) -> str:
    """What the run was: folder, kind, scenario and options, team, graph, what was read."""
    run = s.run
    facts = [
        ("folder", str(run.path)),
        (
            "kind",
            run.kind
            + (
                f" ({run.algorithm}, policy {run.config['train']['policy']})"
                if run.algorithm
                else ""
            ),
        ),
        ("scenario", f"{run.scenario} {json.dumps(run.config['scenario'].get('options', {}))}"),
        (
            "team",
            ", ".join(
                f"{a['id']} ({a.get('role', '')}, {a['model']})"
                for a in run.config["team"]["agents"]
            ),
        ),
        ("graph", _graph_words(run.config.get("graph") or {})),
        ("records", f"{len(run.episodes)} transcript records, {len(run.metrics)} metrics lines"),
    ]
    return (
        "<dl class='facts'>"
        + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
        + "</dl>"
    )


BASELINE_WORDS = {
    "vote": "vote: the team's round-1 answers, majority-voted (no talking)",
    "self_consistency": "self-consistency: the single agent, k answers, majority (equal tokens)",
    "solo_rounds": "solo rounds: the single agent refining alone for as many rounds",
}
PART_WORDS = {
    "team_vs_mean_member": "team vs the mean member: the whole gain",
    "voting": "vote vs the mean member: what voting added",
    "talking": "team vs vote: what talking added",
    "equal_compute": "team vs self-consistency: the gain at equal compute",
}


def gain_interval(row: Mapping[str, Any]) -> str:
    """A paired gain's 95% interval in points (``marl.core.stats.PairedGain.as_dict``), or
    why there is none."""
    ci = row.get("gain_ci95")
    if ci:
        return f"[{ci[0] * 100:+.1f}, {ci[1] * 100:+.1f}]"
    return str(row.get("gain_ci95_why", "-"))


def _baselines(s: RunSummary) -> str:
    """An eval summary's baselines (same tasks and seeds) and the split of the team's gain."""
    summary = s.run.summary or {}
    compared = summary.get("baselines")
    if not compared:
        return ""
    rows = []
    for name, row in compared.items():
        words = BASELINE_WORDS.get(name, name)
        if "not_applicable" in row:
            rows.append([words, "not applicable: " + row["not_applicable"], "", "", ""])
            continue
        if "k" in row:
            words += f", k = {row['k']}"
        rows.append(
            [
                words,
                _pct(row["score"]),
                f"{row['tokens_per_episode']:.0f}",
                signed_points(row["gain"]),
                gain_interval(row),
            ]
        )
    caption = (
        f"team {_pct(s.team)}; team gain = team score minus the baseline's, per task; "
        "95% interval: paired bootstrap over tasks (2,000 resamples; none from fewer than "
        "10 tasks)"
    )
    body = table(
        ("baseline", "score", "tokens/ep", "team gain", "95% CI (pts)"),
        rows,
        numeric_from=1,
        caption=caption,
        css="baselines",
    )
    parts = summary.get("decomposition") or {}
    if parts:
        body += table(
            ("part of the gain", "gain", "95% CI (pts)"),
            [
                [PART_WORDS.get(k, k), signed_points(p["gain"]), gain_interval(p)]
                for k, p in parts.items()
            ],
            caption="each part paired over the same tasks; talking + voting = the whole gain",
            css="decomposition",
        )
    return body


def _contribution(s: RunSummary) -> str:
    """Leave-one-out table of a `marl eval --ablate` summary: one row per agent left out."""
    contribution = (s.run.summary or {}).get("contribution")
    if not contribution:
        return ""
    rows = [
        [agent, c["method"], _pct(c["score_without"]), signed_points(c["marginal"]), c["why"]]
        for agent, c in contribution.items()
    ]
    caption = (
        f"team score {_pct(s.team)}; marginal = team score minus the score without the agent, "
        "on the same tasks (removed: the agent and its edges are dropped; noop: it stays in "
        "its role but says nothing)"
    )
    return table(
        ("agent", "method", "score without", "marginal", "why"),
        rows,
        numeric_from=2,
        caption=caption,
        css="contribution",
    )


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


NO_MESSAGES = "No messages in this run: message panels left out."
NOTHING_DELIVERED = "No message reached another agent: message panels left out."
UNIFORM_INFLUENCE = "Influence is uniform (every agent equal): graph panel left out."
UNIFORM_TOLERANCE = 1e-9  # PageRank values closer than this count as equal
HEATMAPS = 4  # answer-transition heatmaps shown per run at most


def message_count(records: Sequence[Mapping[str, Any]]) -> int:
    """Messages the episodes sent over the bus (every record's message log)."""
    return sum(len(r.get("messages") or []) for r in records)


def is_uniform(values: Sequence[float], tolerance: float = UNIFORM_TOLERANCE) -> bool:
    """All values equal within ``tolerance`` (e.g. a PageRank where nobody stands out)."""
    return bool(values) and max(values) - min(values) <= tolerance


def _no_messages(s: RunSummary) -> str | None:
    """Why the message panels of this run are left out, or None when they apply."""
    if message_count(s.records) == 0:
        return NO_MESSAGES
    if s.cost is not None and not s.cost.per_edge:
        return NOTHING_DELIVERED
    return None


def _communication(s: RunSummary) -> str:
    cost = s.cost
    if cost is None:
        return _note("No team episodes were read: communication panels left out.")
    rows = [
        [
            a,
            _num(v["turns"], "{:.1f}"),
            _num(v["messages"], "{:.1f}"),
            _num(v["message_chars"], "{:.0f}"),
            _num(v["completion_tokens"], "{:.0f}"),
            _num(v["prompt_tokens"], "{:.0f}"),
        ]
        for a, v in cost.per_agent.items()
    ]
    unit = "episode" if s.cost_unit == "ep" else s.cost_unit
    items = [
        table(
            ("agent", "turns", "messages", "chars sent", "completion tok", "prompt tok"),
            rows,
            caption=f"per agent, mean per {unit} over {cost.episodes} {unit}s",
        )
    ]
    if s.cost_by_phase:
        items.append(
            table(
                (
                    "phase",
                    "episodes",
                    "score",
                    "msgs/ep",
                    "deliveries/ep",
                    "tokens/ep",
                    "score/1k tok",
                ),
                [
                    [
                        phase,
                        c.episodes,
                        _pct(c.score),
                        _num(c.messages, "{:.1f}"),
                        _num(c.deliveries, "{:.1f}"),
                        _num(c.completion_tokens, "{:.0f}"),
                        _num(c.score_per_1k_tokens),
                    ]
                    for phase, c in s.cost_by_phase.items()
                ],
                caption="each phase: what the score cost",
            )
        )
    why_not = _no_messages(s)
    if why_not is None:
        items.append(
            table(
                ("sender → recipient", "deliveries/ep", "chars/ep"),
                [
                    [
                        f"{e.sender} → {e.recipient}",
                        _num(e.deliveries, "{:.1f}"),
                        _num(e.chars, "{:.0f}"),
                    ]
                    for e in cost.per_edge
                ],
                caption="per edge of the bus",
            )
        )
        if s.graph is not None:
            weights = {(e.sender, e.recipient): e.deliveries for e in cost.per_edge}
            items.append(
                chart(
                    plots.graph_figure(
                        s.graph,
                        weights,
                        "interaction graph: messages per episode",
                        reference=s.graph,
                    ),
                    "interaction graph",
                    "Configured edges dashed grey; blue width: messages delivered per episode.",
                )
            )
    return grid(*items) + (_note(why_not) if why_not else "")


def _dynamics(s: RunSummary) -> str:
    d = s.dynamics
    if d is None or d.episodes == 0:
        return _note(
            "No turn carries a parsed answer and its correctness (info 'answer' and "
            "'correct'): answer-dynamics panels left out."
        )
    figures, notes = [], []
    if len(d.agreement) < 2:
        notes.append(
            f"One round only: the by-round chart and transition heatmaps are left out "
            f"(agreement {_pct(d.agreement[0] if d.agreement else None)}, accuracy "
            f"{_pct(d.accuracy[0] if d.accuracy else None)})."
        )
    else:
        figures.append(
            chart(
                plots.round_lines(
                    {"agreement": d.agreement, "accuracy": d.accuracy},
                    "agreement and accuracy by round",
                ),
                "agreement and accuracy by round",
                "Hover a point for its value.",
            )
        )
    pairs = [(p, m) for p, m in d.transition_matrices.items() if any(v for row in m for v in row)]
    if len(pairs) < len(d.transition_matrices):
        notes.append(
            f"{len(d.transition_matrices) - len(pairs)} round transition(s) where no agent "
            "answered in both rounds: heatmap left out."
        )
    if len(pairs) > HEATMAPS:
        notes.append(f"Heatmaps of the first {HEATMAPS} of {len(pairs)} round transitions shown.")
    for pair, matrix in pairs[:HEATMAPS]:
        before, after = (int(r) + 1 for r in pair.split("->"))
        figures.append(
            chart(
                plots.heatmap(
                    matrix,
                    d.states,
                    d.states,
                    f"answers, round {before} → {after}",
                    xlabel=f"round {after}",
                    ylabel=f"round {before}",
                ),
                f"answer transitions round {before} to {after}",
            )
        )
    t = d.transitions
    if any(t.values()):
        figures.append(
            table(
                ("transition", "count"),
                [[k, v] for k, v in t.items() if v],
                caption=f"per agent between consecutive rounds, {d.episodes} episodes",
            )
        )
    body = grid(*figures) + "".join(_note(n) for n in notes)
    body += "<ul class='findings'>"
    body += f"<li>wrong → right: {t['wrong->right']}, right → wrong: {t['right->wrong']}</li>"
    if d.majority_right_individual_wrong_rate is not None:
        body += (
            f"<li>the vote was right while an agent was wrong in "
            f"{d.majority_right_individual_wrong} agent-rounds "
            f"({_pct(d.majority_right_individual_wrong_rate)} of right votes)</li>"
        )
    if d.individual_right_majority_wrong_rate is not None:
        body += (
            f"<li>an agent was right while the vote was wrong in "
            f"{d.individual_right_majority_wrong} agent-rounds "
            f"({_pct(d.individual_right_majority_wrong_rate)} of wrong votes)</li>"
        )
    body += "</ul>"
    return body


def _influence(s: RunSummary) -> str:
    inf = s.influence
    if inf is None:
        return _note("No team episodes were read: influence panels left out.")
    if not inf.edges:
        why = _no_messages(s) or NOTHING_DELIVERED
        return _note(why.replace("message panels", "influence panels"))
    items = [
        table(
            ("sender → recipient", "deliveries", "chances", "adoptions", "adoption rate"),
            [
                [
                    f"{e.sender} → {e.recipient}",
                    e.deliveries,
                    e.opportunities,
                    e.adoptions,
                    _pct(e.rate),
                ]
                for e in inf.edges
            ],
            caption="a chance: the sender told the recipient an answer other than its own; "
            "an adoption: the recipient gave the sender's answer next round",
        ),
        table(
            ("agent", "PageRank", "followed (out)", "follows (in)"),
            [
                [
                    a,
                    _num(inf.pagerank.get(a), "{:.3f}"),
                    _num(inf.out_strength.get(a)),
                    _num(inf.in_strength.get(a)),
                ]
                for a in inf.agents
            ],
            caption="PageRank over who-follows-whom: high = the others follow this agent",
        ),
    ]
    rank = inf.pagerank
    uniform = is_uniform(list(rank.values()))
    if s.graph is not None and not uniform:
        top = max(rank.values(), default=1.0) or 1.0
        items.append(
            chart(
                plots.graph_figure(
                    s.graph,
                    {(e.sender, e.recipient): e.rate or 0.0 for e in inf.edges},
                    "influence: adoption rate",
                    reference=s.graph,
                    weight_format="{:.0%}",
                    node_sizes={a: v / top for a, v in rank.items()},
                ),
                "influence graph",
                "Width: how often the recipient adopted the sender's differing answer; node "
                "size: PageRank; dashed grey: configured edges.",
            )
        )
    body = grid(*items) + (_note(UNIFORM_INFLUENCE) if uniform else "")
    if inf.configured_unused is not None:
        unused = ", ".join(f"{u}→{v}" for u, v in inf.configured_unused) or "none"
        outside = ", ".join(f"{u}→{v}" for u, v in inf.unconfigured_used or []) or "none"
        body += (
            "<ul class='findings'>"
            f"<li>configured edges that carried nothing: {esc(unused)}</li>"
            f"<li>edges used but not configured: {esc(outside)}</li>"
            f"<li>overlap of used and configured edges (Jaccard): {_num(inf.jaccard)}</li>"
            "</ul>"
        )
    return body


# (anchor, title, panel of one run, the line for a run without the topic), in page order
RUN_PANELS: tuple[tuple[str, str, Callable[[RunSummary], str], str], ...] = (
    (
        "baselines",
        "Against baselines of the same tasks",
        _baselines,
        "No baselines in this run (marl eval scores them).",
    ),
    (
        "contribution",
        "Contribution of each agent",
        _contribution,
        "No contribution table in this run (marl eval --ablate writes one).",
    ),
    ("communication", "Communication cost", _communication, ""),
    ("dynamics", "Answer dynamics", _dynamics, ""),
    ("influence", "Influence against the configured graph", _influence, ""),
)


# --------------------------------------------------------------------------- transcripts


def _transcripts(summaries: Sequence[RunSummary]) -> str:
    """Every run's transcript viewer, one under another (full width: rounds are columns)."""
    if len(summaries) == 1:
        return _viewer(summaries[0], "run-1")
    return "".join(
        f"<h3 class='run-name'>{esc(s.label)}</h3>{_viewer(s, f'run-{k + 1}')}"
        for k, s in enumerate(summaries)
    )


def _viewer(s: RunSummary, anchor: str) -> str:
    run = s.run
    if run.kind == "train":
        groups = {"train": s.records}
    else:
        groups = {phase: records_of(run.episodes, phase) for phase in run.phases()}
    if not any(groups.values()):
        return _note("No transcripts were read.")
    body = (
        f"<label class='filter'><input type='checkbox' class='failures-only' "
        f"data-target='{esc(anchor)}-viewer'> failures only (score 0)</label>"
    )
    for phase, records in groups.items():
        shown, how = _pick(records, run.kind == "train")
        failures = sum(1 for r in records if failed(r))
        if any(r.get("node") for r in records):
            ended = sum(1 for r in records if r.get("metrics"))
            count = f"{len(records)} tree nodes ({ended} where the episode ended)"
        else:
            count = f"{len(records)} episodes"
        body += (
            f"<h4>{esc(phase)} <span class='muted'>{count}, {failures} failed; "
            f"{esc(how)}</span></h4>"
        )
        body += "".join(_episode(r) for r in shown)
    return f"<div class='viewer' id='{esc(anchor)}-viewer'>{body}</div>"


def _pick(records: list[dict[str, Any]], training: bool) -> tuple[list[dict[str, Any]], str]:
    """The episodes the viewer shows, and how they were chosen."""
    if len(records) <= VIEWER_EPISODES:
        return records, "all shown"
    if training:
        half = VIEWER_EPISODES // 2
        return (
            records[:half] + records[-half:],
            f"showing the first {half} and the last {half} (early and late in training)",
        )
    return records[:VIEWER_EPISODES], f"showing the first {VIEWER_EPISODES}"


def _episode(record: dict[str, Any]) -> str:
    score = episode_score(record)
    lost = failed(record)
    node = record.get("node") and not record.get("metrics")
    rounds = sorted({t["round"] for t in record["turns"]})
    agents = record["agents"]
    cells: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for turn in record["turns"]:
        cells.setdefault((turn["agent"], turn["round"]), []).append(turn)
    head = "".join(f"<th>round {r + 1}</th>" for r in rounds)
    body = ""
    for agent in agents:
        body += f"<tr><th class='agent'>{esc(agent)}</th>"
        for r in rounds:
            body += "<td>" + "".join(_turn(t) for t in cells.get((agent, r), [])) + "</td>"
        body += "</tr>"
    rewards = record.get("rewards") or []
    body += (
        "<tr class='rewards'><th>team reward</th>"
        + "".join(f"<td>{esc(_cell(rewards[r]) if r < len(rewards) else '-')}</td>" for r in rounds)
        + "</tr>"
    )
    where = f"step {record['step']} · " if "step" in record else ""
    sample = f" · sample {record['sample']}" if "step" in record else ""
    metrics = record.get("metrics") or {}
    final = "".join(f" · {k} {_short(metrics[k], 30)}" for k in FINAL_KEYS if k in metrics)
    what = (
        f"tree node (round {rounds[0] + 1 if rounds else '?'})" if record.get("node") else "episode"
    )
    value = f"return {_cell(record['return'])}" if node else f"score {_cell(score)}"
    title = (
        f"{where}{what} {record.get('index', '?')} · seed {record['seed']}{sample} · {value}{final}"
    )
    if node:
        status = "<span class='badge'>goes on</span>"
    elif lost:
        status = "<span class='badge bad'>failed</span>"
    else:
        status = "<span class='badge good'>solved</span>"
    return (
        f"<details class='episode' data-failed='{int(lost)}'><summary>{status} "
        f"{esc(title)}</summary>{_episode_metrics(record)}"
        f"<table class='transcript'><thead><tr><th>agent</th>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>{_messages(record)}</details>"
    )


def _episode_metrics(record: dict[str, Any]) -> str:
    """The episode's final answer, target and other scalar metrics as chips."""
    metrics = record.get("metrics") or {}
    first = [k for k in ("score", "team_answer", "target", "team_correct") if k in metrics]
    rest = [k for k, v in metrics.items() if k not in first and _is_scalar(v)]
    shown = (first + rest)[:SCALAR_METRICS]
    chips = "".join(
        f"<span class='chip'><b>{esc(k)}</b> {esc(_cell(metrics[k]))}</span>" for k in shown
    )
    chips += f"<span class='chip'><b>return</b> {esc(_cell(record.get('return')))}</span>"
    return f"<div class='chips'>{chips}</div>"


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def _turn(turn: dict[str, Any]) -> str:
    info = turn.get("info") or {}
    badge = ""
    answer_key = next((k for k in ("answer", "choice") if k in info), None)
    if answer_key is not None:
        value = info[answer_key]
        if value is None or info.get("parsed") is False:
            badge = "<span class='badge none'>no answer</span>"
        else:
            kind = {True: "good", False: "bad"}.get(info.get("correct"), "none")
            badge = f"<span class='badge {kind}'>{esc(answer_key)}: {esc(_short(value, 40))}</span>"
    text = turn.get("text", "")
    preview = _short(text.replace("\n", " "), TURN_PREVIEW)
    cut = (
        "<span class='muted'> [cut at max tokens]</span>"
        if turn.get("finish_reason") == "length"
        else ""
    )
    return (
        f"<div class='turn'>{badge}<details><summary>{esc(preview)}</summary>"
        f"<div class='label'>observation</div><pre class='obs'>{esc(turn.get('observation', ''))}"
        f"</pre><div class='label'>reply{cut}</div><pre>{esc(text)}</pre></details></div>"
    )


def _messages(record: dict[str, Any]) -> str:
    messages = record.get("messages") or []
    if not messages:
        return ""
    items = ""
    for m in messages:
        content = m["content"]
        preview = esc(_short(content.replace("\n", " "), MESSAGE_PREVIEW))
        full = (
            f"<details><summary>{preview}</summary><pre>{esc(content)}</pre></details>"
            if len(content) > MESSAGE_PREVIEW or "\n" in content
            else f"<div class='content'>{preview}</div>"
        )
        items += (
            f"<li><span class='round'>r{esc(m['round'] + 1)}</span> "
            f"<b>{esc(m['sender'])}</b> → {esc(', '.join(m['recipients']))} "
            f"<span class='muted'>[{esc(m['channel'])}]</span> {full}</li>"
        )
    return f"<div class='label'>messages</div><ul class='messages'>{items}</ul>"


def _short(value: Any, limit: int) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# =========================================================================== style

CSS = """
:root { --fg:#1f2933; --muted:#6b7785; --line:#e1e5ea; --bg:#ffffff; --soft:#f5f7fa;
  --good:#1e7b34; --bad:#b42318; --accent:#1f5fa8; --warn:#fff7e0; --warnline:#e3b341; }
* { box-sizing:border-box; }
body { margin:0; background:var(--soft); color:var(--fg);
  font:14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width:1800px; margin:0 auto; padding:24px 28px 64px; background:var(--bg);
  min-height:100vh; }
header h1 { font-size:22px; margin:0 0 2px; word-break:break-word; }
.subtitle { font-size:15px; margin:0 0 6px; }
ol.compared { margin:4px 0 8px; padding-left:22px; }
.meta, .muted, .note, figcaption, caption { color:var(--muted); }
.meta { margin:0 0 8px; font-size:12px; }
nav a { color:var(--accent); margin-right:2px; }
h2 { font-size:18px; border-bottom:2px solid var(--line); padding-bottom:4px; margin:32px 0 12px; }
h3 { font-size:15px; margin:24px 0 8px; }
h4 { font-size:13px; margin:18px 0 6px; }
code { font-size:12px; background:var(--soft); padding:1px 4px; border-radius:3px;
  word-break:break-all; }
.grid { display:grid; gap:18px 24px; align-items:start; margin:8px 0 16px;
  grid-template-columns:repeat(auto-fill, minmax(min(100%, GRID_MIN_PXpx), 1fr)); }
.grid > .wide { grid-column:1 / -1; }
.grid > * { min-width:0; }
.runs { display:grid; gap:16px 32px; align-items:start;
  grid-template-columns:repeat(var(--runs, 1), minmax(RUN_MIN_PXpx, 1fr)); overflow-x:auto; }
.runs > .run { min-width:0; }
.runs > .run > h3.run-name { margin-top:4px; }
.runs table { font-size:12px; }
.runs th, .runs td { padding:4px 7px; }
h3.run-name { border-left:4px solid var(--accent); padding-left:8px; }
@media (max-width: NARROW_PXpx) { .runs { grid-template-columns:1fr; } }
.table-wrap { max-width:100%; overflow-x:auto; }
.grid .table-wrap table { margin-top:0; }
table { border-collapse:collapse; margin:8px 0 16px; font-size:13px; }
caption { caption-side:bottom; text-align:left; font-size:12px; padding-top:4px; }
th, td { border-bottom:1px solid var(--line); padding:5px 10px; text-align:left;
  vertical-align:top; }
thead th { background:var(--soft); font-weight:600; white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
table.contribution td:last-child, table.contribution th:last-child { text-align:left; }
table.key { width:100%; }
table.key td:first-child { font-weight:600; }
figure { margin:0; }
figure > svg, figure > img { display:block; width:100%; height:auto;
  border:1px solid var(--line); border-radius:4px; background:#fff; }
figure svg * { stroke-linejoin:round; stroke-linecap:butt; }
figcaption { font-size:12px; margin-top:4px; }
.problems { background:var(--warn); border:1px solid var(--warnline); border-radius:6px;
  padding:4px 16px; margin-top:16px; }
.problems h2 { border:none; margin-top:10px; }
dl.facts { display:grid; grid-template-columns:max-content 1fr; gap:2px 14px; font-size:13px; }
dl.facts dt { color:var(--muted); }
dl.facts dd { margin:0; word-break:break-word; }
ul.findings li { margin:2px 0; }
.filter { display:inline-block; margin:4px 0 8px; padding:4px 10px; background:var(--soft);
  border-radius:4px; cursor:pointer; user-select:none; }
details.episode { border:1px solid var(--line); border-radius:6px; margin:6px 0;
  padding:4px 10px; }
details.episode > summary { cursor:pointer; font-weight:600; padding:2px 0; }
.viewer.failures-only details.episode[data-failed='0'] { display:none; }
table.transcript { width:100%; table-layout:fixed; }
table.transcript th.agent { width:110px; }
table.transcript thead th:first-child { width:110px; }
table.transcript td { font-size:12px; }
.turn summary { cursor:pointer; color:var(--fg); }
.turn { margin-bottom:4px; }
pre { white-space:pre-wrap; word-break:break-word; background:var(--soft); padding:6px 8px;
  border-radius:4px; margin:2px 0 6px; font-size:12px; max-height:320px; overflow:auto; }
pre.obs { color:var(--muted); }
.label { font-size:11px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted);
  margin-top:4px; }
.badge { display:inline-block; font-size:11px; padding:0 6px; border-radius:9px;
  margin:0 4px 2px 0; border:1px solid currentColor; white-space:nowrap; }
.badge.good { color:var(--good); }
.badge.bad { color:var(--bad); }
.badge.none { color:var(--muted); }
.chips { margin:4px 0; }
.chip { display:inline-block; font-size:12px; background:var(--soft); border-radius:4px;
  padding:1px 7px; margin:0 6px 4px 0; }
ul.messages { font-size:12px; padding-left:18px; margin:2px 0 8px; }
ul.messages li { margin:2px 0; }
ul.messages .content { padding-left:14px; }
.round { font-weight:600; color:var(--accent); }
tr.rewards th, tr.rewards td { color:var(--muted); font-size:12px; }
"""
CSS = (
    CSS.replace("GRID_MIN_PX", str(GRID_MIN_PX))
    .replace("RUN_MIN_PX", str(RUN_MIN_PX))
    .replace("NARROW_PX", str(NARROW_PX))
)
JS = """
document.querySelectorAll('input.failures-only').forEach(function (box) {
  box.addEventListener('change', function () {
    document.getElementById(box.dataset.target).classList.toggle('failures-only', box.checked);
  });
});
"""


def report_problems(summaries: Sequence[RunSummary]) -> list[str]:
    """Every problem and note of the runs, prefixed with the run's label (for the terminal)."""
    return [f"{s.label}: {p}" for s in summaries for p in s.run.problems + s.notes]
