"""MAGRPO step time: our trainer against the reference `comlrl` MAGRPOTrainer, equal work.

One training prompt is 2 agents x G=4 completions of exactly 32 new tokens on the embedded
SmolLM2-135M-Instruct, one joint reward per joint action, and a policy-gradient update of
each agent's weights. Both sides get the very same prompt token ids (a fixed list of short
arithmetic questions under each agent's chat template), the reference's sampling defaults
(temperature 0.6, top-p 0.6, top-k 50), the same learning rate, and the same reward (mean
answer length in characters / 100), which never makes a group flat, so every completion
goes through a backward pass on both sides. Rows:

| side   | policies                                  | how it runs                           |
| ------ | ----------------------------------------- | ------------------------------------- |
| comlrl | full weights per agent (its only setting) | `MAGRPOTrainer.train()` in a worker   |
| ours   | `separate_full`: full weights per agent   | `run_episodes` + `MAGRPOTrainer.step` |
| comlrl | the same, weights loaded in bfloat16      | with ``--comlrl-bf16``: pure bf16     |
| ours   | `separate_full`, `precision: bf16`        | update passes through a bf16 copy     |
| ours   | `separate`: a LoRA adapter per agent      | the same                              |

A step is ``--tasks-per-step`` prompts (default 2: the reference's default
``rollout_buffer_size=2`` makes one optimiser step per agent per 2 prompts, and so does ours
with 2 tasks per step). The reference runs in its own process under its own virtual
environment (comlrl is not a dependency of the project), driven one step at a time over a
pipe, so its steps interleave with ours and the shared machine's load falls on every row
alike. Model loading is not timed; the first step of each row is a warm-up, not counted.
The table gives the median seconds per training prompt over the timed steps.

Equal work, and what it takes:

- 32 new tokens per completion on both sides: the reference gets ``min_new_tokens=32``
  through ``train(**kwargs)`` (its pass-through to ``generate``); ours has its backends'
  stop tokens cleared. The table counts the tokens each side generated.
- The reference's tokenizer pads with ``<|endoftext|>``: comlrl cuts the prompt at the
  first pad token it finds, and SmolLM2 pads with ``<|im_end|>``, which every chat prompt
  contains, so with the stock tokenizer it would train on half the prompt as if it were
  the completion. The worker checks that its prompt ids equal ours.
- Same transformers (5.19.0) and torch (2.13.0+cpu) on both sides, same thread count.

One torch thread per side by default: on a shared machine, torch's threads wait for each
other at every operation, so any other process's load turned 2-thread timings into 3-10x
swings between identical calls; one thread was steady within ~20%. On a quiet machine
pass ``--threads`` to use more cores.

One-time setup of the reference's environment (``benchmarks/.venv`` is git-ignored; only
torch must come first and pinned, anything unpinned pulls a multi-GB CUDA build):

    python3 -m venv benchmarks/.venv
    benchmarks/.venv/bin/pip install torch==2.13.0
    benchmarks/.venv/bin/pip install comlrl==1.4.3 transformers==5.19.0

Run (a few minutes on 2 CPU cores):

    .venv/bin/python benchmarks/magrpo_step.py [--steps 3] [--comlrl-python PATH]

This file is also the reference's worker (``--worker``), run by that environment's python,
which has neither this project nor rich: each side imports its packages inside its own
functions, and the module level needs only the standard library.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_COMLRL_PYTHON = ROOT / "benchmarks" / ".venv" / "bin" / "python"
SETUP_HINT = (
    "python3 -m venv benchmarks/.venv && benchmarks/.venv/bin/pip install torch==2.13.0 && "
    "benchmarks/.venv/bin/pip install comlrl==1.4.3 transformers==5.19.0"
)

AGENTS = 2
GROUP = 4
NEW_TOKENS = 32
TEMPERATURE, TOP_P, TOP_K = 0.6, 0.6, 50  # comlrl's MAGRPOConfig defaults
LR = 5e-6  # comlrl's default agent_learning_rate
SYSTEM_PROMPT = "You are {id}, a careful {role} on a team. Solve the problem step by step."
QUESTIONS = [
    "What is 23 + 58?",
    "What is 7 * 16?",
    "What is 91 - 47?",
    "What is 12 * 12 + 5?",
    "What is 305 - 128?",
    "What is 64 / 8 + 9?",
    "What is 19 + 27 + 33?",
    "What is 15 * 4 - 11?",
]


def joint_reward(texts: list[str]) -> float:
    """Mean answer length in characters / 100: differs between samples, so no group is flat."""
    return sum(len(t) for t in texts) / len(texts) / 100


def step_tasks(step: int, per_step: int) -> list[int]:
    return [step * per_step + k for k in range(per_step)]


# ------------------------------------------------------------------ ours


def agent_ids(n: int) -> list[str]:
    return [f"agent{i}" for i in range(n)]


def make_prompt_env(ids: list[str]):
    """A one-round ParallelEnv: every agent answers ``QUESTIONS[seed]``; ``joint_reward``."""
    import string
    from typing import ClassVar

    from gymnasium.spaces import Text
    from pettingzoo import ParallelEnv

    from marl.core.bus import MessageBus
    from marl.core.graph import build_graph

    class PromptEnv(ParallelEnv):
        metadata: ClassVar[dict] = {
            "name": "bench_prompts_v0",
            "render_modes": [],
            "is_parallelizable": True,
        }

        def __init__(self):
            self.possible_agents = list(ids)
            self.bus = MessageBus(build_graph(self.possible_agents, "none"))
            self._obs = Text(200, charset=string.printable)
            self._act = Text(4000, min_length=0, charset=string.printable)
            self.agents: list[str] = []

        def observation_space(self, agent):
            return self._obs

        def action_space(self, agent):
            return self._act

        def reset(self, seed=None, options=None):
            self.agents = list(self.possible_agents)
            question = QUESTIONS[seed % len(QUESTIONS)]
            return {a: question for a in self.agents}, {a: {} for a in self.agents}

        def step(self, actions):
            team = joint_reward([actions[a] for a in self.agents])
            done = dict.fromkeys(self.agents, True)
            infos = {a: {"episode": {"score": team}} for a in self.agents}
            self.agents = []
            return {a: "" for a in actions}, dict.fromkeys(done, team), done, done, infos

    return PromptEnv


class OurTrainer:
    """Our side for ``n`` agents: its Policies, a MAGRPOTrainer, and one step of training."""

    def __init__(
        self,
        n: int,
        kind: str,
        tasks_per_step: int,
        precision: str = "fp32",
        micro_batch: int | None = None,
    ):
        from agents.backend import Sampling
        from agents.models import EMBEDDED_MODEL
        from agents.policies import make_policies
        from agents.team import LLMAgent
        from marl.core.config import LoraConfig, RunOptions, TrainConfig
        from marl.trainers.magrpo import MAGRPOTrainer

        sampling = Sampling(
            temperature=TEMPERATURE, top_p=TOP_P, top_k=TOP_K, max_new_tokens=NEW_TOKENS
        )
        ids = agent_ids(n)
        agents = [LLMAgent(a, "solver", SYSTEM_PROMPT, EMBEDDED_MODEL, sampling) for a in ids]
        lora = LoraConfig()
        self.batch_size = RunOptions().batch_size  # `marl train`'s default prompts per call
        self.policies = make_policies(
            agents,
            kind,
            lora={
                "r": lora.r,
                "lora_alpha": lora.alpha,
                "lora_dropout": lora.dropout,
                "target_modules": lora.target_modules,
            },
            max_batch_size=self.batch_size,
        )
        for backend in self.policies.team.backends.values():
            backend.stop_ids = set()  # benchmark only: every completion runs to NEW_TOKENS
        self.config = TrainConfig(
            policy=kind,
            lr=LR,
            group_size=GROUP,
            tasks_per_step=tasks_per_step,
            precision=precision,
            **({"micro_batch": micro_batch} if micro_batch else {}),
        )
        self.trainer = MAGRPOTrainer(self.policies, self.config)
        self.make_env = make_prompt_env(ids)
        self.agents = agents

    def prompt_ids(self, task: int) -> list[list[int]]:
        """Each agent's prompt token ids for ``task``, as its backend encodes them."""
        backends = self.policies.team.backends
        team_agents = self.policies.team.agents
        return [
            backends[team_agents[a.id].model].encode_prompt(
                a.messages(QUESTIONS[task % len(QUESTIONS)])
            )
            for a in self.agents
        ]

    def rollout(self, step: int) -> list:
        """The episodes of ``step``: G rollouts of each task of ``step_tasks(step)``."""
        from marl.rollouts.engine import run_episodes

        tasks = step_tasks(step, self.config.tasks_per_step)
        return run_episodes(
            self.make_env,
            self.policies.team,
            [t for t in tasks for _ in range(GROUP)],
            samples=[step * GROUP + g for _ in tasks for g in range(GROUP)],
            batch_size=self.batch_size,
        )

    def update(self, episodes: list) -> dict[str, float]:
        """One optimiser step per policy from those episodes' groups."""
        from marl.trainers.magrpo import groups_from_episodes

        stats = self.trainer.step(groups_from_episodes(episodes, self.config.gamma))
        return {"flat_groups": stats["flat_group_fraction"]}  # > 0 would skip backward passes

    def step(self, step: int) -> dict[str, float]:
        """One training step, timed: rollouts, then the update."""
        start = time.perf_counter()
        episodes = self.rollout(step)
        rollout = time.perf_counter() - start
        stats = self.update(episodes)
        return stats | {
            "seconds": time.perf_counter() - start,
            "rollout_seconds": rollout,
            "tokens": sum(e.completion_tokens for e in episodes),
        }


# ------------------------------------------------------------------ the reference's worker


def comlrl_worker(threads: int) -> None:
    """Runs under the reference's python: a setup line in, then one JSON line per step."""
    reply = os.fdopen(os.dup(1), "w", buffering=1)  # the protocol's channel
    os.dup2(2, 1)  # anything comlrl or transformers prints goes to the log, not the pipe
    try:
        setup = json.loads(sys.stdin.readline())
        os.environ.setdefault("WANDB_MODE", "disabled")
        import torch
        import transformers
        from comlrl.trainers.reinforce.magrpo import MAGRPOConfig, MAGRPOTrainer

        torch.set_num_threads(threads)
        torch.manual_seed(0)
        counts = {"tokens": 0, "rollout_seconds": 0.0}

        class CountingTrainer(MAGRPOTrainer):
            """Counts and times each agent's generation; changes no work."""

            def _generate_completions(self, *args, **kwargs):
                start = time.perf_counter()
                out = super()._generate_completions(*args, **kwargs)
                counts["rollout_seconds"] += time.perf_counter() - start
                counts["tokens"] += sum(out["response_lens"])
                return out

        path = setup["model"]
        tokenizers = []
        for _ in range(AGENTS):
            tok = transformers.AutoTokenizer.from_pretrained(path)
            tok.pad_token = "<|endoftext|>"  # see the module docstring: not <|im_end|>
            tokenizers.append(tok)
        texts = {
            int(task): [
                tokenizers[0].apply_chat_template(m, tokenize=False, add_generation_prompt=True)
                for m in messages
            ]
            for task, messages in setup["messages"].items()
        }
        same_prompts = all(
            tokenizers[0](text).input_ids == ids
            for task, expected in setup["prompt_ids"].items()
            for text, ids in zip(texts[int(task)], expected, strict=True)
        )
        args = MAGRPOConfig(
            num_train_epochs=1,
            agent_learning_rate=LR,
            num_agents=AGENTS,
            num_generations=GROUP,
            max_new_tokens=NEW_TOKENS,
            temperature=TEMPERATURE,
            top_p=TOP_P,
            top_k=TOP_K,
            num_turns=1,
            eval_interval=0,
            rollout_buffer_size=setup["tasks_per_step"],
        )
        trainer = CountingTrainer(
            agent_model=path,
            num_agents=AGENTS,
            tokenizer=tokenizers,
            reward_func=lambda *completions: [joint_reward([c[0] for c in completions])],
            formatters=[lambda item, i=i: item["texts"][i] for i in range(AGENTS)],
            train_dataset=[],
            args=args,
            model_config={"torch_dtype": setup["dtype"]} if setup.get("dtype") else None,
        )
        trainer.verbose = False  # no progress bars
        import comlrl

        reply.write(
            json.dumps(
                {
                    "ready": True,
                    "comlrl": getattr(comlrl, "__version__", "?"),
                    "torch": torch.__version__,
                    "transformers": transformers.__version__,
                    "dtype": str(trainer.agents[0].dtype),
                    "same_prompts": same_prompts,
                }
            )
            + "\n"
        )
        for line in sys.stdin:
            step = json.loads(line)["step"]
            trainer.train_dataset = [
                {"texts": texts[t]} for t in step_tasks(step, setup["tasks_per_step"])
            ]
            counts.update(tokens=0, rollout_seconds=0.0)
            start = time.perf_counter()
            trainer.train(min_new_tokens=NEW_TOKENS)
            reply.write(json.dumps({"seconds": time.perf_counter() - start, **counts}) + "\n")
    except Exception as err:  # reported to the parent, which says so in its table
        traceback.print_exc()
        reply.write(json.dumps({"error": f"{type(err).__name__}: {err}"}) + "\n")


class ComlrlProcess:
    """The parent's handle on the worker: start it, step it, or say why it could not."""

    def __init__(self, python: Path, setup: dict[str, Any], threads: int):
        # the worker's stderr: its traceback, when it fails, ends up in our report
        self.log = tempfile.NamedTemporaryFile("w+", prefix="comlrl-worker-", suffix=".log")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(python), str(Path(__file__).resolve()), "--worker", "--threads", str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env={**os.environ, "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1"},
        )
        self.info = self._ask(setup)

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the comlrl worker exited ({self.proc.wait()}): {self.log_tail()}")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{answer['error']} (log: {self.log_tail()})")
        return answer

    def step(self, step: int) -> dict[str, float]:
        return self._ask({"step": step})

    def log_tail(self, lines: int = 3) -> str:
        self.log.seek(0)
        return " | ".join(self.log.read().strip().splitlines()[-lines:])

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.log.close()


# ------------------------------------------------------------------ the run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per row")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps per row")
    parser.add_argument("--tasks-per-step", type=int, default=2, help="prompts per step")
    parser.add_argument("--comlrl-python", type=Path, default=DEFAULT_COMLRL_PYTHON)
    parser.add_argument("--no-lora", action="store_true", help="skip our `separate` LoRA row")
    parser.add_argument(
        "--no-bf16", action="store_true", help="skip our row with `train.precision: bf16`"
    )
    parser.add_argument(
        "--comlrl-bf16",
        action="store_true",
        help="also time comlrl with its weights loaded in bfloat16 (the like-for-like "
        "reference for our bf16 row; it then also steps AdamW in bfloat16)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads on each side; more than 1 only on a quiet machine (see above)",
    )
    parser.add_argument(
        "--micro-batch", type=int, default=None, help="our completions per pass (default: config's)"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        comlrl_worker(args.threads)
        return

    import torch
    from rich.console import Console
    from rich.table import Table

    from agents.models import EMBEDDED_MODEL, resolve_model

    torch.set_num_threads(args.threads)
    console = Console(width=max(Console().width, 110))
    total = args.warmup + args.steps
    rows: dict[str, Any] = {}
    with console.status("loading our separate_full team"):
        rows["ours separate_full"] = OurTrainer(
            AGENTS, "separate_full", args.tasks_per_step, micro_batch=args.micro_batch
        )
    if not args.no_bf16:
        with console.status("loading our separate_full team with bf16 updates"):
            rows["ours separate_full, bf16 update"] = OurTrainer(
                AGENTS,
                "separate_full",
                args.tasks_per_step,
                precision="bf16",
                micro_batch=args.micro_batch,
            )
    if not args.no_lora:
        with console.status("loading our separate LoRA team"):
            rows["ours separate (LoRA)"] = OurTrainer(
                AGENTS, "separate", args.tasks_per_step, micro_batch=args.micro_batch
            )
    ours = rows["ours separate_full"]
    tasks = range(total * args.tasks_per_step)
    setup = {
        "model": resolve_model(EMBEDDED_MODEL),
        "tasks_per_step": args.tasks_per_step,
        "messages": {
            t: [a.messages(QUESTIONS[t % len(QUESTIONS)]) for a in ours.agents] for t in tasks
        },
        "prompt_ids": {t: ours.prompt_ids(t) for t in tasks},
    }
    reference_problem = None
    if not args.comlrl_python.exists():
        reference_problem = f"no python at {args.comlrl_python}; set it up: {SETUP_HINT}"
    else:
        try:
            with console.status("starting the comlrl worker (imports, model load)"):
                reference = ComlrlProcess(args.comlrl_python, setup, args.threads)
            references = {"comlrl MAGRPOTrainer": reference}
            if args.comlrl_bf16:
                with console.status("starting the comlrl worker with bfloat16 weights"):
                    references["comlrl MAGRPOTrainer, bf16 weights"] = ComlrlProcess(
                        args.comlrl_python, {**setup, "dtype": "bfloat16"}, args.threads
                    )
            rows = {**references, **rows}
        except (RuntimeError, OSError) as err:
            reference_problem = str(err)

    load_before = os.getloadavg()[0]
    results: dict[str, list[dict[str, float]]] = {name: [] for name in rows}
    for step in range(total):  # interleaved: each step of every row sees the same load
        for name, side in rows.items():
            if isinstance(side, ComlrlProcess) and reference_problem:
                continue
            with console.status(f"step {step + 1}/{total} ({args.warmup} warm-up): {name}"):
                try:
                    results[name].append(side.step(step))
                except RuntimeError as err:  # only the worker raises it: report, go on
                    reference_problem = str(err)
    load_after = os.getloadavg()[0]

    prompts = args.steps * args.tasks_per_step
    table = Table(
        title=f"MAGRPO training step: {AGENTS} agents, G={GROUP}, {NEW_TOKENS} new tokens, "
        f"SmolLM2-135M-Instruct, CPU ({args.threads} threads)"
    )
    table.add_column("side", no_wrap=True)
    columns = ["s/prompt", "min-max", "rollout", "update", "tokens/prompt", "vs comlrl"]
    bf16_reference = "comlrl MAGRPOTrainer, bf16 weights"
    if args.comlrl_bf16:
        columns.append("vs comlrl bf16")
    for column in columns:
        table.add_column(column, justify="right")
    per_prompt = {
        name: [r["seconds"] / args.tasks_per_step for r in runs[args.warmup :]]
        for name, runs in results.items()
        if len(runs) == total
    }
    reference_seconds = per_prompt.get("comlrl MAGRPOTrainer")
    base = statistics.median(reference_seconds) if reference_seconds else None
    base16 = statistics.median(per_prompt[bf16_reference]) if bf16_reference in per_prompt else None
    for name, seconds in per_prompt.items():
        timed = results[name][args.warmup :]
        median = statistics.median(seconds)
        rollout = statistics.median(r["rollout_seconds"] / args.tasks_per_step for r in timed)
        table.add_row(
            name,
            f"{median:.2f}",
            f"{min(seconds):.2f}-{max(seconds):.2f}",
            f"{rollout:.2f}",
            f"{median - rollout:.2f}",
            f"{sum(r['tokens'] for r in timed) / prompts:.0f}",
            f"{base / median:.2f}x" if base else "-",
            *([f"{base16 / median:.2f}x" if base16 else "-"] if args.comlrl_bf16 else []),
        )
    notes = [
        "seconds per training prompt: median and range over the timed steps; rollout and "
        "update: median generation time and the rest",
        f"{args.steps} timed steps of {args.tasks_per_step} prompts per row after "
        f"{args.warmup} warm-up, rows interleaved; load average {load_before:.1f} -> "
        f"{load_after:.1f}; target: ours (separate_full) >= 3x faster",
    ]
    flat = max(r.get("flat_groups", 0.0) for runs in results.values() for r in runs)
    notes.append(f"share of flat groups (no update) on our side: {flat:.2f}")
    for name, side in rows.items():
        if isinstance(side, ComlrlProcess) and name in per_prompt:
            info = side.info
            notes.append(
                f"{name}: comlrl {info['comlrl']}, torch {info['torch']}, transformers "
                f"{info['transformers']}, {info['dtype']}; same prompt ids: {info['same_prompts']}"
            )
            side.close()
    if reference_problem:
        notes.append(f"[bold red]comlrl not measured:[/] {reference_problem}")
    table.caption = "\n".join(notes)
    console.print(table)


if __name__ == "__main__":
    main()
