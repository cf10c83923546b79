"""Checking what the block forks wrote, then merging them into the writable session.

Icechunk merges forks last-writer-wins without complaint, so the check is ours: each fork may only have written
chunks inside its own block, and no chunk may come from two forks.
"""

from icechunk import Session

from tasks.errors import OverlappingWritesError
from tasks.plan import Block, chunks_of
from tasks.write import WrittenBlock

type ChunkCounts = dict[str, dict[str, int]]
"""Chunks (or shards) written, per block name, then per array."""


def verify_forks(written: list[WrittenBlock], units: dict[str, tuple[int, ...]]) -> ChunkCounts:
    """Raise unless every chunk the forks wrote lies in its writer's block and has exactly one writer; return how
    many chunks each block wrote."""
    writer: dict[tuple[str, tuple[int, ...]], Block] = {}
    counts: ChunkCounts = {}
    for w in written:
        block = w.block
        allowed = {(a, index) for a in block.arrays for index in chunks_of(block.region, units[a])}
        per_array = counts.setdefault(block.name, {})
        for path, indices in w.fork.status().updated_chunks.items():
            array = path.lstrip("/")
            for index in map(tuple, indices):
                if (array, index) not in allowed:
                    raise OverlappingWritesError(
                        f"block {block.name} wrote chunk {index} of '{array}', outside its own region; "
                        "nothing was committed"
                    )
                if (array, index) in writer:
                    raise OverlappingWritesError(
                        f"chunk {index} of '{array}' was written by blocks {writer[array, index].name} and "
                        f"{block.name}; Icechunk would keep only one. Nothing was committed"
                    )
                writer[array, index] = block
                per_array[array] = per_array.get(array, 0) + 1
    return counts


def merge_forks(session: Session, written: list[WrittenBlock]) -> None:
    session.merge(*(w.fork for w in written))
