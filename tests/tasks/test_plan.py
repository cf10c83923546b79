import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.errors import ChunkAlignmentError, InvalidRequestError
from tasks.planning.blocks import (
    LOCAL_SIZING,
    PREFECT_SIZING,
    aligned_region,
    check_aligned,
    chunks_of,
    plan_blocks,
    region_from_slices,
    write_unit,
)


@st.composite
def planning_cases(draw: st.DrawFn) -> tuple:
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(0, 40)) for _ in range(ndim))
    unit = tuple(draw(st.integers(1, 12)) for _ in range(ndim))
    region = []
    for n, u in zip(shape, unit, strict=True):
        cells = -(-n // u)
        a = draw(st.integers(0, cells))
        b = draw(st.integers(a, cells))
        region.append((min(a * u, n), min(b * u, n)))
    itemsize = draw(st.sampled_from([1, 4, 8]))
    target = draw(st.integers(1, 4000))
    return shape, unit, tuple(region), itemsize, target


@st.composite
def unaligned_cases(draw: st.DrawFn) -> tuple:
    """Regions that may start and stop inside a chunk (an append after a partial last chunk)."""
    shape, unit, _, itemsize, target = draw(planning_cases())
    region = []
    for n in shape:
        a = draw(st.integers(0, n))
        region.append((a, draw(st.integers(a, n))))
    return shape, unit, tuple(region), itemsize, target


@given(st.one_of(planning_cases(), unaligned_cases()))
def test_blocks_partition_the_region_exactly_and_follow_the_grid(case: tuple) -> None:
    shape, unit, region, itemsize, target = case
    blocks = plan_blocks(("a",), shape, unit, itemsize, target, region)

    covered: list[tuple[int, ...]] = []
    for block in blocks:
        for (start, stop), (r0, r1), u, n in zip(block.region, region, unit, shape, strict=True):
            assert r0 <= start < stop <= r1
            assert start % u == 0 or start == r0  # only the region's own edges may cut a chunk
            assert stop % u == 0 or stop in (n, r1)
        covered.extend(itertools.product(*(range(a, b) for a, b in block.region)))
    expected = list(itertools.product(*(range(a, b) for a, b in region)))
    assert len(covered) == len(expected)  # disjoint: no element twice
    assert set(covered) == set(expected)  # and complete


@given(st.one_of(planning_cases(), unaligned_cases()))
def test_no_chunk_belongs_to_two_blocks(case: tuple) -> None:
    shape, unit, region, itemsize, target = case
    seen: set[tuple[int, ...]] = set()
    for block in plan_blocks(("a",), shape, unit, itemsize, target, region):
        chunks = chunks_of(block.region, unit)
        assert not chunks & seen
        seen |= chunks


def test_blocks_grow_to_the_target_size_from_the_last_dimension() -> None:
    blocks = plan_blocks(("t2m",), (100, 720, 1440), (1, 720, 1440), 4, 64 * 2**20)
    per_block = 720 * 1440 * 4
    assert blocks[0].shape == (64 * 2**20 // per_block, 720, 1440)
    assert sum(math.prod(b.shape) for b in blocks) == math.prod((100, 720, 1440))


def test_a_chunk_larger_than_the_target_makes_a_block_of_its_own() -> None:
    blocks = plan_blocks(("a",), (10, 10), (5, 5), 8, 1)
    assert [b.region for b in blocks][:2] == [((0, 5), (0, 5)), ((0, 5), (5, 10))]
    assert len(blocks) == 4


def test_misaligned_region_is_refused_with_the_nearest_aligned_region() -> None:
    with pytest.raises(ChunkAlignmentError) as info:
        check_aligned("temperature", (100, 50), (10, 10), ((5, 30), (0, 50)))
    message = str(info.value)
    assert "temperature" in message
    assert "5:30, 0:50" in message
    assert "(10, 10)" in message
    assert "starts at 5, which is not a multiple of 10" in message
    assert "nearest aligned region is [0:30, 0:50]" in message


def test_the_array_edge_may_cut_the_last_chunk() -> None:
    check_aligned("a", (95,), (10,), ((90, 95),))
    with pytest.raises(ChunkAlignmentError, match="ends at 93"):
        check_aligned("a", (95,), (10,), ((90, 93),))


def test_aligned_region_is_clipped_to_the_array() -> None:
    assert aligned_region(((3, 94),), (10,), (95,)) == ((0, 95),)


def test_shards_are_the_grid_of_a_sharded_array() -> None:
    assert write_unit((10, 10), (20, 30)) == (20, 30)
    assert write_unit((10, 10), None) == (10, 10)
    with pytest.raises(InvalidRequestError, match="not a whole number of chunks"):
        write_unit((10, 10), (15, 20))


def test_region_from_slices_checks_bounds() -> None:
    assert region_from_slices((10, 20), (slice(None), slice(5, None)), "a") == ((0, 10), (5, 20))
    with pytest.raises(InvalidRequestError, match="outside the array's shape"):
        region_from_slices((10,), (slice(0, 11),), "a")
    with pytest.raises(InvalidRequestError, match="1 dimensions, the array has 2"):
        region_from_slices((10, 10), (slice(0, 5),), "a")


def test_empty_region_plans_no_blocks() -> None:
    assert plan_blocks(("a",), (0, 10), (5, 5), 4, 1024) == []


def test_prefect_block_size_gives_each_thread_two_blocks_within_bounds() -> None:
    gib = 2**30
    assert PREFECT_SIZING.block_bytes(2 * gib, threads=2) == 512 * 2**20
    assert PREFECT_SIZING.block_bytes(1 * gib, threads=2) == 256 * 2**20
    assert PREFECT_SIZING.block_bytes(100 * gib, threads=64) == 512 * 2**20  # capped: orchestration is ~2%
    assert PREFECT_SIZING.block_bytes(10 * 2**20, threads=8) == 64 * 2**20  # floored: a task run costs ~0.25 s


def test_local_block_size_keeps_every_thread_busy_even_for_small_writes() -> None:
    assert LOCAL_SIZING.block_bytes(64 * 2**20, threads=2) == 16 * 2**20
    assert LOCAL_SIZING.block_bytes(16 * 2**20, threads=2) == 8 * 2**20
    assert LOCAL_SIZING.block_bytes(100 * 2**30, threads=2) == 512 * 2**20


def test_blocks_follow_the_sources_chunks_when_they_are_whole_cells_of_the_grid() -> None:
    from tasks.planning.blocks import source_cell

    chunks = ((8, 8, 8, 8), (721,), (1440,))  # a dask chunk of 8 steps, Zarr chunks of 2
    region = ((0, 32), (0, 721), (0, 1440))
    cell = source_cell((2, 361, 720), chunks, region, itemsize=8, limit_bytes=2**30)
    assert cell == (8, 721, 1440)
    blocks = plan_blocks(("t2m", "u10"), (32, 721, 1440), cell, 8, 66 * 2**20, region)
    assert [b.region[0] for b in blocks] == [(0, 8), (8, 16), (16, 24), (24, 32)]  # no dask chunk computed twice
    # the Zarr grid where a source chunk is not whole cells of it, or too big, or the region starts inside one
    assert source_cell((3, 361, 720), chunks, region, 8, 2**30) == (3, 361, 720)
    assert source_cell((2, 361, 720), chunks, region, 8, 2**20) == (2, 361, 720)
    shifted = ((4, 36), (0, 721), (0, 1440))
    assert source_cell((2, 361, 720), chunks, shifted, 8, 2**30) == (2, 361, 720)
    assert source_cell((2, 361, 720), ((6, 8, 8, 8, 2), *chunks[1:]), region, 8, 2**30) == (2, 361, 720)
