import pickle

import dask.array as da
import numpy as np
import pytest

from tasks.planning.block_slices import SourceBlocks


@pytest.mark.parametrize(
    "inner",
    [
        (slice(0, 20), slice(0, 20)),  # on the source's chunk boundaries: built from its keys
        (slice(30, 1000), slice(990, 1000)),  # up to the array's edge
        (slice(5, 20), slice(0, 20)),  # starts inside a chunk: sliced
        (slice(0, 20), slice(0, 15)),  # stops inside one
    ],
)
def test_a_block_carries_only_its_part_of_the_graph_and_its_values(inner: tuple[slice, ...]) -> None:
    source = da.random.default_rng(0).random((1000, 1000), chunks=(10, 10)) + 1

    piece = SourceBlocks(source)[inner]

    assert len(source.__dask_graph__()) > 10_000
    assert len(piece.__dask_graph__()) < 500  # the source chunks it covers and their +1
    np.testing.assert_array_equal(piece.compute(), source[inner].compute())


def test_uneven_chunks_a_pickle_round_trip_and_a_name_that_depends_only_on_the_part() -> None:
    source = da.from_array(np.arange(60.0).reshape(6, 10), chunks=((1, 2, 3), (4, 6)))
    blocks = SourceBlocks(source)

    piece = pickle.loads(pickle.dumps(blocks[slice(1, 6), slice(4, 10)]))

    assert piece.chunks == ((2, 3), (6,))
    np.testing.assert_array_equal(piece.compute(), source[1:6, 4:].compute())
    assert SourceBlocks(source)[slice(1, 6), slice(4, 10)].name == piece.name  # a rerun plans the same blocks
    assert blocks[slice(0, 1), slice(4, 10)].name != piece.name


def test_blocks_of_a_source_with_a_million_chunks_take_only_their_own_keys() -> None:
    """A decade of hourly steps, one chunk a day of a lazily defined field: no block graph grows with the source."""
    source = da.map_blocks(
        lambda block_id=None: np.full((24, 2), block_id[0], dtype="f4"),
        chunks=((24,) * 1_000_000, (2,)),
        dtype="f4",
        block_id=True,
        meta=np.empty((0, 0), "f4"),
    )
    blocks = SourceBlocks(source * 2)

    pieces = [blocks[slice(i * 24, i * 24 + 240), slice(0, 2)] for i in range(0, 1_000_000, 1000)]

    assert max(len(piece.__dask_graph__()) for piece in pieces) <= 30  # 10 chunks, their *2 and their aliases
    np.testing.assert_array_equal(pieces[-1].compute()[::24, 0], 2 * np.arange(999_000, 999_010))


def test_zero_dimensional_sources_are_sliced() -> None:
    source = da.from_array(np.float32(3.0))

    assert SourceBlocks(source)[()].compute() == 3.0
