"""The `store_array` flow: dask arrays into an Icechunk repository, block by block, in one atomic commit."""

from flows.deployment_runs import check_allowed, is_deployment_run
from flows.orchestrator import PrefectOrchestrator
from flows.parameters import icefloe_flow
from flows.process import set_up_flow_process
from tasks.records import CommitResult
from tasks.request import ArrayWrite, WriteOptions, publish_gate
from tasks.running.runs import run_store_array

set_up_flow_process()


@icefloe_flow("store-array")
def store_array(
    repo: str,
    writes: list[ArrayWrite],
    branch: str = "main",
    message: str | None = None,
    publish: bool = False,
    publish_check: str | None = None,
    time_dim: str = "time",
    allow_nan: bool = False,
    options: WriteOptions = WriteOptions(),  # noqa: B008 - frozen model, safe as a default
) -> CommitResult:
    """Write dask arrays into the Icechunk repository `repo` (a path or s3://bucket/prefix) as ONE new snapshot.

    Like `icechunk.dask.store_dask`, plus per-block retries, a check that no chunk is written twice and a single
    commit that carries the run's metadata. Nothing is committed unless every block was written. With `publish`,
    the commit goes to a staging branch and the branch moves to it once it passed its checks (`allow_nan`, along
    the arrays' dimension named `time_dim`; `publish_check`: package.module:function given it as a Dataset).
    """
    if is_deployment_run():
        check_allowed(target=repo, functions={"publish_check": publish_check}, options=options)
    gate = publish_gate(publish, time_dim, allow_nan, publish_check, appends_only=False)
    return run_store_array(PrefectOrchestrator(), repo, writes, branch, message, options, gate)
