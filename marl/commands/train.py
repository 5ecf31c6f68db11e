"""`marl train`: the training loop around a trainer, with evaluation, checkpoints and resume.

Each step draws ``tasks_per_step`` training tasks (seeds fixed by the run seed and the step,
so a resumed run sees the same tasks), plays ``group_size`` rollouts of each with the
current policies, hands the episodes to the trainer, and appends one line to
``metrics.jsonl``. Every ``eval_every`` steps the team, and each agent alone on the
single-agent version of the task, play the held-out tasks. Every ``save_every`` steps a
checkpoint is written; ``--resume`` continues from the newest one that verifies, dropping
metrics lines and transcripts written after it, so no line is lost or doubled.

Stopping: ``run(stop=...)`` asks ``stop()`` before every step and, when told to, writes a
checkpoint of the last finished step and returns, so a resumed run continues exactly
(``StopOnSignal`` answers it from SIGINT and SIGTERM). A step is never cut half way by a
polite stop: metrics lines, transcripts and checkpoints of finished steps are on disk. A
write that fails (a full disk) raises ``WriteError`` and leaves every earlier checkpoint
as it was; ``checkpoint_step`` then says where a resume would start.

Time in ``metrics.jsonl``: a step's ``seconds`` is its own training time (its rollouts and
the update; ``rollout_seconds`` the rollouts alone), never the held-out evaluation, which
has its own ``eval_seconds`` on the lines that carry one (step 0's included). What the loop
is doing at any moment (rollouts, the update, which evaluation and how far, a checkpoint)
goes to ``run(on_phase=...)`` as a ``TrainingPhase``: the progress bar of `marl train`.

Held-out tasks are ``marl eval --split test``'s (``marl.tasks``): seeds from 1,000,000
up, training seeds stay below; a scenario with a ``split`` option also gets
``split: train`` / ``split: test``.

Who plays the rollouts (this process on transformers or vLLM, or Ray workers) is the
config's ``resources`` and ``marl.assembly.build_rollouts``'s business: the loop holds a
``Rollouts`` and calls it the same way whichever it is.
"""

from __future__ import annotations

import _thread
import contextlib
import json
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from marl.assembly import (
    build_policies,
    build_rollouts,
    env_factory,
    load_config,
    resolved_config,
    training_agents,
)
from marl.commands.baselines import baselines
from marl.commands.evaluate import gain_summary
from marl.commands.phases import EpisodesDone, episode_turns
from marl.core.checkpoint import Checkpoint, leftovers, load_latest, save_checkpoint
from marl.core.codec import TranscriptWriter
from marl.core.config import RunConfig, TrainConfig
from marl.core.files import read_bytes
from marl.core.runs import RunFolder, WriteError, write_atomic, writing
from marl.rollouts.records import Episode, Group, aggregate, group_record
from marl.tasks import eval_config, split_config, split_seeds, train_seeds
from marl.trackers import Trackers, open_trackers, sample_rows
from marl.trainers.magrpo import MAGRPOTrainer

MAX_METRICS_BYTES = 1024 * 1024 * 1024  # a line per step: millions of steps
SAMPLES_PER_STEP = 2  # rollouts of a step a tracker shows as text
# metrics keys that measure time: they differ between two runs of one config, so a
# comparison of runs leaves them out
TIMING_KEYS = frozenset({"seconds", "rollout_seconds", "eval_seconds", "tokens_per_s"})


@dataclass(frozen=True)
class TrainingPhase:
    """What the training loop is doing now, for a progress display (``run(on_phase=...)``).

    ``name`` is ``rollouts``, ``update``, ``evaluating team``, ``evaluating <agent> alone``,
    ``baselines`` or ``checkpoint``; ``step`` the step it belongs to (0: the evaluation
    before training). For an evaluation ``done`` of ``total`` counts its episodes
    (``marl.commands.phases.EpisodesDone``: episodes' worth of agent turns played); the other
    phases have no count (the rollouts' interface reports no turns of training groups)."""

    name: str
    step: int
    done: int | None = None
    total: int | None = None

    def __str__(self) -> str:
        return self.name if self.total is None else f"{self.name} {self.done}/{self.total}"


PhaseCallback = Callable[[TrainingPhase], None]


def _silent(phase: TrainingPhase) -> None:
    """The phase callback of a run nobody watches."""


class StopOnSignal:
    """``with StopOnSignal() as stop:``: the first SIGINT or SIGTERM sets ``stop.signum``
    (pass ``stop.requested`` to ``Training.run``, which finishes its step, checkpoints and
    returns); a second one raises ``KeyboardInterrupt`` at once, which is safe too: files are
    appended whole or renamed into place. The previous handlers come back on exit.

    Python swallows an exception raised inside a finalizer (a ``__del__`` or a weakref
    callback the garbage collector happens to be running when the signal lands; torch has
    some), so an abort raised there would be lost and the run would go on. Such a swallowed
    ``KeyboardInterrupt`` reaches ``sys.unraisablehook``; ours marks the signal pending again,
    so the handler raises it again once the finalizer has returned."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, on_first: Callable[[int], None] | None = None):
        self.on_first = on_first
        self.signum: int | None = None  # the last signal received
        self._previous: dict[int, Any] = {}
        self._previous_hook: Callable[[Any], Any] | None = None
        self._again: threading.Timer | None = None  # an abort swallowed, being sent again

    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> StopOnSignal:
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        self._previous_hook, sys.unraisablehook = sys.unraisablehook, self._unraisable
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        if sys.unraisablehook == self._unraisable:
            sys.unraisablehook = self._previous_hook
        if self._again is not None:
            self._again.cancel()  # the abort has landed, or the caller is done anyway

    def _handle(self, signum: int, frame: object) -> None:
        first = self.signum is None
        self.signum = signum
        if not first:
            raise KeyboardInterrupt
        if self.on_first:
            self.on_first(signum)

    def _unraisable(self, unraisable: Any) -> None:
        if unraisable.exc_type is KeyboardInterrupt and self.signum is not None:
            # from another thread a moment later, so the handler runs in the main thread
            # after the finalizer (from here it would run in the hook, swallowed again)
            self._again = threading.Timer(0.05, _thread.interrupt_main, (self.signum,))
            self._again.start()
            return
        self._previous_hook(unraisable)  # anything else is printed as usual


class Training:
    """A training run in a run folder: build once, then ``run()`` (fresh or resumed)."""

    def __init__(self, config: RunConfig, folder: RunFolder):
        if config.train is None:
            raise ValueError("this config has no 'train:' section; add one to use `marl train`")
        self.config = config
        self.tc: TrainConfig = config.train
        self.folder = folder
        self.agent_ids = training_agents(config)
        self.policies = build_policies(config, self.agent_ids, reference=self.tc.kl_coef > 0)
        self.trainer = MAGRPOTrainer(self.policies, self.tc)
        self.train_env = env_factory(split_config(config, "train")[0], self.agent_ids)
        self.eval_config = eval_config(config)
        self.step = 0
        self.tokens_total = 0  # generated in training rollouts so far: train.max_tokens
        self.checkpoint_step: int | None = None  # the newest checkpoint on disk that verifies
        # the team's held-out score by step (0: before training), as in metrics.jsonl
        self.eval_scores: dict[int, float] = {}
        self.rollouts = build_rollouts(config, self.policies)  # holds version 0: step 0
        self.trackers = Trackers([], folder)  # run.report_to, opened by start/resume

    @property
    def finished(self) -> bool:
        """Whether the run is at its end: ``train.steps``, or ``train.max_tokens`` spent."""
        budget = self.tc.max_tokens
        return self.step >= self.tc.steps or (budget is not None and self.tokens_total >= budget)

    def open_trackers(self, resumed_step: int | None = None) -> None:
        self.trackers = open_trackers(
            self.config, self.folder, resolved_config(self.config), resumed_step
        )

    def close(self) -> None:
        """Stop whatever plays the rollouts (workers, vLLM engines) and close the trackers;
        safe to call twice."""
        self.trackers.close()
        self.rollouts.close()

    # ---------------------------------------------------------------- state

    def save(self) -> Path:
        checkpoint = Checkpoint(
            step=self.step,
            policies=self.policies.state_dict(),
            optimizers={
                name: {
                    "optimizer": opt.state_dict(),
                    "scheduler": self.trainer.schedulers[name].state_dict(),
                }
                for name, opt in self.trainer.optimizers.items()
            },
            state={
                "algorithm": self.tc.algorithm,
                "policy": self.tc.policy,
                "tokens_total": self.tokens_total,
            },
        )
        folder = self.folder.path / "checkpoints"
        with writing(folder):
            path = save_checkpoint(folder, checkpoint, self.tc.keep_checkpoints)
        self.checkpoint_step = self.step
        return path

    def resume(self) -> list[str]:
        """Load the newest good checkpoint and cut later metrics and transcripts; say what.

        Checkpoints that fail to verify are renamed ``corrupt-step-NNNNNN`` (kept for a look,
        out of the way of ``keep_checkpoints``); temporary folders of a killed save go."""
        folder = self.folder.path / "checkpoints"
        notes = []
        for leftover in leftovers(folder):
            shutil.rmtree(leftover)
            notes.append(f"removed {leftover.name}, a checkpoint whose writing was cut off")
        checkpoint, skipped = load_latest(folder)
        for name, why in skipped:
            aside = folder / f"corrupt-{name}"
            for k in range(1, 1000):
                if not aside.exists():
                    break
                aside = folder / f"corrupt-{name}-{k}"
            (folder / name).rename(aside)
            notes.append(f"skipped checkpoint {name}: {why}; moved it to {aside}")
        if checkpoint is None:
            if skipped:
                notes.append("no checkpoint verified: starting again from step 0")
            self.step = 0
            self.tokens_total = 0
        else:
            self.policies.load_state_dict(checkpoint.policies)
            for name, states in checkpoint.optimizers.items():
                self.trainer.optimizers[name].load_state_dict(states["optimizer"])
                self.trainer.schedulers[name].load_state_dict(states["scheduler"])
            self.step = self.checkpoint_step = checkpoint.step
            self.rollouts.load_weights(self.step)
            notes.append(f"resumed from checkpoint step {self.step}")
        # from scratch, nothing written so far counts (not even the step-0 evaluation)
        notes += self._truncate_after(self.step if checkpoint is not None else -1)
        self.eval_scores = self._eval_scores_in_metrics()
        if checkpoint is not None:
            saved = checkpoint.state.get("tokens_total")
            if isinstance(saved, int) and not isinstance(saved, bool) and saved >= 0:
                self.tokens_total = saved
            else:  # a checkpoint from before the budget existed: the kept lines say
                self.tokens_total = self._tokens_in_metrics()
        return notes

    def _tokens_in_metrics(self) -> int:
        metrics = self.folder.path / RunFolder.METRICS
        if not metrics.exists():
            return 0
        total = 0
        for raw in read_bytes(metrics, MAX_METRICS_BYTES).split(b"\n"):
            with contextlib.suppress(ValueError, TypeError):
                tokens = json.loads(raw).get("tokens", 0)
                total += tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else 0
        return total

    def _eval_scores_in_metrics(self) -> dict[int, float]:
        """The held-out team scores of the metrics lines kept (after ``_truncate_after``)."""
        metrics = self.folder.path / RunFolder.METRICS
        if not metrics.exists():
            return {}
        scores = {}
        for raw in read_bytes(metrics, MAX_METRICS_BYTES).split(b"\n"):
            line = _step_line(raw)
            if line is None:
                continue
            score = json.loads(line[1]).get("eval/team")
            if isinstance(score, int | float) and not isinstance(score, bool):
                scores[line[0]] = float(score)
        return scores

    def _truncate_after(self, step: int) -> list[str]:
        """Keep the metrics lines of steps up to ``step`` and drop the rest (the resumed run
        writes them again). A damaged line (cut by a kill, not UTF-8, not JSON, no integer
        step) is dropped like a torn tail, and said: it is the one thing lost."""
        metrics = self.folder.path / RunFolder.METRICS
        notes = []
        if metrics.exists():
            kept, damaged = [], []
            for n, raw in enumerate(read_bytes(metrics, MAX_METRICS_BYTES).split(b"\n"), 1):
                if not raw.strip():
                    continue
                line = _step_line(raw)
                if line is None:
                    damaged.append(n)
                elif line[0] <= step:
                    kept.append(line[1])
            write_atomic(metrics, "".join(k + "\n" for k in kept))
            if damaged:
                shown = ", ".join(map(str, damaged[:5])) + (" ..." if len(damaged) > 5 else "")
                notes.append(
                    f"dropped {len(damaged)} damaged line{'s' * (len(damaged) > 1)} of "
                    f"{RunFolder.METRICS} (line {shown}); the run goes on from step {max(step, 0)}"
                )
        for path in (self.folder.path / "transcripts").glob("step-*.msgpack"):
            number = path.stem.removeprefix("step-")
            if not number.isdigit() or int(number) > step:
                path.unlink()
        return notes

    # ---------------------------------------------------------------- loop

    def run(
        self,
        on_step: Callable[[dict[str, Any]], None] | None = None,
        stop: Callable[[], bool] = lambda: False,
        on_phase: PhaseCallback | None = None,
    ) -> dict[str, Any]:
        """Train to ``train.steps``, or until ``stop()`` says so before a step; a stopped run
        checkpoints its last finished step (none before the first: a resume restarts).
        ``on_step`` gets each step's metrics line; ``on_phase`` each ``TrainingPhase`` as it
        begins (and as an evaluation's count moves)."""
        last: dict[str, Any] = {}
        if self.step == 0 and self.tc.eval_every and not stop():  # the curve's first point
            self.folder.log_metrics({"step": 0, "tokens_total": 0, **self.evaluate(on_phase)})
        while not self.finished and not stop():
            last = self.train_step(on_phase)
            if on_step:
                on_step(last)
        if self.step > 0 and not self.finished and self.checkpoint_step != self.step:
            (on_phase or _silent)(TrainingPhase("checkpoint", self.step))
            self.save()
        return last

    def train_step(self, on_phase: PhaseCallback | None = None) -> dict[str, Any]:
        """One step: rollouts, the update, its metrics line, and when due its transcripts,
        held-out evaluation and checkpoint. The line's ``seconds`` is the rollouts and the
        update only; an evaluation adds its own ``eval_seconds``."""
        tc = self.tc
        tell = on_phase or _silent
        start = time.perf_counter()
        seeds = train_seeds(self.config, self.step)
        tell(TrainingPhase("rollouts", self.step + 1))
        groups = self.rollouts.groups(self.train_env, seeds, self.step, tc)
        rollout_seconds = time.perf_counter() - start
        tell(TrainingPhase("update", self.step + 1))
        stats = self.trainer.step(groups)
        self.step += 1
        # Ray workers load the new weights while this process evaluates and saves
        self.rollouts.load_weights(self.step)
        first = [r for g in groups if g.round == 0 for r in g.rollouts]
        returns = torch.tensor([sum(r.returns.values()) / len(r.returns) for r in first])
        first_turn: dict[str, int] = {}  # the round of each agent's first turn
        for g in groups:
            for agent in g.agents:
                first_turn[agent] = min(first_turn.get(agent, g.round), g.round)
        agent_returns = {
            a: [r.returns[a] for g in groups if g.round == k for r in g.rollouts if a in r.returns]
            for a, k in first_turn.items()
        }
        ended = [r.metrics["score"] for g in groups for r in g.rollouts if r.metrics]
        tokens = sum(len(t.token_ids) for g in groups for r in g.rollouts for t in r.turns)
        self.tokens_total += tokens
        record: dict[str, Any] = {
            "step": self.step,
            "tasks": sorted({g.seed for g in groups}),
            "reward_mean": float(returns.mean()),
            "reward_std": float(returns.std(unbiased=False)),
            # each agent's mean return from its first turn: the team's under magrpo
            **{f"reward_mean/{a}": sum(v) / len(v) for a, v in agent_returns.items()},
            "score_mean": sum(ended) / max(1, len(ended)),
            "tokens": tokens,
            "tokens_total": self.tokens_total,
            "rollout_seconds": round(rollout_seconds, 3),
            "seconds": round(time.perf_counter() - start, 3),
            **{k: round(v, 6) if isinstance(v, float) else v for k, v in stats.items()},
        }
        if tc.transcript_every and self.step % tc.transcript_every == 0:
            self._write_transcripts(groups)
        if tc.eval_every and (self.step % tc.eval_every == 0 or self.finished):
            record |= self.evaluate(on_phase)
        # after the evaluation: its calls count too
        record |= self.rollouts.step_report(groups, expected_version=self.step - 1)
        record["tokens_per_s"] = round(tokens / max(record["rollout_seconds"], 1e-9), 2)
        self.folder.log_metrics(record)
        if self.step % tc.save_every == 0 or self.finished:
            tell(TrainingPhase("checkpoint", self.step))
            self.save()
        return record

    def evaluate(self, on_phase: PhaseCallback | None = None) -> dict[str, Any]:
        """Held-out tasks: the team, each agent alone, and the team's gain over the best;
        with ``train.eval_baselines`` also marl eval's baselines on the same tasks (a
        baseline that does not apply is left out). ``eval_seconds``: the time all of it took."""
        start = time.perf_counter()
        config = self.eval_config
        seeds = split_seeds(config, "test")

        def play(agent_ids: Sequence[str], name: str) -> list[Episode]:
            make_env = env_factory(config, agent_ids)
            if on_phase is None:  # nobody watches: no count to keep
                return self.rollouts.episodes(make_env, seeds)
            counted = EpisodesDone(
                len(seeds),
                episode_turns(make_env, len(agent_ids)),
                lambda k: on_phase(TrainingPhase(name, self.step, k, len(seeds))),
            )
            episodes = self.rollouts.episodes(make_env, seeds, on_turns=counted)
            counted.finish()
            return episodes

        team = play(self.agent_ids, "evaluating team")
        out: dict[str, Any] = {"eval/team": aggregate(team)["score"]}
        if len(self.agent_ids) > 1:
            singles = {a: play([a], f"evaluating {a} alone") for a in self.agent_ids}
            scores = {a: aggregate(e)["score"] for a, e in singles.items()}
            gains = gain_summary(out["eval/team"], scores)
            out |= {f"eval/single/{a}": s for a, s in scores.items()}
            out["eval/best_single"] = gains["best_single"]["score"]
            out["eval/team_gain"] = gains["team_gain"]
            if self.config.train.eval_baselines:
                if on_phase:
                    on_phase(TrainingPhase("baselines", self.step))
                compared, _, _ = baselines(config, self.rollouts, seeds, team, singles)
                for name, row in compared.items():
                    if "gain" in row:
                        out[f"eval/{name}"] = row["score"]
                        out[f"eval/gain_vs/{name}"] = row["gain"]
                        low, high = row["gain_ci95"] or (None, None)  # None: too few tasks
                        out[f"eval/gain_vs/{name}/ci95_low"] = low
                        out[f"eval/gain_vs/{name}/ci95_high"] = high
        self.eval_scores[self.step] = out["eval/team"]
        out["eval_seconds"] = round(time.perf_counter() - start, 3)
        return out

    def _write_transcripts(self, groups: Sequence[Group]) -> None:
        """One frame per group: its sibling rollouts' turns, rewards and returns."""
        folder = self.folder.path / "transcripts"
        path = folder / f"step-{self.step:06d}.msgpack"
        try:
            with writing(path):
                folder.mkdir(exist_ok=True)
                path.unlink(missing_ok=True)
                with TranscriptWriter(path) as writer:
                    for group in groups:
                        writer.write(
                            {
                                "step": self.step,
                                **group_record(group),
                            }
                        )
        except WriteError:
            path.unlink(missing_ok=True)  # no half file: a resume writes this step again
            raise
        if self.trackers:  # the first rollouts of the step's first task, as text
            first = groups[0]
            rows = [
                row
                for k, rollout in enumerate(first.rollouts[:SAMPLES_PER_STEP])
                for row in sample_rows(rollout.turns, f"task {first.seed} rollout {k}")
            ]
            self.trackers.samples(self.step, rows)


def _step_line(raw: bytes) -> tuple[int, str] | None:
    """(step, line) of one metrics line, or None when it is damaged."""
    try:
        line = raw.decode("utf-8")
        step = json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):  # UnicodeDecodeError and JSON errors included
        return None
    if not isinstance(step, int) or isinstance(step, bool):
        return None
    return step, line


def start_training(config: RunConfig, folder: RunFolder | None = None) -> Training:
    """A run with the resolved config in ``folder`` (default: a new one), ready to ``run()``."""
    folder = folder or RunFolder.create(config.run.output_dir, config.name)
    folder.write_config(resolved_config(config))
    training = Training(config, folder)
    try:
        training.open_trackers()
    except BaseException:
        training.close()
        raise
    return training


def resume_training(run_dir: str | Path) -> tuple[Training, list[str]]:
    """Rebuild a run from its folder's config and continue from its newest good checkpoint."""
    folder = RunFolder(run_dir)
    config = load_config(folder.path / RunFolder.CONFIG)
    metrics = folder.path / RunFolder.METRICS
    if metrics.exists():  # before any model loads: a metrics "file" that is a folder, say
        read_bytes(metrics, MAX_METRICS_BYTES)
    training = Training(config, folder)
    try:
        notes = training.resume()
        training.open_trackers(resumed_step=training.step)
        return training, notes
    except BaseException:
        training.close()
        raise
