import pandas as pd
import pytest

from tasks.errors import InvalidRequestError
from tasks.planning.time_steps import plan_time_update
from tasks.storage.synthetic import SyntheticDataset

SOURCE = SyntheticDataset(ntime=10, nlat=3, nlon=4, time_chunk=5).open()
TIMES = SOURCE.indexes["time"]


def test_a_new_target_takes_the_whole_source() -> None:
    update = plan_time_update(SOURCE, None, "time", "refuse")
    assert update.append is SOURCE
    assert (update.new_steps, update.rewrite) == (10, None)


def test_only_newer_steps_are_appended_and_nothing_new_is_empty() -> None:
    update = plan_time_update(SOURCE.isel(time=slice(6, 10)), TIMES[:6], "time", "refuse")
    assert update.append is not None
    assert list(update.append.indexes["time"]) == list(TIMES[6:])

    assert plan_time_update(SOURCE.isel(time=slice(0, 6)), TIMES, "time", "skip").empty


def test_steps_the_target_holds_are_refused_skipped_or_rewritten() -> None:
    with pytest.raises(InvalidRequestError, match="already holds 2 steps from 2020-01-01 04:00:00"):
        plan_time_update(SOURCE.isel(time=slice(4, 8)), TIMES[:6], "time", "refuse")

    skipped = plan_time_update(SOURCE.isel(time=slice(4, 8)), TIMES[:6], "time", "skip")
    assert skipped.append is not None
    assert (skipped.append.sizes["time"], skipped.skipped_steps, skipped.rewrite) == (2, 2, None)

    rewritten = plan_time_update(SOURCE.isel(time=slice(4, 8)), TIMES[:6], "time", "rewrite")
    assert rewritten.rewrite is not None
    assert (rewritten.rewrite_start, rewritten.rewrite.sizes["time"], rewritten.new_steps) == (4, 4, 2)


def test_steps_inside_the_range_the_target_lacks_are_never_inserted() -> None:
    gappy = TIMES[:3].append(TIMES[5:6])
    with pytest.raises(InvalidRequestError, match=r"inside the target's range .* does not hold"):
        plan_time_update(SOURCE.isel(time=slice(3, 7)), gappy, "time", "skip")


def test_an_unsorted_source_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="not strictly increasing"):
        plan_time_update(SOURCE.isel(time=[3, 2]), pd.DatetimeIndex([]), "time", "skip")
