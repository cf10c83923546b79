"""Prefect flows: thin orchestration of plan -> initialize -> fan out -> merge -> commit."""
