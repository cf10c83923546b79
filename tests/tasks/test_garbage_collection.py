"""The mark a run takes before it writes, and what it tells once Icechunk's garbage collection has run, on both
repository formats: format 2's operations log, format 1's canary snapshot. The canary's tests hold Icechunk's
collection to what the canary relies on: judged by the same clock, a cutoff that spares the canary spares what was
written after it, and one that reaches past what was written after it deletes the canary too."""

import time
from datetime import UTC, datetime
from pathlib import Path

import icechunk
import numpy as np
import pytest
import zarr

from tasks.storage.chunk_reads import unreadable_chunks
from tasks.storage.garbage_collection import Canary, LogHead, collections_since, mark, mark_from_dict


def repository(tmp_path: Path, spec_version: int) -> icechunk.Repository:
    storage = icechunk.local_filesystem_storage(str(tmp_path / "repo"))
    repo = icechunk.Repository.create(storage, spec_version=spec_version)
    session = repo.writable_session("main")
    zarr.create_array(session.store, name="x", shape=(4096,), chunks=(1024,), dtype="f8")
    session.commit("an array")
    return repo


def written_after(repo: icechunk.Repository) -> icechunk.ForkSession:
    """What a block does: chunks written through a fork of a session, committed by nothing (yet)."""
    fork = repo.writable_session("main").fork()
    zarr.open_array(fork.store, path="x", mode="r+")[:] = np.arange(4096.0)  # 4 chunks of 8 KB: objects of their own
    return fork


def collect(repo: icechunk.Repository, cutoff: datetime) -> None:
    icechunk.Repository.open(repo.storage).garbage_collect(cutoff)  # another process's collection


def between() -> datetime:
    """A moment strictly between what was written before and what is written after (file times are precise)."""
    time.sleep(0.05)
    moment = datetime.now(UTC)
    time.sleep(0.05)
    return moment


def test_a_format_1_mark_is_a_canary_a_collection_before_it_spares(tmp_path: Path) -> None:
    repo = repository(tmp_path, 1)
    before = between()
    canary = mark(repo, "main")
    assert isinstance(canary, Canary)
    assert repo.lookup_branch("main") != canary.snapshot_id  # nothing moved: the canary is nobody's snapshot

    collect(repo, before)

    assert collections_since(repo, canary).clear


def test_a_format_1_collection_past_the_canary_is_seen_and_named(tmp_path: Path) -> None:
    repo = repository(tmp_path, 1)
    canary = mark(repo, "main")
    assert isinstance(canary, Canary)
    repo.lookup_snapshot(canary.snapshot_id)  # in this repository object's cache from now on

    collect(repo, between())

    collections = collections_since(repo, canary)  # read afresh, not from the cache
    assert not collections.clear
    said = collections.describe("they were written")
    assert "garbage collection ran on the repository since they were written" in said
    assert "Icechunk format 1" in said
    assert canary.snapshot_id in said


def test_a_cutoff_that_spares_the_canary_spares_chunks_written_after_it(tmp_path: Path) -> None:
    repo = repository(tmp_path, 1)
    cutoff = between()
    canary = mark(repo, "main")
    fork = written_after(repo)

    collect(repo, cutoff)

    assert collections_since(repo, canary).clear
    assert unreadable_chunks(fork.store, fork.status().updated_chunks) == []


def test_a_cutoff_past_chunks_written_after_the_canary_deletes_the_canary_too(tmp_path: Path) -> None:
    repo = repository(tmp_path, 1)
    canary = mark(repo, "main")
    fork = written_after(repo)

    collect(repo, between())

    assert unreadable_chunks(fork.store, fork.status().updated_chunks) != []  # the chunks are gone...
    assert not collections_since(repo, canary).clear  # ...and the canary says so


def test_a_format_2_mark_is_the_log_s_head_and_a_collection_shows_in_the_log(tmp_path: Path) -> None:
    repo = repository(tmp_path, 2)
    head = mark(repo, "main")
    assert isinstance(head, LogHead)
    assert collections_since(repo, head).clear

    collect(repo, between())

    collections = collections_since(repo, head)
    assert not collections.clear
    assert len(collections.ran) == 1


def test_a_format_1_repository_without_a_mark_proves_nothing(tmp_path: Path) -> None:
    """A kept set recorded with no mark (or one of a repository the run did not mark): chunks are read back."""
    repo = repository(tmp_path, 1)

    collections = collections_since(repo, None)

    assert not collections.clear
    assert "keeps no operations log" in collections.describe("they were written")


@pytest.mark.parametrize("recorded", [LogHead("2026-12-07T13:00:00+00:00", "GCRan"), Canary("ABCDEFGHIJKLMNOPQRST")])
def test_a_mark_as_a_kept_set_records_it_reads_back_the_same(recorded: LogHead | Canary) -> None:
    from dataclasses import asdict

    assert mark_from_dict(asdict(recorded)) == recorded
