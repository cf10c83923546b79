from pathlib import Path

import icechunk
import numpy as np
import pytest
import zarr

from tasks.errors import OverlappingWritesError
from tasks.merge import verify_forks
from tasks.plan import Block
from tasks.write import WrittenBlock
from tasks.write import pristine_copy as copy


@pytest.fixture
def fork(tmp_path: Path) -> icechunk.ForkSession:
    session = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path))).writable_session("main")
    zarr.open_group(session.store, mode="a").create_array("x", shape=(20, 20), chunks=(10, 10), dtype="f4")
    return session.fork()


def _write(fork: icechunk.ForkSession, region: tuple[slice, ...]) -> icechunk.ForkSession:
    zarr.open_array(fork.store, path="x", mode="r+")[region] = np.float32(1)
    return fork


def test_forks_that_wrote_their_own_blocks_pass_and_are_counted(fork: icechunk.ForkSession) -> None:
    top, bottom = Block(("x",), ((0, 10), (0, 20))), Block(("x",), ((10, 20), (0, 20)))
    written = [
        WrittenBlock(top, _write(copy(fork), top.slices)),
        WrittenBlock(bottom, _write(copy(fork), bottom.slices)),
    ]

    assert verify_forks(written, {"x": (10, 10)}) == {top.name: {"x": 2}, bottom.name: {"x": 2}}


def test_a_fork_that_wrote_outside_its_block_is_refused(fork: icechunk.ForkSession) -> None:
    block = Block(("x",), ((0, 10), (0, 20)))
    stray = _write(fork, (slice(0, 20), slice(0, 10)))

    with pytest.raises(OverlappingWritesError, match=r"block x\[0:10, 0:20\] wrote chunk \(1, 0\) of 'x', outside"):
        verify_forks([WrittenBlock(block, stray)], {"x": (10, 10)})


def test_two_forks_writing_one_chunk_are_refused(fork: icechunk.ForkSession) -> None:
    a = _write(copy(fork), (slice(0, 10), slice(0, 10)))
    b = _write(copy(fork), (slice(0, 10), slice(0, 10)))
    whole = Block(("x",), ((0, 20), (0, 20)))

    with pytest.raises(OverlappingWritesError, match=r"chunk \(0, 0\) of 'x' was written by blocks"):
        verify_forks([WrittenBlock(whole, a), WrittenBlock(whole, b)], {"x": (10, 10)})
