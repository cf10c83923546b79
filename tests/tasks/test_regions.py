"""One region grammar: every form a user gives a region in (to_zarr's dict, store_dask's tuple, the command's
flags) follows the same rule per dimension, and refuses the same values."""

import json

import dask.array as da
import numpy as np
import pytest
from pydantic import ValidationError

from flows.cli.requests import region_from_flags
from tasks.errors import InvalidRequestError
from tasks.regions import to_zarr_region
from tasks.request import ArrayWrite, DatasetWrite

SOURCE = da.zeros((10, 10), chunks=5)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (slice(2, 8), slice(2, 8)),
        ([2, 8], slice(2, 8)),
        ((None, 8), slice(None, 8)),
        (slice(None), slice(None)),
        (slice(np.int64(2), np.int64(8)), slice(2, 8)),  # what xarray's region="auto" gives
    ],
)
def test_a_dimension_is_the_same_range_in_every_form(given: object, expected: slice) -> None:
    # to_zarr takes slices from Python, [start, stop] pairs only from JSON (tests/flows/test_to_zarr_refusals.py)
    from_json = not isinstance(given, slice)
    assert to_zarr_region({"x": given}, pairs=from_json) == {"x": expected}
    assert ArrayWrite(source=SOURCE, target="a", region=(given, slice(None))).region == (expected, slice(None))


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ([True, 5], "integers or null"),
        ([0.5, 5], "integers or null"),
        (slice(0, 10, 2), "step by 1"),
        ([0, 5, 10], "a slice, a \\[start, stop\\] pair"),
        ("0:5", "a slice, a \\[start, stop\\] pair"),
    ],
)
def test_every_form_refuses_the_same_values(given: object, message: str) -> None:
    if not isinstance(given, slice):  # JSON's form of a slice, where only JSON gives one
        with pytest.raises(ValidationError, match=message):
            DatasetWrite.model_validate_json(json.dumps({"region": {"x": given}}))
    with pytest.raises(InvalidRequestError, match=message):
        ArrayWrite(source=SOURCE, target="a", region=(given, slice(None)))


def test_the_command_line_form_reads_into_to_zarrs() -> None:
    assert DatasetWrite(region=region_from_flags(["time=0:24"])).region == {"time": slice(0, 24)}
    assert DatasetWrite(region=region_from_flags(["time=:24", "lon=auto"])).region == {
        "time": slice(None, 24),
        "lon": "auto",
    }
    assert region_from_flags(["auto"]) == "auto"
    assert region_from_flags(None) is None


def test_json_and_the_ui_see_pairs() -> None:
    assert DatasetWrite(region={"time": slice(0, 24)}).model_dump(mode="json")["region"] == {"time": [0, 24]}
