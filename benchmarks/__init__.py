"""Benchmarks: one command each (`uv run python -m benchmarks.<name>`), printing their figures."""
