"""Benchmarks of the Intake Gateway; run each from the project root as `python -m bench.NAME`."""
