"""Policies that turn observations into text: LLM agents, generation backends, models.

Agents never know which scenario runs: they receive observation text and return
completions. Importing this package is cheap; torch and transformers load on first use.
"""
