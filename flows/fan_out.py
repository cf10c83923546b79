"""Fanning block writes out on the DaskTaskRunner's cluster, and getting every block's fork back.

`PrefectDaskClient.submit` serializes the whole run context (all Prefect settings) and tokenizes it for every task:
~150-200 ms of flow-process CPU per task on a 2-core machine, which competes with the workers. The context is the
same for every block of a fan-out, so `submit_many` serializes it once; each task still gets its own task run id and
asset context, runs through Prefect's own `run_task_sync` on the worker (states, retries, logs) and comes back as a
`PrefectDaskFuture`.
"""

from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from distributed import Future
from icechunk import ForkSession
from prefect import Task, get_run_logger
from prefect.client.orchestration import get_client
from prefect.context import AssetContext, serialize_context
from prefect.exceptions import PrefectHTTPStatusError
from prefect.states import Crashed
from prefect.task_engine import run_task_sync
from prefect_dask import DaskTaskRunner
from prefect_dask.task_runners import PrefectDaskFuture

from flows.cluster import cluster_threads
from flows.progress import block_progress
from tasks.block_task import write_block_task
from tasks.fan_out import SubmittedBlock, collect_forks
from tasks.plan import PREFECT_SIZING, Block, BlockSizing
from tasks.request import WriteOptions
from tasks.write import BlockJob


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


@dataclass(frozen=True)
class _PrefectBlock:
    """A block task run on Dask, as `collect_forks` tracks it."""

    submitted: PrefectDaskFuture[ForkSession]

    @property
    def future(self) -> Future[ForkSession]:
        return self.submitted.wrapped_future

    def result(self) -> ForkSession:
        return self.submitted.result()

    def lost(self, reason: str) -> None:
        mark_crashed(self.submitted.task_run_id, reason)


@dataclass(frozen=True)
class PrefectBlockRunner:
    """Block writes as Prefect task runs on the DaskTaskRunner's cluster: retried by Prefect, seen in the UI."""

    runner: DaskTaskRunner

    @property
    def threads(self) -> int:
        return cluster_threads(self.runner)

    @property
    def sizing(self) -> BlockSizing:
        return PREFECT_SIZING

    def write_blocks(
        self, fork: ForkSession, jobs: list[BlockJob], options: WriteOptions
    ) -> list[tuple[Block, ForkSession]]:
        task = write_block_task.with_options(
            retries=options.retries,
            retry_delay_seconds=[options.retry_delay_seconds * 2**i for i in range(options.retries)] or 0,
        )

        def submit(batch: list[BlockJob]) -> list[SubmittedBlock]:
            futures = submit_many(self.runner, task, [_params(fork, job, options) for job in batch])
            return [_PrefectBlock(future) for future in futures]

        with block_progress(len(jobs)) as progress:
            return collect_forks(self.runner.client, jobs, submit, progress, options.retries, get_run_logger())


def mark_crashed(task_run_id: UUID, message: str) -> None:
    """A task whose worker died stays Pending or Running in Prefect; say what happened to it."""
    with get_client(sync_client=True) as client:
        try:
            client.set_task_run_state(task_run_id, Crashed(message=message), force=True)
        except PrefectHTTPStatusError as e:
            if e.response.status_code != 404:  # 404: the worker died before the run reached the API
                raise


def _params(fork: ForkSession, job: BlockJob, options: WriteOptions) -> dict[str, Any]:
    return {"fork": fork, "job": job, "piece_bytes": options.piece_bytes}
