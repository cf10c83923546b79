"""Run store_array with no PREFECT_API_URL on process workers; print what the flow's own temporary API recorded.

Started as a subprocess by tests/flows/test_without_server.py (spawned workers need a `__main__` guard).
"""

import sys

import dask.array as da
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.sorting import TaskRunSort

from flows.store_array import store_array
from tasks.request import ArraySpec, ArrayWrite, WriteOptions

if __name__ == "__main__":
    source = da.ones((40, 40), chunks=20)
    state = store_array(
        repo=sys.argv[1],
        writes=[ArrayWrite(source=source, target=ArraySpec(path="x", chunks=(10, 10)))],
        options=WriteOptions(processes=True, n_workers=2, block_bytes=3200),
        return_state=True,
    )
    blocks = state.result().blocks
    with get_client(sync_client=True) as client:  # the same temporary server the flow used
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])),
            sort=TaskRunSort.EXPECTED_START_TIME_DESC,
            limit=50,
        )
    completed = sum(1 for r in runs if r.name.startswith("write ") and r.state_type.value == "COMPLETED")
    print(f"blocks={blocks} completed_block_runs={completed}")
