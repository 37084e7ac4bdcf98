"""Benchmarks. Each writes its own section of BENCHMARKS.md."""
