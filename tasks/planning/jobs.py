"""The blocks a write is cut into, each with its slice of the source: what a real run writes and what a dry run
prints, from the same functions."""

from dataclasses import dataclass

from tasks.planning.arrays import ResolvedWrite, region_bytes
from tasks.planning.block_slices import SourceBlocks
from tasks.planning.blocks import SOURCE_CHUNKS_UP_TO, BlockSizing, plan_blocks, relative_slices, source_cell
from tasks.records import Block, BlockJob, Region


def block_size(resolved: list[ResolvedWrite], block_bytes: int | None, sizing: BlockSizing, threads: int) -> int:
    """The bytes per block a write gets: the request's `block_bytes`, else what `sizing` gives its total on
    `threads` worker threads."""
    total = sum(region_bytes(r.region, r.dtype.itemsize) for r in resolved)
    return block_bytes or sizing.block_bytes(total, threads)


@dataclass(frozen=True)
class WriteGroup:
    """Writes blocked together: same shape, grid and region. `itemsize` counts one element of every array."""

    arrays: tuple[str, ...]
    shape: tuple[int, ...]
    unit: tuple[int, ...]
    itemsize: int
    region: Region
    writes: list[ResolvedWrite]

    def blocks(self, block_bytes: int) -> list[Block]:
        limit = max(block_bytes, SOURCE_CHUNKS_UP_TO)
        cells = {source_cell(self.unit, w.write.source.chunks, self.region, self.itemsize, limit) for w in self.writes}
        cell = cells.pop() if len(cells) == 1 else self.unit
        return plan_blocks(self.arrays, self.shape, cell, self.itemsize, block_bytes, self.region)


def group_writes(resolved: list[ResolvedWrite]) -> list[WriteGroup]:
    """Writes that share shape, grid and region (a Dataset's variables with the same dimensions) share blocks, so
    one task reads one region of the source once for all of them."""
    groups: dict[tuple[tuple[int, ...], tuple[int, ...], Region], list[ResolvedWrite]] = {}
    for r in resolved:
        groups.setdefault((r.shape, r.unit, r.region), []).append(r)
    return [
        WriteGroup(tuple(r.path for r in group), shape, unit, sum(r.dtype.itemsize for r in group), region, group)
        for (shape, unit, region), group in groups.items()
    ]


def plan_jobs(resolved: list[ResolvedWrite], block_bytes: int) -> list[BlockJob]:
    """Blocks of about `block_bytes` (all arrays of a group counted), each with its culled slice of every source:
    a block task never receives the whole graph. Each source's graph is indexed once for all its blocks."""
    jobs = []
    for group in group_writes(resolved):
        sources = [SourceBlocks(r.write.source) for r in group.writes]
        for block in group.blocks(block_bytes):
            inner = relative_slices(block.region, group.region)
            jobs.append(BlockJob(block, group.unit, tuple(source[inner] for source in sources)))
    return jobs
