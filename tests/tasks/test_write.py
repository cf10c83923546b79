import pickle
from pathlib import Path

import dask.array as da
import icechunk
import numpy as np
import pytest
import zarr

from tasks.errors import BlockWriteError
from tasks.planning.block_slices import SourceBlocks
from tasks.planning.blocks import plan_blocks, relative_slices
from tasks.records import Block, Region
from tasks.request import WriteOptions
from tasks.writing.block import computed_parts, write_block


def block_sources(sources: list[da.Array], write_region: Region, block: Block) -> tuple[da.Array, ...]:
    return tuple(SourceBlocks(s)[relative_slices(block.region, write_region)] for s in sources)


@pytest.fixture
def fork_with_array(tmp_path: Path) -> tuple[icechunk.Session, icechunk.ForkSession]:
    session = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path))).writable_session("main")
    zarr.open_group(session.store, mode="a").create_array("x", shape=(40, 40), chunks=(10, 10), dtype="f8")
    return session, session.fork()


def test_write_block_never_changes_the_fork_it_was_given(fork_with_array: tuple) -> None:
    """A retried attempt starts from the same pristine fork, so it cannot see what a failed attempt wrote."""
    _, fork = fork_with_array
    block = Block(("x",), ((0, 20), (0, 40)))

    written = write_block(fork, block, (10, 10), (da.ones((20, 40), chunks=10),), WriteOptions(piece_bytes=800))

    assert fork.status().updated_chunks == {}
    assert sorted(map(tuple, written.status().updated_chunks["/x"])) == [(i, j) for i in range(2) for j in range(4)]


def test_written_fork_merges_into_the_session(fork_with_array: tuple) -> None:
    session, fork = fork_with_array
    source = da.from_array(np.arange(1600.0).reshape(40, 40), chunks=(13, 40))
    forks = [
        write_block(fork, b, (10, 10), block_sources([source], ((0, 40), (0, 40)), b), WriteOptions(piece_bytes=800))
        for b in plan_blocks(("x",), (40, 40), (10, 10), 8, 3200)
    ]

    session.merge(*(pickle.loads(pickle.dumps(f)) for f in forks))

    np.testing.assert_array_equal(zarr.open_array(session.store, path="x")[...], source.compute())


def test_one_block_writes_every_array_of_its_region(fork_with_array: tuple) -> None:
    session, fork = fork_with_array
    zarr.open_group(session.store, mode="a").create_array("y", shape=(40, 40), chunks=(10, 10), dtype="i4")
    fork = session.fork()
    x = da.from_array(np.arange(1600.0).reshape(40, 40), chunks=(13, 40))
    y = da.from_array(np.arange(1600, dtype="i4").reshape(40, 40), chunks=(40, 7))
    block = Block(("x", "y"), ((10, 35), (0, 40)))  # 35: a region may stop inside a chunk

    written = write_block(
        fork, block, (10, 10), block_sources([x, y], ((0, 40), (0, 40)), block), WriteOptions(piece_bytes=800)
    )

    session.merge(written)
    np.testing.assert_array_equal(zarr.open_array(session.store, path="x")[10:35], x[10:35].compute())
    np.testing.assert_array_equal(zarr.open_array(session.store, path="y")[10:35], y[10:35].compute())
    assert zarr.open_array(session.store, path="y")[35:].max() == 0  # the rest of the partial chunk kept
    assert set(written.status().updated_chunks) == {"/x", "/y"}


def test_a_failing_source_names_the_block(fork_with_array: tuple) -> None:
    _, fork = fork_with_array
    broken = da.from_delayed(_raise(), shape=(10, 10), dtype="f8")

    with pytest.raises(BlockWriteError, match=r"writing block x\[0:10, 0:10\] failed: OSError: disk on fire"):
        write_block(fork, Block(("x",), ((0, 10), (0, 10))), (10, 10), (broken,), WriteOptions(piece_bytes=800))


def _raise() -> object:
    from dask import delayed

    def boom() -> None:
        raise OSError("disk on fire")

    return delayed(boom)()


def test_chunks_on_the_grid_come_back_one_part_each_without_a_joining_copy() -> None:
    source = da.arange(12, chunks=4).reshape(12, 1).rechunk((4, 1))
    parts = computed_parts(source, ((10, 22), (0, 1)), (2, 1))

    assert [p[0] for p in parts] == [
        (slice(10, 14), slice(0, 1)),
        (slice(14, 18), slice(0, 1)),
        (slice(18, 22), slice(0, 1)),
    ]
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), source.compute())


def test_chunks_off_the_grid_come_back_as_one_part_so_no_chunk_is_written_twice() -> None:
    source = da.arange(12, chunks=3).reshape(12, 1).rechunk((3, 1))
    parts = computed_parts(source, ((10, 22), (0, 1)), (2, 1))

    assert [p[0] for p in parts] == [(slice(10, 22), slice(0, 1))]
    np.testing.assert_array_equal(parts[0][1], source.compute())
