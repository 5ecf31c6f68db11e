"""MAGRPO: multi-agent group relative policy optimisation, and its baselines.

Liu, Liang, Lyu, Amato, *LLM Collaboration With Multi-Agent Reinforcement Learning*
(arXiv 2508.04652). For one task, G joint rollouts from the same history form a group;
every agent's completion is scored by the team's return, its advantage is that return
minus the group's baseline, and each agent's own policy takes a REINFORCE-style step.

The objective, for policy p at one training step (each line names the code below):

    R_t        = r_t + gamma * R_{t+1}                 discounted_returns; tree: mean over children
    A_g        = R_g - mean_{g'} R_{g'}                 group_advantages (the paper's `mean`;
                                                        also mean_std, rloo, max), over the G
                                                        siblings g of one group, per agent
    rho_k      = exp(log pi(y_k) - log pi_old(y_k))     per completion token k; pi_old = the
                                                        weights before this step's first pass
    L(y)       = -sum_k min(rho_k A, clip(rho_k, 1 - eps, 1 + eps) A)      policy_loss
                 + beta * sum_k [exp(q_k) - q_k - 1],   q_k = log pi_ref(y_k) - log pi(y_k)
                 (`loss_norm: token` divides both sums by the completion's length)
    loss_p     = (1 / N_p) * sum over the N_p completions y of p in this step of L(y)

* The normaliser N_p counts every completion of p in the step, those with A = 0 too (a
  flat group, or the sample at its group's mean): they add nothing to the gradient and
  are not run, but they count, so loss_p is the mean over groups of the paper's per-group
  mean (groups of equal size) and a step whose groups are mostly flat is a smaller step.
* pi_old is pi on the first pass over the batch, so rho = 1 there and clipping binds from
  the second pass on (`updates_per_batch` > 1); the logprobs recorded at sampling time are
  not used in the loss (with vLLM they come from other kernels), only compared with the
  first pass (``logprob_gap_*`` in the metrics).
* beta = `kl_coef`; pi_ref is the starting policy (a LoRA policy's base without its
  adapter, or a frozen copy of full weights).

Baselines reuse the same code:

| algorithm | reward an agent learns from            | team                       |
| --------- | -------------------------------------- | -------------------------- |
| `magrpo`  | the joint team reward                  | the configured team        |
| `igrpo`   | its own `individual_reward` from infos | the configured team        |
| `grpo`    | the reward of the single-agent task    | the first agent alone      |

Groups come from the rollout engine (``marl.rollouts.engine``): single turn, `aligned`
pairs the g-th samples of every agent, `cross` plays all G^N combinations and scores a
completion by the mean over those it took part in. Multi-turn, `episodes` mode makes G
whole episodes a group at every round (``groups_from_episodes``: cost linear in rounds;
siblings at round t > 0 share the task, not their history), `tree` mode branches G ways
from every history as the reference does (cost G^T; siblings share their history, so the
baseline is per node).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from agents.policies import Policies
from marl.core.config import TrainConfig
from marl.rollouts.records import Episode, Group, JointRollout

# ------------------------------------------------------------------ the algorithm


def discounted_returns(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """R_t = r_t + gamma * R_{t+1} along the last axis. rewards: (..., T) -> (..., T)."""
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in reversed(range(rewards.shape[-1])):
        running = rewards[..., t] + gamma * running
        returns[..., t] = running
    return returns


def group_advantages(returns: torch.Tensor, mode: str = "mean", eps: float = 1e-6) -> torch.Tensor:
    """Advantages over a group of siblings along axis 0. returns: (G, ...) -> (G, ...)."""
    G = returns.shape[0]
    if mode == "mean":  # the paper's choice: R - mean(R)
        return returns - returns.mean(0, keepdim=True)
    if mode == "mean_std":
        return (returns - returns.mean(0, keepdim=True)) / (
            returns.std(0, unbiased=False, keepdim=True) + eps
        )
    if mode == "rloo":  # baseline = mean of the other G-1
        return (G * returns - returns.sum(0, keepdim=True)) / (G - 1)
    if mode == "max":
        return returns - returns.max(0, keepdim=True).values
    raise ValueError(f"unknown advantage mode '{mode}'; known: mean, mean_std, rloo, max")


def policy_loss(
    logprobs: torch.Tensor,  # (B, T) current policy, with gradients
    old_logprobs: torch.Tensor,  # (B, T) policy that sampled the tokens
    advantages: torch.Tensor,  # (B,)
    mask: torch.Tensor,  # (B, T) 1 on completion tokens
    clip_eps: float | None = None,
    ref_logprobs: torch.Tensor | None = None,  # (B, T) frozen reference, for the k3 KL
    kl_coef: float = 0.0,
    loss_norm: str = "sequence",
) -> tuple[torch.Tensor, dict[str, float]]:
    """L(y) of the module docstring for each row, and their mean over the rows.

    On-policy (``old == logprobs``) the gradient is exactly -A * grad(sum log p), clipped
    or not. ``clip_eps=None`` leaves the ratio unclipped (the pure functions' tests).
    """
    ratio = torch.exp(logprobs - old_logprobs)  # (B, T), 1 on-policy
    adv = advantages[:, None]
    surrogate = ratio * adv
    if clip_eps is not None:
        surrogate = torch.minimum(surrogate, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    per_token = -surrogate
    kl = torch.zeros_like(logprobs)
    if ref_logprobs is not None:
        log_ratio = ref_logprobs - logprobs
        kl = torch.exp(log_ratio) - log_ratio - 1  # k3 estimator of KL(policy || reference)
        per_token = per_token + kl_coef * kl
    per_sequence = (per_token * mask).sum(-1)  # (B,)
    tokens = mask.sum(-1).clamp_min(1)
    if loss_norm == "token":
        per_sequence = per_sequence / tokens
    loss = per_sequence.mean()
    stats = {
        "kl": float((kl * mask).sum() / mask.sum().clamp_min(1)),
        "clipped": float(
            (((ratio - 1).abs() > (clip_eps or float("inf"))) * mask).sum()
            / mask.sum().clamp_min(1)
        ),
    }
    return loss, stats


def logprob_gap(
    sampled: torch.Tensor,  # (B, T) recorded by the backend at sampling time
    recomputed: torch.Tensor,  # (B, T) the trainer's forward pass, same weights
    mask: torch.Tensor,  # (B, T) 1 on completion tokens
) -> dict[str, float]:
    """How far the sampler's token logprobs sit from the trainer's for the same tokens.

    Zero up to rounding when the backend runs the trainer's own model; with vLLM (its own
    kernels, maybe bf16) this is the sampler/trainer mismatch, logged every step.
    """
    diff = (sampled.detach() - recomputed.detach()).float()[mask.bool()]  # (tokens,)
    if diff.numel() == 0:
        return {"logprob_gap_mean": 0.0, "logprob_gap_max": 0.0}
    return {
        "logprob_gap_mean": float(diff.abs().mean()),
        "logprob_gap_max": float(diff.abs().max()),
    }


# ------------------------------------------------------------------ plumbing


@dataclass
class Sample:
    """One agent's completion in one round of one rollout, with its advantage."""

    policy: str
    prompt_ids: list[int]
    token_ids: list[int]
    logprobs: list[float]
    advantage: float


def group_samples(
    groups: Sequence[Group], policies: Policies, config: TrainConfig
) -> tuple[list[Sample], dict[str, float]]:
    """Training samples: each agent's return against its siblings' (group-relative)."""
    samples: list[Sample] = []
    flat = total = 0
    for group in groups:
        for agent in group.agents:
            returns = torch.tensor([r.returns[agent] for r in group.rollouts])  # (G,)
            advantages = group_advantages(returns, config.advantage)  # (G,)
            total += 1
            flat += int(bool(returns.std(unbiased=False) == 0))
            for rollout, advantage in zip(group.rollouts, advantages.tolist(), strict=True):
                for turn in rollout.turns:
                    if turn.agent == agent and turn.token_ids:
                        samples.append(
                            Sample(
                                policies.policy_of[agent],
                                turn.prompt_ids,
                                turn.token_ids,
                                turn.logprobs,
                                advantage,
                            )
                        )
    return samples, {"flat_group_fraction": flat / max(1, total)}


def micro_batches(samples: Sequence[Sample], size: int) -> list[list[Sample]]:
    """``samples`` in passes of at most ``size``, completions of one prompt kept together.

    Samples with the same prompt ids (a group's G completions of one turn) share one prompt
    pass in ``Policies.sequence_logprobs``, so a prompt's samples fill a pass before the
    next prompt starts; a prompt with more than ``size`` samples spans several passes.
    """
    by_prompt: dict[tuple[int, ...], list[Sample]] = {}
    for s in samples:
        by_prompt.setdefault(tuple(s.prompt_ids), []).append(s)
    passes: list[list[Sample]] = []
    current: list[Sample] = []
    for same in by_prompt.values():
        if current and len(current) + len(same) > size:
            passes.append(current)
            current = []
        for s in same:
            if len(current) == size:
                passes.append(current)
                current = []
            current.append(s)
    return passes + ([current] if current else [])


def groups_from_episodes(
    episodes: Sequence[Episode], gamma: float, individual: bool = False
) -> list[Group]:
    """`episodes` mode: the G episodes of a task form one group per round.

    Every agent's reward sequence spans the whole episode, also rounds it sits out (a
    speaker who leaves after round 0 still earns the team reward of the last round), and
    R_t = r_t + gamma * R_{t+1} is taken over it. With ``individual`` an agent earns its own
    ``individual_reward`` in the rounds it acts and nothing in the others.
    """
    by_task: dict[int, list[Episode]] = {}
    for episode in episodes:
        by_task.setdefault(episode.seed, []).append(episode)
    groups = []
    for seed, siblings in by_task.items():
        per_round: dict[int, Group] = {}
        for episode in siblings:
            rounds = len(episode.rewards)
            rewards = {
                a: [0.0 if individual else episode.rewards[r] for r in range(rounds)]
                for a in episode.agents
            }
            if individual:
                for turn in episode.turns:
                    if "individual_reward" not in turn.info:
                        raise ValueError(
                            "algorithm 'igrpo' needs an 'individual_reward' in each agent's infos; "
                            f"scenario {episode.scenario} gives none (use magrpo)"
                        )
                    rewards[turn.agent][turn.round] = float(turn.info["individual_reward"])
            returns = {
                a: discounted_returns(torch.tensor(r), gamma).tolist() for a, r in rewards.items()
            }
            for r in range(rounds):
                turns = [t for t in episode.turns if t.round == r]
                acting = list(dict.fromkeys(t.agent for t in turns))
                rollout = JointRollout(
                    turns,
                    {a: rewards[a][r] for a in acting},
                    {a: returns[a][r] for a in acting},
                    metrics=episode.metrics if r == rounds - 1 else {},
                    messages=episode.messages if r == rounds - 1 else [],
                )
                per_round.setdefault(r, Group(seed, r, [])).rollouts.append(rollout)
        groups += [per_round[r] for r in sorted(per_round)]
    return groups


class MAGRPOTrainer:
    """One optimiser per policy; ``step(groups)`` makes one update from one step's groups."""

    def __init__(self, policies: Policies, config: TrainConfig):
        self.policies = policies
        self.config = config
        self.optimizers = {
            # fused: one kernel over all of a policy's tensors instead of a loop per tensor
            name: torch.optim.AdamW(
                policies.parameters(name), lr=config.lr, weight_decay=0.0, fused=True
            )
            for name in policies.policies
        }
        self.schedulers = {
            name: torch.optim.lr_scheduler.LambdaLR(opt, self._lr_factor)
            for name, opt in self.optimizers.items()
        }

    def _lr_factor(self, step: int) -> float:
        c = self.config
        if c.warmup_steps and step < c.warmup_steps:
            return (step + 1) / c.warmup_steps
        progress = min(1.0, (step - c.warmup_steps) / max(1, c.steps - c.warmup_steps))
        if c.lr_schedule == "linear":
            return 1.0 - progress
        if c.lr_schedule == "cosine":
            return 0.5 * (1.0 + torch.cos(torch.tensor(progress * torch.pi)).item())
        return 1.0

    def step(self, groups: Sequence[Group]) -> dict[str, float]:
        samples, stats = group_samples(groups, self.policies, self.config)
        advantages = torch.tensor([s.advantage for s in samples]) if samples else torch.zeros(1)
        stats |= {"advantage_abs_mean": float(advantages.abs().mean()), "samples": len(samples)}
        for policy in self.policies.policies:
            mine = [s for s in samples if s.policy == policy]
            stats |= {f"{policy}/{k}": v for k, v in self._update(policy, mine).items()}
        return stats

    def _update(self, policy: str, samples: list[Sample]) -> dict[str, float]:
        """``updates_per_batch`` optimiser steps on loss_p of ``samples`` (all of p's)."""
        optimizer, scheduler = self.optimizers[policy], self.schedulers[policy]
        c = self.config
        totals = {"loss": 0.0, "kl": 0.0, "clipped": 0.0, "grad_norm": 0.0}
        old: list[torch.Tensor] | None = None  # pi_old per micro-batch, from the first pass
        for _ in range(c.updates_per_batch):
            optimizer.zero_grad(set_to_none=True)
            part, logprobs = self.backward(policy, samples, old)
            if not logprobs:  # every sample has A = 0 and no KL: no gradient, nothing to run
                break
            if old is None:
                old = logprobs
                totals |= {k: part[k] for k in ("logprob_gap_mean", "logprob_gap_max")}
            for key in ("loss", "kl", "clipped"):
                totals[key] += part[key] / c.updates_per_batch
            norm = torch.nn.utils.clip_grad_norm_(self.policies.parameters(policy), c.max_grad_norm)
            totals["grad_norm"] += float(norm) / c.updates_per_batch
            optimizer.step()
        if old is None:  # keep the schedule going; a step without gradients changes nothing
            optimizer.step()
        scheduler.step()
        return totals | {"lr": scheduler.get_last_lr()[0]}

    def backward(
        self, policy: str, samples: list[Sample], old: list[torch.Tensor] | None = None
    ) -> tuple[dict[str, float], list[torch.Tensor]]:
        """Add the gradient of loss_p over ``samples`` to the policy's ``.grad``.

        ``old``: pi_old's token logprobs per micro-batch, as a first pass returned them;
        ``None`` on the first pass, where pi_old is the current policy. Returns the pass's
        stats and its detached token logprobs per micro-batch (empty when no sample needs a
        pass: all have A = 0 and there is no KL term).
        """
        c = self.config
        normaliser = len(samples)  # N_p: the A = 0 samples count, though they are not run
        active = [s for s in samples if s.advantage != 0.0 or c.kl_coef > 0]
        stats = {"loss": 0.0, "kl": 0.0, "clipped": 0.0}
        logprobs_out: list[torch.Tensor] = []
        if not active:
            return stats, logprobs_out
        stats |= {"logprob_gap_mean": 0.0, "logprob_gap_max": 0.0}
        active_tokens = sum(len(s.token_ids) for s in active)
        # bf16: the passes run through a bfloat16 copy; gradients, the optimiser and
        # generation stay on the fp32 weights
        with self.policies.training(policy, c.precision):
            for n, chunk in enumerate(micro_batches(active, c.micro_batch)):
                prompts = [s.prompt_ids for s in chunk]
                completions = [s.token_ids for s in chunk]
                logprobs, mask = self.policies.sequence_logprobs(policy, prompts, completions)
                logprobs_out.append(logprobs.detach())
                if old is None:  # the weights that sampled: how far the sampler's logprobs sit
                    sampled = torch.zeros_like(logprobs)
                    for row, s in enumerate(chunk):  # right aligned, like mask
                        sampled[row, sampled.shape[1] - len(s.logprobs) :] = torch.tensor(
                            s.logprobs
                        )
                    gap = logprob_gap(sampled, logprobs, mask)
                    share = float(mask.sum()) / active_tokens  # a mean over all tokens
                    stats["logprob_gap_mean"] += gap["logprob_gap_mean"] * share
                    stats["logprob_gap_max"] = max(
                        stats["logprob_gap_max"], gap["logprob_gap_max"]
                    )
                ref = None
                if c.kl_coef > 0:
                    ref, _ = self.policies.sequence_logprobs(
                        policy, prompts, completions, reference=True
                    )
                loss, part = policy_loss(
                    logprobs,
                    logprobs.detach() if old is None else old[n],
                    torch.tensor([s.advantage for s in chunk]),
                    mask,
                    clip_eps=c.clip_eps,
                    ref_logprobs=ref,
                    kl_coef=c.kl_coef,
                    loss_norm=c.loss_norm,
                )
                weight = len(chunk) / normaliser  # policy_loss is a mean over the chunk's rows
                (loss * weight).backward()
                stats["loss"] += loss.item() * weight
                stats["kl"] += part["kl"] * len(chunk) / len(active)
                stats["clipped"] += part["clipped"] * len(chunk) / len(active)
        return stats, logprobs_out
