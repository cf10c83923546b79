"""Which time steps of a source an ingest or a backfill writes, given the steps the target holds.

Steps after the target's last one are appended. Steps the target already holds are refused, skipped or rewritten in
place (a region write), as asked. A step inside the target's range that it does not hold is always refused: an
ingest never inserts, so nothing is ever written twice or out of order.
"""

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr
import zarr
from icechunk import IcechunkStore
from zarr.errors import GroupNotFoundError

from tasks.errors import InvalidRequestError
from tasks.planning.arrays import ResolvedWrite
from tasks.planning.dataset import initialize_dataset
from tasks.request import DatasetWrite

type Overlap = Literal["refuse", "skip", "rewrite"]


@dataclass(frozen=True)
class TimeUpdate:
    """What to write: `append` goes after the target's end; `rewrite` (when set) replaces the target's steps from
    index `rewrite_start` on and runs on past its end when the source has newer steps too."""

    append: xr.Dataset | None
    rewrite: xr.Dataset | None
    rewrite_start: int
    new_steps: int
    rewritten_steps: int
    skipped_steps: int

    @property
    def empty(self) -> bool:
        return self.append is None and self.rewrite is None


def target_times(store: IcechunkStore, group: str | None, dim: str) -> pd.Index | None:
    """The target's steps along `dim`, or None when the group does not exist yet."""
    try:
        zarr.open_group(store, path=group or "", mode="r")
    except (GroupNotFoundError, FileNotFoundError):
        return None
    existing = xr.open_zarr(store, group=group, consolidated=False)
    if dim not in existing.indexes:
        raise InvalidRequestError(f"the target group {group or '/'} has no '{dim}' coordinate to ingest along")
    return existing.indexes[dim]


def _describe(times: pd.Index) -> str:
    return f"{len(times)} steps from {times[0]} to {times[-1]}"


def plan_time_update(source: xr.Dataset, existing: pd.Index | None, dim: str, overlap: Overlap) -> TimeUpdate:
    """Split `source` along `dim` against the target's steps `existing` (None: the target is new)."""
    if dim not in source.indexes:
        raise InvalidRequestError(f"the source has no '{dim}' coordinate; name the dimension to ingest along")
    times = source.indexes[dim]
    if not (times.is_monotonic_increasing and times.is_unique):
        raise InvalidRequestError(f"the source's '{dim}' is not strictly increasing; sort it or fix the source")
    if existing is None or len(existing) == 0:
        return TimeUpdate(source if len(times) else None, None, 0, len(times), 0, 0)
    n_held = int(np.searchsorted(times, existing[-1], side="right"))  # times increase: the newer ones are a tail
    held = times[:n_held]
    n_new = len(times) - n_held
    append = source.isel({dim: slice(n_held, None)}) if n_new else None
    positions = existing.get_indexer(held)
    if (positions < 0).any():
        missing = held[positions < 0]
        raise InvalidRequestError(
            f"the source has {_describe(missing)} inside the target's range ({_describe(existing)}) that the target "
            "does not hold; an ingest only appends after the last step or rewrites steps the target has"
        )
    if len(held) == 0 or overlap == "skip":
        return TimeUpdate(append, None, 0, n_new, 0, len(held))
    if overlap == "refuse":
        raise InvalidRequestError(
            f"the target already holds {_describe(held)} of the source; nothing was written. Pass overlap='skip' "
            "to append only newer steps, or overlap='rewrite' to rewrite them in place"
        )
    if not np.array_equal(positions, np.arange(positions[0], positions[0] + len(positions))):
        raise InvalidRequestError(
            f"the source's {_describe(held)} are not consecutive steps of the target; a rewrite is one region"
        )
    if positions[-1] != len(existing) - 1 and append is not None:
        raise InvalidRequestError(
            f"the source rewrites {_describe(held)} and appends after {existing[-1]}, but skips the target's steps "
            "in between; give a source without that gap"
        )
    return TimeUpdate(append, source, int(positions[0]), n_new, len(held), 0)


def initialize_update(
    store: IcechunkStore, update: TimeUpdate, new_target: bool, group: str | None, dim: str, encoding: Any
) -> list[ResolvedWrite]:
    """Initialize what `update` writes in the session: create the group, append, or rewrite a region (and append
    past the end) in the same commit; the lazy variables come back as checked writes."""
    if new_target:
        assert update.append is not None
        return initialize_dataset(store, update.append, DatasetWrite(group=group, mode="w-", encoding=encoding))
    if update.rewrite is None:
        assert update.append is not None
        return initialize_dataset(store, update.append, DatasetWrite(group=group, append_dim=dim))
    if update.append is not None:
        # grows the arrays and writes the new coordinates; the region write below covers its lazy variables
        initialize_dataset(store, update.append, DatasetWrite(group=group, append_dim=dim, safe_chunks=False))
    rewrite = update.rewrite.drop_vars([v for v in update.rewrite.variables if dim not in update.rewrite[v].dims])
    region = {dim: slice(update.rewrite_start, update.rewrite_start + rewrite.sizes[dim])}
    # one region per array, from the first rewritten step to the new end: no chunk is shared by two writes, and
    # our blocks keep a partial edge chunk in one block, so xarray's chunk check is not needed here
    return initialize_dataset(store, rewrite, DatasetWrite(group=group, mode="r+", region=region, safe_chunks=False))
