"""Getting Python code out of model text, and reading its shape without running it.

Models answer in many shapes: a fenced block (```` ```python ````, bare ```` ``` ````,
``~~~``, a fence left open at the end), several blocks (the function, then an example), code
with no fence at all, code between sentences of prose, or a bare function body in the
HumanEval completion style. ``extract_code`` handles them in this order:

1. Fenced blocks. Blocks labelled with another language (``bash``, ``text``...) are skipped
   while a Python or unlabelled block exists. If some blocks define a function or class,
   those are kept, else all of them; they are joined in order.
2. No fence: runs of code-looking lines (indented, or starting like a Python statement:
   ``def``, ``import``, ``x = ...``, ``f(...)``, ``assert``...) with the prose between them
   dropped.
3. The result is dedented; if it does not parse, up to ``TRIM_LINES`` trailing lines are
   dropped until it does (a sentence glued to the end), else it is returned as it is.

It never raises and runs in linear time on at most ``max_chars`` characters (more is cut,
and NUL bytes and carriage returns are removed first). No code gives ``""``.
"""

from __future__ import annotations

import ast
import re
import textwrap

MAX_CODE_CHARS = 20_000
TRIM_LINES = 10
PYTHON_LABELS = frozenset({"", "python", "python3", "py", "py3", "pycon", "ipython"})

_FENCE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<label>[\w+#.-]*)")
_DEFINES = re.compile(r"^[ \t]*(?:async[ \t]+def|def|class)[ \t]+\w", re.MULTILINE)
_CODE_LINE = re.compile(
    r"""^(?:
        (?:def|async|class|import|from|if|elif|else|for|while|try|except|finally|with
           |return|assert|raise|pass|break|continue|global|nonlocal|del|yield|lambda|print)\b
        | [@#)\]}'"]
        | [A-Za-z_][\w.]*(?:\[[^\]\n]{0,200}\])?[ \t]*(?:[-+*/%&|^@]|//|\*\*|<<|>>)?=(?!=)
        | [A-Za-z_][\w.]*[ \t]*\(
    )""",
    re.VERBOSE,
)


def extract_code(text: str, max_chars: int = MAX_CODE_CHARS) -> str:
    """The Python code in a model's reply (see the module docstring); ``""`` if none."""
    text = text[:max_chars].replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    blocks = _fenced_blocks(text)
    if blocks:
        python = [body for label, body in blocks if label.lower() in PYTHON_LABELS]
        chosen = python or [body for _, body in blocks]
        defining = [body for body in chosen if _DEFINES.search(body)]
        code = "\n\n".join(textwrap.dedent(body).strip("\n") for body in defining or chosen)
    else:
        code = textwrap.dedent(_unfenced_code(text)).strip("\n")
    if not code.strip():
        return ""
    return _trim_to_parse(code) + "\n"


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(label, body) of every fenced block; a fence left open runs to the end of the text."""
    blocks: list[tuple[str, str]] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence = opening["fence"]
        body: list[str] = []
        i += 1
        while i < len(lines):
            stripped = lines[i].strip()
            if stripped.startswith(fence) and not stripped.strip(fence[0]):
                i += 1  # past the closing fence
                break
            reopened = _FENCE.match(lines[i])
            if reopened is not None and reopened["label"]:
                break  # a new labelled block opens before this one closed
            body.append(lines[i])
            i += 1
        blocks.append((opening["label"], "\n".join(body)))
    return blocks


def _unfenced_code(text: str) -> str:
    """The code-looking lines of unfenced text, prose lines dropped, blank lines kept."""
    kept: list[str] = []
    in_code = False
    for line in text.split("\n"):
        if not line.strip():
            if in_code:
                kept.append("")
            continue
        in_code = line[0] in " \t" or _CODE_LINE.match(line) is not None
        if in_code:
            kept.append(line)
    return "\n".join(kept)


def _trim_to_parse(code: str) -> str:
    lines = code.rstrip("\n").split("\n")
    for cut in range(min(TRIM_LINES, len(lines) - 1) + 1):
        candidate = "\n".join(lines[: len(lines) - cut])
        if parses(candidate):
            return candidate
    return "\n".join(lines)


# ---------------------------------------------------------------- reading code's shape


def parse(code: str) -> ast.Module | None:
    """The module ``code`` parses to, or None (syntax error, null bytes, too deep)."""
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return None


def parses(code: str) -> bool:
    return parse(code) is not None


def defined_functions(code: str) -> list[str]:
    """Names of the functions ``code`` defines at its top level, in order."""
    module = parse(code)
    if module is None:
        return []
    return [
        node.name
        for node in module.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def calls(code: str, caller: str, callee: str) -> bool:
    """Whether top-level function ``caller`` (its last definition) calls ``callee`` by name."""
    module = parse(code)
    if module is None:
        return False
    definitions = [
        node
        for node in module.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == caller
    ]
    if not definitions:
        return False
    return any(  # the last definition is the one that runs
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == callee
        for node in ast.walk(definitions[-1])
    )
