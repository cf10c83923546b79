"""What every Dask worker of icefloe's loads as it starts (`tasks/running/cluster.py::WORKER_PRELOAD`): the block
writer, imported before the first block arrives, and Icechunk's open-time warnings off. The Prefect task around a
block is imported by the first task run that needs it, so that the workers of a run without Prefect never import
Prefect."""

import tasks.writing.block  # noqa: F401 - imported for what it imports: the first block does not wait for it
from tasks.logs import quiet_icechunk


def dask_setup(worker: object) -> None:
    quiet_icechunk()
