"""The checks a staged snapshot passes before its branch moves to it (`tasks/committing/publishing.py`).

What the run wrote: every chunk present (a few read back), no step NaN everywhere, time increasing without
duplicates, dtypes and shapes as declared. What the branch held: nothing shrank or disappeared, no array changed its
dtype, chunking or fill value, no held time step was relabelled (nor rewritten, by a run that only appends). And the
user's own check, given the staged snapshot read-only. Each reads metadata, manifests and a few chunks, never a whole
region: cheap beside the write.
"""

from collections.abc import Callable
from typing import Any

import icechunk
import xarray as xr
import zarr

from tasks.committing.checks import check_chunks, check_declared, check_nan_steps, check_time, listed, stored_grid
from tasks.committing.validate import checked, variables_by_group, written_regions
from tasks.errors import one_line
from tasks.records import Check, Region
from tasks.request import PublishGate
from tasks.storage.callables import import_function

READS = 3
"""Chunks per array read back whole by the presence check: the manifests say every chunk is there."""


def _open_group(session: icechunk.Session, group: str) -> xr.Dataset | None:
    try:
        return xr.open_zarr(session.store, group=group or None, consolidated=False, chunks={})
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        return None


def _members(session: icechunk.Session) -> dict[str, Any]:
    """Every group and array, by path ("" for the root); none in a repository's first, empty snapshot."""
    try:
        root = zarr.open_group(session.store, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        return {}
    return {"": root, **dict(root.members(max_depth=None))}


def _in_one_chunk(array: zarr.Array[Any]) -> bool:
    """One chunk holds all of it (as xarray writes a coordinate): its chunk follows its length, no layout to keep."""
    return array.shards is None and all(c >= n for c, n in zip(array.chunks, array.shape, strict=True))


def _array_changes(path: str, before: zarr.Array[Any], after: zarr.Array[Any]) -> list[str]:
    changes = []
    if before.dtype != after.dtype:
        changes.append(f"'{path}' dtype {before.dtype} -> {after.dtype}")
    relaid = stored_grid(before) != stored_grid(after) or before.chunks != after.chunks
    if relaid and not (_in_one_chunk(before) and _in_one_chunk(after)):
        changes.append(f"'{path}' chunks {before.chunks} -> {after.chunks}")
    if repr(before.fill_value) != repr(after.fill_value):
        changes.append(f"'{path}' fill value {before.fill_value!r} -> {after.fill_value!r}")
    shrunk = [f"{old} -> {new}" for old, new in zip(before.shape, after.shape, strict=False) if new < old]
    if len(before.shape) != len(after.shape) or shrunk:
        changes.append(f"'{path}' shape {before.shape} -> {after.shape} (shrank)")
    return changes


def check_nothing_lost(parent: icechunk.Session, staged: icechunk.Session) -> Check:
    """Everything the branch held is still there, as large, of the same dtype, chunking and fill value, with every
    attribute it had: what readers of the branch rely on."""
    name = "nothing shrank, disappeared or changed type"
    before, after = _members(parent), _members(staged)
    problems: list[str] = []
    for path, node in sorted(before.items()):
        shown = path or "/"
        if path not in after:
            problems.append(f"'{shown}' disappeared")
            continue
        new = after[path]
        if isinstance(node, zarr.Array) != isinstance(new, zarr.Array):
            problems.append(f"'{shown}' is no longer a{'n array' if isinstance(node, zarr.Array) else ' group'}")
            continue
        lost = sorted(set(node.attrs) - set(new.attrs))
        if lost:
            problems.append(f"'{shown}' lost attributes {', '.join(lost)}")
        if isinstance(node, zarr.Array):
            problems += _array_changes(path, node, new)
    if problems:
        return Check(check=name, outcome="failed", detail=listed(problems))
    held = sum(isinstance(node, zarr.Array) for node in before.values())
    return Check(check=name, outcome="passed", detail=f"{held} arrays the branch held")


def check_held_steps(
    parent: icechunk.Session, staged: dict[str, xr.Dataset], written: dict[str, Region], gate: PublishGate
) -> Check:
    """The steps the branch held keep their labels; a run that only appends rewrote none of them. `staged`: each
    written group of the staged snapshot as a Dataset (a group missing there could not be opened)."""
    time_dim = gate.time_dim
    name = f"held '{time_dim}' steps kept"
    problems: list[str] = []
    held_steps = 0
    for group, paths in variables_by_group(written).items():
        before = _open_group(parent, group) if paths else None
        if before is None or time_dim not in before.indexes:
            continue
        after = staged.get(group)
        held = before.indexes[time_dim]
        held_steps += len(held)
        now = after.indexes.get(time_dim) if after is not None else None
        if now is None or len(now) < len(held) or not now[: len(held)].equals(held):
            changed = [str(t) for i, t in enumerate(held) if now is None or i >= len(now) or now[i] != t]
            problems.append(f"'{group or '/'}' relabelled or removed {listed(changed)}")
            continue
        if gate.appends_only and after is not None:
            problems += _rewritten(after, paths, written, time_dim, held)
    if problems:
        return Check(check=name, outcome="failed", detail=listed(problems))
    if not held_steps:
        return Check(check=name, outcome="skipped", detail=f"the branch held no '{time_dim}' steps")
    return Check(check=name, outcome="passed", detail=f"{held_steps} held steps")


def _rewritten(
    dataset: xr.Dataset, paths: dict[str, str], written: dict[str, Region], time_dim: str, held: Any
) -> list[str]:
    """The group's written arrays (`paths`: by variable) whose region along `time_dim` starts within the `held`
    steps."""
    rewritten = []
    for variable, path in sorted(paths.items()):
        if variable not in dataset.variables or time_dim not in dataset[variable].dims:
            continue
        start = written[path][dataset[variable].dims.index(time_dim)][0]
        if start < len(held):
            rewritten.append(f"'{path}' rewrote held steps from {held[start]} (the run only appends)")
    return rewritten


def check_users(check: Callable[[xr.Dataset], object], reference: str, datasets: dict[str, xr.Dataset]) -> Check:
    """The user's check, given each written group of the staged snapshot as a Dataset (lazy, read-only)."""
    name = f"the user's check {reference}"
    for group, dataset in sorted(datasets.items()):
        try:
            check(dataset)
        except Exception as e:
            where = f" on group '{group}'" if group else ""
            return Check(check=name, outcome="failed", detail=f"raised{where}: {one_line(e)}")
    return Check(check=name, outcome="passed", detail=f"{len(datasets)} groups")


def _unopened(group: str, error: Exception, opened_before: bool) -> Check:
    """A group xarray cannot open: a failure where the branch held one it could, else arrays that are no Dataset
    (`store_array`'s, without dimension names): their checks by time step do not apply."""
    name = f"group '{group or '/'}' opens as a Dataset"
    if opened_before:
        return Check(check=name, outcome="failed", detail=one_line(error))
    return Check(check=name, outcome="skipped", detail=f"not a Dataset, no checks by step ({one_line(error)})")


def publish_checks(
    repo: icechunk.Repository,
    snapshot_id: str,
    parent_id: str,
    gate: PublishGate,
    noted: dict[str, frozenset[int]] | None = None,
) -> list[Check]:
    """Every check of the staged snapshot `snapshot_id` against the branch tip `parent_id` it is to replace;
    `noted`: per array, the steps its writing noted holding values (`tasks/writing/block.py::ValuedSteps`)."""
    steps: dict[str, frozenset[int]] = noted or {}
    snapshot = repo.lookup_snapshot(snapshot_id)
    staged = repo.readonly_session(snapshot_id=snapshot_id)
    parent = repo.readonly_session(snapshot_id=parent_id)
    written = written_regions(repo, snapshot, staged)
    declared = snapshot.metadata.get("icefloe", {}).get("arrays", {})
    checks = [
        checked("chunks present and readable", check_chunks, staged, written, READS),
        check_declared(staged, declared if isinstance(declared, dict) else {}),
    ]
    datasets: dict[str, xr.Dataset] = {}
    for group, paths in variables_by_group(written).items():
        try:
            dataset = xr.open_zarr(staged.store, group=group or None, consolidated=False, chunks={})
        except Exception as e:  # its coordinates are read as it opens
            checks.append(_unopened(group, e, _open_group(parent, group) is not None))
            continue
        datasets[group] = dataset
        checks.append(checked(f"'{gate.time_dim}' increasing, no duplicates", check_time, dataset, gate.time_dim))
        checks.append(
            checked(
                f"no all-NaN '{gate.time_dim}' step",
                check_nan_steps,
                staged,
                dataset,
                written,
                paths,
                gate.time_dim,
                gate.allow_nan,
                steps,
            )
        )
    checks.append(checked("nothing shrank, disappeared or changed type", check_nothing_lost, parent, staged))
    checks.append(checked(f"held '{gate.time_dim}' steps kept", check_held_steps, parent, datasets, written, gate))
    if gate.check is not None:
        checks.append(check_users(import_function(gate.check, "publish check"), gate.check, datasets))
    return checks
