"""The README's config reference is the schema's: generated from the field descriptions."""

from __future__ import annotations

import inspect
import re
import shutil
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

import marl.core.config as schema
from marl.reference import BEGIN, END, config_reference, replace_block
from scenarios import SCENARIOS
from tests.conftest import ROOT, config_on_tiny_model


def test_the_readme_config_reference_is_the_generated_one() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index(BEGIN) + len(BEGIN) : readme.index(END)]
    assert block.strip() == config_reference().strip(), (
        "README.md's config reference is out of date: run "
        "`.venv/bin/python -m marl.reference README.md`"
    )
    assert replace_block(readme) == readme


def models_of(module) -> list[type[BaseModel]]:
    return [
        m
        for m in vars(module).values()
        if inspect.isclass(m) and issubclass(m, BaseModel) and m.__module__ == module.__name__
    ]


def test_every_config_key_says_what_it_is() -> None:
    options = [s.options for s in SCENARIOS.values() if s.env.__module__.startswith("scenarios.")]
    missing = [
        f"{model.__name__}.{name}"
        for model in [*models_of(schema), *options]
        for name, field in model.model_fields.items()
        if not field.description
    ]
    assert missing == []


def test_every_key_and_every_scenario_is_in_the_reference() -> None:
    import tests.toy_scenario  # noqa: F401  a scenario registered from outside scenarios/

    reference = config_reference()
    assert "`train.lora.target_modules`" in reference
    assert "`team.agents[].sampling.top_k`" in reference
    assert "toy_length_v0" in SCENARIOS and "toy_length_v0" not in reference
    for name, scenario in SCENARIOS.items():
        if not scenario.env.__module__.startswith("scenarios."):  # a test's or a user's own
            continue
        assert f"`scenario.options` of `{name}`" in reference
        for field in scenario.options.model_fields:
            assert f"`scenario.options.{field}`" in reference


def readme_python_blocks() -> list[tuple[int, str]]:
    """Every ```python block of the README with the line it starts on."""
    text = (ROOT / "README.md").read_text()
    return [
        (text[: m.start()].count("\n") + 1, m.group(1))
        for m in re.finditer(r"^```python\n(.*?)^```$", text, re.DOTALL | re.MULTILINE)
    ]


def test_the_readme_python_snippets_run_as_written(tmp_path: Path, monkeypatch, capsys):
    """Each snippet runs unchanged, in order, from a folder laid out like a checkout after
    `make demo`: the repository's configs (with the tiny model, so that it is quick) and a
    demo run folder."""
    from marl.cli import main

    (tmp_path / "configs").mkdir()
    for path in [*ROOT.glob("configs/*.yaml"), *ROOT.glob("configs/own_scenario/*")]:
        target = tmp_path / path.relative_to(ROOT)
        target.parent.mkdir(exist_ok=True)
        if path.suffix == ".yaml":
            target.write_text(yaml.safe_dump(config_on_tiny_model(path)))
        elif path.is_file():
            shutil.copy(path, target)
    monkeypatch.chdir(tmp_path)
    assert main(["simulate", "configs/debate.yaml", "--episodes", "1", "--no-progress"]) == 0
    blocks = readme_python_blocks()
    assert len(blocks) >= 4
    for line, code in blocks:
        try:
            exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "readme"})
        except Exception as err:  # say which snippet broke
            pytest.fail(f"the README's snippet at line {line} raised {type(err).__name__}: {err}")
    out = capsys.readouterr().out
    assert "single" in out and "words" in out
