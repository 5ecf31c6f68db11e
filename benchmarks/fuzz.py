"""Coverage-guided fuzzing of the two decoders of outside input: the msgpack codec (transcript
files and bus frames) and the config loader (YAML files), each for a fixed time budget.

| target   | one input is               | what it goes through                                     |
| -------- | -------------------------- | -------------------------------------------------------- |
| `codec`  | bytes of a transcript file | `unpack`, `decode_message`, `TranscriptReader` lenient   |
|          |                            | and strict; default limits, or small ones (first byte 0) |
| `config` | bytes of a config file     | `load_config`, then again with the last line as `--set`  |

A finding is an input that raises anything but the decoder's own error (`CodecError`,
`ConfigError`) or breaks its contract (a record that is not a str-keyed dict, a problem
without a message); it is written to ``runs/fuzz/<target>/crash-<sha1>`` with its traceback
beside it (``.txt``), and the fuzzing goes on. libFuzzer's own findings (a hang past
``--input-timeout`` seconds, memory past ``--rss-limit-mb``) end that target's run and
leave ``timeout-*`` / ``oom-*`` files in the same folder.

The engine is atheris (libFuzzer for Python; coverage of the instrumented pure-Python code:
``marl``, and PyYAML for the config target. msgpack's and pydantic's compiled decoders give
no coverage, so for them it is mutation fuzzing). Each target runs in its own process,
because libFuzzer ends the process when its time is up. The corpus grows in
``runs/fuzz/<target>/corpus`` and is reused by the next run; seeds are the example configs
and transcripts of example records.

Run (two targets x 60 s):

    .venv/bin/python benchmarks/fuzz.py --seconds 60

Without atheris (``pip install atheris``; it needs a wheel for the Python in use), or with
``--engine random``, a plain random mutation loop over the same seeds and checks runs
instead, and the table says so.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("codec", "config")
INSTRUMENTED = {"codec": ["marl.core.codec", "marl.core.bus"], "config": ["yaml", "marl"]}
MAX_LEN = {"codec": 4096, "config": 8192}
KEEP_PER_SIGNATURE = 3


# ---------------------------------------------------------------- the targets


def codec_target(scratch: Path) -> tuple[Callable[[bytes], None], list[bytes]]:
    from marl.core.bus import Message
    from marl.core.codec import (
        CodecError,
        Limits,
        TranscriptReader,
        TranscriptWriter,
        decode_message,
        encode_message,
        read_transcript,
        unpack,
    )

    small = Limits(max_frame_bytes=512, max_str_len=64, max_bin_len=64, max_array_len=8)
    path = scratch / "transcript.msgpack"

    def one_input(data: bytes) -> None:
        limits = small if data[:1] == b"\x00" else Limits()
        for decode in (unpack, decode_message):
            try:
                decode(data, limits)
            except CodecError as err:
                assert str(err), "a CodecError without a message"
        path.write_bytes(data)
        reader = TranscriptReader(path, limits)
        for record in reader.records():
            _assert_json_shaped(record, top=True)
        assert not (reader.error and reader.truncated_tail), "both error and truncated_tail"
        try:
            read_transcript(path, limits)
        except CodecError as err:
            assert str(err), "a CodecError without a message"
        else:
            assert not (reader.error or reader.truncated_tail or reader.skipped)

    message = Message("a", ("b", "c"), 1, "message", "the answer is 42", {"answer": 42})
    seeds_file = scratch / "seed.msgpack"
    with TranscriptWriter(seeds_file) as writer:
        for i in range(3):
            writer.write({"episode": i, "reward": 0.5, "messages": [message.to_dict()]})
    whole = seeds_file.read_bytes()
    return one_input, [whole, whole[:-5], encode_message(message), b"\x00" + whole]


def config_target(scratch: Path) -> tuple[Callable[[bytes], None], list[bytes]]:
    from marl.assembly import load_config
    from marl.core.config import ConfigError

    file_level = re.compile(
        r"cannot read|larger than|not UTF-8|\(line \d+\)|at position \d+|top level must be"
    )
    path = scratch / "config.yaml"

    def one_input(data: bytes) -> None:
        path.write_bytes(data)
        last_line = data.rsplit(b"\n", 1)[-1].decode("utf-8", "replace")
        for overrides in ([], [last_line]):
            try:
                load_config(path, overrides)
            except ConfigError as err:
                assert err.problems and str(err), "a ConfigError without problems"
                for where, message in err.problems:
                    assert message.strip(), f"problem at {where!r} without a message"
                    assert where or file_level.search(message), f"no field, no place: {message}"

    seeds = [path.read_bytes() for path in sorted((ROOT / "configs").glob("*.yaml"))]
    seeds += [b"a: &a [*a]\n", b"x: 1\n" * 3, b"team: {agents: [{id: a}]}\n"]
    return one_input, seeds


def _assert_json_shaped(value: object, top: bool = False) -> None:
    if top:
        assert type(value) is dict, f"a record of type {type(value).__name__}"
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str, f"a key of type {type(key).__name__}"
            _assert_json_shaped(item)
    elif isinstance(value, list):
        for item in value:
            _assert_json_shaped(item)


# ---------------------------------------------------------------- the worker (one target)


def worker(target: str, seconds: float, out: Path, args: argparse.Namespace) -> None:
    """Fuzz one target until the budget is spent; findings are files under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    corpus = out / "corpus"
    corpus.mkdir(exist_ok=True)
    scratch = Path(args.scratch)
    atheris = None
    if args.engine == "atheris":
        try:
            import atheris
        except ImportError:
            print("atheris is not installed: random mutation instead", file=sys.stderr)
    build = codec_target if target == "codec" else config_target
    if atheris is not None:
        with atheris.instrument_imports(include=INSTRUMENTED[target]):
            one_input, seeds = build(scratch)
    else:
        one_input, seeds = build(scratch)
    for seed in seeds:
        (corpus / f"seed-{hashlib.sha1(seed).hexdigest()}").write_bytes(seed)
    checked = _recording_findings(one_input, out)
    if atheris is None:
        _mutation_loop(checked, seeds, seconds)
        return
    flags = [
        f"-max_total_time={int(seconds)}",
        f"-max_len={MAX_LEN[target]}",
        f"-timeout={args.input_timeout}",
        f"-rss_limit_mb={args.rss_limit_mb}",
        f"-artifact_prefix={out}/",
        "-print_final_stats=1",
        str(corpus),
    ]
    atheris.Setup([sys.argv[0], *flags], checked)
    atheris.Fuzz()


def _recording_findings(one_input: Callable[[bytes], None], out: Path) -> Callable[[bytes], None]:
    """``one_input`` that writes an unexpected exception's input and traceback, then goes on.

    Findings are grouped by signature (exception type and the line that raised it); the
    first ``KEEP_PER_SIGNATURE`` inputs of each are written, the rest only counted.
    """
    seen: dict[str, int] = {}

    def checked(data: bytes) -> None:
        try:
            one_input(data)
        except Exception as exc:
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            signature = f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}"
            seen[signature] = seen.get(signature, 0) + 1
            if seen[signature] > KEEP_PER_SIGNATURE:
                return
            name = f"crash-{hashlib.sha1(data).hexdigest()}"
            (out / name).write_bytes(data)
            message = traceback.format_exception_only(exc)[-1].strip().splitlines()[0][:200]
            (out / f"{name}.txt").write_text(f"{signature}: {message}\n\n{traceback.format_exc()}")

    return checked


def _mutation_loop(check: Callable[[bytes], None], seeds: list[bytes], seconds: float) -> None:
    """The fallback engine: random byte edits and splices of the seeds, no coverage."""
    rng = random.Random(0)
    pool = list(seeds)
    executions = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        data = bytearray(rng.choice(pool))
        for _ in range(rng.randint(1, 8)):
            edit = rng.randrange(4)
            at = rng.randint(0, len(data))
            if edit == 0 and data:
                data[min(at, len(data) - 1)] = rng.randrange(256)
            elif edit == 1:
                data[at:at] = rng.randbytes(rng.randint(1, 8))
            elif edit == 2:
                del data[at : at + rng.randint(1, 16)]
            else:
                other = rng.choice(pool)
                cut = rng.randint(0, len(other))
                data[at:] = other[cut:]
        check(bytes(data))
        executions += 1
        if rng.random() < 0.01:
            pool.append(bytes(data))
    elapsed = time.perf_counter() - start
    print(f"stat::number_of_executed_units: {executions}", file=sys.stderr)
    print(f"stat::average_exec_per_sec: {int(executions / elapsed)}", file=sys.stderr)
    print("stat::engine: random mutation", file=sys.stderr)


# ---------------------------------------------------------------- the table


def run_target(target: str, args: argparse.Namespace) -> dict[str, object]:
    out = Path(args.out) / target
    out.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in out.iterdir()}
    command = [sys.executable, __file__, "--worker", target, "--seconds", str(args.seconds)]
    command += ["--out", str(args.out), "--input-timeout", str(args.input_timeout)]
    command += ["--rss-limit-mb", str(args.rss_limit_mb), "--engine", args.engine]
    # Each input is written to a file; on tmpfs that is ~15x faster than on this /tmp.
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as scratch:
        began = time.perf_counter()
        done = subprocess.run([*command, "--scratch", scratch], capture_output=True, text=True)
        elapsed = time.perf_counter() - began
    log = done.stdout + done.stderr
    (out / "last-run.log").write_text(log)
    new = sorted(p for p in out.iterdir() if p.name not in before and p.is_file())
    crashes = [p for p in new if p.name.startswith("crash-") and p.suffix != ".txt"]
    aborts = [p for p in new if p.name.startswith(("timeout-", "oom-", "leak-", "slow-unit-"))]
    stat = dict(re.findall(r"stat::(\w+):\s*(.+)", log))
    corpus = sum(1 for _ in (out / "corpus").iterdir())
    return {
        "target": target,
        "engine": stat.get("engine", "atheris (libFuzzer)"),
        "seconds": elapsed,
        "executions": int(stat.get("number_of_executed_units", 0)),
        "exec/s": int(stat.get("average_exec_per_sec", 0)),
        "corpus": corpus,
        "crashes": crashes,
        "aborts": aborts,
        "exit": done.returncode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="budget per target")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    parser.add_argument("--out", default=str(ROOT / "runs" / "fuzz"), help="findings, corpus")
    parser.add_argument("--input-timeout", type=int, default=10, help="seconds: one input hangs")
    parser.add_argument("--rss-limit-mb", type=int, default=2048, help="memory: one input blows")
    parser.add_argument(
        "--engine",
        choices=("atheris", "random"),
        default="atheris",
        help="atheris (coverage-guided; random mutation when it is not installed) or random",
    )
    parser.add_argument("--worker", choices=TARGETS, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.seconds, Path(args.out) / args.worker, args)
        return

    from rich.console import Console
    from rich.table import Table

    console = Console()
    rows = []
    for target in args.targets:
        console.print(f"fuzzing {target} for {args.seconds:g} s ...")
        rows.append(run_target(target, args))
    table = Table(title=f"fuzzing, {args.seconds:g} s per target")
    for column in ("target", "engine", "executions", "exec/s", "corpus", "crashes", "hangs/ooms"):
        table.add_column(column, justify="left" if column in ("target", "engine") else "right")
    for row in rows:
        table.add_row(
            row["target"],
            row["engine"],
            f"{row['executions']:,}",
            f"{row['exec/s']:,}",
            str(row["corpus"]),
            str(len(row["crashes"])),
            str(len(row["aborts"])),
        )
    console.print(table)
    for row in rows:
        for crash in row["crashes"]:  # the first line: "<signature>: <message>"
            first = crash.with_name(crash.name + ".txt").read_text().splitlines()[0]
            console.print(f"{row['target']}: {crash.name}: {first}", soft_wrap=True, markup=False)
        for abort in row["aborts"]:
            console.print(f"{row['target']}: {abort} (libFuzzer stopped)", markup=False)
        if not row["executions"]:
            console.print(
                f"{row['target']}: the worker ran nothing (exit {row['exit']}); see "
                f"{Path(args.out) / row['target'] / 'last-run.log'}"
            )


if __name__ == "__main__":
    main()
