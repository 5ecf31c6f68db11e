"""The core: what every other room of marl stands on, and which imports none of them.

| module          | owns                                                                  |
| --------------- | --------------------------------------------------------------------- |
| `graph`         | interaction graphs: presets, files, seeded random graphs, per round    |
| `bus`           | the message bus: messages travel only along graph edges               |
| `codec`         | msgpack frames and transcript files, read back under size limits      |
| `runs`          | run folders: config, metrics lines, transcripts, atomic writes        |
| `runlock`       | one writer per run folder                                             |
| `checkpoint`    | verified checkpoints of a training run                                |
| `config`        | the run config schema (pydantic): every key a YAML file may hold      |
| `yamlfile`      | reading an untrusted YAML file within bounds; ``--set`` overrides     |

Nothing here imports ``scenarios``, ``agents``, ``analysis`` or the rest of ``marl``:
scenarios and analysis read runs and route messages through these modules alone.
"""
