"""Running a write without a Prefect API: how the `icefloe` command writes when none is configured.

The run is the same as a flow's (`tasks/runs.py`): the same plan, forks, checks and one commit, on the same kind of
Dask cluster. What Prefect would add is replaced by the least that keeps it safe: retries happen inside each block
task (`write_block_retrying`), a local repository is held with an OS file lock (`held_target`), and progress goes to
the terminal. Nothing is recorded in Prefect, so nothing waits for a Prefect server to start.
"""

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

from distributed import Client, Future
from icechunk import ForkSession

from tasks.cluster import local_cluster, scheduler_address
from tasks.orchestration import Logger, Progress, SubmittedBlock, collect_forks, no_progress
from tasks.plan import LOCAL_SIZING, Block, BlockSizing
from tasks.request import WriteOptions
from tasks.write import BlockJob, write_block_retrying

type ProgressFactory = Callable[[int], AbstractContextManager[Progress]]


@dataclass(frozen=True)
class _Submitted:
    future: Future[ForkSession]

    def result(self) -> ForkSession:
        fork: ForkSession = self.future.result()
        return fork

    def lost(self, reason: str) -> None:
        pass  # nothing tracks it but this run


@dataclass(frozen=True)
class LocalBlockRunner:
    client: Client
    progress: ProgressFactory
    logger: Logger

    @property
    def threads(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    @property
    def sizing(self) -> BlockSizing:
        return LOCAL_SIZING

    def write_blocks(
        self, fork: ForkSession, jobs: list[BlockJob], options: WriteOptions
    ) -> list[tuple[Block, ForkSession]]:
        def submit(batch: list[BlockJob]) -> list[SubmittedBlock]:
            return [
                _Submitted(
                    self.client.submit(
                        write_block_retrying,
                        fork,
                        job.block,
                        job.unit,
                        job.sources,
                        options.piece_bytes,
                        options.retries,
                        options.retry_delay_seconds,
                        key=f"write-block-{uuid4()}",  # unique: a resubmitted block is a new task
                    )
                )
                for job in batch
            ]

        with self.progress(len(jobs)) as progress:
            return collect_forks(self.client, jobs, submit, progress, options.retries, self.logger)


@contextmanager
def dask_client(options: WriteOptions) -> Iterator[Client]:
    """A client of the scheduler the run names, else of a LocalCluster started for it."""
    address = scheduler_address(options)
    with ExitStack() as stack:
        cluster = address or stack.enter_context(local_cluster(options, preload=["tasks.write"]))
        yield stack.enter_context(Client(cluster, set_as_default=False))


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

    @contextmanager
    def block_runner(self, options: WriteOptions) -> Iterator[LocalBlockRunner]:
        with dask_client(options) as client:
            yield LocalBlockRunner(client, self._progress, self.logger)

    def run_metadata(self) -> dict[str, Any]:
        return {"orchestrator": "local"}
