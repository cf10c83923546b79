"""The checks of a committed snapshot, each a function of what it reads and what the commit wrote, returning one
`Check`: what it found, never an exception, so that a table shows every check (`tasks/committing/validate.py` runs
them). Each reads samples or metadata where it can: cheap beside the write it checks.
"""

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import icechunk
import numpy as np
import xarray as xr
import zarr

from tasks.errors import one_line
from tasks.planning.blocks import chunks_of
from tasks.records import Check, Region, format_region
from tasks.storage.chunk_reads import unreadable_chunks

SHOWN = 5
"""Problems a check names before it says how many more there are."""


def listed(items: Iterable[str]) -> str:
    items = list(items)
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def present_chunks(session: icechunk.Session, path: str) -> set[tuple[int, ...]]:
    async def collect() -> set[tuple[int, ...]]:
        return {tuple(c) async for c in session.chunk_coordinates(f"/{path}")}

    return asyncio.run(collect())


def stored_grid(array: zarr.Array[Any]) -> tuple[int, ...]:
    """The grid Icechunk keeps one object per cell of: shards when sharded."""
    return tuple(array.shards or array.chunks)


def _spread[T](items: list[T], count: int | None) -> list[T]:
    """`count` of `items` spread from the first to the last (all of them when `count` is None)."""
    if count is None or len(items) <= count:
        return items
    return [items[round(i * (len(items) - 1) / max(1, count - 1))] for i in range(count)]


def check_chunks(session: icechunk.Session, written: dict[str, Region], reads: int | None = None) -> Check:
    """Every chunk the commit wrote is in the snapshot's manifests, and its object reads back (`reads` per array,
    spread over it, when given: the manifests are read whole either way)."""
    name = "chunks present and readable"
    missing: list[str] = []
    present: dict[str, list[tuple[int, ...]]] = {}
    total = 0
    for path, region in sorted(written.items()):
        array = zarr.open_array(session.store, path=path, mode="r")
        expected = chunks_of(region, stored_grid(array))
        found = present_chunks(session, path)
        total += len(expected)
        missing += [f"'{path}' chunk {index}" for index in sorted(expected - found)]
        present[path] = _spread(sorted(expected & found), reads)
    unreadable = unreadable_chunks(session.store, present)
    if unreadable:
        return Check(
            check=name,
            outcome="failed",
            detail=f"{len(unreadable)} of {total} written chunks cannot be read: "
            f"{listed(c.describe() for c in unreadable)} (their objects are gone: garbage collection with a "
            "cutoff newer than the write, or the bucket's own rules)",
        )
    if missing:
        return Check(
            check=name,
            outcome="failed",
            detail=f"{len(missing)} of {total} written chunks are missing: {listed(missing)} (a chunk equal to the "
            "fill value everywhere is not stored: write it with write_empty_chunks, or look at the source)",
        )
    sampled = "" if reads is None else f" ({sum(map(len, present.values()))} read back)"
    return Check(check=name, outcome="passed", detail=f"all {total} chunks the commit wrote{sampled}")


def unread(check: str, error: Exception) -> Check:
    """A check that could not read what it checks has failed: what it could not read is the finding."""
    return Check(check=check, outcome="failed", detail=f"cannot read the data: {one_line(error)}")


def check_time(dataset: xr.Dataset, time_dim: str) -> Check:
    name = f"'{time_dim}' increasing, no duplicates"
    if time_dim not in dataset.indexes:
        return Check(check=name, outcome="skipped", detail=f"no '{time_dim}' coordinate")
    times = dataset.indexes[time_dim]
    duplicated = times[times.duplicated()]
    if len(duplicated):
        return Check(check=name, outcome="failed", detail=f"duplicated: {listed(map(str, duplicated))}")
    if not times.is_monotonic_increasing:
        back = [str(times[i + 1]) for i in range(len(times) - 1) if times[i + 1] < times[i]]
        return Check(check=name, outcome="failed", detail=f"goes back at {listed(back)}")
    return Check(check=name, outcome="passed", detail=f"{len(times)} steps, {times[0]} to {times[-1]}")


NAN_READS_IN_FLIGHT = 16
"""Rows of chunks the NaN check reads at once: each waits on the object store."""


def _step_has_values(values: np.ndarray, axis: int) -> np.ndarray:
    """Per step along `axis`, whether any value is not NaN."""
    others = tuple(i for i in range(values.ndim) if i != axis)
    return np.asarray(~np.isnan(values).all(axis=others)) if others else ~np.isnan(values)


def _nan_steps_of(session: icechunk.Session, path: str, region: Region, axis: int) -> list[int]:
    """The steps along `axis` of `region` that are NaN everywhere in it, reading as few chunks as tell.

    A chunk the manifest lacks holds the fill value everywhere (Zarr stores no empty chunk): a row of steps none of
    whose chunks is stored is NaN everywhere when the fill value is NaN, and has values otherwise. Of the stored
    chunks of a row, the middle one is read first; the next only for steps it showed no value in.
    """
    array = zarr.open_array(session.store, path=path, mode="r")
    grid = stored_grid(array)
    fill_is_nan = bool(np.isnan(array.fill_value)) if array.fill_value is not None else False
    present = present_chunks(session, path)
    rows: dict[int, list[tuple[int, ...]]] = defaultdict(list)
    for cell in chunks_of(region, grid):
        rows[cell[axis]].append(cell)

    def empty_steps(row: int) -> list[int]:
        start, stop = max(region[axis][0], row * grid[axis]), min(region[axis][1], (row + 1) * grid[axis])
        cells = sorted(rows[row])
        stored = [c for c in cells if c in present]
        if len(stored) < len(cells) and not fill_is_nan:
            return []  # a chunk not stored holds the fill value, a number, at every step of the row
        valued = np.zeros(stop - start, dtype=bool)
        middle = len(stored) // 2
        for _, cell in sorted(enumerate(stored), key=lambda pair: abs(pair[0] - middle)):
            where = tuple(
                slice(max(lo, i * g), min(hi, (i + 1) * g)) for i, g, (lo, hi) in zip(cell, grid, region, strict=True)
            )
            valued |= _step_has_values(np.asarray(array[where]), axis)
            if valued.all():
                break
        return [start + int(i) for i in np.flatnonzero(~valued)]

    with ThreadPoolExecutor(NAN_READS_IN_FLIGHT, "icefloe-nan-check") as pool:
        return sorted(step for steps in pool.map(empty_steps, sorted(rows)) for step in steps)


def check_nan_steps(
    session: icechunk.Session,
    dataset: xr.Dataset,
    written: dict[str, Region],
    paths: dict[str, str],
    time_dim: str,
    allow_nan: bool,
    noted: dict[str, frozenset[int]] | None = None,
) -> Check:
    """No step along `time_dim` that the commit wrote is NaN everywhere in what it wrote: from the steps its
    blocks `noted` holding values as they stored them (a publishing run's), or else from the stored chunks."""
    noted = noted or {}
    name = f"no all-NaN '{time_dim}' step"
    if allow_nan:
        return Check(check=name, outcome="skipped", detail="allowed by the request")
    empty: list[str] = []
    checked_steps = 0
    for variable, path in sorted(paths.items()):
        values = dataset[variable]
        if time_dim not in values.dims or not np.issubdtype(values.dtype, np.floating):
            continue
        axis = values.dims.index(time_dim)
        region = written[path]
        checked_steps += region[axis][1] - region[axis][0]
        labels = dataset.indexes[time_dim] if time_dim in dataset.indexes else dataset[time_dim].values
        if path in noted:
            nan_steps = sorted(set(range(*region[axis])) - noted[path])
        else:
            nan_steps = _nan_steps_of(session, path, region, axis)
        empty += [f"'{variable}' at {labels[step]}" for step in nan_steps]
    if not checked_steps:
        return Check(check=name, outcome="skipped", detail=f"no floating-point variable written along '{time_dim}'")
    if empty:
        return Check(check=name, outcome="failed", detail=f"NaN everywhere: {listed(empty)}")
    return Check(check=name, outcome="passed", detail=f"{checked_steps} written steps checked")


def check_declared(session: icechunk.Session, declared: dict[str, Any]) -> Check:
    name = "dtypes and shapes as declared"
    if not declared:
        return Check(check=name, outcome="skipped", detail="the commit declared none")
    wrong = []
    for path, spec in sorted(declared.items()):
        array = zarr.open_array(session.store, path=path, mode="r")
        found = {"dtype": str(array.dtype), "shape": list(array.shape)}
        if found != {"dtype": spec["dtype"], "shape": list(spec["shape"])}:
            wrong.append(f"'{path}' is {found['dtype']} {found['shape']}, declared {spec['dtype']} {spec['shape']}")
    if wrong:
        return Check(check=name, outcome="failed", detail=listed(wrong))
    return Check(check=name, outcome="passed", detail=f"{len(declared)} arrays")


def _sample_cells(region: Region, grid: tuple[int, ...], count: int) -> list[tuple[slice, ...]]:
    """The first, middle and last (up to `count`) grid cells of `region`, clipped to it."""
    cells = sorted(chunks_of(region, grid))
    picked = sorted({cells[round(i * (len(cells) - 1) / max(1, count - 1))] for i in range(min(count, len(cells)))})
    return [
        tuple(
            slice(max(start, i * g), min(stop, (i + 1) * g))
            for i, g, (start, stop) in zip(cell, grid, region, strict=True)
        )
        for cell in picked
    ]


def check_sample(
    session: icechunk.Session,
    dataset: xr.Dataset,
    source: xr.Dataset,
    written: dict[str, Region],
    paths: dict[str, str],
    count: int,
) -> Check:
    name = "sample equals the source"
    differing: list[str] = []
    compared = 0
    for variable, path in sorted(paths.items()):
        if variable not in source:
            continue
        grid = stored_grid(zarr.open_array(session.store, path=path, mode="r"))
        for cell in _sample_cells(written[path], grid, count):
            target = dataset[variable].isel(dict(zip(dataset[variable].dims, cell, strict=True)))
            where = f"'{variable}' [{format_region(tuple((s.start, s.stop) for s in cell))}]"
            labels = {d: target[d].values for d in target.dims if d in source.indexes}
            try:
                expected = (
                    source[variable]
                    .sel(labels)
                    .isel({d: cell[target.dims.index(d)] for d in target.dims if d not in labels})
                )
            except KeyError as e:
                differing.append(f"{where}: not in the source ({e})")
                continue
            compared += 1
            if not np.array_equal(target.values, expected.values, equal_nan=True):
                differing.append(where)
    if differing:
        return Check(check=name, outcome="failed", detail=f"differs at {listed(differing)}")
    if not compared:
        return Check(check=name, outcome="skipped", detail="the source has none of the written variables")
    return Check(check=name, outcome="passed", detail=f"{compared} chunks compared")
