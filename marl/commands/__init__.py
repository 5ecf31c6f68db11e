"""The commands of `marl` (the CLI in ``marl.cli`` parses their arguments and prints).

| module     | command         | writes                                                       |
| ---------- | --------------- | ------------------------------------------------------------ |
| `simulate` | `marl simulate` | a run folder: the team and its single-agent baseline         |
| `evaluate` | `marl eval`     | a run folder: the team, each agent alone, leave-one-out      |
| `train`    | `marl train`    | a run folder: metrics per step, checkpoints, held-out scores |
| `export`   | `marl export`   | CSV files of a run folder (metrics, evaluations, episodes)   |
| `phases`   | (shared)        | a group of episodes played by the same agents, on disk       |
"""
