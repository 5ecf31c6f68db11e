"""A scenario of one's own: the worked example beside its config trains for two steps
from another folder without PYTHONPATH, registration checks the contract, an env that
breaks it is one config error, and the public checks run on it in one call."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from marl.assembly import load_config
from marl.cli import main
from marl.commands.experiment import read_experiment
from marl.core.config import ConfigError
from scenarios import SCENARIOS, ScenarioContractError, make_env, register_scenario
from scenarios.base import ScenarioOptions, TextTeamEnv
from scenarios.testing import check_scenario
from tests.conftest import ROOT
from tests.test_experiment import marl  # the CLI in a subprocess, PYTHONPATH the project's

EXAMPLE = ROOT / "configs" / "own_scenario"


def example_copy(tmp_path: Path, **train: object) -> Path:
    """The worked example copied elsewhere, on the tiny model, writing under tmp_path."""
    folder = tmp_path / "project"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    data = yaml.safe_load((folder / "secret_word.yaml").read_text())
    for agent in data["team"]["agents"]:
        agent["model"] = "tiny-random"
        agent["sampling"]["max_new_tokens"] = 8
    data["run"]["output_dir"] = str(tmp_path / "runs")
    data["train"].update(train)
    (folder / "secret_word.yaml").write_text(yaml.safe_dump(data))
    return folder / "secret_word.yaml"


def test_the_worked_example_trains_two_steps_from_another_folder(tmp_path: Path):
    config = example_copy(tmp_path, steps=2, eval_every=2, eval_episodes=2, save_every=1)
    done = marl("train", str(config), "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (run,) = (tmp_path / "runs").iterdir()
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [0, 1, 2]
    assert "eval/team" in lines[0] and "eval/team" in lines[2]
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["resources"]["python_path"] == [str(config.parent)]  # absolute: --resume
    again = marl("train", "--resume", str(run), "--no-progress", cwd=ROOT)
    assert again.returncode == 0, again.stderr  # finished: resumes from another folder too


def test_the_worked_example_passes_every_scenario_check():
    load_config(EXAMPLE / "secret_word.yaml")  # imports and registers it
    check_scenario("secret_word_v0", ("alice", "bob", "carol"))


def test_an_experiment_on_a_base_beside_the_module_finds_it(tmp_path: Path):
    config = example_copy(tmp_path)
    experiment = config.parent / "experiment.yaml"
    experiment.write_text(
        yaml.safe_dump(
            {
                "name": "e",
                "base": config.name,
                "arms": {"a": {}},
                "seeds": [0],
                "output_dir": str(tmp_path / "out"),
            }
        )
    )
    checked = read_experiment(experiment)
    assert checked.base["resources"]["python_path"] == [str(config.parent)]


def test_a_missing_module_is_one_line_naming_the_field(tmp_path: Path, capsys):
    config = example_copy(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["resources"]["imports"] = ["no_such_scenario"]
    config.write_text(yaml.safe_dump(data))
    assert main(["simulate", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "resources.imports" in err and "no_such_scenario" in err and "python_path" in err
    assert "Traceback" not in err


# ---------------------------------------------------------------- registration


class GoodOptions(ScenarioOptions):
    rounds: int = 1
    message_chars: int = 40


def text_team_env(name: str, *, set_length: bool = True) -> type[TextTeamEnv]:
    """A one-round TextTeamEnv called ``name``; without ``set_length`` it has no max_rounds."""

    class Env(TextTeamEnv):
        """A test scenario."""

        metadata: ClassVar[dict] = {"name": name, "render_modes": [], "is_parallelizable": True}
        options_model = GoodOptions

        def __init__(self, agent_ids=("a",), graph=None, options=None, **values):
            super().__init__(agent_ids, graph, options, None, **values)
            if set_length:
                self._init_length(1)
            self._init_spaces(100, 100)

        def reset(self, seed=None, options=None):
            self.agents = list(self.possible_agents)
            return dict.fromkeys(self.agents, "say hi"), {a: {} for a in self.agents}

        def step(self, actions):
            self._check_actions(actions)
            return self._end_step(dict.fromkeys(actions, ""), {a: {} for a in actions}, 0.0, [])

        def _episode_metrics(self):
            return {"score": 0.0, "score_by_round": [0.0]}

    return Env


@pytest.fixture
def registry():
    """SCENARIOS as it was after the test: a test's scenarios do not leak into others."""
    before = dict(SCENARIOS)
    yield SCENARIOS
    SCENARIOS.clear()
    SCENARIOS.update(before)


def test_register_as_decorator_and_function(registry):
    env = register_scenario(summary="one")(text_team_env("mine_a_v0"))
    assert registry["mine_a_v0"].env is env and registry["mine_a_v0"].summary == "one"
    assert registry["mine_a_v0"].options is GoodOptions
    assert register_scenario(env) is env  # the same class again (a re-import): no error
    other = register_scenario(text_team_env("mine_b_v0"))
    assert registry["mine_b_v0"].summary == "A test scenario."  # the docstring's first line
    import pettingzoo

    assert isinstance(pettingzoo.make("parallel", "marl/mine_b-v0"), other)


@pytest.mark.parametrize(
    ("build", "says"),
    [
        (lambda: type("Plain", (), {}), "ParallelEnv subclass"),
        (lambda: text_team_env("NoVersion"), "versioned name"),
        (lambda: text_team_env("debate_v0"), "taken by scenarios.debate_v0.DebateEnv"),
    ],
)
def test_a_class_that_breaks_the_contract_is_refused(registry, build, says):
    with pytest.raises(ScenarioContractError, match=says):
        register_scenario(build())


def test_missing_methods_and_options_are_all_listed(registry):
    from pettingzoo import ParallelEnv

    class Bare(ParallelEnv):
        metadata: ClassVar[dict] = {"name": "bare_v0"}

    with pytest.raises(ScenarioContractError) as err:
        register_scenario(Bare, options=dict)
    text = str(err.value)
    for missing in ("from_options", "reset()", "step()", "observation_space()", "ScenarioOptions"):
        assert missing in text
    assert "bare_v0" not in registry


def scenario_config(tmp_path: Path, module: str, source: str) -> Path:
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "c",
                "scenario": {"name": f"{module}_v0"},
                "team": {"agents": [{"id": "a", "model": "tiny-random"}]},
                "run": {"output_dir": str(tmp_path / "runs")},
                "resources": {"imports": [module]},
            }
        )
    )
    return config


def test_an_env_without_max_rounds_is_a_config_error_not_a_traceback(tmp_path: Path, registry):
    config = scenario_config(
        tmp_path,
        "nolength",
        """
        from scenarios import register_scenario
        from tests.test_own_scenario import text_team_env

        register_scenario(text_team_env("nolength_v0", set_length=False))
        """,
    )
    done = marl("simulate", str(config), "--no-progress", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "scenario.name" in done.stderr and "max_rounds" in done.stderr
    assert "Traceback" not in done.stderr
    with pytest.raises(ConfigError, match="max_rounds"):
        load_config(config)  # registers it here too
    with pytest.raises(ScenarioContractError, match="max_rounds"):
        make_env("nolength_v0", ["a"])


def test_a_scenario_that_fails_to_build_is_a_config_error(tmp_path: Path):
    config = scenario_config(
        tmp_path,
        "brokenbuild",
        """
        from scenarios import register_scenario
        from tests.test_own_scenario import text_team_env

        Env = text_team_env("brokenbuild_v0")

        def broken(cls, agent_ids, graph, options):
            raise TypeError("forgot an argument")

        Env.from_options = classmethod(broken)
        register_scenario(Env)
        """,
    )
    done = marl("simulate", str(config), "--no-progress", cwd=tmp_path)
    assert done.returncode == 2
    assert "building 'brokenbuild_v0' failed: TypeError: forgot an argument" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_placeholder_other_than_id_and_role_is_a_config_error(tmp_path: Path, capsys):
    config = example_copy(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["team"]["agents"][1]["system_prompt"] = "You are {id}, {name}'s partner: {goal}."
    config.write_text(yaml.safe_dump(data))
    assert main(["simulate", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "team.agents[1].system_prompt" in err and "{goal}, {name}" in err
    with pytest.raises(ConfigError):
        load_config(config)
