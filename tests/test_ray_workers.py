"""Ray rollout workers (`resources.workers`) on a real local Ray instance: the same run as
in one process, weights that reach the workers, and a worker killed in the middle of a step.

The toy scenario (tests/toy_scenario.py) gives the tiny model non-flat rewards, so updates
move the weights; the workers import it through `resources.imports`, as a user's own
scenario module would be."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from agents.team import ScriptedPolicy
from marl.assembly import load_config, validate_config
from marl.cli import main
from marl.commands.train import TIMING_KEYS, Training
from marl.core.codec import CodecError, pack, unpack
from marl.core.config import ConfigError
from marl.core.runs import RunFolder
from marl.rollouts.engine import run_tree
from marl.rollouts.ray_workers import WIRE_LIMITS, RayRollouts, WorkerLost, _split
from marl.rollouts.records import group_from_record, group_record
from tests.test_rollout import make_env, solver
from tests.toy_scenario import toy_config  # registers toy_length_v0 in this process too

TIMING = TIMING_KEYS
WORKER_KEYS = {"workers", "workers_replaced", "weights_reloaded", "stale_groups"}


def ray_config(tmp_path: Path, name: str, resources: dict, **train: object) -> Path:
    """The toy run with 4 tasks per step, and the workers importing the toy scenario.

    At temperature 1.0 the tiny random model's next-token distribution is so flat that the
    order of near-ties (thread count, batch shape) decides samples; at 0.2 samples still
    differ from each other, but not with rounding."""
    settings = {"steps": 3, "tasks_per_step": 4, "save_every": 3, "eval_every": 3}
    return toy_config(
        tmp_path,
        name,
        temperature=0.2,
        resources={"imports": ["tests.toy_scenario"], **resources},
        **{**settings, "eval_episodes": 4, **train},
    )


def metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def comparable(lines: list[dict]) -> list[dict]:
    """What must not depend on where rollouts ran: everything but timings and worker counts."""
    return [{k: v for k, v in line.items() if k not in TIMING | WORKER_KEYS} for line in lines]


def assert_same_metrics(got: list[dict], want: list[dict]) -> None:
    assert [line["step"] for line in got] == [line["step"] for line in want]
    for mine, theirs in zip(comparable(got), comparable(want), strict=True):
        assert mine.keys() == theirs.keys()
        for key, value in theirs.items():
            assert mine[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key


@pytest.fixture(scope="module")
def in_process(tmp_path_factory) -> list[dict]:
    """The toy run with rollouts in this process: what every Ray run must reproduce."""
    parent = tmp_path_factory.mktemp("local")
    assert main(["train", str(ray_config(parent, "local", {})), "--no-progress"]) == 0
    (run,) = (parent / "local").iterdir()
    return metrics(run)


def training(tmp_path: Path, name: str, **resources: object) -> Training:
    config = load_config(ray_config(tmp_path, name, resources))
    return Training(config, RunFolder.create(config.run.output_dir, config.name))


# ---------------------------------------------------------------- with a real Ray instance


def test_two_workers_train_exactly_like_one_process(
    ray_instance, in_process, tmp_path: Path
) -> None:
    assert main(["train", str(ray_config(tmp_path, "ray", {"workers": 2})), "--no-progress"]) == 0
    (run,) = (tmp_path / "ray").iterdir()
    lines = metrics(run)
    assert_same_metrics(lines, in_process)
    trained = [line for line in lines if "reward_mean" in line]
    assert all(line["workers"] == 2 and line["workers_replaced"] == 0 for line in trained)
    assert all(line["stale_groups"] == 0 for line in trained)
    # the driver wrote the transcripts; each group says which weights played it
    frames = (run / "transcripts" / "step-000002.msgpack").read_bytes()
    assert frames and b"policy_version" in frames


def test_a_worker_killed_mid_step_is_replaced_and_the_step_is_redone(
    ray_instance, in_process, tmp_path: Path
) -> None:
    run = training(tmp_path, "killed", workers=2)
    try:
        victim = run.rollouts.pids()[0]
        kills = []

        def kill_once(actors) -> None:
            # right after the second step's calls went out, before a share can finish
            # (the tiny model plays one in well under a second on a quiet machine)
            if not kills and run.step == 1:
                os.kill(victim, signal.SIGKILL)
                kills.append(victim)

        run.rollouts.on_submit = kill_once
        run.run()
        assert kills == [victim]
        assert victim not in run.rollouts.pids()  # a new process took its place
    finally:
        run.close()
    lines = metrics(run.folder.path)
    assert_same_metrics(lines, in_process)  # nothing lost, nothing doubled, same samples
    by_step = {line["step"]: line for line in lines if "reward_mean" in line}
    assert by_step[2]["workers_replaced"] == 1
    assert by_step[2]["weights_reloaded"] >= 1  # the new worker loaded step 1's weights
    assert by_step[2]["stale_groups"] == 0
    assert by_step[1]["workers_replaced"] == by_step[3]["workers_replaced"] == 0


def test_a_worker_that_dies_past_its_restarts_stops_with_a_clear_error(
    ray_instance, tmp_path: Path
) -> None:
    run = training(tmp_path, "lost", workers=1, max_worker_restarts=0)
    try:
        (pid,) = run.rollouts.pids()
        run.rollouts.on_submit = lambda actors: os.kill(pid, signal.SIGKILL)
        with pytest.raises(WorkerLost, match="max_worker_restarts=0"):
            run.train_step()
    finally:
        run.close()


@pytest.mark.parametrize("policy", ["separate", "separate_full"])
def test_pushed_weights_are_the_ones_the_workers_sample_with(
    ray_instance, tmp_path: Path, policy: str
) -> None:
    """Logprobs the workers report equal the driver's recomputation once weights are
    pushed, and differ before: workers act on the driver's weights, and a push carries
    only the adapters for LoRA policies."""
    config = load_config(ray_config(tmp_path, policy, {"workers": 1}, policy=policy))
    run = Training(config, RunFolder.create(config.run.output_dir, config.name))
    try:

        def gap(version: int) -> float:
            groups = run.rollouts.groups(run.train_env, [5, 6], 0, run.tc)
            assert {g.policy_version for g in groups} == {version}
            turns = [t for g in groups for r in g.rollouts for t in r.turns]
            worst = 0.0
            for agent in ("a", "b"):
                mine = [t for t in turns if t.agent == agent and t.token_ids]
                policy = run.policies.policy_of[agent]
                with torch.no_grad(), run.policies.training(policy):
                    fresh, _ = run.policies.sequence_logprobs(
                        policy,
                        [t.prompt_ids for t in mine],
                        [t.token_ids for t in mine],
                    )
                for row, turn in enumerate(mine):
                    n = len(turn.token_ids)
                    sampled = torch.tensor(turn.logprobs)
                    worst = max(worst, float((fresh[row, -n:] - sampled).abs().max()))
            return worst

        run.rollouts.load_weights(0, wait=True)  # as built: version 0
        assert gap(0) < 1e-3
        with torch.no_grad():  # the driver's weights move; the workers still hold version 0
            for name in run.policies.policies:
                for p in run.policies.parameters(name):
                    p.add_(torch.randn_like(p) * 0.5)
        assert gap(0) > 1e-2
        moved = run.policies.state_dict()
        run.rollouts.load_weights(1, wait=True)
        assert gap(1) < 1e-3
        full = sum(p.numel() for p in run.policies.models["a"].parameters())
        pushed = sum(t.numel() for t in moved.values())
        if policy == "separate":
            assert pushed < full / 5  # the adapters of both agents, not the model
        else:
            assert pushed == 2 * full  # each agent's whole model
    finally:
        run.close()


# ---------------------------------------------------------------- without Ray


def test_config_needs_workers_for_a_cluster_address() -> None:
    base = {"name": "t", "scenario": {"name": "debate_v0"}, "team": {"agents": [{"id": "a"}]}}
    with pytest.raises(ConfigError, match=r"resources\.ray_address: .*resources\.workers"):
        validate_config({**base, "resources": {"ray_address": "auto"}})
    with pytest.raises(ConfigError, match=r"resources\.workers"):
        validate_config({**base, "resources": {"workers": -1}})
    with pytest.raises(ConfigError, match=r"resources\.imports: cannot import 'no_such_mod'"):
        validate_config({**base, "resources": {"imports": ["no_such_mod"]}})
    assert validate_config({**base, "resources": {"workers": 2}}).resources.workers == 2


def test_tasks_are_split_into_contiguous_near_equal_shares() -> None:
    assert _split([1, 2, 3, 4, 5], 2) == [[1, 2, 3], [4, 5]]
    assert _split([1, 2], 4) == [[1], [2]]
    assert _split(list(range(8)), 3) == [[0, 1, 2], [3, 4, 5], [6, 7]]
    for n in range(1, 12):
        for parts in range(1, 6):
            shares = _split(list(range(n)), parts)
            assert [x for share in shares for x in share] == list(range(n)) and all(shares)


def test_groups_survive_the_wire() -> None:
    """Tree-mode groups (debate, two rounds: returns from children) come back the same."""
    groups = run_tree(make_env, ScriptedPolicy(solver), [1, 2], 2)
    assert len(groups) == 2 + 2 * 2  # a root per task, then one group per child
    for group in groups:
        group.policy_version = 7
        back = group_from_record(unpack(pack(group_record(group), WIRE_LIMITS), WIRE_LIMITS))
        assert group_record(back) == group_record(group)
        assert back.policy_version == 7


def test_a_damaged_reply_names_the_worker_and_frame() -> None:
    good = pack({"seed": 1})
    with pytest.raises(CodecError, match="worker 3 frame 1"):
        RayRollouts._decode({"worker": 3, "frames": [good, good[:-1]]})
    with pytest.raises(ValueError, match="not a group record"):
        group_from_record({"seed": 1, "round": 0, "rollouts": [{"turns": "x"}]})
