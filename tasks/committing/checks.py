"""The checks of a committed snapshot, each a function of what it reads and what the commit wrote, returning one
`Check`: what it found, never an exception, so that a table shows every check (`tasks/committing/validate.py` runs
them). Each reads samples or metadata where it can: cheap beside the write it checks.
"""

import asyncio
from collections.abc import Iterable
from typing import Any, Literal

import icechunk
import numpy as np
import xarray as xr
import zarr
from pydantic import BaseModel, ConfigDict

from tasks.errors import one_line
from tasks.planning.blocks import chunks_of
from tasks.records import Region, format_region
from tasks.storage.chunk_reads import unreadable_chunks

SHOWN = 5
"""Problems a check names before it says how many more there are."""

type Outcome = Literal["passed", "failed", "skipped"]


class Check(BaseModel):
    """One check's outcome and what it found."""

    model_config = ConfigDict(frozen=True)

    check: str
    outcome: Outcome
    detail: str


def _listed(items: Iterable[str]) -> str:
    items = list(items)
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def _present_chunks(session: icechunk.Session, path: str) -> set[tuple[int, ...]]:
    async def collect() -> set[tuple[int, ...]]:
        return {tuple(c) async for c in session.chunk_coordinates(f"/{path}")}

    return asyncio.run(collect())


def _grid(array: zarr.Array[Any]) -> tuple[int, ...]:
    """The grid Icechunk keeps one object per cell of: shards when sharded."""
    return tuple(array.shards or array.chunks)


def check_chunks(session: icechunk.Session, written: dict[str, Region]) -> Check:
    """Every chunk the commit wrote is in the snapshot's manifests, and its object reads back."""
    name = "chunks present and readable"
    missing: list[str] = []
    present: dict[str, list[tuple[int, ...]]] = {}
    total = 0
    for path, region in sorted(written.items()):
        array = zarr.open_array(session.store, path=path, mode="r")
        expected = chunks_of(region, _grid(array))
        found = _present_chunks(session, path)
        total += len(expected)
        missing += [f"'{path}' chunk {index}" for index in sorted(expected - found)]
        present[path] = sorted(expected & found)
    unreadable = unreadable_chunks(session.store, present)
    if unreadable:
        return Check(
            check=name,
            outcome="failed",
            detail=f"{len(unreadable)} of {total} written chunks cannot be read: "
            f"{_listed(c.describe() for c in unreadable)} (their objects are gone: garbage collection with a "
            "cutoff newer than the write, or the bucket's own rules)",
        )
    if missing:
        return Check(
            check=name,
            outcome="failed",
            detail=f"{len(missing)} of {total} written chunks are missing: {_listed(missing)} (a chunk equal to the "
            "fill value everywhere is not stored: write it with write_empty_chunks, or look at the source)",
        )
    return Check(check=name, outcome="passed", detail=f"all {total} chunks the commit wrote")


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
        return Check(check=name, outcome="failed", detail=f"duplicated: {_listed(map(str, duplicated))}")
    if not times.is_monotonic_increasing:
        back = [str(times[i + 1]) for i in range(len(times) - 1) if times[i + 1] < times[i]]
        return Check(check=name, outcome="failed", detail=f"goes back at {_listed(back)}")
    return Check(check=name, outcome="passed", detail=f"{len(times)} steps, {times[0]} to {times[-1]}")


def check_nan_steps(
    dataset: xr.Dataset, written: dict[str, Region], paths: dict[str, str], time_dim: str, allow_nan: bool
) -> Check:
    name = f"no all-NaN '{time_dim}' step"
    if allow_nan:
        return Check(check=name, outcome="skipped", detail="allowed by the request")
    empty: list[str] = []
    checked = 0
    for variable, path in sorted(paths.items()):
        values = dataset[variable]
        if time_dim not in values.dims or not np.issubdtype(values.dtype, np.floating):
            continue
        start, stop = written[path][values.dims.index(time_dim)]
        steps = values.isel({time_dim: slice(start, stop)})
        all_nan = steps.isnull().all([d for d in steps.dims if d != time_dim]).compute()
        checked += stop - start
        empty += [f"'{variable}' at {t}" for t in steps[time_dim].values[all_nan.values]]
    if not checked:
        return Check(check=name, outcome="skipped", detail=f"no floating-point variable written along '{time_dim}'")
    if empty:
        return Check(check=name, outcome="failed", detail=f"{len(empty)} steps are NaN everywhere: {_listed(empty)}")
    return Check(check=name, outcome="passed", detail=f"{checked} written steps checked")


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
        return Check(check=name, outcome="failed", detail=_listed(wrong))
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
        grid = _grid(zarr.open_array(session.store, path=path, mode="r"))
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
        return Check(check=name, outcome="failed", detail=f"differs at {_listed(differing)}")
    if not compared:
        return Check(check=name, outcome="skipped", detail="the source has none of the written variables")
    return Check(check=name, outcome="passed", detail=f"{compared} chunks compared")
