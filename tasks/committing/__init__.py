"""Committing, in the run's own process: each fork checked and merged as it arrives, blocks kept for a next attempt,
the one commit, the report, and the checks a committed snapshot is held to."""
