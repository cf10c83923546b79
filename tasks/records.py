"""The records that travel between the stages of a run, and the services a stage is handed.

planning makes `Block`s and `BlockJob`s; writing turns a job into a `WrittenBlock`; committing merges it into a
`MergedBlock`, commits (`CommitResult`) and reports (`BlockReport`). A stage takes records and returns records, so
this module imports nothing of icefloe's: every stage may import it, and it imports no stage.
"""

import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from uuid import uuid4

import dask.array as da
from icechunk import ForkSession
from pydantic import BaseModel, ConfigDict, Field

type Logger = logging.Logger | logging.LoggerAdapter[Any]

PROCESS = uuid4().hex
"""This process, as a block job names the process of the run that planned it."""

type Region = tuple[tuple[int, int], ...]
"""A hyper-rectangle as one (start, stop) pair per dimension, stop exclusive."""


def format_region(region: Region) -> str:
    """A region as a commit records it (and as messages show it): `start:stop, start:stop`."""
    return ", ".join(f"{start}:{stop}" for start, stop in region)


def recorded_region(text: str) -> Region:
    """`format_region`'s text back as a region."""
    return tuple((int(start), int(stop)) for start, stop in (pair.split(":") for pair in text.split(", ")))


@dataclass(frozen=True, slots=True)
class Block:
    """One unit of work: the same region of one or more arrays on the same grid (a Dataset's variables that share
    dimensions), made of whole chunks (or shards)."""

    arrays: tuple[str, ...]
    region: Region

    @property
    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(start, stop) for start, stop in self.region)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(stop - start for start, stop in self.region)

    @property
    def name(self) -> str:
        return f"{'+'.join(self.arrays)}[{format_region(self.region)}]"


class Progress(Protocol):
    """Where a fan-out counts its finished blocks (a bar on the terminal, a Prefect artifact)."""

    def advance(self, blocks: int = 1) -> None: ...


@contextmanager
def no_progress(total: int) -> Iterator[Progress]:
    """Progress that nobody watches."""

    class _Silent:
        def advance(self, blocks: int = 1) -> None:
            pass

    yield _Silent()


class BlockKeeper(Protocol):
    """Where a task that writes a batch of blocks keeps each block's fork for a next attempt (the kept set)."""

    def save_block(self, block: Block, fork: ForkSession) -> None: ...


@dataclass(frozen=True)
class BlockJob:
    """What one block task receives: its block, the grid it follows and, per array, its culled slice of the source;
    and where to keep its fork, for a task that writes a batch of blocks (the run keeps the forks that reach it)."""

    block: Block
    unit: tuple[int, ...]
    sources: tuple[da.Array, ...]
    keep: BlockKeeper | None = None
    time_axes: tuple[int | None, ...] = ()
    """Per array of the block, the axis along which to note the steps that hold a value (not NaN everywhere), for
    a publishing run's checks; None, or no entry: none noted."""
    run_process: str = PROCESS
    """The process of the run that planned it: a block written elsewhere carries its warnings back."""


@dataclass(frozen=True)
class Warned:
    """A warning a block made, as it travels back to its run: its category by name (resolved only among modules the
    run has imported), its text, and where it was made."""

    category: str
    message: str
    filename: str
    lineno: int

    def warn(self) -> None:
        module, _, name = self.category.rpartition(".")
        category = getattr(sys.modules.get(module), name, None)
        if not (isinstance(category, type) and issubclass(category, Warning)):
            category = UserWarning  # of a module the run's process has not imported
        warnings.warn_explicit(self.message, category, self.filename, self.lineno)


@dataclass(frozen=True)
class WrittenBlock:
    """A block's fork once written, and what writing it took: the successful attempt's seconds, which attempt that
    was (1: the first), how often its lost worker made the run submit it again, whether an earlier attempt of the
    run kept it (then this run did not write it), and whether its task kept it already."""

    block: Block
    fork: ForkSession
    seconds: float = 0.0
    attempt: int = 1
    resubmits: int = 0
    kept: bool = False
    saved: bool = False
    valued_steps: "dict[str, frozenset[int]] | None" = None
    """Per array with a time axis (`BlockJob.time_axes`), the steps along it where the block wrote a value that is
    not NaN; None: not noted (a block an earlier attempt kept)."""
    warned: tuple[Warned, ...] = ()
    """What the block warned of, written in another process than its run's (`tasks/writing/carried_warnings.py`)."""


@dataclass(frozen=True)
class MergedBlock:
    """What the run's report keeps of a block once its fork is merged: chunks (or shards) per array it wrote, and
    the steps it noted (`WrittenBlock.valued_steps`)."""

    block: Block
    chunks: dict[str, int]
    seconds: float
    attempt: int
    resubmits: int
    kept: bool
    valued_steps: "dict[str, frozenset[int]] | None" = None


class ArrayReport(BaseModel):
    """An array the run wrote: created by it or updated, and how much of it."""

    model_config = ConfigDict(frozen=True)

    path: str
    created: bool
    chunks: int
    bytes: int


type Outcome = Literal["passed", "failed", "skipped"]


class Check(BaseModel):
    """One check's outcome and what it found."""

    model_config = ConfigDict(frozen=True)

    check: str
    outcome: Outcome
    detail: str


def failures(checks: list[Check]) -> str:
    """The failed checks in one line."""
    return "; ".join(f"{c.check}: {c.detail}" for c in checks if c.outcome == "failed")


class CommitResult(BaseModel):
    """What a run did: the snapshot it made on the branch, how much it wrote, and when each stage ended.

    Times are `time.time()` seconds: the run started, its arrays were initialized, its first block was submitted,
    its last block came back, its commit landed. A command adds its own process start to tell the user's whole wait
    apart.
    """

    model_config = ConfigDict(frozen=True)

    target: str
    snapshot_id: str
    parent_id: str
    branch: str
    arrays: list[ArrayReport]
    chunks: int
    blocks: int
    reused_blocks: int = Field(0, description="Blocks kept by an earlier attempt of the same request, not rewritten")
    retried_blocks: int = Field(0, description="Blocks written after one or more failed attempts")
    resubmitted_blocks: int = Field(0, description="Blocks submitted again after their worker was lost")
    bytes: int
    started_at: float
    initialized_at: float
    writing_at: float
    written_at: float
    committed_at: float
    staged_branch: str | None = Field(
        None, description="Where a publishing run committed first, and its snapshot waits when a check failed"
    )
    checks: list[Check] = Field(default_factory=list, description="The staged snapshot's checks before publishing")
    published: bool | None = Field(
        None, description="Whether the branch moved to the staged snapshot; None: the run committed to it directly"
    )

    @property
    def seconds(self) -> float:
        """The run, from its start to its commit."""
        return self.committed_at - self.started_at

    @property
    def write_seconds(self) -> float:
        """The blocks, from the first submitted to the last written."""
        return self.written_at - self.writing_at

    @property
    def write_mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.write_seconds if self.write_seconds > 0 else 0.0


class BlockReport(BaseModel):
    """One row of the block table."""

    model_config = ConfigDict(frozen=True)

    block: str
    chunks: int
    mb: float
    seconds: float
    attempt: int
    resubmits: int
    kept: bool
