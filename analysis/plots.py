"""Plots from run folders (matplotlib, PNG): one function per figure a report shows.

Every function takes plain numbers (what ``analysis.metrics`` computes or a run folder
holds), draws one small figure in the house style and returns its PNG bytes; ``save``
writes them to a file. ``learning_curves`` is the exception kept for
``benchmarks/learning_coordination.py``: it reads run folders and writes a file itself.

| figure                 | shows                                                                |
| ---------------------- | -------------------------------------------------------------------- |
| `training_curves`      | held-out team and best-single score over steps, training reward      |
| `arm_curves`           | an experiment's held-out curve per arm: mean over seeds, 95% band    |
| `training_diagnostics` | loss, KL, gradient norm, advantage spread, flat groups over steps    |
| `score_bars`           | the team against each agent alone, with confidence intervals         |
| `graph_figure`         | a graph drawn with a networkx layout, edge width by a weight         |
| `heatmap`              | a matrix with counts in the cells (answer transitions per round)     |
| `round_lines`          | rates by round (agreement, accuracy)                                 |
| `cost_bars`            | messages and tokens per agent                                        |
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import networkx as nx
from matplotlib.figure import Figure

from analysis.rundata import read_metrics_lines

COLOURS = plt.get_cmap("tab10").colors
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "figure.dpi": 110,
    "savefig.bbox": "tight",
    "savefig.facecolor": "white",
}
WIDE = (7.0, 3.2)  # inches: a figure across the report's column
SMALL = (4.2, 3.4)  # inches: a figure beside another


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes; closes it."""
    buffer = io.BytesIO()
    with plt.rc_context(STYLE):
        fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def save(data: bytes, path: str | Path) -> Path:
    path = Path(path)
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- training


def training_curves(runs: Sequence[tuple[str, Mapping[str, Any]]]) -> bytes:
    """Top: held-out team score (filled markers), best single agent (hollow, dashed) and,
    where scored, self-consistency at equal tokens (squares, dotted) at each evaluation;
    bottom: training success per step (thin) and its moving mean (bold).

    ``runs``: (label, ``analysis.metrics.training_summary`` of the run); one colour per
    run, so several runs compare on one figure.
    """
    with plt.rc_context(STYLE):
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.0, 5.0), sharex=True)
        for k, (label, summary) in enumerate(runs):
            colour = COLOURS[k % len(COLOURS)]
            ev = summary["eval"]
            top.plot(ev["steps"], ev["team"], marker="o", color=colour, label=label)
            # reference lines: (series, marker style, legend text)
            references = (
                (
                    "best_single",
                    {"marker": "o", "markerfacecolor": "white", "linestyle": "--"},
                    "best single",
                ),
                (
                    "self_consistency",
                    {"marker": "s", "linestyle": ":"},
                    "self-consistency (equal tokens)",
                ),
            )
            for key, style, words in references:
                if any(y is not None for y in ev.get(key, [])):
                    xs, ys = _present(ev["steps"], ev[key])
                    top.plot(xs, ys, color=colour, alpha=0.8, label=f"{label}: {words}", **style)
            xs, ys = _present(summary["steps"], summary["score_mean"])
            bottom.plot(xs, ys, color=colour, alpha=0.3, linewidth=0.8)
            bottom.plot(xs, _moving_mean(ys, 5), color=colour, linewidth=1.8, label=label)
        top.set_title("held-out evaluation")
        top.set_ylabel("success rate")
        top.set_ylim(-0.03, 1.03)
        top.legend(loc="upper left", ncol=2)
        bottom.set_title("training rollouts (moving mean of 5 steps)")
        bottom.set_ylabel("success rate")
        bottom.set_xlabel("training step")
        bottom.set_ylim(-0.03, 1.03)
        if any(bottom.get_lines()):
            bottom.legend(loc="upper left")
        fig.tight_layout()
    return png(fig)


def arm_curves(curves: Mapping[str, Sequence[Mapping[str, Any]]]) -> bytes:
    """Side by side: each arm's held-out team score against training steps (left) and
    against generated tokens (right): the mean over seeds (line) and its 95% interval
    (band; none where fewer than 2 seeds were evaluated). ``curves``: arm -> points of
    ``analysis.experiment.arm_curve``."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(10.0, 3.6), sharey=True)
        for k, (arm, points) in enumerate(curves.items()):
            colour = COLOURS[k % len(COLOURS)]
            for ax, key in zip(axes, ("step", "tokens_mean"), strict=True):
                rows = [p for p in points if p.get(key) is not None and p["mean"] is not None]
                xs = [p[key] for p in rows]
                ax.plot(xs, [p["mean"] for p in rows], marker="o", color=colour, label=arm)
                banded = [p for p in rows if p.get("ci95")]
                if banded:
                    ax.fill_between(
                        [p[key] for p in banded],
                        [max(0.0, p["ci95"][0]) for p in banded],
                        [min(1.0, p["ci95"][1]) for p in banded],
                        color=colour,
                        alpha=0.15,
                        linewidth=0,
                    )
        axes[0].set_xlabel("training step")
        axes[1].set_xlabel("generated tokens (training rollouts)")
        axes[0].set_ylabel("held-out team success")
        axes[0].xaxis.get_major_locator().set_params(integer=True)
        for ax in axes:
            ax.set_ylim(-0.03, 1.03)
        axes[0].set_title("against steps")
        axes[1].set_title("against generated tokens")
        axes[0].legend(loc="upper left")
        fig.tight_layout()
    return png(fig)


TRAINING_SERIES = (
    ("loss", "loss"),
    ("kl", "KL to reference"),
    ("grad_norm", "gradient norm"),
    ("advantage_abs_mean", "mean |advantage|"),
    ("reward_std", "reward std in the batch"),
    ("flat_group_fraction", "flat groups (no signal)"),
)
PER_POLICY = ("loss", "kl", "grad_norm")  # logged per policy: one line each


def training_diagnostics(runs: Sequence[tuple[str, Mapping[str, Any]]]) -> bytes:
    """Small multiples over steps: loss, KL and gradient norm of each policy (solid, dashed,
    dotted... by policy), the advantage and reward spread, and the fraction of groups whose
    rollouts all scored the same, which give no gradient.

    ``runs``: (label, ``analysis.metrics.training_summary`` of the run), one colour each.
    """
    styles = ("-", "--", ":", "-.")
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(2, 3, figsize=(9.0, 4.8), sharex=True)
        for ax, (key, title) in zip(axes.flat, TRAINING_SERIES, strict=True):
            for k, (label, summary) in enumerate(runs):
                colour = COLOURS[k % len(COLOURS)]
                if key in PER_POLICY:
                    lines = [(f"{label}/{p}", v[key]) for p, v in summary["policies"].items()]
                else:
                    lines = [(label, summary[key])]
                for j, (name, values) in enumerate(lines):
                    xs, ys = _present(summary["steps"], values)
                    if xs:
                        ax.plot(xs, ys, color=colour, linestyle=styles[j % len(styles)],
                                linewidth=1.2, label=name)  # fmt: skip
            ax.set_title(title, fontsize=9)
            if not ax.get_lines():
                ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
        for ax in axes[1]:
            ax.set_xlabel("training step")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)))
            fig.tight_layout(rect=(0, 0.07, 1, 1))
        else:
            fig.tight_layout()
    return png(fig)


def _present(xs: Sequence[float], ys: Sequence[float | None]) -> tuple[list, list]:
    """The points of a series whose value was logged (training series hold None for gaps)."""
    points = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
    return [x for x, _ in points], [y for _, y in points]


def _moving_mean(values: Sequence[float], window: int) -> list[float]:
    out = []
    for i in range(len(values)):
        part = values[max(0, i - window + 1) : i + 1]
        out.append(sum(part) / len(part))
    return out


# --------------------------------------------------------------------------- scores


@dataclass(frozen=True)
class Bar:
    """One bar: who played, the score, and a confidence interval (low, high) if known."""

    label: str
    value: float
    ci: tuple[float, float] | None = None
    highlight: bool = False  # the team, drawn in the run's colour; the rest are grey


def score_bars(groups: Mapping[str, Sequence[Bar]], ylabel: str = "score") -> bytes:
    """Grouped bars, one group per run: the team against each agent alone, with CI whiskers."""
    with plt.rc_context(STYLE):
        count = sum(len(bars) for bars in groups.values())
        fig, ax = plt.subplots(figsize=(max(4.2, 0.55 * count + 1.6), 3.4))
        x, ticks, labels = 0.0, [], []
        for k, (run, bars) in enumerate(groups.items()):
            colour = COLOURS[k % len(COLOURS)]
            start = x
            for bar in bars:
                ax.bar(
                    x,
                    bar.value,
                    width=0.8,
                    color=colour if bar.highlight else "#b9bec7",
                    edgecolor="white",
                )
                if bar.ci is not None:
                    low, high = bar.ci
                    ax.errorbar(
                        x,
                        bar.value,
                        yerr=[[max(0.0, bar.value - low)], [max(0.0, high - bar.value)]],
                        color="#333333",
                        capsize=3,
                        linewidth=1,
                    )
                top = max(bar.value, bar.ci[1] if bar.ci else 0.0)
                ax.text(x, top + 0.02, f"{bar.value:.0%}", ha="center", fontsize=7)
                ticks.append(x)
                labels.append(bar.label)
                x += 1
            if len(groups) > 1:
                ax.text(
                    (start + x - 1) / 2,
                    -0.32,
                    run,
                    ha="center",
                    va="top",
                    fontsize=8,
                    fontweight="bold",
                    transform=ax.get_xaxis_transform(),
                )
            x += 0.6
        ax.set_xticks(ticks, labels, rotation=30, ha="right")
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 1.12)
        ax.grid(axis="x", visible=False)
        ax.set_title("the team against each agent alone")
        fig.tight_layout()
    return png(fig)


def round_lines(series: Mapping[str, Sequence[float]], title: str, ylabel: str = "rate") -> bytes:
    """One line per series over rounds 1..R (e.g. agreement and accuracy by round)."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=SMALL)
        for k, (name, values) in enumerate(series.items()):
            rounds = range(1, len(values) + 1)
            ax.plot(rounds, values, marker="o", color=COLOURS[k % len(COLOURS)], label=name)
        rounds_max = max((len(v) for v in series.values()), default=1)
        ax.set_xticks(range(1, rounds_max + 1))
        ax.set_xlabel("round")
        ax.set_ylabel(ylabel)
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(title)
        ax.legend()
        fig.tight_layout()
    return png(fig)


def heatmap(
    matrix: Sequence[Sequence[float]],
    rows: Sequence[str],
    columns: Sequence[str],
    title: str,
    xlabel: str = "",
    ylabel: str = "",
) -> bytes:
    """A matrix as coloured cells with its values written in (counts: integers)."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(max(3.2, 0.9 * len(columns) + 1.8), 0.6 * len(rows) + 1.6))
        ax.grid(False)
        image = ax.imshow(matrix, cmap="Blues", aspect="auto", vmin=0)
        top = max((v for row in matrix for v in row), default=0) or 1
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                text = f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"
                colour = "white" if value > 0.6 * top else "#222222"
                ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=8)
        ax.set_xticks(range(len(columns)), columns)
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        fig.tight_layout()
    return png(fig)


def cost_bars(per_agent: Mapping[str, Mapping[str, float]], title: str) -> bytes:
    """Side-by-side panels, one per measure (messages, tokens...), one bar per agent."""
    measures = list(dict.fromkeys(m for values in per_agent.values() for m in values))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(measures), figsize=(3.0 * len(measures) + 0.6, 2.8))
        axes = [axes] if len(measures) == 1 else list(axes)
        agents = list(per_agent)
        for k, (ax, measure) in enumerate(zip(axes, measures, strict=True)):
            values = [per_agent[a].get(measure, 0.0) for a in agents]
            ax.bar(agents, values, color=COLOURS[k % len(COLOURS)], width=0.6)
            ax.set_title(measure, fontsize=9)
            ax.grid(axis="x", visible=False)
            ax.tick_params(axis="x", rotation=30)
        fig.suptitle(title, fontsize=10, fontweight="bold")
        fig.tight_layout()
    return png(fig)


# --------------------------------------------------------------------------- graphs


def graph_figure(
    graph: nx.DiGraph,
    weights: Mapping[tuple[str, str], float],
    title: str,
    *,
    reference: nx.DiGraph | None = None,
    weight_format: str = "{:.1f}",
    node_sizes: Mapping[str, float] | None = None,
) -> bytes:
    """A directed graph on a networkx layout; edge width grows with ``weights[(u, v)]``.

    ``reference`` (e.g. the configured interaction graph) is drawn underneath as thin grey
    dashed edges, so edges with no weight still show; weighted edges outside it are drawn
    in red. ``node_sizes`` (e.g. PageRank, 0..1) scales the nodes.
    """
    shown = nx.DiGraph()
    shown.add_nodes_from(graph.nodes)
    if reference is not None:
        shown.add_nodes_from(reference.nodes)
    edges = {edge: w for edge, w in weights.items() if w > 0 and edge[0] != edge[1]}
    shown.add_edges_from(edges)
    layout = nx.circular_layout(shown) if len(shown) <= 10 else nx.spring_layout(shown, seed=0)
    if len(shown) == 2:  # side by side reads better than the circle's vertical pair
        a, b = shown.nodes
        layout = {a: (-1.0, 0.0), b: (1.0, 0.0)}
    curve = "arc3,rad=0.12"
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=SMALL)
        ax.grid(False)
        ax.axis("off")
        if reference is not None and reference.number_of_edges():
            nx.draw_networkx_edges(
                reference,
                layout,
                ax=ax,
                edge_color="#c4c8cf",
                style="dashed",
                width=0.8,
                arrows=True,
                arrowsize=8,
                connectionstyle=curve,
                node_size=1100,
            )
        if edges:
            top = max(edges.values())
            outside = {e for e in edges if reference is not None and not reference.has_edge(*e)}
            nx.draw_networkx_edges(
                shown,
                layout,
                edgelist=list(edges),
                ax=ax,
                width=[0.8 + 5.2 * w / top for w in edges.values()],
                edge_color=["#d62728" if e in outside else "#1f77b4" for e in edges],
                alpha=0.8,
                arrows=True,
                arrowsize=12,
                connectionstyle=curve,
                node_size=1100,
            )
            nx.draw_networkx_edge_labels(
                shown,
                layout,
                edge_labels={e: weight_format.format(w) for e, w in edges.items()},
                ax=ax,
                font_size=7,
                connectionstyle=curve,
                label_pos=0.35,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
            )
        sizes = [
            600 + 1400 * (node_sizes or {}).get(n, 0.5) if node_sizes else 1100 for n in shown.nodes
        ]
        nx.draw_networkx_nodes(
            shown, layout, ax=ax, node_color="#f2f4f7", edgecolors="#4a5568", node_size=sizes
        )
        nx.draw_networkx_labels(shown, layout, ax=ax, font_size=8)
        ax.set_title(title)
        ax.margins(0.18)
        fig.tight_layout()
    return png(fig)


# --------------------------------------------------------------------------- benchmark


def read_metrics(run: str | Path) -> list[dict]:
    """The metrics lines of a run folder, skipping a line cut by a crash."""
    return read_metrics_lines(Path(run) / "metrics.jsonl")[0]


def learning_curves(
    runs: Sequence[tuple[str, str | Path]], out: str | Path, x: str = "tokens"
) -> Path:
    """Held-out team score (markers) and training reward (line) of each run against
    cumulative generated tokens (``x="tokens"``) or steps; one colour per run."""
    with plt.rc_context(STYLE):
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
        for label, run in runs:
            lines = read_metrics(run)
            used, xs_train, rewards, xs_eval, scores = 0, [], [], [], []
            for line in lines:
                used += line.get("tokens", 0)
                where = used if x == "tokens" else line["step"]
                if "reward_mean" in line:
                    xs_train.append(where)
                    rewards.append(line["score_mean"])
                if "eval/team" in line:
                    xs_eval.append(where)
                    scores.append(line["eval/team"])
            (handle,) = bottom.plot(xs_train, rewards, alpha=0.7, label=label)
            top.plot(xs_eval, scores, marker="o", color=handle.get_color(), label=label)
        top.set_ylabel("held-out success")
        top.set_ylim(-0.02, 1.02)
        top.legend()
        bottom.set_ylabel("training success")
        bottom.set_xlabel("generated tokens" if x == "tokens" else "step")
        bottom.set_ylim(-0.02, 1.02)
        fig.tight_layout()
    return save(png(fig), out)
