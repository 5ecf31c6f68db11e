"""Config loading under hostile input: whatever the file holds, the answer is a valid config
or one ConfigError naming each bad field, never a traceback, a hang or a memory blow-up.

The example-by-example cases (one broken field each) live in test_config.py; here hypothesis
generates documents and mutations of every example config, and the YAML bombs (aliases that
expand exponentially, recursive aliases, deep nesting, huge numbers) are checked one by one.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from marl.assembly import load_config, resolved_config, validate_config
from marl.cli import main
from marl.core.config import ConfigError, RunConfig
from marl.core.config_file import MAX_CONFIG_BYTES, MAX_YAML_DEPTH
from tests.conftest import CONFIGS

EXAMPLES = {path.name: yaml.safe_load(path.read_text()) for path in CONFIGS}
# Problems about the file as a whole (not one field) have no path; they say where instead.
FILE_LEVEL = re.compile(
    r"cannot read|larger than|not UTF-8|\(line \d+\)|at position \d+|top level must be"
)
INT64 = (-(2**63), 2**63 - 1)

junk_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**100, -(10**100), 2**63, 2**64, -(2**63) - 1, 10**999])
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["", "x" * 5000, "[/]", "${HOME}", "\x00", "../../etc/passwd", "1e9"])
)
junk = st.recursive(
    junk_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def outcome(path: Path, overrides: list[str] | None = None) -> RunConfig | ConfigError:
    """load_config's answer, checked against the contract: a config, or a ConfigError whose
    every problem has a message and either a field path or a file-level location."""
    try:
        config = load_config(path, overrides)
    except ConfigError as err:
        assert err.problems and str(err)
        for where, message in err.problems:
            assert isinstance(where, str) and isinstance(message, str) and message.strip()
            assert where or FILE_LEVEL.search(message), (where, message)
        return err
    assert isinstance(config, RunConfig)
    assert_fits_in_64_bits(resolved_config(config))
    return config


def assert_fits_in_64_bits(value: Any) -> None:
    """Every number of a valid config survives msgpack and numpy: finite, int64."""
    if isinstance(value, dict):
        for item in value.values():
            assert_fits_in_64_bits(item)
    elif isinstance(value, list):
        for item in value:
            assert_fits_in_64_bits(item)
    elif isinstance(value, float):
        assert value == value and abs(value) != float("inf"), value
    elif isinstance(value, int):
        assert INT64[0] <= value <= INT64[1], value


def field_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path in a config mapping, containers and leaves, depth first."""
    paths = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            paths += field_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            paths += field_paths(value, (*prefix, i))
    return paths


def dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def write(tmp_path: Path, data: Any, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return path


# --- generated documents ------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """One folder for a module's examples (hypothesis runs many per test function)."""
    return tmp_path_factory.mktemp("fuzz_config")


@given(document=junk)
def test_any_yaml_document_loads_or_names_its_problems(folder, document):
    outcome(write(folder, document))


@given(text=st.text(max_size=400))
def test_any_text_loads_or_names_its_problems(folder, text):
    path = folder / "config.yaml"
    path.write_text(text, errors="surrogatepass")
    outcome(path)


@given(data=st.binary(max_size=400))
def test_any_bytes_load_or_name_their_problems(folder, data):
    path = folder / "config.yaml"
    path.write_bytes(data)
    outcome(path)


MUTATIONS = ("replace", "delete", "unknown_key", "duplicate_item", "drop_item")


@given(name=st.sampled_from(sorted(EXAMPLES)), data=st.data())
def test_mutated_example_configs_load_or_name_their_problems(folder, name, data):
    config = copy.deepcopy(EXAMPLES[name])
    path = data.draw(st.sampled_from(field_paths(config)), label="path")
    parent = config
    for part in path[:-1]:
        parent = parent[part]
    key = path[-1]
    mutation = data.draw(st.sampled_from(MUTATIONS), label="mutation")
    if mutation == "replace":
        parent[key] = data.draw(junk, label="value")
    elif mutation == "delete":
        del parent[key]
    elif mutation == "unknown_key" and isinstance(parent[key], dict):
        parent[key][data.draw(st.text(min_size=1, max_size=8), label="key")] = 1
    elif mutation == "duplicate_item" and isinstance(parent[key], list) and parent[key]:
        parent[key].append(copy.deepcopy(parent[key][0]))  # team.agents: a duplicate id
    elif mutation == "drop_item" and isinstance(parent[key], list) and parent[key]:
        parent[key].pop()
    outcome(write(folder, config))


def _leaf(config: dict, path: tuple) -> Any:
    for part in path:
        config = config[part]
    return config


NUMBERS = sorted(
    {
        (name, path)
        for name, config in EXAMPLES.items()
        for path in field_paths(config)
        if type(_leaf(config, path)) in (int, float)
    }
)


@pytest.mark.parametrize("huge", [10**100, -(10**100), float("inf"), float("nan")])
def test_a_huge_or_non_finite_number_in_any_numeric_field_is_named(tmp_path, huge):
    for name, path in NUMBERS:
        config = copy.deepcopy(EXAMPLES[name])
        _leaf(config, path[:-1])[path[-1]] = huge
        err = outcome(write(tmp_path, config))
        assert isinstance(err, ConfigError), f"{name}: {dotted(path)}={huge} was accepted"
        assert any(where.startswith(dotted(path)) for where, _ in err.problems), (
            name,
            dotted(path),
            err.problems,
        )


@given(
    ids=st.lists(
        st.sampled_from(["a", "b", "c", "a", "1x", "b c", "é", ""]), min_size=1, max_size=5
    )
)
def test_agent_ids_load_when_unique_and_well_formed_else_name_team_agents(folder, ids):
    data = {"scenario": {"name": "relay_v0"}, "team": {"agents": [{"id": i} for i in ids]}}
    result = outcome(write(folder, data))
    well_formed = all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", i) for i in ids)
    if well_formed and len(set(ids)) == len(ids):
        assert isinstance(result, RunConfig) or all(
            not where.startswith("team") for where, _ in result.problems
        )
    else:
        assert isinstance(result, ConfigError)
        assert any(where.startswith("team.agents") for where, _ in result.problems)


@given(
    edges=st.lists(
        st.tuples(
            st.sampled_from(["alice", "bob", "carol", "judge", "zoe", ""]),
            st.sampled_from(["alice", "bob", "carol", "judge", "zoe", 7]),
        ),
        max_size=8,
    )
)
def test_graph_edges_load_or_name_the_graph(folder, edges):
    """Edges to missing agents, self-loops, and a judge some debater cannot reach."""
    config = copy.deepcopy(EXAMPLES["debate_judge.yaml"])
    config["graph"] = {"edges": [list(edge) for edge in edges]}
    result = outcome(write(folder, config))
    if isinstance(result, ConfigError):
        assert all(where.startswith("graph") for where, _ in result.problems), result.problems
    else:  # a judge that hears every debater
        assert {("alice", "judge"), ("bob", "judge"), ("carol", "judge")} <= set(edges)


@given(
    key=st.text(alphabet="abcdefghijklmnopqrstuvwxyz.[]0123456789_", max_size=30),
    value=st.text(max_size=30),
)
def test_any_override_loads_or_names_its_problems(folder, key, value):
    path = write(folder, EXAMPLES["relay.yaml"])
    outcome(path, [f"{key}={value}"])


# --- YAML bombs and other hostile files ---------------------------------------------------


def laughs(levels: int, width: int = 10) -> str:
    """'Billion laughs': each anchor lists the previous one ``width`` times."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


VALID = "name: t\nscenario: {name: relay_v0}\nteam: {agents: [{id: a}, {id: b}]}\n"
HOSTILE = [
    # a billion values from nine lines, where the schema accepts anything (scenario options)
    (
        "billion_laughs",
        laughs(9) + VALID.replace("{name: relay_v0}", "{name: relay_v0, options: {x: *l8}}"),
        "expand to more than",
    ),
    (
        "billion_laughs_map",
        "a: &a {"
        + ", ".join(f"k{i}: x" for i in range(10))
        + "}\n"
        + "".join(
            f"b{i}: &b{i} {{"
            + ", ".join(f"k{j}: *{'a' if i == 0 else f'b{i - 1}'}" for j in range(10))
            + "}\n"
            for i in range(9)
        ),
        "expand to more than",
    ),
    ("recursive_alias", "team: &t {agents: [*t]}\n", "contains it"),
    ("recursive_list", "name: &n [1, [2, *n]]\n", "contains it"),
    ("deep_flow", "a: " + "[" * 1000 + "]" * 1000 + "\n", f"deeper than {MAX_YAML_DEPTH}"),
    ("deep_flow_unclosed", "a: " + "{b: " * 100_000, f"deeper than {MAX_YAML_DEPTH}"),
    (
        "deep_block",
        "".join("  " * i + f"k{i}:\n" for i in range(1000)) + "  " * 1000 + "1\n",
        f"deeper than {MAX_YAML_DEPTH}",
    ),
    (
        "deep_via_aliases",
        "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [[[[[[*a{i - 1}]]]]]]\n" for i in range(1, 12)),
        "expand to nesting deeper",
    ),
    ("huge_int", VALID + "run: {seed: " + "9" * 5000 + "}\n", "an integer of 5000 characters"),
    ("huge_hex", VALID + "run: {seed: 0x" + "f" * 5000 + "}\n", "an integer of 5002 characters"),
    ("huge_sexagesimal", VALID + "run: {seed: " + ":".join(["59"] * 600) + "}\n", "an integer of"),
    (
        "big_int",
        VALID + "run: {seed: " + "9" * 900 + "}\n",
        "run.seed: Input should be less than or equal to",
    ),
    ("int_key", VALID + "1: one\n", "key '1' reads as int"),
    ("null_key", VALID + "~: nothing\n", "reads as NoneType"),
    ("list_key", VALID + "? [a, b]\n: pair\n", "a key is a list or mapping"),
    ("unknown_tag", "name: !!python/object/apply:os.system [ls]\n", "not valid YAML"),
    ("two_documents", VALID + "---\n" + VALID, "not valid YAML"),
    ("markup_key", VALID + "'[/]': 1\n", "unknown key '[/]'"),
    ("tab_indent", "team:\n\tagents: []\n", "not valid YAML"),
    ("not_utf8", b"name: \xff\xfe\n", "not UTF-8 text: byte 0xff at offset 6"),
    (
        "nul_graph_file",
        VALID + 'graph: {file: "a\\0.txt"}\n',
        "graph.file: a file path cannot contain a NUL",
    ),
    ("too_many_values", "a: [" + "1, " * 30_000 + "]\n", "more than 20,000 values"),
    ("too_large", "a: " + "x" * (MAX_CONFIG_BYTES + 1) + "\n", "larger than 1024 KiB"),
]


@pytest.mark.timeout(30)  # the backstop for a hang; each case takes well under a second
@pytest.mark.parametrize(
    ("text", "says"), [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE]
)
def test_hostile_yaml_is_refused_with_a_clear_error(tmp_path, text, says):
    path = tmp_path / "config.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    err = outcome(path)
    assert isinstance(err, ConfigError)
    assert says in str(err), str(err)


def test_anchors_aliases_and_merge_keys_still_work(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "x-agent: &agent {role: teammate, sampling: {temperature: 0.5}}\n"
        "name: t\nscenario: {name: relay_v0}\n"
        "team: {agents: [{<<: *agent, id: a}, {<<: *agent, id: b, role: reporter}]}\n"
    )
    err = outcome(path)  # the anchor's own key is unknown, and named as such
    assert isinstance(err, ConfigError) and [where for where, _ in err.problems] == ["x-agent"]
    data = yaml.safe_load(path.read_text())
    del data["x-agent"]
    config = validate_config(data)
    assert [a.role for a in config.team.agents] == ["teammate", "reporter"]
    assert config.team.agents[1].sampling.temperature == 0.5


def test_a_config_path_that_never_ends_is_refused_unread():
    err = outcome(Path("/dev/zero"))
    assert isinstance(err, ConfigError) and "is a device, not a regular file" in str(err)


def test_a_long_problem_list_is_cut_in_the_message(tmp_path):
    data = {"scenario": {"name": "relay_v0"}, "team": {"agents": [{"id": "a"}, {"id": "b"}]}}
    data["graph"] = {"edges": [[1, 2]] * 200}  # two problems per edge
    err = outcome(write(tmp_path, data))
    assert isinstance(err, ConfigError) and len(err.problems) == 400
    assert str(err).endswith("... and 350 more") and len(str(err).splitlines()) == 52


# --- the CLI ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(laughs(9) + VALID, id="billion_laughs"),
        pytest.param("a: " + "[" * 5000, id="deep_nesting"),
        pytest.param(
            VALID + "'[/]': 1\n",
            id="rich_markup_in_a_key",
        ),
    ],
)
def test_cli_exits_2_with_the_error_and_no_traceback(tmp_path, capsys, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert main(["simulate", str(path), "--no-progress"]) == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "is not valid:" in err and "Traceback" not in err


def test_the_largest_team_on_an_explicit_complete_graph_is_within_the_bounds(tmp_path):
    ids = [f"agent{i}" for i in range(64)]
    data = {
        "scenario": {"name": "debate_v0"},
        "team": {"agents": [{"id": i, "system_prompt": "x" * 2000} for i in ids]},
        "graph": {"edges": [[u, v] for u in ids for v in ids if u != v]},
    }
    assert isinstance(outcome(write(tmp_path, data)), RunConfig)
