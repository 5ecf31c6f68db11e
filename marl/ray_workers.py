"""Ray scale-out for `marl train`: rollouts in N Ray actors, the trainer in this process.

| config (`resources:`)  | what it does                                                      |
| ---------------------- | ----------------------------------------------------------------- |
| `workers: N`           | N ``RolloutWorker`` actors; each holds its own scenario envs and  |
|                        | a copy of the policies (transformers, or vLLM with `backend`)     |
| `ray_address`          | join a running cluster (`ray start --head` / `--address=...`);    |
|                        | without it a local instance starts: the workers' CPUs, no dashboard |
| `cpus_per_worker`      | CPUs reserved per worker; also its torch threads                  |
| `gpus_per_worker`      | GPUs reserved per worker                                          |
| `max_worker_restarts`  | Ray restarts a dead worker this often; its share is redone        |
| `imports`              | modules every worker imports first (your own scenarios)           |

One training step: the step's tasks are split into contiguous shares, one per worker;
each worker plays its share with ``marl.train.collect_groups`` (sampling seeds depend on
the task, step and sample only, so the split does not change what is sampled) and sends
the groups back as msgpack frames (``marl.core.codec``), which the driver decodes under the
codec's limits. Held-out evaluations are split the same way. Transcripts, metrics and
checkpoints are written by the driver only.

Weights: after each update the driver puts ``PolicySet.state_dict()`` in the object store
once (the LoRA adapters for `separate` / `shared`, every weight for `separate_full`) and
every worker loads it (``set_weights``). Each rollout call also names the version
it expects (the training step) and carries the reference, so a worker that missed a push
(it was restarted) loads it before playing and says so; every group and episode records
the version that played it, and the step's metrics count any that differ.

A worker whose process dies mid-call is restarted by Ray (``max_restarts``; its
``__init__`` runs again, weights are reloaded from the object store) and its share of the
call is submitted again; the step's metrics say how many workers were replaced. Errors
raised by the rollout code itself are not retried: they come back as they are.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from marl.config import RunConfig, import_modules
from marl.core.codec import CodecError, Limits, pack, unpack
from marl.rollout import Episode, Group, group_from_record, group_record

# one frame per group or episode: far above a real one (a few hundred KB), far below memory
WIRE_LIMITS = Limits(max_frame_bytes=256 * 1024 * 1024, max_str_len=64 * 1024 * 1024)


RESTART_WAIT_TRIES = 1200  # half-second waits for a restarting worker: 10 minutes


class WorkerLost(RuntimeError):
    """A worker died more often than ``resources.max_worker_restarts`` allows."""


def connect(resources: Any) -> bool:
    """Join the configured Ray cluster, or start a local instance; reuse one already up.

    Returns whether this call started Ray (and so should shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private local instance, no tokens
    # Ray runs workers at niceness 15 by default; here they are the main work, and at 15
    # anything else on the machine starves them (imports alone took 20x longer under load)
    os.environ.setdefault("RAY_worker_niceness", "0")
    common = {"log_to_driver": False, "logging_level": logging.WARNING}
    if resources.ray_address:
        ray.init(address=resources.ray_address, **common)
    else:
        object_store = resources.object_store_mb
        ray.init(
            num_cpus=resources.workers * resources.cpus_per_worker,
            num_gpus=math.ceil(resources.workers * resources.gpus_per_worker) or None,
            include_dashboard=False,
            object_store_memory=object_store * 1024 * 1024 if object_store else None,
            **common,
        )
    return True


class RolloutWorker:
    """One Ray actor: the config's environments and a copy of the trainable policies."""

    def __init__(self, config: RunConfig, agent_ids: Sequence[str], index: int):
        import torch

        from marl.evaluate import split_config
        from marl.simulate import env_factory
        from marl.train import build_policies, eval_config

        torch.set_num_threads(config.resources.cpus_per_worker)
        import_modules(config.resources.imports)  # before the config's scenario is built
        self.index = index
        self.config = config
        self.agent_ids = list(agent_ids)
        self.policies = build_policies(config, agent_ids, reference=False)
        self.vllm = None
        if config.resources.backend == "vllm":
            from agents.vllm_backend import VLLMPolicies

            self.vllm = VLLMPolicies(
                self.policies, max_batch_size=config.run.batch_size, seed=config.run.seed
            )
        self.acting = self.vllm.team if self.vllm else self.policies.team
        self.make_train_env = env_factory(split_config(config, "train")[0], agent_ids)
        self.eval_config = eval_config(config)
        self.version: int | None = None  # weights as built: no training step's yet

    def pid(self) -> int:
        return os.getpid()

    def set_weights(self, version: int, boxed: list) -> int:
        """Load the policies' state at ``version``; ``boxed`` is ``[ObjectRef]`` (a list, so
        Ray hands over the reference and this worker fetches it only when it needs to)."""
        import ray

        if version != self.version:
            self.policies.load_state_dict(ray.get(boxed[0]))
            if self.vllm is not None:
                self.vllm.sync()
            self.version = version
        return self.version

    def rollout(self, version: int, boxed: list, seeds: list[int], step: int) -> dict[str, Any]:
        """Training groups of ``seeds`` at ``step``, with the weights of ``version``."""
        from marl.train import collect_groups

        caught_up = self._catch_up(version, boxed)
        tc = self.config.train
        groups = collect_groups(
            self.make_train_env, self.acting, tc, seeds, step, self.config.run.batch_size
        )
        for group in groups:
            group.policy_version = self.version
        frames = [pack(group_record(g), WIRE_LIMITS) for g in groups]
        return self._reply(frames, caught_up)

    def play(
        self, version: int, boxed: list, seeds: list[int], agent_ids: list[str]
    ) -> dict[str, Any]:
        """Held-out episodes of ``agent_ids`` (the team, or one agent alone) on ``seeds``."""
        from marl.simulate import play

        caught_up = self._catch_up(version, boxed)
        episodes = play(self.eval_config, self.acting, agent_ids, "eval", seeds=seeds).episodes
        for episode in episodes:
            episode.policy_version = self.version
        return self._reply([pack(e.to_record(), WIRE_LIMITS) for e in episodes], caught_up)

    def close(self) -> None:
        if self.vllm is not None:
            self.vllm.close()

    def _catch_up(self, version: int, boxed: list) -> bool:
        if version == self.version:
            return False
        self.set_weights(version, boxed)
        return True

    def _reply(self, frames: list[bytes], caught_up: bool) -> dict[str, Any]:
        return {
            "worker": self.index,
            "pid": os.getpid(),
            "frames": frames,
            "caught_up": caught_up,
        }


class RolloutWorkers:
    """The driver's handle on N ``RolloutWorker`` actors (``resources.workers``)."""

    def __init__(self, config: RunConfig, agent_ids: Sequence[str]):
        import ray

        resources = config.resources
        self.started_ray = connect(resources)
        self.max_restarts = resources.max_worker_restarts
        actor = ray.remote(RolloutWorker).options(
            num_cpus=resources.cpus_per_worker,
            num_gpus=resources.gpus_per_worker,
            max_restarts=resources.max_worker_restarts,
            max_task_retries=0,  # a call cut by a death comes back to us and is redone here
        )
        self.actors = [actor.remote(config, list(agent_ids), k) for k in range(resources.workers)]
        self.version: int | None = None
        self._weights: Any = None  # ObjectRef of the newest state
        self._pushes: list[Any] = []
        self.replaced = 0  # workers replaced since the last step_report
        self.caught_up = 0  # calls where a worker had to load weights it missed
        try:  # wait until they are built: fail now, not mid-step
            self._pids = ray.get([a.pid.remote() for a in self.actors])
        except BaseException:
            self.close()
            raise
        # hook for tests and tools: called with the submitted calls' actors, once per call
        self.on_submit: Callable[[list[Any]], None] | None = None

    def pids(self) -> list[int]:
        import ray

        return ray.get([a.pid.remote() for a in self.actors])

    def push(self, version: int, state: dict[str, Any], wait: bool = False) -> None:
        """Put ``state`` in the object store once and have every worker load it; returns at
        once unless ``wait`` (the next rollout call waits for the load anyway)."""
        import ray

        self._weights = ray.put(state)
        self.version = version
        self._pushes = [a.set_weights.remote(version, [self._weights]) for a in self.actors]
        if wait:
            self._settle_pushes()

    def rollout_groups(self, seeds: Sequence[int], step: int) -> list[Group]:
        """Step ``step``'s groups for ``seeds``, played by the workers, in ``seeds`` order."""
        replies = self._call("rollout", seeds, step=step)
        groups = []
        for reply in replies:
            groups += [group_from_record(r) for r in self._decode(reply)]
        return groups

    def play(self, agent_ids: Sequence[str], seeds: Sequence[int]) -> list[Episode]:
        """Held-out episodes of ``agent_ids`` on ``seeds``, in ``seeds`` order."""
        replies = self._call("play", seeds, agent_ids=list(agent_ids))
        episodes = [Episode.from_record(r) for reply in replies for r in self._decode(reply)]
        for index, episode in enumerate(episodes):
            episode.index = index
        return episodes

    def step_report(self, groups: Sequence[Group], expected_version: int) -> dict[str, Any]:
        """The step's metrics about the workers; resets the counters."""
        stale = sum(1 for g in groups if g.policy_version != expected_version)
        report = {
            "workers": len(self.actors),
            "workers_replaced": self.replaced,
            "weights_reloaded": self.caught_up,
            "stale_groups": stale,
        }
        self.replaced = self.caught_up = 0
        return report

    def close(self) -> None:
        """Stop the workers; shut Ray down if this handle started it."""
        import ray

        if self.actors:  # let vLLM engines stop their processes; then end the actors
            closing = [a.close.remote() for a in self.actors]
            ray.wait(closing, num_returns=len(closing), timeout=30)
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []
        if self.started_ray and ray.is_initialized():
            ray.shutdown()

    # ---------------------------------------------------------------- plumbing

    def _settle_pushes(self) -> None:
        """Wait for the last push; a worker that died meanwhile catches up on its next call."""
        import ray
        from ray.exceptions import RayActorError

        for ref in self._pushes:
            with contextlib.suppress(RayActorError):
                ray.get(ref)
        self._pushes = []

    def _call(self, method: str, seeds: Sequence[int], **kwargs: Any) -> list[dict[str, Any]]:
        """Split ``seeds`` into contiguous shares, one per worker; redo a share whose worker
        died (Ray restarts it); return the replies in share order."""
        import ray
        from ray.exceptions import ActorUnavailableError, RayActorError

        if self._weights is None:
            raise RuntimeError("no weights pushed to the workers yet; call push() first")
        self._settle_pushes()
        shares = _split(list(seeds), len(self.actors))

        def submit(k: int) -> Any:
            call = getattr(self.actors[k], method)
            return call.remote(self.version, [self._weights], shares[k], **kwargs)

        pending = {submit(k): k for k in range(len(shares))}
        if self.on_submit:
            self.on_submit([self.actors[k] for k in range(len(shares))])
        deaths = dict.fromkeys(range(len(shares)), 0)
        waited = dict.fromkeys(range(len(shares)), 0)
        replies: dict[int, dict[str, Any]] = {}
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            k = pending.pop(ref)
            try:
                replies[k] = ray.get(ref)
            except ActorUnavailableError as err:  # restarting after a death: ask again
                waited[k] += 1
                if waited[k] > RESTART_WAIT_TRIES:
                    raise WorkerLost(f"rollout worker {k} did not come back: {err}") from None
                time.sleep(0.5)
                pending[submit(k)] = k
            except RayActorError as err:
                deaths[k] += 1
                if deaths[k] > self.max_restarts:
                    raise WorkerLost(
                        f"rollout worker {k} died {deaths[k]} times in one call, more than "
                        f"resources.max_worker_restarts={self.max_restarts}: {err}"
                    ) from None
                time.sleep(0.1 * deaths[k])  # give Ray a moment to notice and restart it
                pending[submit(k)] = k
        self.caught_up += sum(bool(r["caught_up"]) for r in replies.values())
        for k, reply in replies.items():  # a new process behind the same actor: replaced
            self.replaced += int(reply["pid"] != self._pids[k])
            self._pids[k] = reply["pid"]
        return [replies[k] for k in range(len(shares))]

    @staticmethod
    def _decode(reply: dict[str, Any]) -> list[dict[str, Any]]:
        records = []
        for n, frame in enumerate(reply["frames"]):
            try:
                records.append(unpack(frame, WIRE_LIMITS))
            except CodecError as err:
                raise CodecError(f"worker {reply['worker']} frame {n}: {err}") from None
        return records


def _split(items: list[int], parts: int) -> list[list[int]]:
    """``items`` in at most ``parts`` contiguous, non-empty shares of near-equal size."""
    parts = max(1, min(parts, len(items)))
    size, extra = divmod(len(items), parts)
    shares, start = [], 0
    for k in range(parts):
        end = start + size + (k < extra)
        shares.append(items[start:end])
        start = end
    return shares
