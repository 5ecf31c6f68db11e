"""Plots from run folders (matplotlib): one function per figure a report shows.

Every figure function takes plain numbers (what ``analysis.metrics`` computes or a run
folder holds), draws one figure in the house style and returns it as a ``Chart``: the
matplotlib figure (tests read its axes) and the hover text of its points. ``svg`` turns a
chart into markup the report inlines (it scales to any width, and each point carries its
value as an SVG ``<title>``, which a browser shows on hover without any script); ``png``
gives PNG bytes. Both close the figure. ``arm_curves`` (the experiment page) returns PNG
bytes itself, and ``learning_curves`` (``benchmarks/learning_coordination.py``) reads run
folders and writes a file.

| figure                 | shows                                                                |
| ---------------------- | -------------------------------------------------------------------- |
| `training_curves`      | held-out team and best-single score over steps, training success     |
| `arm_curves`           | an experiment's held-out curve per arm: mean over seeds, 95% band    |
| `training_diagnostics` | loss, KL, gradient norm, advantage spread, flat groups over steps    |
| `score_bars`           | the team against each agent alone, with confidence intervals         |
| `graph_figure`         | a graph drawn with a networkx layout, edge width by a weight         |
| `heatmap`              | a matrix with counts in the cells (answer transitions per round)     |
| `round_lines`          | rates by round (agreement, accuracy)                                 |
| `cost_bars`            | messages and tokens per agent                                        |

Curves of several runs share an axis and may coincide; each run gets its own colour,
marker and line width (``run_style``: later runs thinner and smaller, drawn on top), so
an identical earlier curve still shows around a later one. Step axes have integer ticks.
"""

from __future__ import annotations

import hashlib
import html
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import networkx as nx
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from analysis.rundata import read_metrics_lines

COLOURS = plt.get_cmap("tab10").colors
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")
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
    "svg.fonttype": "path",  # glyphs as paths: the page needs no font
    "svg.hashsalt": "marl-report",  # ids from content, not random: the same run, the same page
}
WIDE = (11.0, 3.8)  # inches: a figure across the page (panels side by side)
SMALL = (5.2, 3.6)  # inches: a figure in one cell of the report's grid
HOVER_POINTS = 60  # a series longer than this gets hover targets on this many of its points


@dataclass
class Chart:
    """A drawn figure and the hover text of its points.

    ``tips`` maps the gid of a line to one text per marker the line draws, in order;
    ``svg`` attaches each as the ``<title>`` of its marker.
    """

    figure: Figure
    tips: dict[str, list[str]] = field(default_factory=dict)

    def hover(self, line: Line2D, texts: Sequence[str]) -> None:
        """Show ``texts[i]`` when the pointer is on the i-th marker of ``line``."""
        gid = f"tips-{len(self.tips)}"
        line.set_gid(gid)
        self.tips[gid] = list(texts)


def run_style(k: int) -> dict[str, Any]:
    """``plot`` keywords of the k-th run (or series) of a figure: its colour and marker,
    and a line width and marker size that shrink with k while its z-order grows, so a run
    drawn over an identical earlier one leaves the earlier one showing around it."""
    return {
        "color": COLOURS[k % len(COLOURS)],
        "marker": MARKERS[k % len(MARKERS)],
        "linewidth": max(0.9, 3.0 - 0.8 * k),
        "markersize": max(3.5, 8.0 - 1.4 * k),
        "alpha": 0.85,
        "zorder": 3 + k,
    }


def step_axis(ax: Axes, label: str = "training step") -> None:
    """An x axis of training steps: integer ticks only (a step 0.25 does not exist)."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(label)


def png(chart: Chart) -> bytes:
    """The chart as PNG bytes; closes its figure."""
    buffer = io.BytesIO()
    with plt.rc_context(STYLE):
        chart.figure.savefig(buffer, format="png")
    plt.close(chart.figure)
    return buffer.getvalue()


def svg(chart: Chart) -> str:
    """The chart as SVG markup to inline in an HTML page (see ``inline_svg``); closes it."""
    buffer = io.StringIO()
    with plt.rc_context(STYLE):
        chart.figure.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(chart.figure)
    return inline_svg(buffer.getvalue(), chart.tips)


def inline_svg(document: str, tips: Mapping[str, Sequence[str]] | None = None) -> str:
    """Matplotlib's SVG file made fit to sit in an HTML page beside other figures.

    Dropped: the XML prolog and doctype, the metadata (it names URLs) and the global
    ``*{...}`` style (inline, it would apply to the whole page; the page's CSS has it).
    The width and height go, so CSS sizes the figure and the viewBox keeps its aspect.
    Ids are prefixed with a hash of the figure, so two figures never share one, and ids
    nothing refers to are removed. ``tips`` (``Chart.tips``) become ``<title>`` elements.
    """
    text = document[document.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, count=1, flags=re.S)
    text = re.sub(r"<defs>\s*<style[^>]*>[^<]*</style>\s*</defs>\s*", "", text, count=1)
    text = re.sub(r'^(<svg[^>]*?) width="[^"]*" height="[^"]*"', r"\1", text, count=1)
    for gid, texts in (tips or {}).items():
        text = _titles(text, gid, texts)
    prefix = "f" + hashlib.sha256(text.encode()).hexdigest()[:8] + "-"
    referenced = set(re.findall(r'(?:href="#|url\(#)([^")]+)', text))

    def rename(match: re.Match[str]) -> str:
        name = match.group(1)
        return f' id="{prefix}{name}"' if name in referenced else ""

    text = re.sub(r' id="([^"]*)"', rename, text)
    text = re.sub(r'(href="#|url\(#)([^")]+)', lambda m: m.group(1) + prefix + m.group(2), text)
    return text.strip()


def _titles(text: str, gid: str, texts: Sequence[str]) -> str:
    """Give the i-th marker (``<use>``) of the group ``gid`` the title ``texts[i]``."""
    start = text.find(f'<g id="{gid}">')
    if start < 0:
        return text
    end = text.find('<g id="', start + 1)  # the next artist's group
    end = len(text) if end < 0 else end
    part = text[start:end]
    if len(re.findall(r"<use [^>]*/>", part)) != len(texts):
        return text  # a marker fell outside the figure: no titles rather than shifted ones
    pieces = iter(texts)
    part = re.sub(
        r"<use ([^>]*?)\s*/>",
        lambda m: f"<use {m.group(1)}><title>{html.escape(next(pieces))}</title></use>",
        part,
    )
    return text[:start] + part + text[end:]


def save(data: bytes, path: str | Path) -> Path:
    path = Path(path)
    path.write_bytes(data)
    return path


def _hover_targets(
    chart: Chart, ax: Axes, xs: Sequence[float], ys: Sequence[float], texts: Sequence[str]
) -> None:
    """Invisible markers on (at most ``HOVER_POINTS`` of) the points of a line drawn without
    markers, each showing its text on hover."""
    if not xs:
        return
    every = max(1, math.ceil(len(xs) / HOVER_POINTS))
    keep = list(range(0, len(xs), every))
    (line,) = ax.plot(
        [xs[i] for i in keep],
        [ys[i] for i in keep],
        linestyle="none",
        marker="o",
        markersize=9,
        alpha=0.0,
        zorder=20,
    )
    chart.hover(line, [texts[i] for i in keep])


# --------------------------------------------------------------------------- training


def training_curves(runs: Sequence[tuple[str, Mapping[str, Any]]]) -> Chart:
    """Side by side: left, at each held-out evaluation, the team's score (filled markers),
    the best single agent's (hollow, dashed) and, where scored, self-consistency at equal
    tokens (crosses, dotted); right, training success per step (thin) and its moving mean
    (bold). Either panel is left out when no run has its points.

    ``runs``: (label, ``analysis.metrics.training_summary`` of the run); one colour,
    marker and width per run (``run_style``). Every point shows its value on hover.
    """
    evaluated = any(summary["eval"]["steps"] for _, summary in runs)
    trained = any(y is not None for _, summary in runs for y in summary["score_mean"])
    panels = [name for name, shown in (("eval", evaluated), ("train", trained)) if shown]
    panels = panels or ["eval"]
    with plt.rc_context(STYLE):
        width = WIDE[0] if len(panels) == 2 else SMALL[0] * 1.2
        fig, axes = plt.subplots(1, len(panels), figsize=(width, WIDE[1]), squeeze=False)
        chart = Chart(fig)
        ax_of = dict(zip(panels, axes[0], strict=True))
        for k, (label, summary) in enumerate(runs):
            style = run_style(k)
            if "eval" in ax_of:
                _eval_lines(chart, ax_of["eval"], label, summary["eval"], style)
            if "train" in ax_of:
                _train_lines(chart, ax_of["train"], label, summary, style, k)
        if "eval" in ax_of:
            top = ax_of["eval"]
            top.set_title("held-out evaluation")
            top.set_ylabel("success rate")
            top.set_ylim(-0.03, 1.03)
            step_axis(top)
            if top.get_lines():
                top.legend(loc="best", ncol=2 if len(top.get_lines()) > 4 else 1)
        if "train" in ax_of:
            bottom = ax_of["train"]
            bottom.set_title("training rollouts (moving mean of 5 steps)")
            bottom.set_ylabel("success rate")
            bottom.set_ylim(-0.03, 1.03)
            step_axis(bottom)
            if any(line.get_label()[0] != "_" for line in bottom.get_lines()):
                bottom.legend(loc="best")
        fig.tight_layout()
    return chart


EVAL_REFERENCES = (  # (series, line keywords over the run's style, legend words)
    ("best_single", {"linestyle": "--", "markerfacecolor": "white"}, "best single"),
    ("self_consistency", {"linestyle": ":", "marker": "x"}, "self-consistency (equal tokens)"),
)


def _eval_lines(
    chart: Chart, ax: Axes, label: str, ev: Mapping[str, Any], style: dict[str, Any]
) -> None:
    """One run's held-out lines: the team, then its reference lines underneath it."""
    xs, ys = _present(ev["steps"], ev["team"])
    (line,) = ax.plot(xs, ys, label=f"{label}: team", **style)
    chart.hover(line, [f"{label}, step {x}: team {y:.1%}" for x, y in zip(xs, ys, strict=True)])
    for key, extra, words in EVAL_REFERENCES:
        xs, ys = _present(ev["steps"], ev.get(key) or [None] * len(ev["steps"]))
        if not xs:
            continue
        # a bigger hollow marker under the team's: equal scores show as a ring around a dot
        below = style | {"markersize": style["markersize"] + 3, "zorder": style["zorder"] - 0.5}
        (line,) = ax.plot(xs, ys, label=f"{label}: {words}", **(below | extra))
        chart.hover(
            line, [f"{label}, step {x}: {words} {y:.1%}" for x, y in zip(xs, ys, strict=True)]
        )


def _train_lines(
    chart: Chart, ax: Axes, label: str, summary: Mapping[str, Any], style: dict[str, Any], k: int
) -> None:
    """One run's training success per step (thin) and its moving mean (bold, hoverable)."""
    xs, ys = _present(summary["steps"], summary["score_mean"])
    if not xs:
        return
    colour, width, z = style["color"], style["linewidth"], style["zorder"]
    ax.plot(xs, ys, color=colour, alpha=0.3, linewidth=0.8, zorder=z)
    mean = _moving_mean(ys, 5)
    ax.plot(xs, mean, color=colour, linewidth=width, linestyle=LINESTYLES[k % len(LINESTYLES)],
            alpha=style["alpha"], zorder=z, label=label)  # fmt: skip
    texts = [
        f"{label}, step {x}: {y:.1%} (mean of 5 steps {m:.1%})"
        for x, y, m in zip(xs, ys, mean, strict=True)
    ]
    _hover_targets(chart, ax, xs, mean, texts)


def arm_curves(curves: Mapping[str, Sequence[Mapping[str, Any]]]) -> bytes:
    """Side by side: each arm's held-out team score against training steps (left) and
    against generated tokens (right): the mean over seeds (line) and its 95% interval
    (band; none where fewer than 2 seeds were evaluated). ``curves``: arm -> points of
    ``analysis.experiment.arm_curve``. PNG bytes, for the experiment page."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(10.0, 3.6), sharey=True)
        for k, (arm, points) in enumerate(curves.items()):
            style = run_style(k)
            for ax, key in zip(axes, ("step", "tokens_mean"), strict=True):
                rows = [p for p in points if p.get(key) is not None and p["mean"] is not None]
                xs = [p[key] for p in rows]
                ax.plot(xs, [p["mean"] for p in rows], label=arm, **style)
                banded = [p for p in rows if p.get("ci95")]
                if banded:
                    ax.fill_between(
                        [p[key] for p in banded],
                        [max(0.0, p["ci95"][0]) for p in banded],
                        [min(1.0, p["ci95"][1]) for p in banded],
                        color=style["color"],
                        alpha=0.15,
                        linewidth=0,
                    )
        step_axis(axes[0])
        axes[1].set_xlabel("generated tokens (training rollouts)")
        axes[0].set_ylabel("held-out team success")
        for ax in axes:
            ax.set_ylim(-0.03, 1.03)
        axes[0].set_title("against steps")
        axes[1].set_title("against generated tokens")
        axes[0].legend(loc="upper left")
        fig.tight_layout()
    return png(Chart(fig))


TRAINING_SERIES = (
    ("loss", "loss"),
    ("kl", "KL to reference"),
    ("grad_norm", "gradient norm"),
    ("advantage_abs_mean", "mean |advantage|"),
    ("reward_std", "reward std in the batch"),
    ("flat_group_fraction", "flat groups (no signal)"),
)
PER_POLICY = ("loss", "kl", "grad_norm")  # logged per policy: one line each


def logged_diagnostics(runs: Sequence[tuple[str, Mapping[str, Any]]]) -> list[tuple[str, str]]:
    """The (key, title) of each ``TRAINING_SERIES`` some run logged at least one value of."""

    def logged(summary: Mapping[str, Any], key: str) -> bool:
        if key in PER_POLICY:
            return any(v is not None for p in summary["policies"].values() for v in p[key])
        return any(v is not None for v in summary[key])

    return [(k, t) for k, t in TRAINING_SERIES if any(logged(s, k) for _, s in runs)]


def training_diagnostics(runs: Sequence[tuple[str, Mapping[str, Any]]]) -> Chart:
    """Small multiples over steps, one per series of ``logged_diagnostics`` (a series no run
    logged gets no panel): loss, KL and gradient norm of each policy (solid, dashed,
    dotted... by policy), the advantage and reward spread, and the fraction of groups whose
    rollouts all scored the same, which give no gradient.

    ``runs``: (label, ``analysis.metrics.training_summary`` of the run); one colour, marker
    and width per run.
    """
    series = logged_diagnostics(runs) or list(TRAINING_SERIES[:1])
    columns = min(3, len(series))
    rows = math.ceil(len(series) / columns)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            rows, columns, figsize=(WIDE[0], 2.5 * rows + 0.6), sharex=True, squeeze=False
        )
        for ax, (key, title) in zip(axes.flat, series, strict=False):
            for k, (label, summary) in enumerate(runs):
                style = run_style(k)
                if key in PER_POLICY:
                    lines = [(f"{label}/{p}", v[key]) for p, v in summary["policies"].items()]
                else:
                    lines = [(label, summary[key])]
                for j, (name, values) in enumerate(lines):
                    xs, ys = _present(summary["steps"], values)
                    if xs:
                        ax.plot(xs, ys, label=name, **style | {
                            "linestyle": LINESTYLES[j % len(LINESTYLES)],
                            "linewidth": style["linewidth"] * 0.6,
                            "markersize": style["markersize"] * 0.6,
                            "markevery": max(1, len(xs) // 8),
                        })  # fmt: skip
            ax.set_title(title, fontsize=9)
            step_axis(ax, "")
        for ax in axes.flat[len(series) :]:
            ax.set_visible(False)
        for column in range(columns):  # the lowest visible panel of each column
            below = [r for r in range(rows) if r * columns + column < len(series)]
            axes[below[-1], column].set_xlabel("training step")
            axes[below[-1], column].xaxis.set_tick_params(labelbottom=True)
        handles, labels = axes.flat[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)))
            fig.tight_layout(rect=(0, 0.1 / rows, 1, 1))
        else:
            fig.tight_layout()
    return Chart(fig)


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


def score_bars(groups: Mapping[str, Sequence[Bar]], ylabel: str = "score") -> Chart:
    """Grouped bars, one group per run: the team against each agent alone, with CI whiskers."""
    with plt.rc_context(STYLE):
        count = sum(len(bars) for bars in groups.values())
        fig, ax = plt.subplots(figsize=(max(SMALL[0], 0.55 * count + 1.6), SMALL[1]))
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
    return Chart(fig)


def round_lines(series: Mapping[str, Sequence[float]], title: str, ylabel: str = "rate") -> Chart:
    """One line per series over rounds 1..R (e.g. agreement and accuracy by round); each
    series its own marker and width, so equal series both show; values on hover."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=SMALL)
        chart = Chart(fig)
        for k, (name, values) in enumerate(series.items()):
            rounds = list(range(1, len(values) + 1))
            (line,) = ax.plot(rounds, values, label=name, **run_style(k))
            texts = [f"round {r}: {name} {v:.1%}" for r, v in zip(rounds, values, strict=True)]
            chart.hover(line, texts)
        rounds_max = max((len(v) for v in series.values()), default=1)
        ax.set_xticks(range(1, rounds_max + 1))
        ax.set_xlabel("round")
        ax.set_ylabel(ylabel)
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(title)
        ax.legend()
        fig.tight_layout()
    return chart


def heatmap(
    matrix: Sequence[Sequence[float]],
    rows: Sequence[str],
    columns: Sequence[str],
    title: str,
    xlabel: str = "",
    ylabel: str = "",
) -> Chart:
    """A matrix as coloured cells with its values written in (counts: integers)."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(
            figsize=(max(SMALL[0] * 0.8, 0.9 * len(columns) + 1.8), 0.6 * len(rows) + 1.6)
        )
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
    return Chart(fig)


def cost_bars(per_agent: Mapping[str, Mapping[str, float]], title: str) -> Chart:
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
    return Chart(fig)


# --------------------------------------------------------------------------- graphs


def graph_figure(
    graph: nx.DiGraph,
    weights: Mapping[tuple[str, str], float],
    title: str,
    *,
    reference: nx.DiGraph | None = None,
    weight_format: str = "{:.1f}",
    node_sizes: Mapping[str, float] | None = None,
) -> Chart:
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
    return Chart(fig)


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
        if x == "tokens":
            bottom.set_xlabel("generated tokens")
        else:
            step_axis(bottom, "step")
        bottom.set_ylim(-0.02, 1.02)
        fig.tight_layout()
    return save(png(Chart(fig)), out)
