"""Collecting forks from Dask: a batch lost with its worker is submitted again (a bounded number of times), any
other failure is final, and every block's fork reaches the merge once. On a real threaded Dask cluster; a lost
worker is the `KilledWorker` that Dask raises for it (the slow tests kill real workers)."""

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import dask.array as da
import icechunk
import pytest
from distributed import Client, Future, KilledWorker, LocalCluster

from tasks.errors import BlockWriteError
from tasks.records import Block, BlockJob, WrittenBlock, no_progress
from tasks.writing.fan_out import collect_forks


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.fixture
def fork(tmp_path: Path) -> icechunk.ForkSession:
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "repo")))
    return repo.writable_session("main").fork()


def job(i: int) -> BlockJob:
    return BlockJob(Block(("x",), ((i, i + 1),)), (1,), (da.zeros(1),))


LOST: dict[str, int] = {}
"""Per block, how many of its next attempts die with their worker (the workers are threads of this process)."""


def attempt_of(fork: icechunk.ForkSession, batch: list[BlockJob]) -> list[WrittenBlock]:
    """A batch's task: the first `LOST[name]` attempts of a block die with their worker."""
    name = batch[0].block.name
    if LOST.get(name, 0) > 0:
        LOST[name] -= 1
        raise KilledWorker(name, SimpleNamespace(address="tcp://127.0.0.1:1"), 0)
    if name.startswith("x[9"):
        raise OSError("the disk is full")
    return [WrittenBlock(j.block, fork) for j in batch]


@dataclass
class DaskBatch:
    future: Future[object]
    lost_reasons: list[str]

    def result(self) -> list[WrittenBlock]:
        return self.future.result()  # type: ignore[no-any-return]

    def lost(self, reason: str) -> None:
        self.lost_reasons.append(reason)


def run(client: Client, fork: icechunk.ForkSession, jobs: list[BlockJob], lost: dict[str, int], resubmits: int):
    LOST.clear()
    LOST.update(lost)
    merged: list[WrittenBlock] = []
    reasons: list[str] = []

    def submit(some: list[list[BlockJob]]) -> list[DaskBatch]:
        return [DaskBatch(client.submit(attempt_of, fork, batch, pure=False), reasons) for batch in some]

    with no_progress(len(jobs)) as progress:
        collect_forks(client, [[j] for j in jobs], submit, merged.append, progress, resubmits, logging.getLogger())
    return merged, reasons


def test_a_batch_lost_with_its_worker_is_submitted_again_and_merged_once(client: Client, fork) -> None:
    merged, reasons = run(client, fork, [job(0), job(1), job(2)], {"x[1:2]": 2}, resubmits=3)

    assert sorted(w.block.name for w in merged) == ["x[0:1]", "x[1:2]", "x[2:3]"]
    assert {w.block.name: w.resubmits for w in merged} == {"x[0:1]": 0, "x[1:2]": 2, "x[2:3]": 0}
    assert len(reasons) == 2
    assert all(r.startswith("worker lost") for r in reasons)


def test_a_batch_lost_more_often_than_allowed_fails_the_write(client: Client, fork) -> None:
    with pytest.raises(BlockWriteError, match=r"1 of 2 blocks failed after retries; nothing was committed.*x\[1:2\]"):
        run(client, fork, [job(0), job(1)], {"x[1:2]": 2}, resubmits=1)


def test_any_other_failure_is_final_and_named(client: Client, fork) -> None:
    with pytest.raises(BlockWriteError, match=r"1 of 2 blocks failed.*x\[9:10\]: the disk is full"):
        run(client, fork, [job(0), job(9)], {}, resubmits=3)
