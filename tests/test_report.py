"""`marl report`: run folders in, one self-contained report.html out, checked as a person would.

Run folders are made the way users make them: `marl simulate` and `marl eval` with scripted
agents (fast, and one of them plants HTML in its reply), `marl train` for two steps on the
tiny model. The layout tests read the page's structure; the last tests open the report in
headless Chromium (installed with the dev tools) and measure where its figures landed.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

import tests.toy_scenario  # noqa: F401  registers toy_length_v0
from agents.team import ScriptedPolicy
from analysis import plots
from analysis.browser import chromium_path, screenshot
from analysis.metrics import training_summary
from analysis.report import (
    GRID_MIN_PX,
    NO_MESSAGES,
    UNIFORM_INFLUENCE,
    analyse,
    is_uniform,
    render,
    write_report,
)
from analysis.rundata import RunFolderError, load_run, read_metrics_lines
from marl.assembly import validate_config
from marl.cli import main
from marl.commands.evaluate import evaluate
from marl.commands.simulate import simulate
from marl.rollouts.local import InProcessRollouts

PLANTED = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[1]


def solve(observation: str) -> int:
    expression = re.search(r"\d+(?:[-+*]\d+)+", observation).group()
    return eval(expression)  # digits and + - * only, from our own generator


def scripted(agent: str, observation: str) -> str:
    """'good' is always right, 'half' on even answers, 'bad' never; 'bad' also plants HTML."""
    answer = solve(observation)
    if agent == "good" or (agent == "half" and answer % 2 == 0):
        return f"I add them up.\nAnswer: {answer}"
    return f"Hmm {PLANTED}\nAnswer: {answer + 1}"


def follower(agent: str, observation: str) -> str:
    """'follow' is wrong alone and then gives whatever 'good' said; the rest as ``scripted``."""
    if agent != "follow":
        return scripted(agent, observation)
    heard = re.search(r"\[good\] answer: (-?\d+)", observation)
    return f"Answer: {heard.group(1) if heard else solve(observation) + 1}"


def debate(
    tmp: Path, agents: list[str], episodes: int = 6, rounds: int = 2, graph: dict | None = None
):
    data = {
        "name": "rep",
        "scenario": {"name": "debate_v0", "options": {"rounds": rounds, "task": "easy"}},
        "team": {"agents": [{"id": a} for a in agents]},
        "run": {"episodes": episodes, "output_dir": str(tmp)},
    }
    if graph is not None:
        data["graph"] = graph
    return validate_config(data)


@pytest.fixture(scope="module")
def simulate_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("simulate")
    rollouts = InProcessRollouts(ScriptedPolicy(scripted), 32)
    folder, _ = simulate(debate(tmp, ["bad", "half", "good"]), rollouts)
    return folder.path


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("eval")
    config = debate(tmp, ["bad", "half", "good"], episodes=8)
    folder, _ = evaluate(
        config, InProcessRollouts(ScriptedPolicy(scripted), 32), split="test", ablate=True
    )
    return folder.path


@pytest.fixture(scope="module")
def train_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("train")
    config = {
        "name": "toytrain",
        "scenario": {"name": "toy_length_v0"},
        "team": {
            "agents": [
                {"id": a, "model": "tiny-random", "sampling": {"max_new_tokens": 6}}
                for a in ("a", "b")
            ]
        },
        "run": {"seed": 0, "output_dir": str(tmp / "runs")},
        "train": {
            "steps": 2,
            "tasks_per_step": 1,
            "group_size": 2,
            "eval_every": 1,
            "eval_episodes": 2,
            "save_every": 2,
        },
    }
    path = tmp / "toytrain.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path), "--no-progress"]) == 0
    (run,) = (tmp / "runs").iterdir()
    return run


def figures(page: str) -> list[str]:
    """The inline SVG of every <figure>, each checked to be well-formed XML with a viewBox
    and no size of its own; any <img> must be an inline PNG; no id twice on the page."""
    for src in re.findall(r"<img [^>]*src=\"([^\"]*)\"", page):
        assert src.startswith("data:image/png;base64,"), src[:40]
        data = base64.b64decode(src.removeprefix("data:image/png;base64,"), validate=True)
        assert data.startswith(PNG_MAGIC)
    shown = re.findall(r"<figure[^>]*>(<svg .*?</svg>)", page, re.S)
    assert len(shown) == page.count("<figure")
    for markup in shown:
        root = ET.fromstring(markup)
        assert root.get("viewBox") and root.get("width") is None and root.get("height") is None
    ids = re.findall(r"\sid=[\"']([^\"']+)", page)
    assert len(ids) == len(set(ids)), "an id is used twice"
    return shown


class Outline(HTMLParser):
    """Each <figure> of a page with the classes of the elements it sits in, outermost first."""

    VOID = frozenset({"meta", "img", "input", "br", "hr", "link", "source", "wbr", "col"})

    def __init__(self, page: str):
        super().__init__()
        self.stack: list[tuple[str, str]] = []
        self.figures: list[list[str]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "figure":
            self.figures.append([c for _, c in self.stack if c])
        if tag not in self.VOID:
            self.stack.append((tag, dict(attrs).get("class") or ""))

    def handle_endtag(self, tag: str) -> None:
        while self.stack and self.stack.pop()[0] != tag:
            pass


def section(page: str, anchor: str) -> str:
    """The HTML of one top-level section of the page."""
    start = page.index(f'<section id="{anchor}">')
    end = page.find("<section id=", start + 1)
    return page[start : end if end > 0 else len(page)]


def folder_digest(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name != "report.html"
    }


# --------------------------------------------------------------------------- loading


def test_load_run_reads_a_simulate_folder_without_changing_it(simulate_run: Path) -> None:
    before = folder_digest(simulate_run)
    run = load_run(simulate_run)
    assert run.kind == "simulate" and run.problems == []
    assert run.phases() == ["team", "single"]
    assert len(run.episodes) == 12 and len(run.metrics) == 12
    assert run.summary["phases"]["team"]["episodes"] == 6
    assert sorted(run.graph().edges) == sorted(
        (u, v) for u in ("bad", "half", "good") for v in ("bad", "half", "good") if u != v
    )
    assert folder_digest(simulate_run) == before


def test_load_run_refuses_what_is_not_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(RunFolderError, match="does not exist"):
        load_run(tmp_path / "nope")
    with pytest.raises(RunFolderError, match=r"no config\.yaml"):
        load_run(tmp_path)


def test_metrics_lines_tell_a_cut_last_line_from_a_bad_one(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"a": 2}\n{"a": 3, "b"')
    lines, problems = read_metrics_lines(path)
    assert lines == [{"a": 1}, {"a": 2}]
    assert problems == [
        "metrics.jsonl: 1 line of the wrong shape skipped (first: line 2: not a JSON object)",
        "metrics.jsonl: line 4 is cut off (run killed mid-write?); skipped",
    ]


# --------------------------------------------------------------------------- the page


def test_report_of_a_simulate_run_shows_its_summary(simulate_run: Path, capsys) -> None:
    assert main(["report", str(simulate_run)]) == 0
    page = (simulate_run / "report.html").read_text()
    summary = json.loads((simulate_run / "summary.json").read_text())
    team, single = summary["phases"]["team"], summary["phases"]["single"]
    key = page[page.index('<table class="key">') : page.index("</table>")]
    for number in (
        f"{team['score']:.1%}",
        f"{single['score']:.1%} (bad)",
        f"{summary['team_gain'] * 100:+.1f} pts",
        f"{team['consensus']:.1%}",
        f"{team['messages']:.1f}",
    ):
        assert f">{number}<" in key, number
    out = capsys.readouterr().out
    assert f"{team['score']:.1%}" in out and "key results" in out
    # self-contained: no URL anywhere a browser would fetch one (url(#id) points inside)
    assert not re.search(r"(src|href|action)\s*=\s*[\"']?\s*(https?:)?//", page, re.I)
    assert not re.search(r"url\(\s*['\"]?(?!#)", page) and "@import" not in page
    assert "<metadata" not in page
    assert not re.search(r'(?<!xmlns=")(?<!xmlns:xlink=")https?://', page)
    shown = figures(page)
    assert len(shown) >= 4  # bars, interaction graph, rounds, heatmap
    assert all(len(svg) > 2000 for svg in shown)


def test_model_text_is_escaped(simulate_run: Path, tmp_path: Path) -> None:
    page = write_report([load_run(simulate_run)], tmp_path / "r.html").read_text()
    assert PLANTED not in page and "onerror=alert" not in page.replace("onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in page
    assert page.count("<script") == 1  # the page's own filter script


def test_viewer_marks_failures_and_caps_long_phases(simulate_run: Path, tmp_path: Path) -> None:
    run = load_run(simulate_run)
    page = write_report([run], tmp_path / "r.html").read_text()
    failed = sum(1 for e in run.episodes if e["metrics"]["score"] == 0)
    assert page.count("class='episode' data-failed='1'") == failed > 0
    assert page.count("class='episode' data-failed='0'") == len(run.episodes) - failed
    assert "class='failures-only'" in page
    assert "<b>bad</b> → half, good" in page  # a message: sender -> recipients
    many = load_run(simulate_run)
    many.episodes = [dict(many.episodes[0], index=k) for k in range(120)]
    page = write_report([many], tmp_path / "many.html").read_text()
    assert page.count("class='episode'") == 50 and "showing the first 50" in page


def test_report_of_a_killed_run_says_what_it_skipped(simulate_run: Path, tmp_path: Path) -> None:
    killed = tmp_path / "killed"
    shutil.copytree(simulate_run, killed)
    (killed / "report.html").unlink(missing_ok=True)
    (killed / "summary.json").unlink()  # written last: a killed run has none
    transcript = killed / "transcripts.msgpack"
    transcript.write_bytes(transcript.read_bytes()[:-50])
    metrics = killed / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"phase": "single", "epis')
    assert main(["report", str(killed)]) == 0
    page = (killed / "report.html").read_text()
    assert "What was skipped" in page
    assert "metrics.jsonl: line 13 is cut off (run killed mid-write?); skipped" in page
    assert "transcripts.msgpack: file ends inside a frame (run killed mid-write?); 11 " in page
    assert "summary.json is missing" in page
    run = load_run(killed)
    assert len(run.episodes) == 11 and len(run.metrics) == 12
    # without summary.json the scores are the episodes' on the tasks every phase finished
    finished = {e["seed"] for e in run.episodes if e["phase"] == "single"}
    team = [e["metrics"]["score"] for e in run.episodes if e["phase"] == "team"]
    assert len(finished) == 5 and len(team) == 6
    paired = [e["metrics"]["score"] for e in run.episodes[:6] if e["seed"] in finished]
    assert f">{sum(paired) / len(paired):.1%}<" in page


def test_report_of_a_killed_training_run(train_run: Path, tmp_path: Path) -> None:
    killed = tmp_path / "killed"
    shutil.copytree(train_run, killed, ignore=shutil.ignore_patterns("checkpoints"))
    last = sorted((killed / "transcripts").glob("step-*.msgpack"))[-1]
    last.write_bytes(last.read_bytes()[:-10])
    metrics = killed / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])
    run = load_run(killed)
    assert run.kind == "train" and len(run.metrics) == len(lines) - 1
    assert run.problems == [
        f"metrics.jsonl: line {len(lines)} is cut off (run killed mid-write?); skipped",
        f"transcripts/{last.name}: file ends inside a frame (run killed mid-write?); 0 groups read",
    ]
    page = write_report([run], tmp_path / "r.html").read_text()
    for problem in run.problems:
        assert html.escape(problem) in page
    evals = [json.loads(x) for x in lines[:-1] if "eval/team" in x]
    assert f">{evals[-1]['eval/team']:.1%}<" in page  # the last evaluation that was read


def test_report_of_an_eval_run_shows_each_agent_and_contributions(
    eval_run: Path, tmp_path: Path
) -> None:
    summary = json.loads((eval_run / "summary.json").read_text())
    page = write_report([load_run(eval_run)], tmp_path / "r.html").read_text()
    assert f"{summary['best_single']['score']:.1%} (good)" in page
    for agent in ("bad", "half", "good"):
        assert f"<h4>single:{agent} " in page
        marginal = summary["contribution"][agent]["marginal"]
        assert f">{marginal * 100:+.1f} pts<" in page
    assert "Contribution of each agent" in page


def test_side_by_side_report_with_a_training_run(
    train_run: Path, simulate_run: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "both.html"
    assert main(["report", str(train_run), str(simulate_run), "--out", str(out)]) == 0
    page = out.read_text()
    lines = [json.loads(x) for x in (train_run / "metrics.jsonl").read_text().splitlines()]
    last = [line for line in lines if "eval/team" in line][-1]
    assert "<h2>Training</h2>" in page and "<h2>Side by side</h2>" not in page
    assert "<h3>Side by side</h3>" in page
    assert f">{last['eval/team']:.1%}<" in page
    assert f">{last['eval/team_gain'] * 100:+.1f} pts<" in page
    assert "step 2 · episode" in page  # training rollouts in the viewer
    assert len(figures(page)) >= 6
    assert "magrpo" in capsys.readouterr().out
    assert not (train_run / "report.html").exists()  # --out: written there only


def test_report_of_a_missing_folder_exits_2(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


# --------------------------------------------------------------------------- layout


@pytest.fixture(scope="module")
def quiet_run(tmp_path_factory) -> Path:
    """A debate whose graph has no edges: nobody sends a message."""
    tmp = tmp_path_factory.mktemp("quiet")
    config = debate(tmp, ["good", "half"], episodes=4, graph={"edges": []})
    folder, _ = simulate(config, InProcessRollouts(ScriptedPolicy(scripted), 32))
    return folder.path


@pytest.fixture(scope="module")
def follow_run(tmp_path_factory) -> Path:
    """A debate where 'follow' adopts good's answers: influence is not uniform."""
    tmp = tmp_path_factory.mktemp("follow")
    config = debate(tmp, ["good", "follow", "half"], episodes=4)
    folder, _ = simulate(config, InProcessRollouts(ScriptedPolicy(follower), 32))
    return folder.path


def labels(page: str) -> list[str]:
    """The aria-label of every figure, in page order."""
    return re.findall(r'<figure[^>]*><svg role="img" aria-label="([^"]*)"', page)


def test_step_axes_tick_whole_steps_only(train_run: Path) -> None:
    """Two training steps used to get ticks 0, 0.25, ... 2: a step 0.25 does not exist."""
    summary = training_summary(load_run(train_run).metrics)
    assert summary["eval"]["steps"] == [0, 1, 2]
    for drawn in (
        plots.training_curves([("run", summary)]),
        plots.training_diagnostics([("run", summary)]),
    ):
        fig = drawn.figure
        fig.canvas.draw()
        step_axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_xlabel()]
        assert step_axes
        for ax in step_axes:
            low, high = ax.get_xlim()
            shown = [t for t in ax.get_xticks() if low <= t <= high]
            assert len(shown) >= 2 and all(float(t).is_integer() for t in shown), shown
            texts = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
            assert all(re.fullmatch(r"[−-]?\d+", t) for t in texts), texts
        plots.png(drawn)  # closes it


def test_overlapping_curves_stay_distinguishable(train_run: Path) -> None:
    """Two runs with the very same numbers: each keeps its own marker, a thinner line on
    top of a thicker one, some transparency and its own legend entry."""
    summary = training_summary(load_run(train_run).metrics)
    drawn = plots.training_curves([("first", summary), ("second", summary)])
    held_out = drawn.figure.axes[0]
    team = {line.get_label(): line for line in held_out.get_lines()}
    first, second = team["first: team"], team["second: team"]
    assert list(first.get_ydata()) == list(second.get_ydata())
    assert first.get_marker() != second.get_marker()
    assert second.get_linewidth() < first.get_linewidth()
    assert second.get_markersize() < first.get_markersize()
    assert second.get_zorder() > first.get_zorder()
    assert all(0 < line.get_alpha() < 1 for line in (first, second))
    legend = [t.get_text() for t in held_out.get_legend().get_texts()]
    assert {"first: team", "second: team"} <= set(legend)
    plots.png(drawn)


def test_curve_points_show_their_values_on_hover(train_run: Path, tmp_path: Path) -> None:
    page = write_report([load_run(train_run)], tmp_path / "r.html").read_text()
    summary = training_summary(load_run(train_run).metrics)
    for step, team in zip(summary["eval"]["steps"], summary["eval"]["team"], strict=True):
        assert f"<title>magrpo, step {step}: team {team:.1%}</title>" in page
    curves = figures(page)[labels(page).index("learning curves")]
    assert curves.count("<title>") >= 2 * len(summary["eval"]["steps"])  # team, best single


def test_a_single_run_is_titled_by_its_folder(train_run: Path, tmp_path: Path) -> None:
    page = write_report([load_run(train_run)], tmp_path / "r.html").read_text()
    assert f"<h1>{train_run.name}</h1>" in page
    assert f"<title>{train_run.name}: collaboration report</title>" in page
    subtitle = re.search(r"<p class='subtitle'>([^<]*)</p>", page).group(1)
    assert subtitle.startswith("magrpo training, separate policy · toy_length_v0")


def test_a_run_without_messages_leaves_out_the_message_panels(
    quiet_run: Path, simulate_run: Path, tmp_path: Path
) -> None:
    page = write_report([load_run(quiet_run)], tmp_path / "quiet.html").read_text()
    communication = section(page, "communication")
    assert html.escape(NO_MESSAGES) in communication
    assert "interaction graph" not in labels(communication)
    assert "per edge of the bus" not in communication
    influence = section(page, "influence")
    assert "No messages in this run: influence panels left out." in influence
    assert "<figure" not in influence and "<table" not in influence
    # the same panels where there were messages
    talked = write_report([load_run(simulate_run)], tmp_path / "talk.html").read_text()
    assert "interaction graph" in labels(section(talked, "communication"))
    assert NO_MESSAGES not in talked


def test_uniform_influence_leaves_out_the_graph_panel(
    simulate_run: Path, follow_run: Path, tmp_path: Path
) -> None:
    """Nobody in the scripted debate changes its answer: every agent's PageRank is equal."""
    summary = analyse(load_run(simulate_run))
    assert is_uniform(list(summary.influence.pagerank.values()))
    influence = section(render([summary]), "influence")
    assert html.escape(UNIFORM_INFLUENCE) in influence
    assert "influence graph" not in labels(influence)
    assert "adoption rate" in influence  # the tables stay
    followed = analyse(load_run(follow_run))
    assert not is_uniform(list(followed.influence.pagerank.values()))
    influence = section(render([followed]), "influence")
    assert "influence graph" in labels(influence) and "uniform" not in influence


def test_uniform_means_equal_within_a_tolerance() -> None:
    assert is_uniform([1 / 3, 1 / 3, 1 / 3 + 1e-12]) and not is_uniform([0.33, 0.34])
    assert not is_uniform([])


def test_figures_fill_a_responsive_grid(simulate_run: Path, tmp_path: Path) -> None:
    page = write_report([load_run(simulate_run)], tmp_path / "r.html").read_text()
    css = page[page.index("<style>") : page.index("</style>")]
    grid = re.search(r"\.grid \{([^}]*)\}", css).group(1)
    assert "display:grid" in grid
    assert f"repeat(auto-fill, minmax(min(100%, {GRID_MIN_PX}px), 1fr))" in grid
    assert re.search(r"figure > svg, figure > img \{[^}]*width:100%[^}]*height:auto", css)
    assert "max-width:1180px" not in css  # the page is as wide as the window allows
    outline = Outline(page)
    assert outline.figures and all("grid" in classes for classes in outline.figures)


def test_compared_runs_sit_in_columns(simulate_run: Path, eval_run: Path, tmp_path: Path) -> None:
    runs = [load_run(simulate_run), load_run(eval_run)]
    page = write_report(runs, tmp_path / "r.html").read_text()
    assert page.count("<h1>") == 1 and "Collaboration report: " in page
    for anchor in ("runs", "communication", "dynamics", "influence"):
        part = section(page, anchor)
        assert "<div class='runs' style='--runs:2'>" in part, anchor
        heads = re.findall(r"<div class='run' id='[^']*'><h3 class='run-name'>([^<]*)<", part)
        assert heads == [run.name for run in runs], anchor
    dynamics = section(page, "dynamics")
    assert labels(dynamics).count("agreement and accuracy by round") == 2
    # a topic only one run has: the other column says so
    baselines = section(page, "baselines")
    assert "No baselines in this run (marl eval scores them)." in baselines


# --------------------------------------------------------------------------- in a browser

needs_chromium = pytest.mark.skipif(
    chromium_path() is None, reason="chromium is not installed (Debian: apt-get install chromium)"
)


@needs_chromium
def test_report_renders_in_chromium_without_console_errors(
    simulate_run: Path, eval_run: Path, tmp_path: Path
) -> None:
    from PIL import Image

    page = write_report([load_run(simulate_run), load_run(eval_run)], tmp_path / "r.html")
    shot = tmp_path / "shot.png"
    check = screenshot(page, shot)
    assert check.problems == []
    assert len(check.figures) == page.read_text().count("<figure")
    image = Image.open(shot).convert("L")
    assert image.width == 1280 and image.height > 2000
    histogram = image.histogram()
    assert max(histogram) < 0.9 * sum(histogram)  # not blank: text, tables and figures


@needs_chromium
def test_figures_use_the_width_of_a_wide_window(
    simulate_run: Path, eval_run: Path, tmp_path: Path
) -> None:
    """At 1400 px every figure is over 600 px wide (two per row); compared runs put the same
    figure side by side; nothing makes the page scroll sideways."""
    one = write_report([load_run(simulate_run)], tmp_path / "one.html")
    check = screenshot(one, tmp_path / "one.png", width=1400)
    assert check.problems == [] and len(check.figures) >= 4
    assert all(box.width > 600 for box in check.figures), check.figures
    assert check.page_width <= 1400
    rows = {round(box.y) for box in check.figures}
    assert len(rows) < len(check.figures)  # some figures share a row
    two = write_report([load_run(simulate_run), load_run(eval_run)], tmp_path / "two.html")
    check = screenshot(two, tmp_path / "two.png", width=1400)
    assert check.problems == [] and check.page_width <= 1400
    left, right = [b for b in check.figures if b.label == "agreement and accuracy by round"]
    assert abs(left.y - right.y) < 1 and right.x >= left.x + left.width
    assert left.width > 600 and right.width > 600


@needs_chromium
def test_a_narrow_window_stacks_figures_in_one_column(
    simulate_run: Path, eval_run: Path, tmp_path: Path
) -> None:
    page = write_report([load_run(simulate_run), load_run(eval_run)], tmp_path / "r.html")
    check = screenshot(page, tmp_path / "narrow.png", width=480)
    assert check.problems == [] and check.page_width <= 480
    lefts = {round(box.x) for box in check.figures}
    assert len(lefts) == 1  # one column: every figure starts at the same x
    assert all(box.width > 380 for box in check.figures)


@needs_chromium
def test_browser_check_catches_script_errors_and_broken_images(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text(
        "<!doctype html><html><body><p>x</p><img alt='broken' src='data:image/png;base64,AAAA'>"
        "<script>console.error('boom'); missingFunction();</script></body></html>"
    )
    problems = screenshot(page, tmp_path / "bad.png", height=400).problems
    assert any("boom" in p for p in problems)
    assert any("missingFunction" in p for p in problems)
    assert "image did not load: broken" in problems


def browser_command(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python analysis/browser.py ARGS`` as the README shows it, from the repository."""
    return subprocess.run(
        [sys.executable, "analysis/browser.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@needs_chromium
def test_browser_command_screenshots_a_good_report(simulate_run: Path, tmp_path: Path) -> None:
    from PIL import Image

    page = write_report([load_run(simulate_run)], tmp_path / "report.html")
    done = browser_command(str(page), "--width", "1400")
    assert done.returncode == 0, done.stdout + done.stderr
    shot = tmp_path / "report.png"  # beside the report by default
    assert Image.open(shot).width == 1400
    assert f"screenshot: {shot}" in done.stdout
    assert "console errors: 0, broken images: 0" in done.stdout
    elsewhere = tmp_path / "elsewhere.png"
    assert browser_command(str(page), "--screenshot", str(elsewhere)).returncode == 0
    assert elsewhere.read_bytes().startswith(PNG_MAGIC)


@needs_chromium
def test_browser_command_fails_on_a_page_with_errors(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text("<!doctype html><p>x</p><script>missingFunction();</script>")
    done = browser_command(str(page))
    assert done.returncode == 1
    assert "missingFunction" in done.stdout and "console errors: 1" in done.stdout


def test_browser_command_says_what_is_missing_in_one_line(tmp_path: Path) -> None:
    done = browser_command(str(tmp_path / "nope.html"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"error: {tmp_path / 'nope.html'} does not exist\n"
    page = tmp_path / "page.html"
    page.write_text("<!doctype html><p>x</p>")
    done = browser_command(str(page), env={"PATH": str(tmp_path)})  # no chromium on it
    assert done.returncode == 2
    assert done.stderr == "error: chromium is not on PATH (Debian: apt-get install chromium)\n"
