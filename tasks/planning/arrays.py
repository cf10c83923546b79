"""Target arrays: check each requested write against what the repository holds, then create or grow arrays.

`resolve_writes` only reads, so every bad request is refused before anything is written; `initialize_arrays`
then changes metadata in the writable session, where it lands in the same commit as the data.
"""

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr
from zarr.errors import ArrayNotFoundError, NodeNotFoundError

from tasks.errors import InvalidRequestError, OverlappingWritesError
from tasks.planning.blocks import aligned_region, check_aligned, full_region, region_from_slices, write_unit
from tasks.records import Region, format_region
from tasks.request import ArraySpec, ArrayWrite


@dataclass(frozen=True)
class ResolvedWrite:
    """A write checked against the repository: final array shape, grid and the region the source fills."""

    write: ArrayWrite
    path: str
    shape: tuple[int, ...]
    unit: tuple[int, ...]
    dtype: np.dtype
    region: Region
    create: ArraySpec | None
    grow: bool


def _open_existing(group: zarr.Group, path: str) -> zarr.Array[Any] | None:
    try:
        node = group[path]
    except (KeyError, ArrayNotFoundError, NodeNotFoundError):
        return None
    if not isinstance(node, zarr.Array):
        raise InvalidRequestError(f"target '{path}' is a group, not an array; name an array path")
    return node


def _spec_region(write: ArrayWrite, existing: tuple[int, ...] | None) -> tuple[Region, tuple[int, ...]]:
    """Region and final shape for an ArraySpec target: a region's open stop means 'as far as the source goes'."""
    spec = write.target
    assert isinstance(spec, ArraySpec)
    source_shape = write.source.shape
    slices = write.region or tuple(slice(0, n) for n in source_shape)
    if len(slices) != len(source_shape):
        raise InvalidRequestError(
            f"region of array '{spec.path}' has {len(slices)} dimensions, the source has {len(source_shape)}"
        )
    region = []
    for s, n in zip(slices, source_shape, strict=True):
        start = s.start or 0
        region.append((start, start + n if s.stop is None else s.stop))
    needed = [stop for _, stop in region]
    for other in (spec.shape, existing):
        if other is not None:
            needed = [max(a, b) for a, b in zip(needed, other, strict=True)]
    return tuple(region), tuple(needed)


def _resolve_spec(write: ArrayWrite, group: zarr.Group) -> ResolvedWrite:
    spec = write.target
    assert isinstance(spec, ArraySpec)
    ndim = write.source.ndim
    for name, value in (("chunks", spec.chunks), ("shards", spec.shards), ("shape", spec.shape)):
        if value is not None and len(value) != ndim:
            raise InvalidRequestError(
                f"array '{spec.path}': {name} {value} has {len(value)} dimensions, the source has {ndim}"
            )
    dtype = np.dtype(spec.dtype) if spec.dtype else write.source.dtype
    unit = write_unit(spec.chunks, spec.shards)
    existing = _open_existing(group, spec.path)
    if existing is not None:
        actual = (tuple(existing.chunks), existing.shards, existing.dtype)
        wanted = (spec.chunks, spec.shards, dtype)
        if actual != wanted:
            raise InvalidRequestError(
                f"array '{spec.path}' exists with chunks {actual[0]}, shards {actual[1]}, dtype {actual[2]}; "
                f"the spec asks for chunks {wanted[0]}, shards {wanted[1]}, dtype {wanted[2]}. "
                "Match the existing array or write to a new path"
            )
    region, shape = _spec_region(write, None if existing is None else tuple(existing.shape))
    if spec.shape is not None and any(stop > n for (_, stop), n in zip(region, spec.shape, strict=True)):
        raise InvalidRequestError(
            f"array '{spec.path}': the write fills [{format_region(region)}], past the shape {spec.shape} the spec "
            "gives; give a shape that holds it (or none: the array is made just large enough)"
        )
    return ResolvedWrite(
        write=write,
        path=spec.path,
        shape=shape,
        unit=unit,
        dtype=dtype,
        region=region,
        create=None if existing is not None else spec,
        grow=existing is not None and shape != tuple(existing.shape),
    )


def _resolve_existing(write: ArrayWrite, group: zarr.Group, created: dict[str, ResolvedWrite]) -> ResolvedWrite:
    """A write to an array by path: one in the repository, or one that another write of this run creates."""
    path = write.target_path
    array = _open_existing(group, path)
    if array is not None:
        shape, unit, dtype = tuple(array.shape), write_unit(tuple(array.chunks), array.shards), array.dtype
    elif path in created:
        shape, unit, dtype = created[path].shape, created[path].unit, created[path].dtype
    else:
        raise InvalidRequestError(
            f"target array '{path}' does not exist on this branch; pass an ArraySpec to create it"
        )
    region = full_region(shape) if write.region is None else region_from_slices(shape, write.region, path)
    return ResolvedWrite(
        write=write, path=path, shape=shape, unit=unit, dtype=dtype, region=region, create=None, grow=False
    )


def _check_source_fits(resolved: ResolvedWrite, partial_edge_chunks: bool) -> None:
    source = resolved.write.source
    region_shape = tuple(stop - start for start, stop in resolved.region)
    if region_shape != source.shape:
        raise InvalidRequestError(
            f"source of shape {source.shape} does not fit region [{format_region(resolved.region)}] "
            f"(shape {region_shape}) of array '{resolved.path}'; slice the source or change the region"
        )
    if not np.can_cast(source.dtype, resolved.dtype, casting="same_kind"):
        raise InvalidRequestError(
            f"source dtype {source.dtype} cannot be stored as {resolved.dtype} in array '{resolved.path}' "
            "without changing its kind; cast the source (source.astype(...)) or store another dtype"
        )
    if resolved.dtype.itemsize == 0 or resolved.dtype.hasobject:
        raise InvalidRequestError(
            f"array '{resolved.path}' has dtype {resolved.dtype}; icefloe writes fixed-size dtypes"
        )
    if not partial_edge_chunks:
        check_aligned(resolved.path, resolved.shape, resolved.unit, resolved.region)


def _overlaps(a: Region, b: Region) -> bool:
    return all(max(a0, b0) < min(a1, b1) for (a0, a1), (b0, b1) in zip(a, b, strict=True))


def _cells(resolved: ResolvedWrite) -> Region:
    """The whole grid cells a write touches."""
    return aligned_region(resolved.region, resolved.unit, resolved.shape)


def _check_no_overlap(resolved: list[ResolvedWrite]) -> None:
    for a, b in itertools.combinations(resolved, 2):
        if a.path == b.path and _overlaps(a.region, b.region):
            raise OverlappingWritesError(
                f"two writes target overlapping regions [{format_region(a.region)}] and "
                f"[{format_region(b.region)}] of array '{a.path}'; Icechunk would keep only one of them. "
                "Give each write its own region"
            )
        # regions that may stop inside a chunk can share one without overlapping: each write would rewrite it
        if a.path == b.path and _overlaps(_cells(a), _cells(b)):
            raise OverlappingWritesError(
                f"two writes target regions [{format_region(a.region)}] and [{format_region(b.region)}] of array "
                f"'{a.path}' that share a chunk of its grid {a.unit}; Icechunk would keep only one write of it. "
                "Write that chunk from one write"
            )
        if a.path == b.path and (a.create or a.grow) and (b.create or b.grow):
            raise InvalidRequestError(
                f"two writes create or grow array '{a.path}'; create it with one write and give the other "
                "its path and a region"
            )


def resolve_writes(
    group: zarr.Group, writes: list[ArrayWrite], *, partial_edge_chunks: bool = False
) -> list[ResolvedWrite]:
    """Check every write against the repository's current arrays; raise before anything is written.

    `partial_edge_chunks` lets a region start or stop inside a chunk (xarray allows it outside mode "r+", e.g. an
    append after a partial last chunk): the one block that holds the chunk updates it, and two writes that share a
    chunk are refused.
    """
    if not writes:
        raise InvalidRequestError("no writes given; pass at least one ArrayWrite(source=..., target=...)")
    by_spec = {i: _resolve_spec(w, group) for i, w in enumerate(writes) if isinstance(w.target, ArraySpec)}
    created = {r.path: r for r in by_spec.values() if r.create or r.grow}
    resolved = [by_spec[i] if i in by_spec else _resolve_existing(w, group, created) for i, w in enumerate(writes)]
    for r in resolved:
        _check_source_fits(r, partial_edge_chunks)
    _check_no_overlap(resolved)
    return resolved


def initialize_arrays(group: zarr.Group, resolved: list[ResolvedWrite]) -> None:
    """Create missing arrays and grow existing ones, in the writable session's store."""
    for r in resolved:
        if r.create is not None:
            spec = r.create
            group.create_array(
                spec.path,
                shape=r.shape,
                chunks=spec.chunks,
                shards=spec.shards,
                dtype=r.dtype,
                fill_value=spec.fill_value,
                compressors=spec.compressors,
                dimension_names=spec.dimension_names,
                attributes=spec.attributes,
            )
        elif r.grow:
            array = group[r.path]
            assert isinstance(array, zarr.Array)
            array.resize(r.shape)


def region_bytes(region: Region, itemsize: int) -> int:
    return math.prod(stop - start for start, stop in region) * itemsize
