"""Run store_array with no PREFECT_API_URL on process workers; print what the flow's own temporary API recorded.

Started as a subprocess by tests/flows/test_without_a_configured_api.py (spawned workers need a `__main__` guard).
"""

import sys

import dask.array as da

from flows.store_array import store_array
from tasks.request import ArraySpec, ArrayWrite, WriteOptions
from tests.conftest import block_task_runs

if __name__ == "__main__":
    source = da.ones((40, 40), chunks=20)
    state = store_array(
        repo=sys.argv[1],
        writes=[ArrayWrite(source=source, target=ArraySpec(path="x", chunks=(10, 10)))],
        options=WriteOptions(processes=True, n_workers=2, block_bytes=3200),
        return_state=True,
    )
    blocks = state.result().blocks
    runs = block_task_runs(state.state_details.flow_run_id)  # from the same temporary server the flow used
    completed = sum(1 for r in runs if r.state_type.value == "COMPLETED")
    print(f"blocks={blocks} completed_block_runs={completed}")
