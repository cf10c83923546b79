from pathlib import Path

import icechunk
import numpy as np
import pytest
import zarr

from tasks.committing.merge import ForkMerger
from tasks.errors import OverlappingWritesError
from tasks.records import Block, WrittenBlock
from tasks.writing.block import pristine_copy as copy


@pytest.fixture
def session(tmp_path: Path) -> icechunk.Session:
    session = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path))).writable_session("main")
    zarr.open_group(session.store, mode="a").create_array("x", shape=(20, 20), chunks=(10, 10), dtype="f4")
    return session


@pytest.fixture
def fork(session: icechunk.Session) -> icechunk.ForkSession:
    return session.fork()


def _write(fork: icechunk.ForkSession, region: tuple[slice, ...]) -> icechunk.ForkSession:
    zarr.open_array(fork.store, path="x", mode="r+")[region] = np.float32(1)
    return fork


def test_forks_that_wrote_their_own_blocks_are_merged_and_counted(
    session: icechunk.Session, fork: icechunk.ForkSession
) -> None:
    top, bottom = Block(("x",), ((0, 10), (0, 20))), Block(("x",), ((10, 20), (0, 20)))
    merge = ForkMerger(session, {"x": (10, 10)})

    merge(WrittenBlock(top, _write(copy(fork), top.slices)))
    merge(WrittenBlock(bottom, _write(copy(fork), bottom.slices)))

    assert [(m.block, m.chunks) for m in merge.merged] == [(top, {"x": 2}), (bottom, {"x": 2})]
    assert (zarr.open_array(session.store, path="x")[...] == 1).all()


def test_a_fork_that_wrote_outside_its_block_is_refused_and_not_merged(
    session: icechunk.Session, fork: icechunk.ForkSession
) -> None:
    block = Block(("x",), ((0, 10), (0, 20)))
    stray = _write(fork, (slice(0, 20), slice(0, 10)))

    with pytest.raises(OverlappingWritesError, match=r"block x\[0:10, 0:20\] wrote chunk \(1, 0\) of 'x', outside"):
        ForkMerger(session, {"x": (10, 10)})(WrittenBlock(block, stray))
    assert not session.status().updated_chunks


def test_a_block_that_comes_back_twice_is_refused(session: icechunk.Session, fork: icechunk.ForkSession) -> None:
    whole = Block(("x",), ((0, 20), (0, 20)))
    merge = ForkMerger(session, {"x": (10, 10)})
    merge(WrittenBlock(whole, _write(copy(fork), (slice(0, 10), slice(0, 10)))))

    with pytest.raises(OverlappingWritesError, match=r"block x\[0:20, 0:20\] came back twice"):
        merge(WrittenBlock(whole, _write(copy(fork), (slice(0, 10), slice(0, 10)))))
