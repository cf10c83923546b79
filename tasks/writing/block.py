"""Writing one block: compute only the block's slice of the source and store it through a fork of the session."""

import dataclasses
import itertools
import logging
import pickle
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dask
import dask.array as da
import numpy as np
import zarr
from icechunk import ForkSession

from tasks.errors import BlockWriteError, InvalidRequestError
from tasks.planning.blocks import plan_blocks, relative_slices, source_cell
from tasks.records import PROCESS, Block, BlockJob, BlockKeeper, Region, WrittenBlock
from tasks.request import WriteOptions
from tasks.writing.carried_warnings import collect_here, drain
from tasks.writing.whole_chunks import Part, WholeChunkWriter
from tasks.writing.zarr_settings import raise_chunks_in_flight


def timed_write(fork: ForkSession, job: BlockJob, options: WriteOptions, attempt: int) -> WrittenBlock:
    started = time.perf_counter()
    elsewhere = job.run_process != PROCESS
    if elsewhere:
        collect_here()
    steps = ValuedSteps(dict(zip(job.block.arrays, job.time_axes, strict=False))) if job.time_axes else None
    written = write_block(fork, job.block, job.unit, job.sources, options, steps)
    valued = None if steps is None else steps.noted()
    warned = drain() if elsewhere else ()
    return WrittenBlock(job.block, written, time.perf_counter() - started, attempt, valued_steps=valued, warned=warned)


class ValuedSteps:
    """The steps along each array's time axis where a block wrote a value that is not NaN, noted from the values as
    they are stored: a publishing run's check of NaN steps then reads nothing back."""

    def __init__(self, axes: dict[str, int | None]) -> None:
        self.axes = {path: axis for path, axis in axes.items() if axis is not None}
        self.steps: dict[str, set[int]] = {path: set() for path in self.axes}

    def note(self, path: str, parts: list[Part]) -> None:
        axis = self.axes.get(path)
        if axis is None:
            return
        for slices, values in parts:
            steps = range(slices[axis].start, slices[axis].stop)
            if not np.issubdtype(np.asarray(values).dtype, np.floating):
                self.steps[path].update(steps)  # stored as floats, but no NaN among them
                continue
            others = tuple(i for i in range(np.ndim(values)) if i != axis)
            valued = ~np.isnan(values).all(axis=others) if others else ~np.isnan(values)
            self.steps[path].update(steps[int(i)] for i in np.flatnonzero(valued))

    def noted(self) -> dict[str, frozenset[int]]:
        return {path: frozenset(steps) for path, steps in self.steps.items()}


def keep_block(keep: BlockKeeper | None, written: WrittenBlock) -> bool:
    """Keep a written block's fork in `keep`; whether it was. A block that could not be kept is still written:
    only a resumed run would miss it."""
    if keep is None:
        return False
    try:
        keep.save_block(written.block, written.fork)
    except Exception as e:
        logging.getLogger("icefloe").warning("cannot keep block %s for a next attempt: %s", written.block.name, e)
        return False
    return True


def batches(jobs: list[BlockJob], most: int) -> list[list[BlockJob]]:
    """`jobs` in at most `most` runs of neighbours, as even as can be."""
    count = min(len(jobs), most)
    return [jobs[len(jobs) * i // count : len(jobs) * (i + 1) // count] for i in range(count)]


def with_keep(jobs: list[BlockJob], keep: BlockKeeper | None) -> list[BlockJob]:
    return [dataclasses.replace(j, keep=keep) for j in jobs]


def pristine_copy(fork: ForkSession) -> ForkSession:
    """A fresh fork from the same bytes: a retried attempt must not see what a failed attempt wrote."""
    copy: ForkSession = pickle.loads(pickle.dumps(fork))
    return copy


def computed_parts(source: da.Array, region: Region, unit: tuple[int, ...]) -> list[Part]:
    """The values of `source`, which fills `region`, with the array slices they go to.

    When every dask chunk boundary inside the region lies on the grid, each chunk comes back as its own part, as
    `dask.array.store` writes them: no zarr chunk gets two parts, and no copy joins them into one array (a copy that
    cost a tenth of the CPU of a write). Otherwise the region comes back as one array.
    """
    starts = [
        list(itertools.accumulate(sizes[:-1], initial=start))
        for sizes, (start, _) in zip(source.chunks, region, strict=True)
    ]
    if any(offset % u for offsets, u in zip(starts, unit, strict=True) for offset in offsets[1:]):
        return [(tuple(slice(a, b) for a, b in region), np.asarray(source.compute(scheduler="sync")))]
    values = dask.compute(*source.to_delayed().ravel(), scheduler="sync")
    parts: list[Part] = []
    for chunk, corner in zip(values, itertools.product(*starts), strict=True):
        parts.append((tuple(slice(c, c + n) for c, n in zip(corner, np.shape(chunk), strict=True)), chunk))
    return parts


def store_parts(array: zarr.Array[Any], writer: WholeChunkWriter | None, parts: list[Part]) -> None:
    """Parts that are whole chunks through `writer`; the others (a region's partial chunks, every part of an array
    without a writer) through Zarr, which merges them with what the chunk holds."""
    whole = [part for part in parts if writer is not None and writer.covers(part[0])]
    if writer is not None and whole:
        writer.write(whole)
    for slices, values in parts:
        if writer is None or not writer.covers(slices):
            array[slices] = values


def write_block(
    fork: ForkSession,
    block: Block,
    unit: tuple[int, ...],
    sources: tuple[da.Array, ...],
    options: WriteOptions,
    steps: ValuedSteps | None = None,
) -> ForkSession:
    """Write each source (the block's slice of it) into `block.region` of its array through a copy of `fork`;
    return that copy. `steps`, when given, notes the steps that hold values as they are stored.

    Each array is written piece by piece, each piece on the grid, so memory stays near `options.piece_bytes`.
    """
    session = pristine_copy(fork)
    if options.chunk_concurrency is not None:
        raise_chunks_in_flight(options.chunk_concurrency)
    try:
        pieces_of: list[tuple[zarr.Array[Any], WholeChunkWriter | None, da.Array, Block]] = []
        for path, source in zip(block.arrays, sources, strict=True):
            array = zarr.open_array(session.store, path=path, mode="r+")
            writer = WholeChunkWriter.of(array)
            shape, itemsize = tuple(array.shape), array.dtype.itemsize
            cell = source_cell(unit, source.chunks, block.region, itemsize, options.piece_bytes)
            pieces = plan_blocks((path,), shape, cell, itemsize, options.piece_bytes, block.region)
            pieces_of.extend((array, writer, source[relative_slices(p.region, block.region)], p) for p in pieces)

        def compute(i: int) -> list[Part]:
            _, _, source, piece = pieces_of[i]
            return computed_parts(source, piece.region, unit)

        # Compute the next piece while this one is encoded and stored: source and storage overlap.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="icefloe-compute") as pool:
            upcoming = pool.submit(compute, 0) if pieces_of else None
            for i, (array, writer, _, piece) in enumerate(pieces_of):
                assert upcoming is not None
                parts = upcoming.result()
                upcoming = pool.submit(compute, i + 1) if i + 1 < len(pieces_of) else None
                store_parts(array, writer, parts)
                if steps is not None:
                    steps.note(piece.arrays[0], parts)
    except InvalidRequestError:
        raise  # the request is wrong: no retry can help, and the caller must be able to tell
    except Exception as e:
        raise BlockWriteError(f"writing block {block.name} failed: {type(e).__name__}: {e}") from e
    return session


def write_block_retrying(fork: ForkSession, job: BlockJob, options: WriteOptions) -> WrittenBlock:
    """`write_block`, tried again after transient failures (the delay doubles each time), each attempt from the
    pristine `fork`; an invalid request fails at once. For runs without Prefect, and for blocks batched into one
    Prefect task run (Prefect retries a task run of one block itself)."""
    retries = options.retries
    for attempt in range(retries + 1):
        try:
            return timed_write(fork, job, options, attempt + 1)
        except BlockWriteError as e:
            if attempt == retries:
                raise
            delay = options.retry_delay_seconds * 2**attempt
            logging.getLogger("icefloe").warning("%s; retry %d of %d in %.0f s", e, attempt + 1, retries, delay)
            time.sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")


def check_all_written(failures: list[str], total: int) -> None:
    """Raise when a block failed: nothing may be committed then."""
    if failures:
        raise BlockWriteError(
            f"{len(failures)} of {total} blocks failed after retries; nothing was committed. "
            f"First failure: {failures[0]}"
        )
