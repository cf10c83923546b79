"""Prefect flows: thin orchestration of a run's stages (`tasks/running/`): take the target, initialize, plan, fan out,
merge and commit once, report."""
