"""Regions as a user gives them, in one grammar: per dimension a range of whole indices, step 1, either end open
(`None`), as a slice (Python) or a `[start, stop]` pair (JSON, the UI's forms). One parser per form:

- `to_zarr`'s region (`DatasetWrite.region`): per dimension a slice or "auto", or "auto" for every dimension,
  checked and refused as `Dataset.to_zarr` does (`to_zarr_region`; pairs only where JSON gives them);
- `store_dask`'s region (`ArrayWrite.region`): one slice per dimension of the array;
- the command line's `dim=start:stop` flags: `flows/cli/requests.py`, into the first form;
- a commit's record of what it wrote: `format_region` and `recorded_region` (`tasks/records.py`).

Each form's validator is a pydantic type, so a bad region is refused as the request is read, before anything is
opened.
"""

from numbers import Integral
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, PlainSerializer, PlainValidator, ValidationInfo, WithJsonSchema


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

type DatasetRegion = dict[str, Literal["auto"] | slice] | Literal["auto"] | None
"""to_zarr's region: per dimension a slice or "auto", or "auto" for every dimension."""


def to_zarr_region(value: object, *, pairs: bool = False) -> DatasetRegion:
    """`value` checked as `Dataset.to_zarr` checks its region, refused with to_zarr's own exceptions, word for word.
    With `pairs` (JSON: a deployment's parameters, the UI's form, which have no slices) a [start, stop] pair stands
    for a slice; from Python, as to_zarr, only slices do."""
    if value is None:
        return None
    if isinstance(value, str) and value == "auto":
        return "auto"
    if not isinstance(value, dict):
        raise TypeError(f"``region`` must be a dict, got {type(value)}")
    region: dict[str, Literal["auto"] | slice] = {}
    for dim, given in value.items():
        if isinstance(given, str) and given == "auto":
            region[dim] = "auto"
            continue
        if pairs and not isinstance(given, slice):
            given = region_slice(given)  # a [start, stop] pair, or icefloe's words for what is not one
        if not isinstance(given, slice):
            raise TypeError(f"all values in ``region`` must be slice objects, got region={value}")
        if given.step not in {1, None}:
            raise ValueError(f"step on all slices in ``region`` must be 1 or None, got region={value}")
        region[dim] = region_slice(given)
    return region


def _dataset_region(value: object, info: ValidationInfo) -> DatasetRegion:
    return to_zarr_region(value, pairs=info.mode == "json")


def _as_pairs(region: DatasetRegion) -> object:
    return region if not isinstance(region, dict) else {d: v if v == "auto" else _pair(v) for d, v in region.items()}


_REGION_SCHEMA = {
    "anyOf": [
        {"type": "object", "additionalProperties": {"anyOf": [{"const": "auto", "type": "string"}, _PAIR_SCHEMA]}},
        {"const": "auto", "type": "string"},
        {"type": "null"},
    ]
}

type RegionParameter = Annotated[
    DatasetRegion,
    PlainValidator(_dataset_region),
    PlainSerializer(_as_pairs, when_used="json"),
    WithJsonSchema(_REGION_SCHEMA),
]
"""`DatasetWrite`'s region (`to_zarr_region`): slices from Python, [start, stop] pairs from JSON."""

type RegionArgument = Annotated[Any, WithJsonSchema(_REGION_SCHEMA)]
"""A flow's region parameter: the form's and the API's [start, stop] pairs, or slices from a Python caller; taken
as given (Prefect's own check knows no slices) and checked by the flow as to_zarr checks it (`to_zarr_region`)."""


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
