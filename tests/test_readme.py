"""The README's config reference is the schema's: generated from the field descriptions."""

from __future__ import annotations

import inspect

from pydantic import BaseModel

import marl.core.config as schema
from marl.reference import BEGIN, END, config_reference, replace_block
from scenarios import SCENARIOS
from tests.conftest import ROOT


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
        if name == "toy_length_v0":
            continue
        assert f"`scenario.options` of `{name}`" in reference
        for field in scenario.options.model_fields:
            assert f"`scenario.options.{field}`" in reference
