"""Reading a config file, which is untrusted input: bounded, strict YAML, and ``--set`` overrides.

``read_config_file`` reads at most ``MAX_CONFIG_BYTES``, refuses documents nested deeper
than ``MAX_YAML_DEPTH`` or holding more than ``MAX_YAML_VALUES`` values counted after
expanding aliases (a few lines of ``&a [*b, *b, ...]`` anchors otherwise describe billions
of values), an alias inside the node it names, and integers of more than
``MAX_INT_CHARS`` characters. Anchors, aliases and ``<<`` merge keys work within those. A
key given twice in one mapping, and a key that is not a string, are errors (PyYAML keeps
the last, pydantic would drop a non-string key silently). Every problem is a
``ConfigError`` naming where it is.

What the mapping means is the schema's business (``marl.core.config``), not this module's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from marl.core.config import ConfigError, shown
from marl.core.files import InputFileError, read_bytes

# Bounds on reading a config file; a real config is a few KB, ~10 levels, a few hundred values.
MAX_CONFIG_BYTES = 1024 * 1024
MAX_YAML_DEPTH = 50
MAX_YAML_VALUES = 20_000  # 64 agents on an explicit complete graph: ~12,000
MAX_INT_CHARS = 1000  # int() is quadratic in digits, and past 4300 a ValueError


def read_config_file(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """The mapping of a YAML config file, with ``key.path=value`` overrides applied."""
    path = Path(path)
    try:
        raw = read_bytes(path, MAX_CONFIG_BYTES)  # a regular file: not a FIFO, not /dev/zero
    except InputFileError as err:
        if "at most" in err.reason:
            problem = f"larger than {MAX_CONFIG_BYTES // 1024} KiB; a run config is a few KB"
        else:
            problem = f"cannot read {path}: it {err.reason}"
        raise ConfigError([("", problem)], str(path)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            [("", f"not UTF-8 text: byte {raw[err.start]:#04x} at offset {err.start}")], str(path)
        ) from None
    data = parse_yaml(text, "", str(path))
    if not isinstance(data, dict):
        raise ConfigError([("", "the top level must be a mapping of keys to values")], str(path))
    for override in overrides or []:
        apply_override(data, override, str(path))
    return data


def apply_override(data: dict[str, Any], override: str, source: str = "config") -> None:
    """Set ``a.b.0.c=value`` (or ``a.b[0].c=value``) in a nested mapping; YAML value."""
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise ConfigError([("--set", f"'{override}' is not key.path=value")], source)
    set_path(data, key, parse_yaml(raw, key, source) if raw else "", source)


def set_path(data: dict[str, Any], key: str, value: Any, source: str = "config") -> None:
    """Set ``value`` at the dotted ``key`` (``a.b.0.c`` or ``a.b[0].c``) of a nested
    mapping, making mappings on the way; a list index must exist."""
    parts = re.sub(r"\[(\w*)\]", r".\1", key.strip()).split(".")
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(
                    [(key, f"'{part}' is not an index of a list of {len(node)}")], source
                )
            index: Any = int(part)
        elif isinstance(node, dict):
            index = part
            if not last and not isinstance(node.get(part), dict | list):
                node[part] = {}
        else:
            raise ConfigError([(key, f"'{'.'.join(parts[:i])}' is not a mapping")], source)
        if last:
            node[index] = value
        else:
            node = node[index]


def parse_yaml(text: str, field: str, source: str) -> Any:
    """One YAML document read with ``_UniqueKeyLoader``; a problem is a ConfigError at ``field``."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as err:
        where = f" (line {err.problem_mark.line + 1})" if err.problem_mark else ""
        context = f"{err.context}: " if err.context else ""
        kind = "" if isinstance(err, _Refused) else "not valid YAML: "
        problem = f"{kind}{context}{err.problem}{where}"
        raise ConfigError([(field, problem)], source) from None
    except yaml.reader.ReaderError as err:  # a control character, say
        problem = f"not valid YAML: character {err.character!r} at position {err.position}"
        raise ConfigError([(field, f"{problem} ({err.reason})")], source) from None
    except yaml.YAMLError as err:
        raise ConfigError([(field, f"not valid YAML: {err}")], source) from None


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML past one of the bounds on reading a config."""

    def __init__(self, problem: str, mark: yaml.Mark) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last), keys
    that are not strings (pydantic would drop them silently), and documents past the bounds
    in the module docstring."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._written = 0  # nodes composed so far, aliases not expanded

    def compose_node(self, parent, index):
        self._written += 1
        if self._written > MAX_YAML_VALUES:
            raise _Refused(
                f"more than {MAX_YAML_VALUES:,} values; a run config has a few hundred",
                self.peek_event().start_mark,
            )
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise _Refused(
                f"nested deeper than {MAX_YAML_DEPTH} levels; a run config needs about 10",
                self.peek_event().start_mark,
            )
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node)
        return node

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`, expanded by flatten
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    "a key is a list or mapping; keys must be strings",
                    key_node.start_mark,
                )
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {shown(key_node.value)} reads as {type(key).__name__}, not str; "
                    "quote it",
                    key_node.start_mark,
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}'", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def _construct_int(self, node):
        if len(node.value) > MAX_INT_CHARS:
            raise _Refused(
                f"an integer of {len(node.value)} characters; at most {MAX_INT_CHARS}",
                node.start_mark,
            )
        return self.construct_yaml_int(node)


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _UniqueKeyLoader._construct_int)


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases expand past the bounds, or refer into themselves.

    Sizes and depths are memoised per node, so the walk is linear in the written document
    even when aliases describe an exponential one. Iterative, since the expanded depth is
    what it bounds.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()  # on the current path: meeting one again is a cycle
    while stack:
        node, children_done = stack.pop()
        if id(node) in size:
            continue
        children = _children(node)
        if not children_done:
            if id(node) in open_nodes:
                raise _Refused(
                    "an alias refers to a list or mapping that contains it", node.start_mark
                )
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in size)
            continue
        open_nodes.discard(id(node))
        size[id(node)] = 1 + sum(size[id(child)] for child in children)
        depth[id(node)] = 1 + max((depth[id(child)] for child in children), default=0)
        if size[id(node)] > MAX_YAML_VALUES:
            raise _Refused(
                f"aliases (*name) expand to more than {MAX_YAML_VALUES:,} values", node.start_mark
            )
        if depth[id(node)] > MAX_YAML_DEPTH:
            raise _Refused(
                f"aliases (*name) expand to nesting deeper than {MAX_YAML_DEPTH} levels",
                node.start_mark,
            )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []

