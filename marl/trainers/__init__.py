"""Trainers: they consume recorded episodes and update policies; they never step an env."""
