"""Where data comes from and goes to: targets (local or object-store repositories), sources, the functions a
request names, and what the repository's own records say (its operations log, whether a chunk still reads back)."""
