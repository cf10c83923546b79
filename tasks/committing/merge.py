"""Checking each block's fork as it arrives, then merging it into the writable session at once.

Icechunk merges forks last-writer-wins without complaint, so the check is ours: a fork may only have written chunks
inside its own block, and a block may come back only once. The planner cuts a write into blocks that share no chunk
(tasks/planning/blocks.py) and refuses writes whose regions share one (tasks/planning/arrays.py), so together
these mean no chunk has two writers. The check needs no map of every chunk written, and merging on arrival means
the flow process holds one fork at a time: memory stays bounded by the number of blocks, not of chunks.
"""

from icechunk import Session

from tasks.errors import OverlappingWritesError
from tasks.planning.blocks import chunk_ranges
from tasks.records import MergedBlock, WrittenBlock


def check_fork(written: WrittenBlock, units: dict[str, tuple[int, ...]]) -> dict[str, int]:
    """Raise unless every chunk the fork wrote lies in its block's arrays and region; its chunks per array."""
    block = written.block
    counts: dict[str, int] = {}
    for path, indices in written.fork.status().updated_chunks.items():
        array = path.lstrip("/")
        if array not in block.arrays:
            index = next(iter(indices), ())
            raise OverlappingWritesError(
                f"block {block.name} wrote chunk {tuple(index)} of '{array}', outside its own arrays; "
                "nothing was committed"
            )
        cells = chunk_ranges(block.region, units[array])
        for index in indices:
            if not all(i in r for i, r in zip(index, cells, strict=True)):
                raise OverlappingWritesError(
                    f"block {block.name} wrote chunk {tuple(index)} of '{array}', outside its own region; "
                    "nothing was committed"
                )
        counts[array] = len(indices)
    return counts


class ForkMerger:
    """Give it each block's fork as it arrives: checked, merged into `session`, and let go."""

    def __init__(self, session: Session, units: dict[str, tuple[int, ...]]) -> None:
        self.session = session
        self.units = units
        self.merged: list[MergedBlock] = []
        self._names: set[str] = set()

    def __call__(self, written: WrittenBlock) -> None:
        block = written.block
        if block.name in self._names:
            raise OverlappingWritesError(
                f"block {block.name} came back twice; Icechunk would keep only one of its writes. Nothing was committed"
            )
        chunks = check_fork(written, self.units)
        self.session.merge(written.fork)
        self._names.add(block.name)
        self.merged.append(
            MergedBlock(
                block, chunks, written.seconds, written.attempt, written.resubmits, written.kept, written.valued_steps
            )
        )
