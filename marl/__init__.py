"""marl: teams of LLM agents in Dec-POMDP scenarios, simulated, scored and trained jointly.

The core package: config schema, interaction graph, message bus and codec, rollout engine,
run folders and the `marl` command line. Heavy imports (torch, transformers) live in
`agents/` and are only loaded by the pieces that generate text.
"""

__version__ = "0.1.0"
