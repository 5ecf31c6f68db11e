"""Collaboration metrics: pure functions over transcript records and metrics lines.

Every function takes what a run folder holds (episode records from ``transcripts.msgpack``,
read with ``marl.core.codec.TranscriptReader``; lines of ``metrics.jsonl``) and returns a small
frozen dataclass with ``to_dict()`` or a plain dict, all JSON-serialisable. Nothing here
reads files or changes a run.

What each one measures, and why:

* `team_gain`: team score minus the best and the mean single score on the same task
  seeds, with paired bootstrap intervals over tasks. Is the team better than its best
  member alone, or only than the average one; and can the tasks played tell.
* `answer_dynamics`: per round, agreement and accuracy; per agent between rounds,
  wrong->right, right->wrong, ...; the majority vote against each member. Does talking
  fix wrong answers or spread them (Du et al. 2023 report both); does the vote rescue a
  wrong member or drown a right one.
* `influence`: per edge u->v, how often v takes up the answer u sent, over the chances it
  had; PageRank over that graph; the edges used against the configured graph. Whom the
  team follows, and which configured edges never carried anything.
* `communication_cost`: messages, characters, completion and prompt tokens per episode,
  agent and edge; score per 1k completion tokens. What collaboration costs, and whether
  the score is worth it.
* `training_summary`: series from a training run's `metrics.jsonl`: reward, advantage
  spread, KL and loss per policy, the held-out team against each agent alone. Did
  training move the team, and did it learn to collaborate (the gain) or only to solve
  alone.

Definitions used throughout:

* an *answer turn* is a turn whose ``info`` has both ``answer`` and ``correct`` (debate_v0,
  wordmath_v0, relay_v0's last round); other turns (a referential speaker, a coder) are
  skipped, and a scenario without answers gives empty results, never an error;
* an answer is *right* when ``info["correct"]`` is true, *wrong* when parsed but not right,
  *none* when unparsed (``answer`` is None); these are the states of ``STATES``;
* *agreement* of a round is the fraction of the agents answering that round who hold the
  round's modal parsed answer (unparsed answers count in the denominator, never as the
  mode), which is what debate_v0 reports as ``consensus`` for the final round;
* the *majority* of a round is its modal parsed answer, a tie going to the one given first
  in team order (debate_v0's vote); it is right when the agents holding it are right.

Deliberately left out: significance tests beyond the bootstrap interval, and metrics that
need the scenario's own semantics (e.g. which referential pick a message implied).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import networkx as nx
import numpy as np

from marl.core.stats import MIN_TASKS

STATES: tuple[str, ...] = ("right", "wrong", "none")
TRANSITIONS: tuple[str, ...] = (
    "wrong->right",
    "right->wrong",
    "wrong->wrong_other",  # a wrong answer changed to another wrong answer
    "unchanged_right",
    "unchanged_wrong",
    "none->right",
    "none->wrong",
    "right->none",
    "wrong->none",
    "none->none",
)


class _Dict:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


def records_of(records: Iterable[Mapping[str, Any]], phase: str) -> list[Mapping[str, Any]]:
    """The records of one phase ("team", "single", "single:<id>", "ablate:<id>")."""
    return [r for r in records if r.get("phase") == phase]


def episode_score(record: Mapping[str, Any]) -> float:
    """The episode's score: the scenario's ``metrics["score"]``, else the team return."""
    metrics = record.get("metrics") or {}
    return float(metrics["score"] if "score" in metrics else record["return"])


def failed(record: Mapping[str, Any]) -> bool:
    """An episode that scored 0. A tree node where the episode goes on is no episode: it has
    not failed, whatever its immediate reward."""
    if record.get("node") and not record.get("metrics"):
        return False
    return episode_score(record) == 0


def tasks_of_tree(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Tree-mode training records (``node: True``) joined per task (step, seed): all of its
    turns and messages, and the mean score of its ended branches. A tree is what one task
    costs in training, so costs read per task, not per node."""
    by_task: dict[tuple[int, int], list[Mapping[str, Any]]] = {}
    for record in records:
        by_task.setdefault((record["step"], record["seed"]), []).append(record)
    tasks = []
    for (step, seed), nodes in by_task.items():
        ended = [episode_score(n) for n in nodes if n.get("metrics")]
        tasks.append(
            {
                "step": step,
                "seed": seed,
                "agents": list(dict.fromkeys(a for n in nodes for a in n["agents"])),
                "turns": [t for n in nodes for t in n["turns"]],
                "messages": [m for n in nodes for m in n["messages"]],
                "metrics": {"score": sum(ended) / len(ended)} if ended else {},
                "return": 0.0,
            }
        )
    return tasks


# ------------------------------------------------------------------ team gain


@dataclass(frozen=True)
class Gain(_Dict):
    team: float  # mean team score over the common tasks
    best_single_agent: str  # the agent with the best mean score alone (first in order on a tie)
    best_single: float
    mean_single: float  # the mean over agents of each one's mean score alone
    gain_vs_best: float  # team - best_single
    gain_vs_mean: float  # team - mean_single
    ci_vs_best: tuple[float, float] | None  # percentile bootstrap over tasks; None: too few
    ci_vs_mean: tuple[float, float] | None
    tasks: int  # task seeds common to the team and every single agent


def scores_by_seed(records: Iterable[Mapping[str, Any]], phase: str) -> dict[int, float]:
    """Mean episode score per task seed over the records of ``phase``."""
    by_seed: dict[int, list[float]] = {}
    for record in records_of(records, phase):
        by_seed.setdefault(int(record["seed"]), []).append(episode_score(record))
    return {seed: sum(s) / len(s) for seed, s in by_seed.items()}


def singles_by_seed(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[int, float]]:
    """Each agent's score alone per task seed: phases ``single:<id>`` (`marl eval`) and
    ``single`` (`marl simulate`, its one agent)."""
    records = list(records)
    out: dict[str, dict[int, float]] = {}
    for phase in dict.fromkeys(r.get("phase") for r in records):
        if phase == "single" or (isinstance(phase, str) and phase.startswith("single:")):
            agent = next(r for r in records if r.get("phase") == phase)["agents"][0]
            out[agent] = scores_by_seed(records, phase)
    return out


def team_gain(
    team: Mapping[int, float],
    singles: Mapping[str, Mapping[int, float]],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    min_tasks: int = MIN_TASKS,
) -> Gain:
    """The team against its agents alone on the task seeds all of them played.

    ``team``: score per task seed; ``singles``: per agent, its score alone per seed. The best
    single agent is chosen once on all common tasks; the intervals resample tasks with
    replacement, pairing the team's and the singles' scores of each task (a seeded numpy
    generator, so the result is reproducible); fewer than ``min_tasks`` common tasks give
    none (an interval over 4 tasks is mostly those 4). Raises ``ValueError`` when no seed
    is common.
    """
    if not singles:
        raise ValueError("team_gain needs at least one single agent's scores")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    seeds = sorted(set(team).intersection(*(set(s) for s in singles.values())))
    if not seeds:
        raise ValueError("no task seed is common to the team and every single agent")
    agents = list(singles)
    team_scores = np.array([team[s] for s in seeds], dtype=float)  # (T,)
    single_scores = np.array(
        [[singles[a][s] for s in seeds] for a in agents], dtype=float
    )  # (A, T)
    means = single_scores.mean(axis=1)  # (A,)
    best = int(np.argmax(means))  # argmax keeps the first of equal means
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(seeds), size=(resamples, len(seeds)))  # (R, T) task indices
    team_boot = team_scores[picks].mean(axis=1)  # (R,)
    vs_best = team_boot - single_scores[best][picks].mean(axis=1)
    vs_mean = team_boot - single_scores[:, picks].mean(axis=(0, 2))
    tail = (1 - confidence) / 2
    return Gain(
        team=float(team_scores.mean()),
        best_single_agent=agents[best],
        best_single=float(means[best]),
        mean_single=float(means.mean()),
        gain_vs_best=float(team_scores.mean() - means[best]),
        gain_vs_mean=float(team_scores.mean() - means.mean()),
        ci_vs_best=_interval(vs_best, tail) if len(seeds) >= min_tasks else None,
        ci_vs_mean=_interval(vs_mean, tail) if len(seeds) >= min_tasks else None,
        tasks=len(seeds),
    )


def _interval(samples: np.ndarray, tail: float) -> tuple[float, float]:
    lo, hi = np.quantile(samples, [tail, 1 - tail])
    return float(lo), float(hi)


# ------------------------------------------------------------------ answer dynamics

# round -> agent -> (parsed answer or None, correct)
_Answers = dict[int, dict[str, tuple[Any, bool]]]


def _answers(record: Mapping[str, Any]) -> tuple[_Answers, int]:
    """The answer turns of an episode by round and agent, and how many turns had none."""
    table: _Answers = {}
    skipped = 0
    for turn in record["turns"]:
        info = turn.get("info") or {}
        if "answer" not in info or "correct" not in info:
            skipped += 1
            continue
        table.setdefault(int(turn["round"]), {})[turn["agent"]] = (
            info["answer"],
            bool(info["correct"]),
        )
    return table, skipped


def _state(answer: Any, correct: bool) -> str:
    if answer is None:
        return "none"
    return "right" if correct else "wrong"


def _majority(answers: Mapping[str, tuple[Any, bool]], order: Sequence[str]) -> tuple[Any, bool]:
    """The modal parsed answer (a tie: the one given first in team order) and its correctness."""
    ordered = [a for a in order if a in answers] + [a for a in answers if a not in order]
    counts = Counter(answers[a][0] for a in ordered if answers[a][0] is not None)
    if not counts:
        return None, False
    top = max(counts.values())
    for agent in ordered:  # Counter keeps first-seen order, but say it explicitly
        answer, _ = answers[agent]
        if answer is not None and counts[answer] == top:
            return answer, any(c for a, c in answers.values() if a == answer)
    raise AssertionError("unreachable: a counted answer has an agent")


def _transition(before: tuple[Any, bool], after: tuple[Any, bool]) -> str:
    s, t = _state(*before), _state(*after)
    if s == t == "right":
        return "unchanged_right"
    if s == t == "wrong":
        return "unchanged_wrong" if before[0] == after[0] else "wrong->wrong_other"
    return f"{s}->{t}"


@dataclass(frozen=True)
class Dynamics(_Dict):
    episodes: int  # records with at least one answer turn
    skipped_turns: int  # turns without an answer (other roles, other scenarios)
    agreement: list[float]  # per round, mean over episodes (see the module docstring)
    accuracy: list[float]  # per round, fraction of answer turns that are right
    answers: list[int]  # per round, answer turns counted
    transitions: dict[str, int]  # TRANSITIONS -> count, over agents and consecutive rounds
    transitions_by_agent: dict[str, dict[str, int]]
    # "r->r+1" -> 3x3 counts, rows: state at r, columns: state at r+1, both in STATES order
    transition_matrices: dict[str, list[list[int]]]
    states: tuple[str, ...]
    majority_right_individual_wrong: int  # agent-rounds: the vote right, this agent not
    individual_right_majority_wrong: int  # agent-rounds: this agent right, the vote not
    majority_right_individual_wrong_rate: float | None  # over agent-rounds with the vote right
    individual_right_majority_wrong_rate: float | None  # over agent-rounds with the vote wrong

    @property
    def unchanged(self) -> int:
        return self.transitions["unchanged_right"] + self.transitions["unchanged_wrong"]


def answer_dynamics(records: Iterable[Mapping[str, Any]]) -> Dynamics:
    """How answers move over the rounds of debate-like episodes (pass one phase's records).

    Majority comparisons count only rounds where at least two agents answered.
    """
    episodes = skipped = 0
    agreement: dict[int, list[float]] = {}
    right: Counter[int] = Counter()
    answered: Counter[int] = Counter()
    transitions: Counter[str] = Counter()
    by_agent: dict[str, Counter[str]] = {}
    matrices: dict[str, np.ndarray] = {}
    maj_right_ind_wrong = ind_right_maj_wrong = vote_right = vote_wrong = 0
    for record in records:
        table, missing = _answers(record)
        skipped += missing
        if not table:
            continue
        episodes += 1
        for r, answers in table.items():
            parsed = Counter(a for a, _ in answers.values() if a is not None)
            agreement.setdefault(r, []).append(
                max(parsed.values()) / len(answers) if parsed else 0.0
            )
            answered[r] += len(answers)
            right[r] += sum(c for _, c in answers.values())
            if len(answers) >= 2:
                _, majority_right = _majority(answers, record["agents"])
                for _, correct in answers.values():
                    if majority_right:
                        vote_right += 1
                        maj_right_ind_wrong += not correct
                    else:
                        vote_wrong += 1
                        ind_right_maj_wrong += correct
            following = table.get(r + 1, {})
            for agent, before in answers.items():
                if agent not in following:
                    continue
                after = following[agent]
                kind = _transition(before, after)
                transitions[kind] += 1
                by_agent.setdefault(agent, Counter())[kind] += 1
                matrix = matrices.setdefault(f"{r}->{r + 1}", np.zeros((3, 3), dtype=int))
                matrix[STATES.index(_state(*before)), STATES.index(_state(*after))] += 1
    rounds = sorted(answered)
    return Dynamics(
        episodes=episodes,
        skipped_turns=skipped,
        agreement=[sum(agreement[r]) / len(agreement[r]) for r in rounds],
        accuracy=[right[r] / answered[r] for r in rounds],
        answers=[answered[r] for r in rounds],
        transitions={k: transitions[k] for k in TRANSITIONS},
        transitions_by_agent={a: {k: c[k] for k in TRANSITIONS} for a, c in by_agent.items()},
        transition_matrices={
            k: matrices[k].tolist() for k in sorted(matrices, key=lambda k: int(k.split("->")[0]))
        },
        states=STATES,
        majority_right_individual_wrong=maj_right_ind_wrong,
        individual_right_majority_wrong=ind_right_maj_wrong,
        majority_right_individual_wrong_rate=_rate(maj_right_ind_wrong, vote_right),
        individual_right_majority_wrong_rate=_rate(ind_right_maj_wrong, vote_wrong),
    )


def _rate(count: int, total: int) -> float | None:
    return count / total if total else None


# ------------------------------------------------------------------ influence


@dataclass(frozen=True)
class EdgeInfluence(_Dict):
    sender: str
    recipient: str
    deliveries: int  # messages u sent that reached v
    opportunities: int  # rounds where u told v a parsed answer different from v's own
    adoptions: int  # ... and v gave u's answer in the next round
    rate: float | None  # adoptions / opportunities; None without opportunities


@dataclass(frozen=True)
class Influence(_Dict):
    episodes: int
    agents: list[str]
    edges: list[EdgeInfluence]  # every edge that carried a message, sorted
    pagerank: dict[str, float]  # high: an agent others follow (see influence())
    out_strength: dict[str, float]  # sum of adoption rates on out-edges: how much it is followed
    in_strength: dict[str, float]  # sum of adoption rates on in-edges: how much it follows
    configured_unused: list[tuple[str, str]] | None  # configured edges that carried nothing
    unconfigured_used: list[tuple[str, str]] | None  # used edges not configured (should be none)
    jaccard: float | None  # |used & configured| / |used | configured|

    def graph(self) -> nx.DiGraph:
        return influence_graph(self.agents, self.edges)


def influence_graph(agents: Sequence[str], edges: Iterable[EdgeInfluence]) -> nx.DiGraph:
    """The influence graph: u -> v weighted by v's adoption rate of u's answers (0 when it
    had no chance), with deliveries, opportunities and adoptions as edge attributes."""
    graph = nx.DiGraph()
    graph.add_nodes_from(agents)
    for e in edges:
        graph.add_edge(
            e.sender,
            e.recipient,
            weight=e.rate or 0.0,
            deliveries=e.deliveries,
            opportunities=e.opportunities,
            adoptions=e.adoptions,
        )
    return graph


def influence(
    records: Iterable[Mapping[str, Any]], edges: Iterable[tuple[str, str]] | None = None
) -> Influence:
    """Who adopts whose answer along the edges that carried messages.

    For a message from u to v sent in round r: an *opportunity* when u's and v's answers of
    round r are both parsed and differ and v answers in round r + 1; an *adoption* when v's
    answer of round r + 1 is u's answer of round r. Several messages u -> v in one round
    count once. PageRank runs on the reversed influence graph (each follower points at whom
    it followed, weighted by the rate), so rank flows to the agents the others follow.
    ``edges``: the configured interaction graph to compare with (None: no comparison).
    """
    agents: list[str] = []
    deliveries: Counter[tuple[str, str]] = Counter()
    opportunities: Counter[tuple[str, str]] = Counter()
    adoptions: Counter[tuple[str, str]] = Counter()
    episodes = 0
    for record in records:
        episodes += 1
        agents += [a for a in record["agents"] if a not in agents]
        table, _ = _answers(record)
        heard: set[tuple[str, str, int]] = set()
        for message in record["messages"]:
            for recipient in message["recipients"]:
                deliveries[(message["sender"], recipient)] += 1
                heard.add((message["sender"], recipient, int(message["round"])))
        for u, v, r in heard:
            said = table.get(r, {}).get(u, (None, False))[0]
            own = table.get(r, {}).get(v, (None, False))[0]
            if said is None or own is None or said == own or v not in table.get(r + 1, {}):
                continue
            opportunities[(u, v)] += 1
            adoptions[(u, v)] += table[r + 1][v][0] == said
    used = sorted(deliveries)
    result = [
        EdgeInfluence(
            u,
            v,
            deliveries[e],
            opportunities[e],
            adoptions[e],
            _rate(adoptions[e], opportunities[e]),
        )
        for e in used
        for u, v in [e]
    ]
    configured = None if edges is None else sorted({(u, v) for u, v in edges})
    graph = influence_graph(agents, result)
    pagerank = nx.pagerank(graph.reverse(copy=True), weight="weight") if agents else {}
    union = set(used) | set(configured or [])
    return Influence(
        episodes=episodes,
        agents=agents,
        edges=result,
        pagerank={a: float(pagerank[a]) for a in agents},
        out_strength={a: float(graph.out_degree(a, weight="weight")) for a in agents},
        in_strength={a: float(graph.in_degree(a, weight="weight")) for a in agents},
        configured_unused=None if configured is None else sorted(set(configured) - set(used)),
        unconfigured_used=None if configured is None else sorted(set(used) - set(configured)),
        jaccard=None
        if configured is None
        else (len(set(used) & set(configured)) / len(union) if union else 1.0),
    )


# ------------------------------------------------------------------ communication cost


@dataclass(frozen=True)
class EdgeCost(_Dict):
    sender: str
    recipient: str
    deliveries: float  # per episode
    chars: float  # characters delivered per episode


@dataclass(frozen=True)
class Cost(_Dict):
    episodes: int
    messages: float  # per episode: messages sent
    deliveries: float  # per episode: (message, recipient) pairs
    message_chars: float  # per episode: characters sent (each message once)
    completion_tokens: float  # per episode
    prompt_tokens: float  # per episode
    score: float | None  # mean episode score
    score_per_1k_tokens: float | None  # score / (completion tokens / 1000); None without tokens
    # per agent, per episode: turns, completion_tokens, prompt_tokens, messages, message_chars
    per_agent: dict[str, dict[str, float]]
    per_edge: list[EdgeCost]  # sorted by (sender, recipient)


def _prompt_tokens(turn: Mapping[str, Any]) -> int:
    """Prompt length of a turn: its ``prompt_ids``, or the count older records kept."""
    return len(turn["prompt_ids"]) if "prompt_ids" in turn else int(turn.get("prompt_tokens", 0))


def communication_cost(records: Iterable[Mapping[str, Any]]) -> Cost:
    """What the episodes cost in messages and tokens, and the score bought with them."""
    records = list(records)
    n = len(records)
    totals: Counter[str] = Counter()
    agents: dict[str, Counter[str]] = {}
    edges: dict[tuple[str, str], Counter[str]] = {}
    scores = []
    for record in records:
        scores.append(episode_score(record))
        for turn in record["turns"]:
            mine = agents.setdefault(turn["agent"], Counter())
            completion, prompt = len(turn["token_ids"]), _prompt_tokens(turn)
            mine.update(turns=1, completion_tokens=completion, prompt_tokens=prompt)
            totals.update(completion_tokens=completion, prompt_tokens=prompt)
        for message in record["messages"]:
            chars = len(message["content"])
            totals.update(messages=1, message_chars=chars, deliveries=len(message["recipients"]))
            sender = agents.setdefault(message["sender"], Counter())
            sender.update(messages=1, message_chars=chars)
            for recipient in message["recipients"]:
                edges.setdefault((message["sender"], recipient), Counter()).update(
                    deliveries=1, chars=chars
                )
    per = max(n, 1)
    keys = ("turns", "completion_tokens", "prompt_tokens", "messages", "message_chars")
    score = sum(scores) / n if n else None
    tokens = totals["completion_tokens"] / per
    return Cost(
        episodes=n,
        messages=totals["messages"] / per,
        deliveries=totals["deliveries"] / per,
        message_chars=totals["message_chars"] / per,
        completion_tokens=tokens,
        prompt_tokens=totals["prompt_tokens"] / per,
        score=score,
        score_per_1k_tokens=score / (tokens / 1000) if score is not None and tokens else None,
        per_agent={a: {k: c[k] / per for k in keys} for a, c in agents.items()},
        per_edge=[
            EdgeCost(u, v, c["deliveries"] / per, c["chars"] / per)
            for (u, v), c in sorted(edges.items())
        ],
    )


# ------------------------------------------------------------------ training


_POLICY_STATS = ("loss", "kl", "grad_norm", "clipped", "lr")
_STEP_SERIES = (
    "reward_mean",
    "reward_std",
    "score_mean",
    "advantage_abs_mean",
    "flat_group_fraction",
    "tokens",
    "seconds",
)


def training_summary(metrics_lines: list[dict[str, Any]]) -> dict[str, Any]:
    """Series from a training run's ``metrics.jsonl`` lines (``marl.commands.train``).

    Returns a JSON-serialisable dict:

    * ``steps``: the training steps (lines with ``reward_mean``); every step series below is
      aligned with it, None where a line lacks the key: ``reward_mean``, ``reward_std``,
      ``score_mean``, ``advantage_abs_mean`` and ``flat_group_fraction`` (the advantage
      spread: mean |advantage|, and the share of groups whose returns were all equal, which
      teach nothing), ``tokens``, ``seconds``;
    * ``reward_by_agent``: agent -> mean return at its first turn per step
      (``reward_mean/<agent>``; the team reward under magrpo, its own under igrpo; empty for
      runs logged before it existed);
    * ``policies``: policy (an agent, or ``shared``) -> ``loss``, ``kl``, ``grad_norm``,
      ``clipped``, ``lr`` series; ``kl``: policy -> its KL series (the same numbers);
    * ``eval``: ``steps``, ``team``, ``best_single``, ``team_gain`` and ``singles``
      (agent -> series) at the held-out evaluations (lines with ``eval/team``, step 0 = the
      untrained team);
    * ``first_eval``, ``last_eval``: the eval values of the first and last evaluation
      (``step`` included), ``eval_change``: last minus first per value (None without two
      evaluations).
    """
    train = [line for line in metrics_lines if "reward_mean" in line]
    evals = [line for line in metrics_lines if "eval/team" in line]
    policies = sorted(
        {k.split("/")[0] for line in train for k in line if k.endswith("/loss") and "/" in k}
    )
    agents_rewarded = sorted(
        {k.split("/", 1)[1] for line in train for k in line if k.startswith("reward_mean/")}
    )
    singles = sorted(
        {k.removeprefix("eval/single/") for line in evals for k in line if "eval/single/" in k}
    )
    summary: dict[str, Any] = {"steps": [line["step"] for line in train]}
    summary |= {key: [line.get(key) for line in train] for key in _STEP_SERIES}
    summary["reward_by_agent"] = {
        a: [line.get(f"reward_mean/{a}") for line in train] for a in agents_rewarded
    }
    summary["policies"] = {
        p: {s: [line.get(f"{p}/{s}") for line in train] for s in _POLICY_STATS} for p in policies
    }
    summary["kl"] = {p: summary["policies"][p]["kl"] for p in policies}
    summary["eval"] = {
        "steps": [line["step"] for line in evals],
        "team": [line["eval/team"] for line in evals],
        "best_single": [line.get("eval/best_single") for line in evals],
        "team_gain": [line.get("eval/team_gain") for line in evals],
        "singles": {a: [line.get(f"eval/single/{a}") for line in evals] for a in singles},
        # the equal-compute line (``train.eval_baselines``): None where it was not scored
        "self_consistency": [line.get("eval/self_consistency") for line in evals],
    }
    first, last = (_eval_point(evals[0]), _eval_point(evals[-1])) if evals else (None, None)
    summary["first_eval"], summary["last_eval"] = first, last
    summary["eval_change"] = (
        {
            k: last[k] - first[k]
            for k in first
            if k != "step" and _is_number(first[k]) and _is_number(last.get(k))
        }
        if first is not None and last is not None and len(evals) >= 2
        else None
    )
    return summary


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _eval_point(line: Mapping[str, Any]) -> dict[str, Any]:
    return {"step": line["step"]} | {
        k.removeprefix("eval/"): v for k, v in line.items() if k.startswith("eval/")
    }
