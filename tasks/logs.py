"""What icefloe's processes log from Icechunk.

Icechunk's Rust core warns on every repository open, for things icefloe already handles (a local repository is
not safe for concurrent commits: icefloe holds a file lock; conditional writes without write-id metadata): lines a
user cannot act on, in every run's output. They are off unless ICECHUNK_LOG says otherwise (`icefloe
--icechunk-log warn` sets it); every other warning stays. Each entry point (the command, a flow module, a worker
preload) asks for it; importing icefloe changes nothing.
"""

import os
import sys

ICECHUNK_LOG = "warn,icechunk_arrow_object_store=error,icechunk_storage::readback=error"


def quiet_icechunk() -> None:
    """Icechunk's open-time warnings off, here and in the Dask workers and flow runs this process starts (they
    inherit the environment), unless ICECHUNK_LOG is set."""
    os.environ.setdefault("ICECHUNK_LOG", ICECHUNK_LOG)
    if "icechunk" in sys.modules:  # imported already, it read the environment before the line above
        sys.modules["icechunk"].set_logs_filter(None)
