"""`marl transcripts`: one episode of a run folder, chosen by index and printed with rich.

Which episode ``--episode K`` (0-based) is:

| run folder        | K counts                                                              |
| ----------------- | --------------------------------------------------------------------- |
| simulate, eval    | the episodes of ``--phase`` (``team``, ``single:<id>``, ...) in file  |
|                   | order; without ``--phase``, every episode of ``transcripts.msgpack``  |
| train             | the episodes of one step's file (``--step N``, default the newest):   |
|                   | task by task, G rollouts each; in ``episodes`` mode a rollout's       |
|                   | rounds are joined into one episode, in ``tree`` mode each rollout is  |
|                   | one round (``analysis.rundata.RunData.training_episodes``)            |

The run folder is read by ``analysis.rundata.load_run``, which keeps what it can of a
damaged transcript and lists what it skipped; those notes are printed with the episode.
Model output is shown as plain text (never as rich markup). Observations are cut to
``OBSERVATION_CHARS`` and messages to ``MESSAGE_CHARS`` unless ``full``; completions are
shown whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from analysis.rundata import RunData

OBSERVATION_CHARS = 300
MESSAGE_CHARS = 200
ANSWER_KEYS = ("answer", "choice")  # what a turn's info calls its answer (debate, referential)


class EpisodeChoiceError(ValueError):
    """No episode matches the choice; the message names the valid choices."""


def select_episode(
    run: RunData, episode: int, phase: str | None = None, step: int | None = None
) -> tuple[dict[str, Any], str]:
    """The episode ``episode`` of the run (see the module docstring) and where it is, e.g.
    ``episode 3 of 0..19, phase team``."""
    if run.kind == "train":
        if phase not in (None, "train"):
            raise EpisodeChoiceError(
                f"{run.path} is a training run: its episodes have no phases; drop --phase "
                "and pick a step with --step"
            )
        episodes = run.training_episodes()
        steps = sorted({e["step"] for e in episodes})
        if not steps:
            raise EpisodeChoiceError(f"{run.path} has no training transcripts to show")
        if step is None:
            step = steps[-1]
        elif step not in steps:
            raise EpisodeChoiceError(
                f"step {step} has no transcript in {run.path}; steps with one: "
                + ", ".join(map(str, steps))
            )
        chosen = [e for e in episodes if e["step"] == step]
        where = f"step {step}"
    else:
        if step is not None:
            raise EpisodeChoiceError(
                f"--step is for training runs; {run.path} is a {run.kind} run (use --phase)"
            )
        phases = run.phases()
        if phase is not None and phase not in phases:
            raise EpisodeChoiceError(
                f"no phase {phase!r} in {run.path}; its phases: {', '.join(phases) or 'none'}"
            )
        chosen = run.phase_episodes(phase) if phase is not None else run.episodes
        where = f"phase {phase}" if phase is not None else "all phases"
    if not 0 <= episode < len(chosen):
        valid = f"0..{len(chosen) - 1}" if chosen else "none: no episodes were read"
        raise EpisodeChoiceError(
            f"episode {episode} is out of range for {where}: valid episodes are {valid}"
        )
    return chosen[episode], f"episode {episode} of 0..{len(chosen) - 1}, {where}"


def render_episode(record: Mapping[str, Any], where: str, full: bool = False) -> RenderableType:
    """The episode as rich renderables: a header, then each round's turns and messages."""
    parts: list[RenderableType] = [_header(record, where)]
    turns = record["turns"]
    messages = record.get("messages", [])
    rounds = sorted({t["round"] for t in turns} | {m["round"] for m in messages})
    for r in rounds:
        parts.append(Rule(f"round {r}", align="left"))
        for turn in (t for t in turns if t["round"] == r):
            parts.append(_turn(turn, full))
        sent = [m for m in messages if m["round"] == r]
        if sent:
            parts.append(_messages(sent, full))
    if record.get("phase") == "train" and not messages:
        parts.append(Text("(this training transcript keeps no messages)", style="dim"))
    return Group(*parts)


def _header(record: Mapping[str, Any], where: str) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    metrics = record.get("metrics") or {}
    rows = [
        ("episode", where),
        ("scenario", str(record.get("scenario", "?"))),
        ("phase", str(record.get("phase", "?"))),
        ("seed", str(record.get("seed", "?"))),
    ]
    if "step" in record:
        rows.append(("step, sample", f"{record['step']}, {record.get('sample', 0)}"))
    rows += [
        ("agents", ", ".join(record.get("agents", []))),
        ("reward by round", "  ".join(f"{r:g}" for r in record.get("rewards", []))),
        ("return", f"{record.get('return', sum(record.get('rewards', []))):g}"),
        ("final answers", _final_answers(record["turns"])),
    ]
    scalars = {
        k: v for k, v in metrics.items() if isinstance(v, str | int | float) or v is None
    }  # lists and mappings would drown the header; they are in the metrics file
    if scalars:
        rows.append(("metrics", "  ".join(f"{k}={_short(v)}" for k, v in scalars.items())))
    for name, value in rows:
        table.add_row(name, Text(value))
    return table


def _final_answers(turns: Sequence[Mapping[str, Any]]) -> str:
    last: dict[str, Mapping[str, Any]] = {}
    for turn in turns:
        last[turn["agent"]] = turn.get("info") or {}
    shown = []
    for agent, info in last.items():
        key = next((k for k in ANSWER_KEYS if k in info), None)
        if key is None:
            continue
        mark = "" if "correct" not in info else (" (right)" if info["correct"] else " (wrong)")
        shown.append(f"{agent}: {_short(info[key])}{mark}")
    return "  ".join(shown) or "-"


def _turn(turn: Mapping[str, Any], full: bool) -> Panel:
    info = turn.get("info") or {}
    facts = [f"{k}={_short(v)}" for k, v in info.items() if k not in ("round", "episode")]
    facts.append(f"{len(turn.get('token_ids', []))} tokens, {turn.get('finish_reason', '?')}")
    body = Text()
    observation = _cut(turn.get("observation", ""), None if full else OBSERVATION_CHARS)
    body.append("observation\n", style="bold dim")
    body.append(observation + "\n\n", style="dim")
    body.append("completion\n", style="bold")
    body.append(turn.get("text", ""))
    return Panel(
        body,
        title=Text(str(turn["agent"]), style="bold"),
        title_align="left",
        subtitle=Text("  ".join(facts)),
        subtitle_align="left",
    )


def _messages(messages: Sequence[Mapping[str, Any]], full: bool) -> Text:
    text = Text()
    for m in messages:
        text.append(f"{m['sender']} -> {', '.join(m['recipients'])}", style="bold cyan")
        text.append(f": {_cut(m['content'], None if full else MESSAGE_CHARS)}\n")
    return text


def _cut(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters; --full shows them)"


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
