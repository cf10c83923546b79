"""Running a write without a Prefect API: how the `icefloe` command writes when none is configured.

The run is the same as a flow's (`tasks/running/runs.py`): the same plan, forks, checks and one commit. What
Prefect would add is replaced by the least that keeps it safe: retries happen inside each block task
(`write_block_retrying`), a local repository is held with an OS file lock (`held_target`), and progress goes to the
terminal. Nothing is recorded in Prefect, so nothing waits for a Prefect server to start.

Blocks run on a pool of threads of this process unless the run names a Dask scheduler or a cluster class, or asks
for process workers:
with nothing to schedule across machines, Dask's scheduler, workers and event loop cost 7% more CPU for the same
1 GiB write (and their import a sixth of a second), for nothing a pool of threads lacks.
"""

import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from icechunk import ForkSession

from tasks.planning.blocks import LOCAL_SIZING, BlockSizing
from tasks.records import BlockJob, BlockReport, CommitResult, Logger, Progress, WrittenBlock, no_progress
from tasks.request import WriteOptions
from tasks.running.cluster import cluster_class, run_cluster, scheduler_address
from tasks.writing.block import check_all_written, write_block_retrying

if TYPE_CHECKING:
    import distributed

type ProgressFactory = Callable[[int], AbstractContextManager[Progress]]


@dataclass(frozen=True)
class ThreadBlockRunner:
    """Blocks on threads of this process."""

    threads: int
    progress: ProgressFactory
    sizing: BlockSizing = LOCAL_SIZING

    def write_blocks(
        self, fork: ForkSession, jobs: list[BlockJob], options: WriteOptions, merge: Callable[[WrittenBlock], None]
    ) -> None:
        failures: list[str] = []
        pool = ThreadPoolExecutor(self.threads, thread_name_prefix="icefloe-block")
        try:
            with self.progress(len(jobs)) as progress:
                futures: dict[Future[WrittenBlock], BlockJob] = {
                    pool.submit(write_block_retrying, fork, j, options): j for j in jobs
                }
                for done in as_completed(futures):
                    job = futures[done]
                    try:
                        written = done.result()
                    except Exception as e:
                        failures.append(f"{job.block.name}: {e}")
                    else:
                        merge(written)
                    progress.advance()
        except BaseException:
            # Interrupted: start no other block and do not wait for the running ones (a block can take a minute);
            # they write only into forks nothing will merge, and the command ends its process without them.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        check_all_written(failures, len(jobs))


@dataclass(frozen=True)
class _DaskBlock:
    future: "distributed.Future[object]"

    def result(self) -> list[WrittenBlock]:
        written = self.future.result()
        assert isinstance(written, WrittenBlock)
        return [written]

    def lost(self, reason: str) -> None:
        pass  # nothing tracks it but this run


@dataclass(frozen=True)
class DaskBlockRunner:
    """Blocks as plain Dask tasks, on a scheduler the run names or on local process workers."""

    client: "distributed.Client"
    progress: ProgressFactory
    logger: Logger
    sizing: BlockSizing = LOCAL_SIZING

    @property
    def threads(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def write_blocks(
        self, fork: ForkSession, jobs: list[BlockJob], options: WriteOptions, merge: Callable[[WrittenBlock], None]
    ) -> None:
        from tasks.writing.fan_out import SubmittedBatch, collect_forks

        def submit(some: list[list[BlockJob]]) -> list[SubmittedBatch]:
            # a unique key: a resubmitted block is a new task
            return [
                _DaskBlock(self.client.submit(write_block_retrying, fork, j, options, key=f"write-{uuid4()}"))
                for (j,) in some
            ]

        with self.progress(len(jobs)) as progress:
            collect_forks(self.client, [[j] for j in jobs], submit, merge, progress, options.retries, self.logger)


class LocalOrchestrator:
    """Runs without Prefect: logs to the `icefloe` logger, holds no lock beyond the local repository's own."""

    def __init__(self, progress: ProgressFactory = no_progress) -> None:
        self._progress = progress

    @property
    def logger(self) -> Logger:
        return logging.getLogger("icefloe")

    @contextmanager
    def hold_target(self, repo: str, branch: str) -> Iterator[None]:
        # Object stores arbitrate commits themselves (a conflicting commit fails and commits nothing); a local
        # repository is held by `held_target`'s file lock.
        yield

    def stage[R](self, name: str, work: Callable[[Logger], R]) -> R:
        return work(self.logger)

    @contextmanager
    def block_runner(self, options: WriteOptions) -> Iterator[ThreadBlockRunner | DaskBlockRunner]:
        if scheduler_address(options) is None and cluster_class(options) is None and not options.processes:
            yield ThreadBlockRunner(options.n_workers or os.cpu_count() or 1, self._progress)
            return
        from distributed import Client

        with run_cluster(options) as cluster, Client(cluster, set_as_default=False) as client:
            yield DaskBlockRunner(client, self._progress, self.logger)

    def run_metadata(self) -> dict[str, Any]:
        return {"orchestrator": "local"}

    def report(self, result: CommitResult, blocks: list[BlockReport]) -> None:
        pass  # the command prints its own summary
