"""Plain, typed logic of icefloe (planning, targets, writing, merging) and the thin Prefect tasks around it.

Icechunk's Rust core warns on every repository open, for things icefloe already handles (a local repository is
not safe for concurrent commits: icefloe holds a file lock; conditional writes without write-id metadata): lines a
user cannot act on, in every run's output. They are off unless ICECHUNK_LOG says otherwise (`icefloe
--icechunk-log warn` sets it); every other warning stays.
"""

import os
import sys

ICECHUNK_LOG = "warn,icechunk_arrow_object_store=error,icechunk_storage::readback=error"

os.environ.setdefault("ICECHUNK_LOG", ICECHUNK_LOG)  # also for the Dask workers and flow runs this process starts
if "icechunk" in sys.modules:  # imported first, it read the environment before the line above
    sys.modules["icechunk"].set_logs_filter(None)
