"""Checking a committed snapshot the way an operational pipeline checks each update before anyone reads it.

The checks: every chunk the commit wrote is in the snapshot; no step along the time dimension is NaN everywhere
(unless allowed); the time coordinate increases without duplicates; arrays have the dtype and shape the commit
recorded; and, when the source is given, a sample of chunks equals it. icefloe's commits record what they wrote
(`written` in their metadata); for other commits, what the diff from the parent names is checked.
"""

from collections.abc import Callable

import icechunk
import xarray as xr
import zarr
from pydantic import BaseModel, ConfigDict

from tasks.committing.checks import (
    check_chunks,
    check_declared,
    check_nan_steps,
    check_sample,
    check_time,
    unread,
)
from tasks.errors import InvalidRequestError
from tasks.planning.blocks import full_region
from tasks.records import Check, Region, failures, recorded_region
from tasks.storage.target import check_branch, open_existing


class Validation(BaseModel):
    """The checks of one snapshot."""

    model_config = ConfigDict(frozen=True)

    target: str
    branch: str
    snapshot: str
    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(c.outcome != "failed" for c in self.checks)

    def failures(self) -> str:
        return failures(self.checks)


def written_regions(
    repo: icechunk.Repository, snapshot: icechunk.SnapshotInfo, session: icechunk.Session
) -> dict[str, Region]:
    """What the snapshot's commit wrote: per array, the region (icefloe records it; else from the diff)."""
    recorded = snapshot.metadata.get("icefloe", {}).get("written")
    if isinstance(recorded, dict):
        return {path: recorded_region(region) for path, region in recorded.items()}
    if snapshot.parent_id is None:
        return {}
    diff = repo.diff(from_snapshot_id=snapshot.parent_id, to_snapshot_id=snapshot.id)
    written: dict[str, Region] = {}
    for path in {*diff.new_arrays, *diff.updated_chunks}:
        array = zarr.open_array(session.store, path=path.lstrip("/"), mode="r")
        written[path.lstrip("/")] = full_region(tuple(array.shape))
    return written


def group_of(path: str) -> str:
    """An array's group: "" for the root."""
    return path.rsplit("/", 1)[0] if "/" in path else ""


def variables_by_group(written: dict[str, Region]) -> dict[str, dict[str, str]]:
    """The written arrays by group, each by its name in that group's Dataset: {group: {variable: path}}; the root
    alone when nothing was written."""
    groups: dict[str, dict[str, str]] = {}
    for path in sorted(written):
        groups.setdefault(group_of(path), {})[path.rsplit("/", 1)[-1]] = path
    return groups or {"": {}}


def validate_snapshot(
    target: str,
    *,
    branch: str = "main",
    snapshot_id: str | None = None,
    source: xr.Dataset | None = None,
    time_dim: str = "time",
    allow_nan: bool = False,
    sample_chunks: int = 3,
) -> Validation:
    """Check `snapshot_id` (default: the tip of `branch`) of the repository `target`.

    Only a request that names nothing to check is refused (no repository, branch or snapshot of that name); what
    cannot be read is what a check found, and fails that check."""
    repo = open_existing(target)
    snapshot_id = snapshot_id or check_branch(repo, branch)
    try:
        snapshot = repo.lookup_snapshot(snapshot_id)
    except icechunk.IcechunkError as e:
        raise InvalidRequestError(
            f"no snapshot {snapshot_id!r} in {target} ({type(e).__name__}); `icefloe history {target}` lists them"
        ) from e
    session = repo.readonly_session(snapshot_id=snapshot_id)
    written = written_regions(repo, snapshot, session)
    checks = [checked("chunks present and readable", check_chunks, session, written)]
    declared = snapshot.metadata.get("icefloe", {}).get("arrays", {})
    checks.append(check_declared(session, declared if isinstance(declared, dict) else {}))
    for group, paths in variables_by_group(written).items():
        try:
            dataset = xr.open_zarr(session.store, group=group or None, consolidated=False, chunks={})
        except Exception as e:  # its coordinates are read as it opens
            checks.append(unread(f"group '{group or '/'}' opens", e))
            continue
        checks.append(checked(f"'{time_dim}' increasing, no duplicates", check_time, dataset, time_dim))
        checks.append(
            checked(
                f"no all-NaN '{time_dim}' step", check_nan_steps, session, dataset, written, paths, time_dim, allow_nan
            )
        )
        if source is not None:
            checks.append(
                checked(
                    "sample equals the source", check_sample, session, dataset, source, written, paths, sample_chunks
                )
            )
    return Validation(target=target, branch=branch, snapshot=snapshot_id, checks=checks)


def checked[*A](name: str, check: Callable[[*A], Check], *args: *A) -> Check:
    try:
        return check(*args)
    except (icechunk.IcechunkError, OSError) as e:  # a chunk or object the check needs is gone or unreachable
        return unread(name, e)
