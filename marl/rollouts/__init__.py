"""Playing episodes: the engine, what it records, and who runs it.

| module        | owns                                                                      |
| ------------- | ------------------------------------------------------------------------- |
| `interface`   | ``Rollouts``: the one interface the training loop and evaluation call      |
| `local`       | its implementations in this process: on transformers, on vLLM             |
| `ray_workers` | its implementation on Ray actors, each holding an in-process one          |
| `engine`      | the lockstep loop over many episodes; training groups (episodes, tree, cross) |
| `records`     | turns, episodes and groups, and their msgpack-friendly records             |
"""
