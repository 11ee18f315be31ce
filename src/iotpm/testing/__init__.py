"""Generators for tests and benchmarks: the outside world as the pipeline meets it."""
