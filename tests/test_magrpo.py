"""MAGRPO: the math on hand-computed cases, N=1 equals GRPO, and real updates on a toy task."""

from __future__ import annotations

import pytest
import torch

from agents.backend import Sampling
from agents.policies import Policies, make_policies, precision_warning
from agents.team import LLMAgent
from marl.core.config import TrainConfig
from marl.rollouts.engine import run_cross, run_tree
from marl.rollouts.records import Episode, Turn
from marl.trainers.magrpo import (
    MAGRPOTrainer,
    discounted_returns,
    group_advantages,
    group_samples,
    groups_from_episodes,
    logprob_gap,
    policy_loss,
)

# ------------------------------------------------------------------ math


def test_discounted_returns_by_hand() -> None:
    rewards = torch.tensor([[1.0, 0.0, 2.0]])
    assert discounted_returns(rewards, 0.5).tolist() == [[1.5, 1.0, 2.0]]  # 1 + .5*(0 + .5*2)
    assert discounted_returns(rewards, 1.0).tolist() == [[3.0, 2.0, 2.0]]
    assert discounted_returns(rewards, 0.0).tolist() == [[1.0, 0.0, 2.0]]


def test_group_advantages_by_hand() -> None:
    r = torch.tensor([1.0, 2.0, 3.0, 6.0])  # mean 3, population std sqrt(3.5)
    assert group_advantages(r, "mean").tolist() == [-2.0, -1.0, 0.0, 3.0]
    # leave-one-out: 1 - (2+3+6)/3, 2 - (1+3+6)/3, 3 - (1+2+6)/3, 6 - (1+2+3)/3
    assert group_advantages(r, "rloo").tolist() == pytest.approx([-8 / 3, -4 / 3, 0.0, 4.0])
    assert group_advantages(r, "max").tolist() == [-5.0, -4.0, -3.0, 0.0]
    z = group_advantages(r, "mean_std")
    assert z.tolist() == pytest.approx([-2 / 3.5**0.5, -1 / 3.5**0.5, 0.0, 3 / 3.5**0.5], rel=1e-5)
    flat = group_advantages(torch.ones(4), "mean_std")
    assert flat.tolist() == [0.0] * 4  # equal rewards: no signal, no NaN
    per_round = group_advantages(torch.tensor([[1.0, 0.0], [3.0, 2.0]]), "mean")
    assert per_round.tolist() == [[-1.0, -1.0], [1.0, 1.0]]  # baseline per round (axis 0)


def test_on_policy_gradient_is_minus_advantage_times_logprob_gradient() -> None:
    logits = torch.tensor([0.3, -0.2, 0.5], requires_grad=True)
    logp = torch.log_softmax(logits, -1)
    seq = torch.stack([logp[0] + logp[2], logp[1] + logp[0]])  # two tokens each, summed below
    per_token = torch.stack([torch.stack([logp[0], logp[2]]), torch.stack([logp[1], logp[0]])])
    adv = torch.tensor([2.0, -1.0])
    mask = torch.ones(2, 2)
    loss, stats = policy_loss(per_token, per_token.detach(), adv, mask)
    (grad,) = torch.autograd.grad(loss, logits, retain_graph=True)
    (expected,) = torch.autograd.grad(-(seq * adv).mean(), logits)
    assert torch.allclose(grad, expected)
    assert stats["kl"] == 0.0
    token_loss, _ = policy_loss(per_token, per_token.detach(), adv, mask, loss_norm="token")
    assert token_loss.item() == pytest.approx(loss.item() / 2)


def test_clipping_stops_the_gradient_past_the_trust_region() -> None:
    logp = torch.tensor([[-0.1]], requires_grad=True)
    old = torch.tensor([[-1.0]])  # ratio e^0.9 ~ 2.46 > 1.2
    loss, stats = policy_loss(logp, old, torch.tensor([1.0]), torch.ones(1, 1), clip_eps=0.2)
    loss.backward()
    assert logp.grad.item() == 0.0 and stats["clipped"] == 1.0
    logp.grad = None
    loss, _ = policy_loss(logp, old, torch.tensor([-1.0]), torch.ones(1, 1), clip_eps=0.2)
    loss.backward()
    assert logp.grad.item() != 0.0  # a negative advantage keeps pushing the ratio down


def test_k3_kl_is_zero_at_the_reference_and_positive_away() -> None:
    logp = torch.tensor([[-1.0, -2.0]])
    mask = torch.ones(1, 2)
    _, same = policy_loss(logp, logp, torch.zeros(1), mask, ref_logprobs=logp, kl_coef=0.1)
    _, away = policy_loss(logp, logp, torch.zeros(1), mask, ref_logprobs=logp - 0.5, kl_coef=0.1)
    assert same["kl"] == 0.0 and away["kl"] > 0.0
    assert away["kl"] == pytest.approx(float(torch.exp(torch.tensor(-0.5)) + 0.5 - 1))


# ------------------------------------------------------------------ on the tiny model

SAMPLING = Sampling(temperature=1.0, max_new_tokens=6)


def tiny_policies(ids, kind="separate", seed=0) -> Policies:
    agents = [LLMAgent(a, "solver", "You are {id}.", "tiny-random", SAMPLING) for a in ids]
    lora = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    return make_policies(agents, kind, lora=lora, seed=seed)


def episode(seed, sample, agent_turns, rewards) -> Episode:
    turns = [
        Turn(
            0, agent, "obs", "text", list(prompt), list(tokens), list(lp), "stop", rewards[-1], info
        )
        for agent, prompt, tokens, lp, info in agent_turns
    ]
    return Episode(0, seed, sample, "toy", [t.agent for t in turns], turns, list(rewards))


def test_logprob_gap_counts_only_completion_tokens() -> None:
    # two completions right aligned in 3 columns: lengths 3 and 1
    mask = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    recomputed = torch.tensor([[-1.0, -2.0, -0.5], [0.0, 0.0, -3.0]])
    sampled = torch.tensor([[-1.1, -2.0, -0.3], [-99.0, -99.0, -3.4]])  # padding is ignored
    gap = logprob_gap(sampled, recomputed, mask)
    assert gap["logprob_gap_max"] == pytest.approx(0.4)
    assert gap["logprob_gap_mean"] == pytest.approx((0.1 + 0.0 + 0.2 + 0.4) / 4)
    assert logprob_gap(sampled, recomputed, torch.zeros_like(mask))["logprob_gap_max"] == 0.0


def test_team_reward_is_shared_and_igrpo_uses_individual_rewards() -> None:
    policies = tiny_policies(["a", "b"])
    eps = [
        episode(
            0,
            g,
            [
                ("a", [1], [5], [-1.0], {"individual_reward": ra}),
                ("b", [1], [6], [-1.0], {"individual_reward": rb}),
            ],
            [team],
        )
        for g, (team, ra, rb) in enumerate([(1.0, 1.0, 0.0), (0.0, 0.0, 1.0)])
    ]
    joint, _ = group_samples(groups_from_episodes(eps, 1.0), policies, TrainConfig(group_size=2))
    assert [(s.policy, s.advantage) for s in joint] == [
        ("a", 0.5),
        ("a", -0.5),
        ("b", 0.5),
        ("b", -0.5),
    ]
    own, _ = group_samples(
        groups_from_episodes(eps, 1.0, individual=True), policies, TrainConfig(group_size=2)
    )
    assert [(s.policy, s.advantage) for s in own] == [
        ("a", 0.5),
        ("a", -0.5),
        ("b", -0.5),
        ("b", 0.5),
    ]


def grpo_group(policies, rewards: list[float]) -> tuple[list, list[Episode]]:
    """One agent answers the same prompt len(rewards) times; each answer gets its reward."""
    from agents.team import ActRequest

    outs = policies.team.act([ActRequest("solo", "Hi", s) for s in range(len(rewards))])
    eps = [
        episode(7, g, [("solo", o.prompt_token_ids, o.token_ids, o.logprobs, {})], [r])
        for g, (o, r) in enumerate(zip(outs, rewards, strict=True))
    ]
    return outs, eps


def hand_written_grpo_grads(policies, outs, rewards: list[float]) -> list[torch.Tensor]:
    """GRPO by hand: A = R - mean(R); loss = -(1/G) sum_g A_g sum_k log p(y_gk)."""
    adv = torch.tensor(rewards) - torch.tensor(rewards).mean()
    with policies.training("solo"):
        logp, mask = policies.sequence_logprobs(
            "solo", [o.prompt_token_ids for o in outs], [o.token_ids for o in outs]
        )
        (-((logp * mask).sum(-1) * adv).mean()).backward()
    return [p.grad.clone() for p in policies.parameters("solo")]


@pytest.mark.parametrize(
    "updates_per_batch", [1, 2], ids=["one pass", "two passes: clipping on from the second"]
)
def test_the_trainer_gradient_equals_a_hand_written_grpo_loss(updates_per_batch: int) -> None:
    """The gradient, not an optimiser step (Adam's first step is lr * sign(g) and hides any
    scale): the group has one sample at its mean (A = 0), which adds no gradient but counts
    in the normaliser, as the paper's mean over the group does."""
    rewards = [1.0, 0.0, 0.5]  # A = 0.5, -0.5, 0
    config = TrainConfig(group_size=3, updates_per_batch=updates_per_batch)
    policies = tiny_policies(["solo"], seed=3)
    outs, eps = grpo_group(policies, rewards)
    samples, _ = group_samples(groups_from_episodes(eps, 1.0), policies, config)
    assert sorted(s.advantage for s in samples) == [-0.5, 0.0, 0.5]

    trainer = MAGRPOTrainer(policies, config)
    _, first_pass = trainer.backward("solo", samples)  # pi_old = pi: the ratio is 1, unclipped
    mine = [p.grad.clone() for p in policies.parameters("solo")]
    expected = hand_written_grpo_grads(tiny_policies(["solo"], seed=3), outs, rewards)
    assert any(g.abs().sum() > 0 for g in expected)
    for got, want in zip(mine, expected, strict=True):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-7)
    # a second pass with pi_old = this first pass and unchanged weights: the same gradient
    for p in policies.parameters("solo"):
        p.grad = None
    trainer.backward("solo", samples, old=first_pass)
    for p, want in zip(policies.parameters("solo"), expected, strict=True):
        assert torch.allclose(p.grad, want, rtol=1e-4, atol=1e-7)


def test_a_step_with_every_group_flat_leaves_the_weights_alone() -> None:
    config = TrainConfig(group_size=3, lr=0.05)
    policies = tiny_policies(["solo"], seed=3)
    _, eps = grpo_group(policies, [1.0, 1.0, 1.0])
    before = [p.detach().clone() for p in policies.parameters("solo")]
    stats = MAGRPOTrainer(policies, config).step(groups_from_episodes(eps, 1.0))
    assert stats["flat_group_fraction"] == 1.0 and stats["solo/grad_norm"] == 0.0
    for p, q in zip(policies.parameters("solo"), before, strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("kind", ["separate", "shared", "separate_full"])
def test_a_step_moves_only_the_policy_weights(kind: str) -> None:
    import tests.toy_scenario  # noqa: F401  registers toy_length_v0
    from marl.rollouts.engine import run_episodes
    from scenarios import make_env

    policies = tiny_policies(["a", "b"], kind=kind)
    model = next(iter(policies.models.values()))
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}
    before = policies.state_dict()
    config = TrainConfig(group_size=4, lr=0.01)
    seeds = [s for s in (0, 1) for _ in range(4)]
    eps = run_episodes(
        lambda: make_env("toy_length_v0", ["a", "b"]), policies.team, seeds, samples=list(range(8))
    )
    stats = MAGRPOTrainer(policies, config).step(groups_from_episodes(eps, 1.0))
    after = policies.state_dict()
    assert stats["flat_group_fraction"] < 1.0
    for policy in policies.policies:
        assert torch.isfinite(torch.tensor(stats[f"{policy}/loss"]))
        assert stats[f"{policy}/grad_norm"] > 0
        # the transformers backend samples with the trainer's own model: rounding only
        assert stats[f"{policy}/logprob_gap_max"] < 1e-3
        changed = [
            k for k in after if k.startswith(policy + "/") and not torch.equal(after[k], before[k])
        ]
        assert changed, f"policy {policy} did not move"
    if kind != "separate_full":
        for name, p in model.named_parameters():
            if "lora_" not in name:
                assert torch.equal(p, frozen[name]), f"frozen base weight {name} changed"


@pytest.mark.parametrize("kind", ["separate", "separate_full"])
def test_bf16_update_matches_fp32_and_keeps_fp32_weights(kind) -> None:
    """bf16 runs the passes through a bfloat16 copy: the gradient is fp32's up to rounding,
    and the fp32 weights the optimiser steps and generation uses stay fp32."""
    import tests.toy_scenario  # noqa: F401  registers toy_length_v0
    from marl.rollouts.engine import run_episodes
    from scenarios import make_env

    stats, moved = {}, {}
    for precision in ("fp32", "bf16"):
        policies = tiny_policies(["a", "b"], kind=kind)
        eps = run_episodes(
            lambda: make_env("toy_length_v0", ["a", "b"]),
            policies.team,
            [s for s in (0, 1) for _ in range(4)],
            samples=list(range(8)),
        )
        before = policies.state_dict()
        config = TrainConfig(group_size=4, lr=1e-3, precision=precision)
        stats[precision] = MAGRPOTrainer(policies, config).step(groups_from_episodes(eps, 1.0))
        after = policies.state_dict()
        assert all(t.dtype == torch.float32 for t in after.values())
        moved[precision] = torch.cat([(after[k] - before[k]).flatten() for k in after])
        if precision == "bf16":  # generation's backends hold the fp32 modules, stepped
            for backend in policies.team.backends.values():
                assert {p.dtype for p in backend.model.parameters()} == {torch.float32}
            assert len(policies._twins) == (1 if kind == "separate" else 2)  # one per module
    for policy in ("a", "b"):
        fp32, bf16 = stats["fp32"][f"{policy}/grad_norm"], stats["bf16"][f"{policy}/grad_norm"]
        assert fp32 > 0.0
        assert bf16 == pytest.approx(fp32, rel=0.05)
        assert bf16 != fp32  # bfloat16 rounding shows: the passes ran in bfloat16
    # the same update direction: Adam's steps agree in sign almost everywhere
    cosine = torch.nn.functional.cosine_similarity(moved["fp32"], moved["bf16"], dim=0)
    assert cosine > 0.9, cosine


def test_bf16_twin_gradient_accumulates_in_fp32() -> None:
    """Two backward passes through the twin add up on the fp32 weight's .grad exactly as
    one pass over both losses would, and leave no gradient on the twin."""
    policies = tiny_policies(["a"], kind="separate_full")
    prompt, completions = [3, 4, 5], [[6, 7], [8]]
    with policies.training("a", "bf16") as twin:
        for completion in completions:
            logprobs, _ = policies.sequence_logprobs("a", [prompt], [completion])
            logprobs.sum().backward()
        assert all(p.grad is None for p in twin.parameters())
    separate = {n: p.grad.clone() for n, p in policies.models["a"].named_parameters()}
    policies.models["a"].zero_grad(set_to_none=True)
    with policies.training("a", "bf16"):
        logprobs, _ = policies.sequence_logprobs("a", [prompt, prompt], completions)
        logprobs.sum().backward()
    for name, p in policies.models["a"].named_parameters():
        assert p.grad.dtype == torch.float32
        error = (p.grad - separate[name]).norm() / separate[name].norm()
        assert error < 0.02, (name, error)  # bfloat16 rounding of two batch layouts


@pytest.mark.parametrize("has_bf16", [True, False], ids=["bf16-cpu", "avx2-cpu"])
def test_bf16_on_a_cpu_without_bfloat16_instructions_is_flagged(monkeypatch, has_bf16) -> None:
    """torch emulates bfloat16 on such a CPU (13x slower updates measured): say so."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: has_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert precision_warning("fp32") is None
    warning = precision_warning("bf16")
    if has_bf16:
        assert warning is None
    else:
        assert "without bfloat16 instructions" in warning
        assert "set train.precision: fp32" in warning


# ------------------------------------------------------------------ group modes


def test_episode_groups_discount_per_round() -> None:
    policies = tiny_policies(["a"])
    turns = [("a", [1], [5], [-1.0], {})]
    eps = []
    for g, rewards in enumerate([[0.0, 1.0], [1.0, 0.0]]):
        e = episode(0, g, turns, rewards)
        e.turns = [Turn(r, "a", "o", "t", [1], [5], [-1.0], "stop", rewards[r], {}) for r in (0, 1)]
        eps.append(e)
    groups = groups_from_episodes(eps, gamma=0.5)
    assert [(grp.round, [r.returns["a"] for r in grp.rollouts]) for grp in groups] == [
        (0, [0.5, 1.0]),  # 0 + .5*1 and 1 + .5*0
        (1, [1.0, 0.0]),
    ]
    samples, _ = group_samples(groups, policies, TrainConfig(group_size=2))
    assert [s.advantage for s in samples] == [-0.25, 0.25, 0.5, -0.5]


def test_tree_mode_branches_g_ways_and_averages_children() -> None:
    from scenarios.debate_v0 import DebateEnv

    def answers(agent, observation):
        return "Answer: 3"

    from agents.team import ScriptedPolicy

    groups = run_tree(
        lambda: DebateEnv(["a", "b"], rounds=2, task="easy"),
        ScriptedPolicy(answers),
        seeds=[0],
        branching=3,
        gamma=1.0,
    )
    assert [g.round for g in groups] == [0, 1, 1, 1]  # 1 root group, then one per child
    assert all(len(g.rollouts) == 3 for g in groups)
    root = groups[0]
    for rollout in root.rollouts:
        below = [c.returns["a"] for c in rollout.child.rollouts]
        assert rollout.returns["a"] == rollout.rewards["a"] + sum(below) / 3


def test_tree_mode_pays_an_agent_that_left_the_team_value_of_its_branch() -> None:
    """The referential speaker acts in round 0 only; its branch is worth its children's
    mean team reward (igrpo: nothing, it never picks)."""
    import itertools

    from agents.team import ScriptedPolicy
    from scenarios.referential_v0 import ReferentialEnv

    picks = itertools.cycle(range(1, 5))  # the listener's siblings pick different numbers

    def answers(agent, observation):
        return "It is red." if agent == "speaker" else f"Answer: {next(picks)}"

    def tree(individual: bool) -> list:
        return run_tree(
            lambda: ReferentialEnv(["speaker", "listener"]),
            ScriptedPolicy(answers),
            seeds=[0, 1],
            branching=4,
            individual=individual,
        )

    groups = tree(individual=False)
    assert [g.round for g in groups] == [0, 0] + [1] * 8
    roots = groups[:2]
    for rollout in (r for g in roots for r in g.rollouts):
        below = [c.returns["listener"] for c in rollout.child.rollouts]
        assert sorted(below) == [0.0, 0.0, 0.0, 1.0]  # one of the 4 numbers is the target
        assert rollout.returns == {"speaker": 0.25}
    assert all(r.returns == {"speaker": 0.0} for g in tree(individual=True)[:2] for r in g.rollouts)


def test_cross_mode_scores_each_completion_over_the_product() -> None:
    from agents.backend import Completion
    from marl.rollouts.engine import request_seed
    from scenarios.arithmetic import evaluate
    from scenarios.debate_v0 import DebateEnv

    class FirstSampleRight:
        """Sample 0 of every agent answers right, sample 1 wrong."""

        calls = 0

        def act(self, requests):
            self.calls += len(requests)
            out = []
            for r in requests:
                truth = evaluate(r.observation.split("result of ")[1].split("?")[0])
                right = r.seed == request_seed(1, r.agent_id, 0, 0)
                out.append(Completion(f"Answer: {truth if right else truth + 1}", [1], [-1.0], [1]))
            return out

    policy = FirstSampleRight()
    (group,) = run_cross(lambda: DebateEnv(["a", "b"], rounds=1, task="easy"), policy, [1], 2)
    assert policy.calls == 2 * 2  # G completions per agent, then G^N = 4 plays of them
    # 2 agents: a tie goes to a's answer. Plays (a,b): (0,0)=1 (0,1)=1 (1,0)=0 (1,1)=0
    assert [r.returns["a"] for r in group.rollouts] == [1.0, 0.0]
    assert [r.returns["b"] for r in group.rollouts] == [0.5, 0.5]


def test_cross_mode_rollout_g_records_its_own_joint_action() -> None:
    """Rollout g is every agent's g-th completion: its transcript (turns, bus log) and its
    episode metrics are those of the play (g, ..., g), not of another combination."""
    from agents.backend import Completion
    from marl.rollouts.engine import request_seed
    from scenarios.debate_v0 import DebateEnv

    G, agents = 3, ["a", "b", "c"]
    sample_of = {request_seed(4, a, 0, g): g for a in agents for g in range(G)}

    def answer(agent: str, g: int) -> str:
        return f"Answer: {10 * g + agents.index(agent)}"  # nobody agrees with anybody

    class AnswersItsSample:
        def act(self, requests):
            return [
                Completion(answer(r.agent_id, sample_of[r.seed]), [1], [-1.0], [1])
                for r in requests
            ]

    make_env = lambda: DebateEnv(agents, rounds=1, task="easy")  # noqa: E731
    (group,) = run_cross(make_env, AnswersItsSample(), [4], G)
    for g, rollout in enumerate(group.rollouts):
        said = {t.agent: t.text for t in rollout.turns}
        assert said == {a: answer(a, g) for a in agents}
        # a three-way tie: the majority is the first agent's answer, a's g-th completion
        assert rollout.metrics["team_answer"] == int(said["a"].removeprefix("Answer: "))
        sent = {m["sender"]: m["meta"]["answer"] for m in rollout.messages}
        assert sent == {a: int(said[a].removeprefix("Answer: ")) for a in agents}


def test_an_agent_that_leaves_early_still_earns_the_final_team_reward() -> None:
    """A referential speaker acts in round 0 only; the team is paid in round 1."""
    eps = []
    for g, final in enumerate([1.0, 0.0]):
        e = episode(0, g, [], [0.0, final])
        e.agents = ["speaker", "listener"]
        e.turns = [
            Turn(0, "speaker", "o", "t", [1], [5], [-1.0], "stop", 0.0, {"individual_reward": 0.0}),
            Turn(
                1,
                "listener",
                "o",
                "t",
                [1],
                [6],
                [-1.0],
                "stop",
                final,
                {"individual_reward": final},
            ),
        ]
        eps.append(e)
    round0, round1 = groups_from_episodes(eps, gamma=1.0)
    assert [r.returns for r in round0.rollouts] == [{"speaker": 1.0}, {"speaker": 0.0}]
    assert [r.returns for r in round1.rollouts] == [{"listener": 1.0}, {"listener": 0.0}]
    alone = groups_from_episodes(eps, gamma=1.0, individual=True)[0]
    assert [r.returns for r in alone.rollouts] == [{"speaker": 0.0}, {"speaker": 0.0}]


@pytest.mark.parametrize("kind", ["separate", "separate_full"])
def test_a_shared_prompt_runs_once_with_the_same_logprobs_and_gradients(kind: str) -> None:
    from agents.policies import padded_logprobs
    from agents.team import ActRequest

    policies = tiny_policies(["a"], kind=kind, seed=5)
    outs = policies.team.act([ActRequest("a", "Same question", s) for s in range(4)])
    outs.append(policies.team.act([ActRequest("a", "Another one", 9)])[0])
    prompts = [o.prompt_token_ids for o in outs]
    cut = [6, 3, 1, 5, 2]  # completions of unequal lengths (the tiny model never stops)
    completions = [o.token_ids[:n] for o, n in zip(outs, cut, strict=True)]
    sampled_logprobs = [o.logprobs[:n] for o, n in zip(outs, cut, strict=True)]
    assert len(set(map(tuple, prompts))) == 2
    params = policies.parameters("a")
    weights = torch.arange(1.0, 6.0)[:, None]

    def loss_and_grads(compute):
        for p in params:
            p.grad = None
        with policies.training("a") as model:
            logprobs = compute(model)
            (logprobs * weights).sum().backward()
        return logprobs.detach(), [p.grad.clone() for p in params]

    steps = max(map(len, completions))
    mask = torch.tensor([[float(j >= steps - n) for j in range(steps)] for n in cut])
    shared, shared_grads = loss_and_grads(
        lambda _: policies.sequence_logprobs("a", prompts, completions)[0]
    )
    alone, alone_grads = loss_and_grads(  # every row with its own copy of the prompt
        lambda model: padded_logprobs(model, prompts, completions, steps, 0) * mask
    )
    assert torch.allclose(shared, alone, atol=1e-4)
    for mine, theirs in zip(shared_grads, alone_grads, strict=True):
        assert torch.allclose(mine, theirs, atol=1e-4, rtol=1e-3)
    sampled = torch.zeros_like(shared)  # and it reproduces what generation sampled
    for row, lp in enumerate(sampled_logprobs):
        sampled[row, steps - len(lp) :] = torch.tensor(lp)
    assert (shared - sampled).abs().max() < 1e-3


def test_micro_batches_keep_a_prompts_completions_together() -> None:
    from marl.trainers.magrpo import Sample, micro_batches

    def sample(prompt: int, k: int) -> Sample:
        return Sample("a", [prompt], [k], [0.0], 1.0)

    samples = [sample(1, 0), sample(2, 0), sample(1, 1), sample(3, 0), sample(2, 1), sample(1, 2)]
    passes = micro_batches(samples, 3)
    assert [[(s.prompt_ids[0], s.token_ids[0]) for s in p] for p in passes] == [
        [(1, 0), (1, 1), (1, 2)],
        [(2, 0), (2, 1), (3, 0)],
    ]
    big = micro_batches([sample(1, k) for k in range(5)], 2)  # one prompt over several passes
    assert [len(p) for p in big] == [2, 2, 1]
    assert sum(map(len, micro_batches(samples, 1))) == len(samples)


def test_one_prompt_under_two_adapters_is_not_shared_between_them() -> None:
    """Generation shares a prompt's prefill only within one adapter: each agent's samples
    of the very same prompt keep its own weights' logprobs."""
    from agents.team import ActRequest

    agents = [LLMAgent(a, "solver", "You are a solver.", "tiny-random", SAMPLING) for a in "ab"]
    lora = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    policies = make_policies(agents, "separate", lora=lora, seed=1)
    with torch.no_grad():
        for p in policies.parameters("b"):
            p.add_(torch.randn_like(p) * 0.5)  # b's adapter far from a's
    outs = policies.team.act([ActRequest(a, "Same", s) for a in "ab" for s in range(3)])
    assert len({tuple(o.prompt_token_ids) for o in outs}) == 1
    for agent, rows in (("a", outs[:3]), ("b", outs[3:])):
        with torch.no_grad(), policies.training(agent):
            logprobs, _ = policies.sequence_logprobs(
                agent, [o.prompt_token_ids for o in rows], [o.token_ids for o in rows]
            )
        sampled = torch.tensor([o.logprobs for o in rows])
        assert (logprobs - sampled).abs().max() < 1e-3
