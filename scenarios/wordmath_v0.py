"""
# Word-problem debate

| Creation           | `make("parallel", "marl/wordmath-v0")` after `import scenarios`   |
|--------------------|-------------------------------------------------------------------|
| Actions            | Text (the agent's completion)                                     |
| Parallel API       | Yes                                                               |
| Agents             | `agents= ['agent_0', 'agent_1', 'agent_2']` (any ids, 1 or more)  |
| Action space       | `Text(0..4000, charset=string.printable)`; longer text is cut      |
| Observation space  | `Text(1..N, charset=string.printable)`, N from graph and options  |
| Rewards            | one team reward for every agent, 0.0 or 1.0                       |
| Episode length     | `rounds` steps, plus one for the judge when there is one          |

The debate protocol of `debate_v0` on seeded word problems (`scenarios.wordproblems`):
shopping, sharing, travel, ages, savings and seven more story templates, each with an
integer answer and a graded number of arithmetic steps (1, 2 or 3). Every agent answers
the same problem, reads its in-neighbours' answers and answers again; with one agent it
is the single-agent baseline.

Everything but the task is `debate_v0`'s: observations, messages, rewards, infos and
episode metrics, termination, the optional judge (`judge`), the display of peers
(`peer_display`, `max_neighbours_shown`) and seeding are as its docstring says. The only
option that differs is `task`: a word-problem level (`one_step`, `two_step`,
`three_step`, `mixed`) or a `WordProblemSpec` mapping (`steps`, `templates`).
Metrics' `target` is the answer; `render` shows the computation behind it.

### Version history

* v0: initial release.
* v0, quoted messages (with `debate_v0`): a received completion is shown with `| ` before
  each of its lines, so none of them can pose as another agent's answer.
* v0, whole numbers (with `debate_v0`): an answer's number is read whole (`1e3` is 1000,
  `1e999` and `1.5` no answer; before, both exponents were read as 1).
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

from pydantic import Field, field_validator

from scenarios.arithmetic import Problem
from scenarios.debate_v0 import DebateEnv, DebateProtocol
from scenarios.wordproblems import WordProblemSpec, sample_word_problem

DEFAULT_TASK = "two_step"


class WordMathOptions(DebateProtocol):
    """The word-problem debate's options: the debate protocol's, with word problems as task."""

    task: WordProblemSpec = Field(
        DEFAULT_TASK,
        validate_default=True,
        description="The word problems: a preset name (one_step, two_step, three_step, mixed) "
        "or a WordProblemSpec mapping (steps, templates).",
    )

    @field_validator("task", mode="before")
    @classmethod
    def _task_preset(cls, value: Any) -> Any:
        return WordProblemSpec.preset(value) if isinstance(value, str) else value


class WordMathEnv(DebateEnv):
    """Debate on word problems: ``DebateEnv`` with a word-problem task source."""

    metadata: ClassVar[dict[str, Any]] = {**DebateEnv.metadata, "name": "wordmath_v0"}
    options_model = WordMathOptions

    def sample_task(self, rng: random.Random) -> Problem:
        return sample_word_problem(self.options.task, rng)


def parallel_env(**kwargs: Any) -> WordMathEnv:
    """Build a ``WordMathEnv``, the PettingZoo factory convention."""
    return WordMathEnv(**kwargs)
