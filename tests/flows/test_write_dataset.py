"""write_dataset against icechunk.xarray.to_icechunk: same Dataset, same keywords, identical repositories."""

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import icechunk
import pytest
import xarray as xr
from icechunk.xarray import to_icechunk

from flows.write_dataset import write_dataset
from tasks.request import WriteOptions
from tasks.sources import SyntheticDataset
from tests.conftest import open_repo, snapshot_count

SOURCE = SyntheticDataset(ntime=72, nlat=19, nlon=36, time_chunk=24)
ENCODING = {"t2m": {"chunks": (24, 19, 18)}, "u10": {"chunks": (24, 19, 36)}}


def ours(repo: str, dask_address: str, source: Any, **kwargs: Any) -> None:
    options = WriteOptions(dask_address=dask_address, block_bytes=20_000, retry_delay_seconds=0)
    write_dataset(repo=repo, source=source, options=options, **kwargs)


def reference(path: Path, dataset: xr.Dataset, **kwargs: Any) -> str:
    repo = icechunk.Repository.open_or_create(icechunk.local_filesystem_storage(str(path)))
    session = repo.writable_session("main")
    to_icechunk(dataset, session, **kwargs)
    session.commit("reference")
    return str(path)


def opened(repo: str, group: str | None = None) -> xr.Dataset:
    return xr.open_zarr(open_repo(repo).readonly_session("main").store, group=group, consolidated=False).load()


def test_mode_w_matches_to_icechunk(repo_path: str, dask_address: str, tmp_path: Path) -> None:
    ours(repo_path, dask_address, SOURCE, group="era", mode="w", encoding=ENCODING)
    ref = reference(tmp_path / "ref", SOURCE.open(), group="era", mode="w", encoding=ENCODING)

    xr.testing.assert_identical(opened(repo_path, "era"), opened(ref, "era"))
    xr.testing.assert_identical(opened(repo_path, "era"), SOURCE.open().load())
    assert snapshot_count(repo_path) == 2


def test_three_appends_equal_the_concatenation(repo_path: str, dask_address: str, tmp_path: Path) -> None:
    parts = [SOURCE.time_slice(i, i + 24) for i in (0, 24, 48)]
    ours(repo_path, dask_address, parts[0], mode="w", encoding=ENCODING)
    ref = reference(tmp_path / "ref", parts[0], mode="w", encoding=ENCODING)
    for part in parts[1:]:
        ours(repo_path, dask_address, part, append_dim="time")
        reference(tmp_path / "ref", part, append_dim="time")

    xr.testing.assert_identical(opened(repo_path), opened(ref))
    xr.testing.assert_identical(opened(repo_path), SOURCE.open().load())
    assert snapshot_count(repo_path) == 4


@pytest.mark.parametrize(
    "region",
    [
        pytest.param({"time": (24, 48)}, id="dict"),
        pytest.param("auto", id="auto"),
    ],
)
def test_region_writes_match_to_icechunk(repo_path: str, dask_address: str, tmp_path: Path, region: Any) -> None:
    ours(repo_path, dask_address, SOURCE, mode="w", encoding=ENCODING)
    ref = reference(tmp_path / "ref", SOURCE.open(), mode="w", encoding=ENCODING)
    update = (SOURCE.time_slice(24, 48) * 2).drop_vars(["lat", "lon"])

    ours(repo_path, dask_address, update, mode="r+", region=region)
    reference(tmp_path / "ref", update, mode="r+", region=region if region == "auto" else {"time": slice(24, 48)})

    xr.testing.assert_identical(opened(repo_path), opened(ref))
    assert float(opened(repo_path).t2m.isel(time=30).mean()) > 400  # the doubled values landed


def _refusals() -> list[Any]:
    wide = SyntheticDataset(ntime=24, nlat=19, nlon=40, time_chunk=24).open()
    return [
        pytest.param({"source": SOURCE.open(), "mode": "w-"}, id="w- on an existing group"),
        pytest.param({"source": wide, "append_dim": "time"}, id="append with mismatched dims"),
        pytest.param({"source": SOURCE.open(), "mode": "a", "encoding": {"nope": {}}}, id="unknown variable"),
        pytest.param({"source": SOURCE.open(), "mode": "r+", "group": "missing"}, id="r+ on a missing group"),
    ]


@pytest.mark.parametrize("kwargs", _refusals())
def test_bad_inputs_fail_like_to_icechunk_and_change_nothing(
    repo_path: str, dask_address: str, tmp_path: Path, kwargs: dict[str, Any]
) -> None:
    ours(repo_path, dask_address, SOURCE, mode="w", encoding=ENCODING)
    reference(tmp_path / "ref", SOURCE.open(), mode="w", encoding=ENCODING)
    before = open_repo(repo_path).lookup_branch("main")
    kwargs = dict(kwargs)
    dataset = kwargs.pop("source")

    expected = _error(lambda: reference(tmp_path / "ref", dataset, **kwargs))
    with pytest.raises(type(expected)) as ours_error:
        ours(repo_path, dask_address, dataset, **kwargs)

    assert _masked(ours_error.value) == _masked(expected)
    assert open_repo(repo_path).lookup_branch("main") == before


def _masked(error: Exception) -> str:
    """The message without the snapshot id a store's repr shows: the two repositories differ in that alone."""
    return re.sub(r"snapshot_id: \w+", "snapshot_id: <id>", str(error))


def _error(call: Callable[[], object]) -> Exception:
    try:
        call()
    except Exception as e:
        return e
    raise AssertionError("to_icechunk accepted it")
