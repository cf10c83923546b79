"""How a write is cut into blocks: hyper-rectangles of whole chunks (whole shards when sharded).

Icechunk merges chunk writes last-writer-wins, so two blocks that share a chunk silently lose data: block edges lie
on the chunk grid, except the edges of the region itself (a region that starts or stops inside a chunk puts that
chunk in one block, which updates it in place). Every function here is pure: shapes in, regions out.
"""

import itertools
import math
from dataclasses import dataclass

from tasks.errors import ChunkAlignmentError, InvalidRequestError
from tasks.records import Block, Region, format_region


def full_region(shape: tuple[int, ...]) -> Region:
    return tuple((0, n) for n in shape)


def write_unit(chunks: tuple[int, ...], shards: tuple[int, ...] | None) -> tuple[int, ...]:
    """The grid a block must follow: shards when the array is sharded (a shard is one object), else chunks."""
    if shards is None:
        return chunks
    if len(shards) != len(chunks) or any(s % c for s, c in zip(shards, chunks, strict=True)):
        raise InvalidRequestError(
            f"shards {shards} are not a whole number of chunks {chunks} in every dimension; "
            "pick shards that are multiples of the chunk shape"
        )
    return shards


def region_from_slices(shape: tuple[int, ...], slices: tuple[slice, ...], array: str) -> Region:
    """Turn a store_dask-style tuple of slices (step 1, no negatives) into a region, checking its bounds."""
    if len(slices) != len(shape):
        raise InvalidRequestError(
            f"region {slices} of array '{array}' has {len(slices)} dimensions, the array has {len(shape)}; "
            "give one slice per dimension"
        )
    region = []
    for dim, (sl, n) in enumerate(zip(slices, shape, strict=True)):
        if sl.step not in (None, 1):
            raise InvalidRequestError(f"region of array '{array}', dimension {dim}: step {sl.step} is not supported")
        start = 0 if sl.start is None else sl.start
        stop = n if sl.stop is None else sl.stop
        if not 0 <= start <= stop <= n:
            raise InvalidRequestError(
                f"region of array '{array}', dimension {dim}: {start}:{stop} is outside the array's shape {shape}; "
                f"use 0 <= start <= stop <= {n}"
            )
        region.append((start, stop))
    return tuple(region)


def aligned_region(region: Region, unit: tuple[int, ...], shape: tuple[int, ...]) -> Region:
    """The smallest region of whole grid cells that contains `region`."""
    return tuple(
        (start // u * u, min(-(-stop // u) * u, n)) for (start, stop), u, n in zip(region, unit, shape, strict=True)
    )


def check_aligned(array: str, shape: tuple[int, ...], unit: tuple[int, ...], region: Region) -> None:
    """Refuse a region that would cut a chunk, except where the array's own edge cuts it."""
    for dim, ((start, stop), u, n) in enumerate(zip(region, unit, shape, strict=True)):
        if start == stop:
            continue
        bad = [f"starts at {start}"] if start % u else []
        if stop % u and stop != n:
            bad.append(f"ends at {stop}")
        if bad:
            raise ChunkAlignmentError(
                f"region [{format_region(region)}] of array '{array}' (shape {shape}) does not follow its "
                f"chunk grid {unit}: dimension {dim} {' and '.join(bad)}, which is not a multiple of {u}. "
                f"The nearest aligned region is [{format_region(aligned_region(region, unit, shape))}]: "
                "write whole chunks (or rechunk the target) so that no chunk is written twice"
            )


def block_shape(region: Region, unit: tuple[int, ...], itemsize: int, target_bytes: int) -> tuple[int, ...]:
    """Cells per dimension for a block of about `target_bytes`, grown from the last (fastest) dimension first."""
    cell_bytes = math.prod(min(u, max(1, stop - start)) for (start, stop), u in zip(region, unit, strict=True))
    budget = max(1, target_bytes // (cell_bytes * itemsize))
    cells: list[int] = []
    for (start, stop), u in reversed(list(zip(region, unit, strict=True))):
        available = max(1, -(-(stop - start) // u))
        take = min(available, budget)
        cells.append(take)
        budget = max(1, budget // take)
    return tuple(reversed(cells))


SOURCE_CHUNKS_UP_TO = 512 * 2**20
"""Blocks grow to this size rather than cut a source chunk."""


def source_cell(
    unit: tuple[int, ...], chunks: tuple[tuple[int, ...], ...], region: Region, itemsize: int, limit_bytes: int
) -> tuple[int, ...]:
    """The cell to cut `region` into blocks (or pieces) by: the chunks of the source that fills it (`chunks`, its
    dask chunks) when each is whole cells of the target's grid `unit` (as `safe_chunks` makes them) and one fits in
    `limit_bytes`.

    A block that cuts a source chunk computes all of it and keeps a part: a computed source (a model's output, a
    `map_blocks`) then costs twice or more, where `dask.array.store` computes each chunk once. Sources chunked
    irregularly or off the target's grid, regions that start inside a source chunk, or chunks too big keep the
    target's grid.
    """
    cell = []
    for u, sizes, (start, _) in zip(unit, chunks, region, strict=True):
        size = sizes[0] if sizes else u
        whole = size % u == 0 or len(sizes) == 1  # a dimension the source does not cut needs no grid of its own
        if not whole or any(s != size for s in sizes[:-1]) or (sizes and sizes[-1] > size) or start % size:
            return unit  # a cell on both grids could hold many source chunks: parallelism would suffer instead
        cell.append(size)
    cell_bytes = math.prod(min(c, max(1, stop - start)) for c, (start, stop) in zip(cell, region, strict=True))
    return tuple(cell) if cell_bytes * itemsize <= limit_bytes else unit


@dataclass(frozen=True)
class BlockSizing:
    """How big blocks are when the request does not say: each worker thread gets about `per_thread` blocks (one
    that finishes early still finds work), within [`smallest`, `largest`] bytes. What a block task costs its
    orchestrator sets the floor."""

    smallest: int
    largest: int
    per_thread: int

    def block_bytes(self, total_bytes: int, threads: int) -> int:
        share = total_bytes // max(1, threads * self.per_thread)
        return min(self.largest, max(self.smallest, share))


# A Prefect task run costs ~0.25 s on its worker (task run, states, events) and a busy worker on a 2-core machine
# writes ~55 MB/s: blocks of 64 MiB keep orchestration near 20% at worst, 512 MiB near 2.5%.
PREFECT_SIZING = BlockSizing(smallest=64 * 2**20, largest=512 * 2**20, per_thread=2)
# A plain Dask task costs about a millisecond: small writes still keep every thread busy. Large blocks measured
# faster than many small ones (benchmarks/end_to_end.py, 1 GiB: 4 blocks 4.6 s, 16 blocks 5.3 s).
LOCAL_SIZING = BlockSizing(smallest=8 * 2**20, largest=512 * 2**20, per_thread=2)


def plan_blocks(
    arrays: tuple[str, ...],
    shape: tuple[int, ...],
    unit: tuple[int, ...],
    itemsize: int,
    target_bytes: int,
    region: Region | None = None,
) -> list[Block]:
    """Cut `region` (default: the whole array) into blocks that partition it exactly, with every edge inside the
    region on the grid: no grid cell belongs to two blocks. `itemsize` counts every array of the block."""
    region = full_region(shape) if region is None else region
    if any(start == stop for start, stop in region):
        return []
    grid = aligned_region(region, unit, shape)
    steps = [c * u for c, u in zip(block_shape(grid, unit, itemsize, target_bytes), unit, strict=True)]
    edges = [
        [(max(lo, start), min(lo + step, stop)) for lo in range(g_start, g_stop, step)]
        for (start, stop), (g_start, g_stop), step in zip(region, grid, steps, strict=True)
    ]
    return [Block(arrays, tuple(r)) for r in itertools.product(*edges)]


def relative_slices(inner: Region, outer: Region) -> tuple[slice, ...]:
    """Slices that select `inner` from an array that holds `outer` (both in the same coordinates)."""
    return tuple(
        slice(i_start - o_start, i_stop - o_start) for (i_start, i_stop), (o_start, _) in zip(inner, outer, strict=True)
    )


def chunk_ranges(region: Region, chunks: tuple[int, ...]) -> list[range]:
    """Per dimension, the indices of the grid cells (chunks, or shards: Icechunk stores a shard as one chunk) a
    region touches."""
    return [range(start // c, -(-stop // c)) for (start, stop), c in zip(region, chunks, strict=True)]


def chunks_of(region: Region, chunks: tuple[int, ...]) -> set[tuple[int, ...]]:
    """Indices of the grid cells a region touches."""
    return set(itertools.product(*chunk_ranges(region, chunks)))
