"""What the test suite and the benchmarks share: real services and processes (`services`,
`servers`, `procs`), concurrent HTTP clients (`load`), the labelled face set and its scoring
(`faces`), the moving-face clips made for it (`moving`), style statistics (`style_stats`), and
what only tests use: leases aged without waiting (`clock`), a PostgreSQL proxy that loses
answers (`pgproxy`), a small disk (`small_disk`).

The one place `tests` and `bench` meet: a benchmark imports nothing else of `tests`, a test
imports `bench` only to test a benchmark (tests/bench), and nothing here imports the tests
around it or `bench` (the import contracts in pyproject.toml hold all three).
"""
