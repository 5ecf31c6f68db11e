"""`marl report`: run folders in, one self-contained report.html out, checked as a person would.

Run folders are made the way users make them: `marl simulate` and `marl eval` with scripted
agents (fast, and one of them plants HTML in its reply), `marl train` for two steps on the
tiny model. The last tests open the report in headless Chromium when it is installed.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

import tests.toy_scenario  # noqa: F401  registers toy_length_v0
from agents.team import ScriptedPolicy
from analysis.browser import chromium_path, screenshot
from analysis.report import write_report
from analysis.rundata import RunFolderError, load_run, read_metrics_lines
from marl.assembly import validate_config
from marl.cli import main
from marl.commands.evaluate import evaluate
from marl.commands.simulate import simulate
from marl.rollouts.local import InProcessRollouts

PLANTED = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def solve(observation: str) -> int:
    expression = re.search(r"\d+(?:[-+*]\d+)+", observation).group()
    return eval(expression)  # digits and + - * only, from our own generator


def scripted(agent: str, observation: str) -> str:
    """'good' is always right, 'half' on even answers, 'bad' never; 'bad' also plants HTML."""
    answer = solve(observation)
    if agent == "good" or (agent == "half" and answer % 2 == 0):
        return f"I add them up.\nAnswer: {answer}"
    return f"Hmm {PLANTED}\nAnswer: {answer + 1}"


def debate(tmp: Path, agents: list[str], episodes: int = 6, rounds: int = 2):
    return validate_config(
        {
            "name": "rep",
            "scenario": {"name": "debate_v0", "options": {"rounds": rounds, "task": "easy"}},
            "team": {"agents": [{"id": a} for a in agents]},
            "run": {"episodes": episodes, "output_dir": str(tmp)},
        }
    )


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


def images(page: str) -> list[bytes]:
    """The decoded data of every <img> (all must be inline PNGs)."""
    sources = re.findall(r"<img [^>]*src=\"([^\"]*)\"", page)
    assert len(sources) == page.count("<img ")
    out = []
    for src in sources:
        assert src.startswith("data:image/png;base64,"), src[:40]
        out.append(base64.b64decode(src.removeprefix("data:image/png;base64,"), validate=True))
    return out


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
    # self-contained: no URL anywhere a browser would fetch one
    assert not re.search(r"(src|href|action)\s*=\s*[\"']?\s*(https?:)?//", page, re.I)
    assert "url(" not in page and "@import" not in page
    pngs = images(page)
    assert len(pngs) == page.count("<figure>") >= 5  # bars, graph, rounds, heatmap, influence
    assert all(p.startswith(PNG_MAGIC) and len(p) > 2000 for p in pngs)


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
    assert all(p.startswith(PNG_MAGIC) for p in images(page))
    assert "magrpo" in capsys.readouterr().out
    assert not (train_run / "report.html").exists()  # --out: written there only


def test_report_of_a_missing_folder_exits_2(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


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
    assert screenshot(page, shot) == []
    image = Image.open(shot).convert("L")
    assert image.width == 1280 and image.height > 2000
    histogram = image.histogram()
    assert max(histogram) < 0.9 * sum(histogram)  # not blank: text, tables and figures


@needs_chromium
def test_browser_check_catches_script_errors_and_broken_images(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text(
        "<!doctype html><html><body><p>x</p><img alt='broken' src='data:image/png;base64,AAAA'>"
        "<script>console.error('boom'); missingFunction();</script></body></html>"
    )
    problems = screenshot(page, tmp_path / "bad.png", height=400)
    assert any("boom" in p for p in problems)
    assert any("missingFunction" in p for p in problems)
    assert "image did not load: broken" in problems
