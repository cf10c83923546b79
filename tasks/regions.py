"""Regions as a user gives them, in one grammar: per dimension a range of whole indices, step 1, either end open
(`None`), as a slice (Python) or a `[start, stop]` pair (JSON, the UI's forms). One parser per form:

- `to_zarr`'s region (`DatasetWrite.region`): per dimension a slice or "auto", or "auto" for every dimension;
- `store_dask`'s region (`ArrayWrite.region`): one slice per dimension of the array;
- the command line's `dim=start:stop` flags: `flows/cli/requests.py`, into the first form;
- a commit's record of what it wrote: `format_region` and `recorded_region` (`tasks/records.py`).

Each form's validator is a pydantic type, so a bad region is refused as the request is read, before anything is
opened.
"""

from numbers import Integral
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, PlainSerializer, PlainValidator, WithJsonSchema


def region_slice(value: object) -> slice:
    """One dimension of a region: a slice, or a [start, stop] pair (either end may be None); integers, step 1."""
    if isinstance(value, slice):
        if value.step not in (None, 1):
            raise ValueError(f"a region's slices step by 1, not {value.step}")
        ends = (value.start, value.stop)
    elif isinstance(value, list | tuple) and len(value) == 2:
        ends = tuple(value)
    else:
        raise ValueError('a region is, per dimension, a slice, a [start, stop] pair or "auto"')
    if any(end is not None and (isinstance(end, bool) or not isinstance(end, Integral)) for end in ends):
        raise ValueError(f"a region's start and stop are integers or null, not {list(ends)}")
    return slice(*(None if end is None else int(end) for end in ends))  # numpy's integers too, as to_zarr's own


def _pair(s: slice) -> list[int | None]:
    return [s.start, s.stop]


_PAIR_SCHEMA = {"type": "array", "items": {"type": ["integer", "null"]}, "minItems": 2, "maxItems": 2}

RegionSlice = Annotated[
    slice,
    PlainValidator(region_slice),
    PlainSerializer(_pair, return_type=list),
    WithJsonSchema(_PAIR_SCHEMA),
]

type RegionParameter = dict[str, Literal["auto"] | RegionSlice] | Literal["auto"] | None
"""A region as to_zarr takes it (per dimension a slice or "auto"; or "auto" for every dimension), where JSON gives
[start, stop] pairs for slices."""


def array_region(value: object) -> tuple[slice, ...] | None:
    """store_dask's region: a slice (or [start, stop] pair) per dimension of the array."""
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        raise ValueError("a region is one slice (or [start, stop] pair) per dimension")
    return tuple(region_slice(item) for item in value)


ArrayRegion = Annotated[
    tuple[Any, ...],
    BeforeValidator(array_region),
    PlainSerializer(lambda region: [_pair(s) for s in region], when_used="json"),
    WithJsonSchema({"type": "array", "items": _PAIR_SCHEMA}),
]
