"""Benchmarks: each runnable as ``python -m bench.<name>``, printing ratios against a reference measured in the same run."""
