"""Rollouts on Ray: N actors play, the trainer stays in this process (`resources.workers`).

| config (`resources:`)  | what it does                                                      |
| ---------------------- | ----------------------------------------------------------------- |
| `workers: N`           | N ``RolloutWorker`` actors; each holds its own in-process rollouts |
|                        | and a copy of the policies (transformers, or vLLM with `backend`) |
| `ray_address`          | join a running cluster (`ray start --head` / `--address=...`);    |
|                        | without it a local instance starts: the workers' CPUs, no dashboard |
| `cpus_per_worker`      | CPUs reserved per worker; also its torch threads                  |
| `gpus_per_worker`      | GPUs reserved per worker                                          |
| `max_worker_restarts`  | Ray restarts a dead worker this often; its share is redone        |
| `imports`              | modules every worker imports first (your own scenarios)           |

``RayRollouts`` is the ``Rollouts`` interface (``marl.rollouts.interface``) on those actors.
Each actor builds its in-process rollouts with the ``build`` function it is given (a
module-level function, so Ray ships it by name; ``marl.assembly.worker_rollouts``), which
keeps this module free of the config-to-world wiring. A call's seeds are split into
contiguous shares, one per worker; each worker plays its share (sampling seeds depend on
the task, step and sample only, so the split does not change what is sampled) and sends
the episodes or groups back as msgpack frames (``marl.core.codec``), which the driver
decodes under the codec's limits. Transcripts, metrics and checkpoints are written by the
driver only.

Weights: ``load_weights(v)`` puts ``Policies.state_dict()`` in the object store once (the
LoRA adapters for `separate` / `shared`, every weight for `separate_full`) and every worker
loads it. Each call also names the version it expects and carries the reference, so a
worker that missed a push (it was restarted) loads it before playing and says so; every
group and episode records the version that played it, and the step's metrics count any
that differ.

A worker whose process dies mid-call is restarted by Ray (``max_restarts``; its build runs
again, weights are reloaded from the object store) and its share of the call is submitted
again; the step's metrics say how many workers were replaced. Errors raised by the rollout
code itself are not retried: they come back as they are.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from agents.policies import Policies
from marl.core.codec import CodecError, Limits, pack, unpack
from marl.core.config import ResourcesConfig, TrainConfig
from marl.rollouts.interface import EnvMaker, Rollouts
from marl.rollouts.records import Episode, Group, group_from_record, group_record

# one frame per group or episode: far above a real one (a few hundred KB), far below memory
WIRE_LIMITS = Limits(max_frame_bytes=256 * 1024 * 1024, max_str_len=64 * 1024 * 1024)

RESTART_WAIT_TRIES = 1200  # half-second waits for a restarting worker: 10 minutes

# what a worker builds once in its own process: its rollouts and the policies they play
WorkerBuild = Callable[[], tuple[Rollouts, Policies]]


class WorkerLost(RuntimeError):
    """A worker died more often than ``resources.max_worker_restarts`` allows."""


def connect(resources: ResourcesConfig) -> bool:
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
    """One Ray actor: in-process rollouts and the policies they play, built by ``build``."""

    def __init__(self, build: WorkerBuild, index: int):
        self.index = index
        self.rollouts, self.policies = build()

    def pid(self) -> int:
        return os.getpid()

    def set_weights(self, version: int, boxed: list) -> int:
        """Load the policies' state at ``version``; ``boxed`` is ``[ObjectRef]`` (a list, so
        Ray hands over the reference and this worker fetches it only when it needs to)."""
        import ray

        if version != self.rollouts.version:
            self.policies.load_state_dict(ray.get(boxed[0]))
            self.rollouts.load_weights(version)
        return version

    def groups(
        self,
        version: int,
        boxed: list,
        seeds: list[int],
        make_env: EnvMaker,
        step: int,
        train: TrainConfig,
    ) -> dict[str, Any]:
        """Training groups of ``seeds`` at ``step``, with the weights of ``version``."""
        caught_up = self._catch_up(version, boxed)
        groups = self.rollouts.groups(make_env, seeds, step, train)
        frames = [pack(group_record(g), WIRE_LIMITS) for g in groups]
        return self._reply(frames, caught_up)

    def episodes(
        self,
        version: int,
        boxed: list,
        tasks: list[tuple[int, int]],
        make_env: EnvMaker,
        muted: list[str],
    ) -> dict[str, Any]:
        """One episode per (seed, sample) of ``tasks``, with the weights of ``version``."""
        caught_up = self._catch_up(version, boxed)
        seeds, samples = [t[0] for t in tasks], [t[1] for t in tasks]
        episodes = self.rollouts.episodes(make_env, seeds, samples=samples, muted=muted)
        for episode in episodes:
            episode.policy_version = self.rollouts.version
        return self._reply([pack(e.to_record(), WIRE_LIMITS) for e in episodes], caught_up)

    def close(self) -> None:
        self.rollouts.close()

    def _catch_up(self, version: int, boxed: list) -> bool:
        if version == self.rollouts.version:
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


class RayRollouts:
    """``Rollouts`` on N ``RolloutWorker`` actors (``resources.workers``), each built by
    ``build``; ``policies`` are the trainer's, whose weights ``load_weights`` pushes. The
    weights of ``version`` are pushed at once, so the workers start with them."""

    def __init__(
        self, build: WorkerBuild, policies: Policies, resources: ResourcesConfig, version: int
    ):
        import ray

        self.policies = policies
        self.started_ray = connect(resources)
        self.max_restarts = resources.max_worker_restarts
        actor = ray.remote(RolloutWorker).options(
            num_cpus=resources.cpus_per_worker,
            num_gpus=resources.gpus_per_worker,
            max_restarts=resources.max_worker_restarts,
            max_task_retries=0,  # a call cut by a death comes back to us and is redone here
        )
        self.actors = [actor.remote(build, k) for k in range(resources.workers)]
        self.version: int | None = None
        self._weights: Any = None  # ObjectRef of the newest state
        self._pushes: list[Any] = []
        self.replaced = 0  # workers replaced since the last step_report
        self.caught_up = 0  # calls where a worker had to load weights it missed
        try:  # wait until they are built: fail now, not mid-step
            self._pids = ray.get([a.pid.remote() for a in self.actors])
            self.load_weights(version)
        except BaseException:
            self.close()
            raise
        # hook for tests and tools: called with the submitted calls' actors, once per call
        self.on_submit: Callable[[list[Any]], None] | None = None

    def pids(self) -> list[int]:
        import ray

        return ray.get([a.pid.remote() for a in self.actors])

    def load_weights(self, version: int, wait: bool = False) -> None:
        """Put the policies' state in the object store once and have every worker load it;
        returns at once unless ``wait`` (the next call waits for the load anyway)."""
        import ray

        if version == self.version:
            return
        # views of the live weights: ray.put serialises them at once, no 1 GB clone first
        self._weights = ray.put(self.policies.state_dict(copy=False))
        self.version = version
        self._pushes = [a.set_weights.remote(version, [self._weights]) for a in self.actors]
        if wait:
            self._settle_pushes()

    def groups(
        self, make_env: EnvMaker, seeds: Sequence[int], step: int, train: TrainConfig
    ) -> list[Group]:
        replies = self._call("groups", seeds, make_env=make_env, step=step, train=train)
        return [group_from_record(r) for reply in replies for r in self._decode(reply)]

    def episodes(
        self,
        make_env: EnvMaker,
        seeds: Sequence[int],
        *,
        samples: Sequence[int] | None = None,
        muted: Collection[str] = (),
        on_turns: Callable[[int], None] | None = None,
    ) -> list[Episode]:
        tasks = list(zip(seeds, samples if samples is not None else [0] * len(seeds), strict=True))
        replies = self._call("episodes", tasks, make_env=make_env, muted=sorted(muted))
        episodes = [Episode.from_record(r) for reply in replies for r in self._decode(reply)]
        for index, episode in enumerate(episodes):
            episode.index = index
        if on_turns:
            on_turns(sum(len(e.turns) for e in episodes))
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

    def _call(self, method: str, seeds: Sequence[Any], **kwargs: Any) -> list[dict[str, Any]]:
        """Split ``seeds`` (task seeds, or (seed, sample) pairs) into contiguous shares, one
        per worker; redo a share whose worker died (Ray restarts it); return the replies in
        share order."""
        import ray
        from ray.exceptions import ActorUnavailableError, RayActorError

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
