"""Writing one block: compute only the block's slice of the source and store it through a fork of the session."""

import pickle
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
import zarr
from icechunk import ForkSession

from tasks.arrays import ResolvedWrite
from tasks.errors import BlockWriteError
from tasks.plan import Block, Region, plan_blocks, relative_slices


@dataclass(frozen=True)
class BlockJob:
    """What one block task receives: its block, the grid it follows and its culled slice of the source."""

    block: Block
    unit: tuple[int, ...]
    source: da.Array


def plan_jobs(resolved: list[ResolvedWrite], block_bytes: int) -> list[BlockJob]:
    return [
        BlockJob(block, r.unit, block_source(r.write.source, r.region, block))
        for r in resolved
        for block in plan_blocks(r.path, r.shape, r.unit, r.dtype.itemsize, block_bytes, r.region)
    ]


def block_source(source: da.Array, write_region: Region, block: Block) -> da.Array:
    """The block's slice of the source with a culled graph: a block task never receives the whole graph."""
    (piece,) = dask.optimize(source[relative_slices(block.region, write_region)])
    return piece


def pristine_copy(fork: ForkSession) -> ForkSession:
    """A fresh fork from the same bytes: a retried attempt must not see what a failed attempt wrote."""
    copy: ForkSession = pickle.loads(pickle.dumps(fork))
    return copy


def write_block(
    fork: ForkSession, block: Block, unit: tuple[int, ...], source: da.Array, piece_bytes: int
) -> ForkSession:
    """Write `source` (the block's slice) into `block.region` through a copy of `fork`; return that copy.

    The block is written piece by piece, each a whole number of grid cells, so memory stays near `piece_bytes`.
    """
    session = pristine_copy(fork)
    try:
        array = zarr.open_array(session.store, path=block.array, mode="r+")
        pieces = plan_blocks(block.array, tuple(array.shape), unit, array.dtype.itemsize, piece_bytes, block.region)

        def compute(piece: Block) -> np.ndarray:
            return np.asarray(source[relative_slices(piece.region, block.region)].compute(scheduler="sync"))

        # Compute the next piece while Zarr encodes and stores this one: source and storage overlap.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="icefloe-compute") as pool:
            upcoming = pool.submit(compute, pieces[0]) if pieces else None
            for i, piece in enumerate(pieces):
                assert upcoming is not None
                values = upcoming.result()
                upcoming = pool.submit(compute, pieces[i + 1]) if i + 1 < len(pieces) else None
                array[piece.slices] = values
    except Exception as e:
        raise BlockWriteError(f"writing block {block.name} failed: {type(e).__name__}: {e}") from e
    return session
