"""Fanning block writes out on the DaskTaskRunner's cluster as Prefect task runs, and getting every block's fork
back (submitted by `prefect_internals.submit_many`: the run context serialized once for all blocks)."""

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from distributed import Future
from icechunk import ForkSession
from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.exceptions import PrefectHTTPStatusError
from prefect.states import Crashed
from prefect_dask import DaskTaskRunner
from prefect_dask.task_runners import PrefectDaskFuture

from flows.cluster import cluster_threads
from flows.prefect_internals import submit_many
from flows.progress import block_progress
from tasks.block_task import write_block_task
from tasks.fan_out import SubmittedBlock, collect_forks
from tasks.plan import PREFECT_SIZING, BlockSizing
from tasks.request import WriteOptions
from tasks.write import BlockJob, WrittenBlock


@dataclass(frozen=True)
class _PrefectBlock:
    """A block task run on Dask, as `collect_forks` tracks it."""

    submitted: PrefectDaskFuture[WrittenBlock]

    @property
    def future(self) -> Future[WrittenBlock]:
        return self.submitted.wrapped_future

    def result(self) -> WrittenBlock:
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

    def write_blocks(self, fork: ForkSession, jobs: list[BlockJob], options: WriteOptions) -> list[WrittenBlock]:
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
