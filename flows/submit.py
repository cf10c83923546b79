"""Submitting many Prefect tasks to the DaskTaskRunner's cluster with the flow's context serialized once.

`PrefectDaskClient.submit` serializes the whole run context (all Prefect settings) and tokenizes it for every task:
~150-200 ms of flow-process CPU per task on a 2-core machine, which competes with the workers. The context is the
same for every block of a fan-out, so it is serialized once here; each task still gets its own task run id and
asset context, runs through Prefect's own `run_task_sync` on the worker (states, retries, logs) and comes back as a
`PrefectDaskFuture`.
"""

from typing import Any
from uuid import uuid4

from prefect import Task
from prefect.context import AssetContext, serialize_context
from prefect.task_engine import run_task_sync
from prefect_dask import DaskTaskRunner
from prefect_dask.task_runners import PrefectDaskFuture


def _run_task(**kwargs: Any) -> Any:
    return run_task_sync(**kwargs)


def submit_many[R](
    runner: DaskTaskRunner, task: Task[..., R], parameter_sets: list[dict[str, Any]]
) -> list[PrefectDaskFuture[R]]:
    """Submit `task` once per parameter set; the futures resolve to the tasks' final Prefect states."""
    shared = serialize_context()
    futures: list[PrefectDaskFuture[R]] = []
    for parameters in parameter_sets:
        task_run_id = uuid4()
        inputs: dict[str, set[Any]] = {name: set() for name in parameters}
        asset_context = AssetContext.from_task_and_inputs(
            task=task, task_run_id=task_run_id, task_inputs=inputs, copy_to_child_ctx=True
        )
        future = runner.client.submit(
            _run_task,
            key=f"{task.name}-{task_run_id}",
            pure=False,  # the key is unique already: do not tokenize the context
            task=task,
            task_run_id=task_run_id,
            parameters=parameters,
            return_type="state",
            dependencies=inputs,
            context={**shared, "asset_context": asset_context.serialize()},
        )
        futures.append(PrefectDaskFuture[R](wrapped_future=future, task_run_id=task_run_id))
    return futures
