"""Fanning block writes out on the DaskTaskRunner's cluster, and getting every block's fork back.

`PrefectDaskClient.submit` serializes the whole run context (all Prefect settings) and tokenizes it for every task:
~150-200 ms of flow-process CPU per task on a 2-core machine, which competes with the workers. The context is the
same for every block of a fan-out, so `submit_many` serializes it once; each task still gets its own task run id and
asset context, runs through Prefect's own `run_task_sync` on the worker (states, retries, logs) and comes back as a
`PrefectDaskFuture`.
"""

from typing import Any
from uuid import UUID, uuid4

from distributed import KilledWorker, as_completed
from icechunk import ForkSession
from prefect import Task, get_run_logger
from prefect.client.orchestration import get_client
from prefect.context import AssetContext, serialize_context
from prefect.exceptions import PrefectHTTPStatusError
from prefect.states import Crashed
from prefect.task_engine import run_task_sync
from prefect_dask import DaskTaskRunner
from prefect_dask.task_runners import PrefectDaskFuture

from flows.progress import block_progress
from tasks.block_task import write_block_task
from tasks.errors import BlockWriteError
from tasks.plan import Block
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


def write_blocks(
    runner: DaskTaskRunner, fork: ForkSession, jobs: list[BlockJob], options: WriteOptions
) -> list[tuple[Block, ForkSession]]:
    """Fan the blocks out on Dask; each returns its fork. A block lost with its worker is submitted again."""
    task = write_block_task.with_options(
        retries=options.retries,
        retry_delay_seconds=[options.retry_delay_seconds * 2**i for i in range(options.retries)] or 0,
    )
    logger = get_run_logger()

    submitted: dict[Any, tuple[BlockJob, PrefectDaskFuture[ForkSession], int]] = {}  # by Dask key
    finished = as_completed(loop=runner.client.loop)

    def submit(batch: list[BlockJob], resubmits: int) -> None:
        futures = submit_many(runner, task, [_params(fork, job, options) for job in batch])
        for job, future in zip(batch, futures, strict=True):
            submitted[future.wrapped_future.key] = (job, future, resubmits)
            finished.add(future.wrapped_future)

    written: list[tuple[Block, ForkSession]] = []
    failures: list[str] = []
    with block_progress(len(jobs)) as progress:
        submit(jobs, 0)
        for done in finished:
            job, future, resubmits = submitted.pop(done.key)
            try:
                written.append((job.block, future.result()))
            except KilledWorker as e:
                # Dask gave up on the task after its workers died: Prefect's retries never ran.
                mark_crashed(future.task_run_id, f"worker lost: {e}")
                if resubmits < options.retries:
                    logger.warning("block %s lost with its worker; submitting it again", job.block.name)
                    submit([job], resubmits + 1)
                    continue
                failures.append(f"{job.block.name}: {e}")
            except Exception as e:
                failures.append(f"{job.block.name}: {e}")
            progress.advance()
    if failures:
        raise BlockWriteError(
            f"{len(failures)} of {len(jobs)} blocks failed after retries; nothing was committed. "
            f"First failure: {failures[0]}"
        )
    return written


def mark_crashed(task_run_id: UUID, message: str) -> None:
    """A task whose worker died stays Pending or Running in Prefect; say what happened to it."""
    with get_client(sync_client=True) as client:
        try:
            client.set_task_run_state(task_run_id, Crashed(message=message), force=True)
        except PrefectHTTPStatusError as e:
            if e.response.status_code != 404:  # 404: the worker died before the run reached the API
                raise


def _params(fork: ForkSession, job: BlockJob, options: WriteOptions) -> dict[str, Any]:
    return {
        "fork": fork,
        "block": job.block,
        "unit": job.unit,
        "sources": job.sources,
        "piece_bytes": options.piece_bytes,
    }
