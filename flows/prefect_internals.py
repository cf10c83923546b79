"""Every use icefloe makes of Prefect's private internals, in one place. Each has a contract test
(tests/flows/test_prefect_internals.py) that fails as soon as a Prefect upgrade moves what it relies on; `prefect`
is pinned exactly in pyproject.toml for the same reason.

- `PrefectDaskClient.submit` serializes the whole run context (all Prefect settings) and tokenizes it for every
  task: ~150-200 ms of flow-process CPU per task on a 2-core machine, which competes with the workers. The context
  is the same for every block of a fan-out, so `submit_many` serializes it once (`serialize_context`); each task
  still gets its own task run id and asset context (`AssetContext`), runs through Prefect's own `run_task_sync` on
  the worker (states, retries, logs) and comes back as a `PrefectDaskFuture`. The flow's parameters are left out of
  the context it ships: they may hold a whole dask graph.

- A flow run's heartbeat thread sleeps in whole seconds and the sync engine joins it when the run ends, so every
  flow run waited up to a second after its last line (0.6-0.8 s measured on each run here). The engine is told not
  to wait, as Prefect's async engine already does: the thread is a daemon, sees the stop event within a second and
  ends by itself. Heartbeats are emitted as before.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import uuid4

import prefect.flow_engine
from prefect import Task
from prefect.context import AssetContext, serialize_context
from prefect.task_engine import run_task_sync
from prefect_dask import DaskTaskRunner
from prefect_dask.task_runners import PrefectDaskFuture

_send_heartbeats = prefect.flow_engine._send_heartbeats


def _run_task(**kwargs: Any) -> Any:
    return run_task_sync(**kwargs)


def submit_many[R](
    runner: DaskTaskRunner, task: Task[..., R], parameter_sets: list[dict[str, Any]]
) -> list[PrefectDaskFuture[R]]:
    """Submit `task` once per parameter set; the futures resolve to the tasks' final Prefect states."""
    shared = serialize_context()
    # The flow run's context carries the flow's own parameters: for a Python caller, the source's whole dask graph,
    # which every task would carry too (10,000 blocks of a 10,000-chunk array: 2 GB in the flow process). No block
    # task reads them; each gets only its own slice.
    shared["flow_run_context"].pop("parameters", None)
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


@contextmanager
def send_heartbeats_without_waiting(engine: Any, join_on_exit: bool = True) -> Iterator[None]:
    with _send_heartbeats(engine, join_on_exit=False):
        yield


def install() -> None:
    prefect.flow_engine._send_heartbeats = send_heartbeats_without_waiting
