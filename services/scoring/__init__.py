"""The scoring worker: a Faust stream processor keeping rolling presence, growth and score aggregates
in ClickHouse (docs/SCORING.md). The maths are pure functions in ``maths``; ``processor`` turns a
batch of snapshots and per-account state into rows; ``sink`` writes them; ``app`` is the Faust wiring."""
