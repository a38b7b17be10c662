"""Benchmarks of okr-sync against the sandbox: `python -m bench` (see bench/__main__.py and BENCHMARKS.md)."""
