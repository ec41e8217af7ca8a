"""Benchmarks, one module per `meterflow bench <name>`: each prints its figure as the last line and a ratio
to a baseline measured in the same run. Edge code: only `cli/commands/bench.py` loads it."""
