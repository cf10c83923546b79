"""Deployment definitions (schedules, parameter models, serve entry point)."""
