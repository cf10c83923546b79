"""Fanning block writes out on the DaskTaskRunner's cluster as Prefect task runs, and getting every block's fork
back (submitted by `prefect_internals.submit_many`: the run context serialized once for all blocks)."""

from collections.abc import Callable
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
from flows.prefect_api import workers_report_to_flow_api
from flows.prefect_internals import submit_many
from flows.progress import block_progress
from tasks.planning.blocks import PREFECT_SIZING, BlockSizing
from tasks.records import BlockJob, WrittenBlock
from tasks.request import WriteOptions
from tasks.writing.block import batches
from tasks.writing.block_task import write_block_task, write_blocks_task
from tasks.writing.fan_out import SubmittedBatch, collect_forks


@dataclass(frozen=True)
class _PrefectBatch:
    """A task run on Dask that writes one block or a batch of them, as `collect_forks` tracks it."""

    submitted: PrefectDaskFuture[WrittenBlock] | PrefectDaskFuture[list[WrittenBlock]]

    @property
    def future(self) -> Future[object]:
        return self.submitted.wrapped_future

    def result(self) -> list[WrittenBlock]:
        written = self.submitted.result()
        return written if isinstance(written, list) else [written]

    def lost(self, reason: str) -> None:
        mark_crashed(self.submitted.task_run_id, reason)


@dataclass(frozen=True)
class PrefectBlockRunner:
    """Block writes as Prefect task runs on the DaskTaskRunner's cluster: retried, seen in the UI. Up to
    `max_task_runs` blocks, a task run each (Prefect retries it); beyond, batches of neighbouring blocks, a task run
    each (each block retried inside it), so that no run floods the Prefect database."""

    runner: DaskTaskRunner

    @property
    def threads(self) -> int:
        return cluster_threads(self.runner)

    @property
    def sizing(self) -> BlockSizing:
        return PREFECT_SIZING

    def write_blocks(
        self, fork: ForkSession, jobs: list[BlockJob], options: WriteOptions, merge: Callable[[WrittenBlock], None]
    ) -> None:
        bound = options.max_task_runs or task_run_bound(self.threads)
        one_each = len(jobs) <= bound
        single = write_block_task.with_options(
            retries=options.retries,
            retry_delay_seconds=[options.retry_delay_seconds * 2**i for i in range(options.retries)] or 0,
        )

        def submit(some: list[list[BlockJob]]) -> list[SubmittedBatch]:
            if one_each:
                singles = submit_many(self.runner, single, [{**_params(fork, options), "job": job} for (job,) in some])
                return [_PrefectBatch(future) for future in singles]
            parameters = [{**_params(fork, options), "jobs": batch} for batch in some]
            return [_PrefectBatch(future) for future in submit_many(self.runner, write_blocks_task, parameters)]

        with block_progress(len(jobs)) as progress, workers_report_to_flow_api():
            collect_forks(
                self.runner.client,
                batches(jobs, bound),
                submit,
                merge,
                progress,
                options.retries,
                get_run_logger(),
            )


def task_run_bound(threads: int) -> int:
    """How many task runs a write's blocks get by default. A task run costs its worker thread ~10-20 ms (states,
    events; 32 no-op task runs on 2 threads took 0.3 s, 2.9 s before each thread kept its settings and client) and
    rows and events in Prefect's database, so about 16 per thread; at least 100, so that progress moves in steps of
    1%, and at most 1000 (Prefect users report database timeouts from 100k task runs in one flow run)."""
    return min(1000, max(100, 16 * threads))


def mark_crashed(task_run_id: UUID, message: str) -> None:
    """A task whose worker died stays Pending or Running in Prefect; say what happened to it."""
    with get_client(sync_client=True) as client:
        try:
            client.set_task_run_state(task_run_id, Crashed(message=message), force=True)
        except PrefectHTTPStatusError as e:
            if e.response.status_code != 404:  # 404: the worker died before the run reached the API
                raise


def _params(fork: ForkSession, options: WriteOptions) -> dict[str, Any]:
    return {"fork": fork, "options": options}
