"""The sandbox's side of a run: call a program's function on each input, send back plain data.

Never imported by the caller (tests import its codec): ``scenarios.sandbox`` reads this
file's text and runs it as ``python -s -S -P -B -c <text> <box> <job fd> <result fd>``, so
it uses the standard library only. In order: read the job, set the limits, drop to the run's
uid, install the guard, run the program, call its entry point on each input, write the
result, ``os._exit``.

Everything here runs beside the program, in its process, and is therefore untrusted: the
program can rewrite any of it. That is by design. The result holds only the values the
function returned, as plain data (the format of ``scenarios.plain_data``, encoded by the
small msgpack writer below); the caller decodes them under its own limits and judges them
itself. A program that forges the result can forge only return values, which is what it
could have returned anyway.

job:    msgpack array [program, entry_point, uid or nil, limits, calls, value_limits]
        limits = [wall_s, cpu_s, memory_mb, file_size_mb, open_files, processes, result_bytes]
        calls = [bin, ...], each a tagged value (args tuple, kwargs dict)
        value_limits = [max_bytes, max_items, max_depth, max_int_digits]
result: msgpack array [status, detail, outcomes]; status is "done", "syntax_error",
        "memory" or "output_limit"; an outcome is [0, bin] (returned a value), [1, reason]
        (raised) or [2, reason] (returned something that is not plain data)
"""

import builtins
import errno
import os
import posix
import resource
import shutil
import signal
import struct
import sys

TAG_LIST, TAG_TUPLE, TAG_DICT, TAG_SET, TAG_FROZENSET, TAG_BIG_INT = range(6)
SEQUENCE_TAGS = {list: TAG_LIST, tuple: TAG_TUPLE, set: TAG_SET, frozenset: TAG_FROZENSET}


class NotPlain(Exception):
    pass


# ---------------------------------------------------------------- msgpack, the subset in use


def pack_into(out, value):
    """Raw msgpack of None, bool, int (64-bit), float, str, bytes and lists of them."""
    kind = type(value)
    if value is None:
        out += b"\xc0"
    elif kind is bool:
        out += b"\xc3" if value else b"\xc2"
    elif kind is int:
        if 0 <= value < 128:
            out += struct.pack("B", value)
        elif -32 <= value < 0:
            out += struct.pack("b", value)
        elif value >= 0:
            out += b"\xcf" + struct.pack(">Q", value)
        else:
            out += b"\xd3" + struct.pack(">q", value)
    elif kind is float:
        out += b"\xcb" + struct.pack(">d", value)
    elif kind is str:
        data = value.encode("utf-8")
        out += b"\xdb" + struct.pack(">I", len(data)) + data
    elif kind is bytes:
        out += b"\xc6" + struct.pack(">I", len(value)) + value
    elif kind is list:
        out += b"\xdd" + struct.pack(">I", len(value))
        for item in value:
            pack_into(out, item)
    else:
        raise TypeError(f"cannot pack {kind.__name__}")


def unpack_raw(data):
    """Raw msgpack (what ``msgpack.packb`` writes for the same subset) to Python values."""
    value, end = unpack_at(data, 0)
    if end != len(data):
        raise ValueError("trailing bytes")
    return value


def unpack_at(data, i):
    head = data[i]
    i += 1
    if head < 0x80:
        return head, i
    if head >= 0xE0:
        return head - 0x100, i
    if 0x90 <= head <= 0x9F:
        return unpack_array(data, i, head & 0x0F)
    if 0xA0 <= head <= 0xBF:
        n = head & 0x1F
        return data[i : i + n].decode("utf-8"), i + n
    if head == 0xC0:
        return None, i
    if head in (0xC2, 0xC3):
        return head == 0xC3, i
    sized = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}
    if head in sized:
        width = sized[head]
        n = int.from_bytes(data[i : i + width], "big")
        i += width
        chunk = bytes(data[i : i + n])
        if len(chunk) != n:
            raise ValueError("truncated")
        return (chunk if head <= 0xC6 else chunk.decode("utf-8")), i + n
    numbers = {
        0xCA: ">f",
        0xCB: ">d",
        0xCC: ">B",
        0xCD: ">H",
        0xCE: ">I",
        0xCF: ">Q",
        0xD0: ">b",
        0xD1: ">h",
        0xD2: ">i",
        0xD3: ">q",
    }
    if head in numbers:
        width = struct.calcsize(numbers[head])
        return struct.unpack(numbers[head], data[i : i + width])[0], i + width
    if head in (0xDC, 0xDD):
        width = 2 if head == 0xDC else 4
        return unpack_array(data, i + width, int.from_bytes(data[i : i + width], "big"))
    raise ValueError(f"unsupported msgpack type byte {head:#x}")


def unpack_array(data, i, n):
    items = []
    for _ in range(n):
        item, i = unpack_at(data, i)
        items.append(item)
    return items, i


# ---------------------------------------------------------------- plain data, tagged


def tagged(value, limits, depth=0):
    _, max_items, max_depth, max_digits = limits
    kind = type(value)
    if kind in (type(None), bool, float, bytes):
        return value
    if kind is int:
        if -(2**63) <= value < 2**64:
            return value
        try:
            digits = str(value)
        except ValueError:
            raise NotPlain("an int with too many digits") from None
        if len(digits.lstrip("-")) > max_digits:
            raise NotPlain(f"an int of more than {max_digits} digits")
        return [TAG_BIG_INT, digits]
    if kind is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise NotPlain("a str with a lone surrogate") from None
        return value
    if depth >= max_depth:
        raise NotPlain(f"a value nested deeper than {max_depth}")
    if kind is dict:
        if len(value) * 2 > max_items:
            raise NotPlain(f"a container of more than {max_items} items")
        items = [TAG_DICT]
        for key, item in value.items():
            items.append(tagged(key, limits, depth + 1))
            items.append(tagged(item, limits, depth + 1))
        return items
    if kind in SEQUENCE_TAGS:
        if len(value) > max_items:
            raise NotPlain(f"a container of more than {max_items} items")
        return [SEQUENCE_TAGS[kind]] + [tagged(v, limits, depth + 1) for v in value]
    raise NotPlain(f"a {kind.__module__}.{kind.__qualname__}")


def untagged(tree):
    if type(tree) is not list:
        return tree
    tag, items = tree[0], tree[1:]
    if tag == TAG_BIG_INT:
        return int(items[0])
    values = [untagged(v) for v in items]
    if tag == TAG_LIST:
        return values
    if tag == TAG_TUPLE:
        return tuple(values)
    if tag == TAG_SET:
        return set(values)
    if tag == TAG_FROZENSET:
        return frozenset(values)
    if tag == TAG_DICT:
        return dict(zip(values[::2], values[1::2], strict=True))
    raise ValueError(f"unknown tag {tag}")


def encode_value(value, limits):
    out = bytearray()
    try:
        pack_into(out, tagged(value, limits))
    except RecursionError:
        raise NotPlain("a value nested too deeply") from None
    if len(out) > limits[0]:
        raise NotPlain(f"a value of {len(out)} bytes encoded, over {limits[0]}")
    return bytes(out)


# ---------------------------------------------------------------- containment


def describe(error):
    text = type(error).__name__
    try:
        message = str(error)
    except BaseException:
        message = ""
    return (f"{text}: {message}" if message else text)[:240]


def keep_stdlib_importable():
    """sys.path through directory fds opened now, so imports work after the drop."""
    moved = {}
    for path in sys.path:
        if path and os.path.isdir(path):
            moved[path] = f"/proc/self/fd/{os.open(path, os.O_RDONLY | os.O_DIRECTORY)}"
    sys.path[:] = list(moved.values())
    sys.path_importer_cache.clear()
    for module in list(sys.modules.values()):
        paths = getattr(module, "__path__", None)
        if type(paths) is list:
            for i, p in enumerate(paths):
                for old, new in moved.items():
                    if p == old or p.startswith(old + os.sep):
                        paths[i] = new + p[len(old) :]


def set_limits(cpu_s, memory_mb, file_size_mb, open_files, processes):
    mb = 1024 * 1024
    for name, value in (
        ("RLIMIT_CORE", (0, 0)),
        ("RLIMIT_CPU", (cpu_s, cpu_s + 1)),
        ("RLIMIT_FSIZE", (file_size_mb * mb,) * 2),
        ("RLIMIT_NOFILE", (open_files,) * 2),
        ("RLIMIT_NPROC", (processes,) * 2),
        ("RLIMIT_AS", (memory_mb * mb,) * 2),
    ):
        resource.setrlimit(getattr(resource, name), value)


def install_guard(workdir):
    """Stops careless code with a readable error; the kernel's limits are the boundary."""
    root = os.path.realpath(workdir)
    realpath, fspath, fsdecode = os.path.realpath, os.fspath, os.fsdecode

    def inside(path):
        if isinstance(path, int):
            return True  # an already open descriptor
        try:
            resolved = realpath(fsdecode(fspath(path)))
        except (TypeError, ValueError):
            return False
        return resolved == root or resolved.startswith(root + os.sep)

    def refuse(path):
        raise PermissionError(f"sandbox: only the working folder may change, not {path!r}")

    real_open, real_os_open = builtins.open, os.open
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def guarded_open(file, mode="r", *args, **kwargs):
        if any(c in str(mode) for c in "wax+") and not inside(file):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path, flags, mode=0o777, *, dir_fd=None):
        if flags & write_flags and (dir_fd is not None or not inside(path)):
            refuse(path)
        return real_os_open(path, flags, mode)

    def inside_only(function, arity):
        def guarded(*paths, **kwargs):
            if kwargs or len(paths) > arity or not all(inside(p) for p in paths):
                refuse(paths[0] if paths else None)
            return function(*paths)

        return guarded

    import _io
    import io

    builtins.open = io.open = _io.open = guarded_open
    for module in (os, posix):
        module.open = guarded_os_open
        for name, arity in (
            ("remove", 1),
            ("unlink", 1),
            ("rmdir", 1),
            ("mkdir", 2),
            ("rename", 2),
            ("replace", 2),
        ):
            setattr(module, name, inside_only(getattr(posix, name), arity))
        for name in (
            "system", "popen", "fork", "forkpty", "vfork", "kill", "killpg",
            "setsid", "setpgid", "setpgrp", "setuid", "seteuid", "setreuid", "setresuid",
            "setgid", "setegid", "setregid", "setresgid", "setgroups", "chroot", "chdir",
            "fchdir", "chmod", "fchmod", "lchmod", "chown", "fchown", "lchown", "truncate",
            "link", "symlink", "mkfifo", "mknod", "removedirs", "renames", "putenv", "unsetenv",
            "execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp", "execvpe",
            "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp",
            "spawnvpe", "posix_spawn", "posix_spawnp", "pidfd_open",
        ):  # fmt: skip
            if hasattr(module, name):
                setattr(module, name, None)
    shutil.rmtree = shutil.move = shutil.chown = None
    builtins.exit = builtins.quit = builtins.help = None
    for name in (
        "subprocess", "_posixsubprocess", "multiprocessing", "_multiprocessing", "ctypes",
        "_ctypes", "socket", "_socket", "resource", "pty", "signal", "_signal", "psutil",
        "ipdb", "joblib", "tkinter",
    ):  # fmt: skip
        sys.modules[name] = None


# ---------------------------------------------------------------- one run


def main():
    job_fd, result_fd = int(sys.argv[2]), int(sys.argv[3])
    size = os.fstat(job_fd).st_size
    job = unpack_raw(os.pread(job_fd, size, 0))
    os.close(job_fd)
    program, entry_point, uid, limits, calls, value_limits = job
    wall_s, cpu_s, memory_mb, file_size_mb, open_files, processes, result_bytes = limits
    write, truncate, _exit = os.pwrite, os.ftruncate, os._exit
    streams = (sys.stdout, sys.stderr)

    def finish(status, outcomes=(), detail=""):
        for stream in (*streams, sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # a full output file: the caller sees its size
                continue
        out = bytearray()
        pack_into(out, [status, detail, list(outcomes)])
        truncate(result_fd, 0)  # whatever the program wrote there goes
        write(result_fd, bytes(out), 0)
        _exit(0)

    os.environ.pop("PWD", None)  # bwrap's --chdir sets it; the caller chose the environment
    if uid is not None:
        keep_stdlib_importable()
    # the wall clock, kept by the kernel: SIGALRM ends the runner on time even when a crowd
    # of runs starves the caller of the CPU it needs to kill it
    signal.setitimer(signal.ITIMER_REAL, wall_s)
    set_limits(cpu_s, memory_mb, file_size_mb, open_files, processes)
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    install_guard(os.getcwd())

    try:
        code = compile(program, "<program>", "exec")
    except MemoryError:
        finish("memory", detail="MemoryError while compiling")
    except BaseException as error:
        line = getattr(error, "lineno", None)
        finish("syntax_error", detail=(f"line {line}: " if line else "") + describe(error))

    namespace = {"__name__": "solution", "__builtins__": builtins}
    failure = ""
    try:
        exec(code, namespace)
    except MemoryError:
        finish("memory", detail="MemoryError in the program")
    except BaseException as error:
        if isinstance(error, OSError) and error.errno == errno.EFBIG:
            finish("output_limit", detail="the program's output reached the file size limit")
        failure = "the program raised " + describe(error)
    function = namespace.get(entry_point)
    if function is None:
        failure = failure or f"the entry point '{entry_point}' is not defined"
    outcomes, sent = [], 0
    for number, call in enumerate(calls, 1):
        if function is None:
            outcomes.append([1, f"NameError: '{entry_point}' is not defined"])
            continue
        try:
            args, kwargs = untagged(unpack_raw(call))  # fresh objects for every call
            value = encode_value(function(*args, **kwargs), value_limits)
            if sent + len(value) > result_bytes:
                raise NotPlain(f"results over {result_bytes} bytes in all")
            sent += len(value)
            outcomes.append([0, value])
        except NotPlain as reason:
            outcomes.append([2, f"returned {reason}, not plain data"[:240]])
        except MemoryError:
            outcomes = None
            finish("memory", detail=f"MemoryError in call {number}")
        except BaseException as error:
            if isinstance(error, OSError) and error.errno == errno.EFBIG:
                finish("output_limit", detail="output reached the file size limit")
            outcomes.append([1, describe(error)])
    finish("done", outcomes, failure)


if __name__ == "__main__":  # as ``python -c``; tests import the codec
    main()
