"""A write's defaults that the command shows in its help, written once: the request models take them from here,
and the command's help reads them without importing the models (it answers before pydantic or dask is imported)."""

BRANCH = "main"
RETRIES = 3
STORAGE_MAX_TRIES = 10
MANIFEST_FETCH_CONCURRENCY = 16
"""Manifests a commit fetches and writes at once; Icechunk's own default is 1."""
