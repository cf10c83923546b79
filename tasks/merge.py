"""Checking what the block forks wrote, then merging them into the writable session.

Icechunk merges forks last-writer-wins without complaint, so the check is ours: each fork may only have written
chunks inside its own block, and no chunk may come from two forks.
"""

from icechunk import ForkSession, Session

from tasks.errors import OverlappingWritesError
from tasks.plan import Block, chunks_of


def verify_forks(written: list[tuple[Block, ForkSession]], units: dict[str, tuple[int, ...]]) -> None:
    """Raise unless every chunk the forks wrote lies in its writer's block and has exactly one writer."""
    writer: dict[tuple[str, tuple[int, ...]], Block] = {}
    for block, fork in written:
        allowed = {(a, index) for a in block.arrays for index in chunks_of(block.region, units[a])}
        for path, indices in fork.status().updated_chunks.items():
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


def merge_forks(session: Session, written: list[tuple[Block, ForkSession]]) -> None:
    session.merge(*(fork for _, fork in written))
