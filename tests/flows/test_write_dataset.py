"""write_dataset against icechunk.xarray.to_icechunk: same Dataset, same keywords, identical repositories; the
core scenarios on repositories of both Icechunk formats, each against to_icechunk on one of the same format."""

import itertools
import re
from pathlib import Path
from typing import Any

import boto3
import icechunk
import pytest
import xarray as xr
from icechunk.xarray import to_icechunk

from flows.write_dataset import write_dataset
from tasks.errors import InvalidRequestError, ValidationHookError
from tasks.planning.dataset import MissingGroupError, UnknownVariableError
from tasks.request import WriteOptions
from tasks.storage.file_sources import NetCDFSource
from tasks.storage.sources import CallableSource, NamedSource
from tasks.storage.synthetic import SyntheticDataset
from tests.conftest import BUCKET, open_repo, raised_by, snapshot_count
from tests.sources import netcdf_files

SOURCE = SyntheticDataset(ntime=72, nlat=19, nlon=36, time_chunk=24)
ENCODING = {"t2m": {"chunks": (24, 19, 18)}, "u10": {"chunks": (24, 19, 36)}}


def ours(repo: str, dask_address: str, source: Any, **kwargs: Any) -> None:
    options = WriteOptions(dask_address=dask_address, block_bytes=20_000, retry_delay_seconds=0)
    write_dataset(repo=repo, source=source, options=options, **kwargs)


@pytest.fixture(params=[1, 2], ids=["format-1", "format-2"])
def spec_version(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def formatted(repo_path: str, spec_version: int) -> str:
    """`repo_path`, holding an empty repository of the format under test (the reference's is made alike)."""
    icechunk.Repository.create(icechunk.local_filesystem_storage(repo_path), spec_version=spec_version)
    return repo_path


def reference(path: Path, dataset: xr.Dataset, spec_version: int | None = None, **kwargs: Any) -> str:
    storage = icechunk.local_filesystem_storage(str(path))
    exists = icechunk.Repository.exists(storage)
    repo = (
        icechunk.Repository.open(storage) if exists else icechunk.Repository.create(storage, spec_version=spec_version)
    )
    session = repo.writable_session("main")
    to_icechunk(dataset, session, **kwargs)
    session.commit("reference")
    return str(path)


def opened(repo: str, group: str | None = None) -> xr.Dataset:
    return xr.open_zarr(open_repo(repo).readonly_session("main").store, group=group, consolidated=False).load()


def test_mode_w_matches_to_icechunk(formatted: str, spec_version: int, dask_address: str, tmp_path: Path) -> None:
    ours(formatted, dask_address, SOURCE, group="era", mode="w", encoding=ENCODING)
    ref = reference(tmp_path / "ref", SOURCE.open(), spec_version, group="era", mode="w", encoding=ENCODING)

    xr.testing.assert_identical(opened(formatted, "era"), opened(ref, "era"))
    xr.testing.assert_identical(opened(formatted, "era"), SOURCE.open().load())
    assert snapshot_count(formatted) == 2


@pytest.mark.parametrize(
    "bounds",
    [
        pytest.param((0, 24, 48, 72), id="whole-chunks"),
        pytest.param((0, 30, 50, 72), id="partial-chunks"),  # each append starts inside the last chunk
    ],
)
def test_three_appends_equal_the_concatenation(
    formatted: str, spec_version: int, dask_address: str, tmp_path: Path, bounds: tuple[int, ...]
) -> None:
    parts = [SOURCE.time_slice(a, b) for a, b in itertools.pairwise(bounds)]
    ours(formatted, dask_address, parts[0], mode="w", encoding=ENCODING)
    ref = reference(tmp_path / "ref", parts[0], spec_version, mode="w", encoding=ENCODING)
    for part in parts[1:]:
        ours(formatted, dask_address, part, append_dim="time")
        reference(tmp_path / "ref", part, spec_version, append_dim="time")

    xr.testing.assert_identical(opened(formatted), opened(ref))
    xr.testing.assert_identical(opened(formatted), SOURCE.open().load())
    assert snapshot_count(formatted) == 4


def _modes() -> list[Any]:
    more = SOURCE.open().assign(v10=lambda d: d.u10 * 2)
    later = SyntheticDataset(ntime=96, nlat=19, nlon=36, time_chunk=24).time_slice(72, 96)
    return [
        pytest.param(None, {"source": SOURCE.open(), "mode": "w-", "group": "new"}, id="w- on a new group"),
        pytest.param("w", {"source": more, "mode": "a"}, id="a adds a variable"),
        pytest.param("w", {"source": later, "mode": "a-", "append_dim": "time"}, id="a- appends"),
        pytest.param("w", {"source": SOURCE.open() * 2, "mode": "r+"}, id="r+ rewrites values"),
    ]


@pytest.mark.parametrize(("first", "kwargs"), _modes())
def test_every_mode_matches_to_icechunk(
    formatted: str, spec_version: int, dask_address: str, tmp_path: Path, first: str | None, kwargs: dict[str, Any]
) -> None:
    kwargs = dict(kwargs)
    dataset = kwargs.pop("source")
    if first is not None:
        ours(formatted, dask_address, SOURCE, mode=first, encoding=ENCODING)
        reference(tmp_path / "ref", SOURCE.open(), spec_version, mode=first, encoding=ENCODING)

    ours(formatted, dask_address, dataset, **kwargs)
    ref = reference(tmp_path / "ref", dataset, spec_version, **kwargs)

    group = kwargs.get("group")
    xr.testing.assert_identical(opened(formatted, group), opened(ref, group))
    assert snapshot_count(formatted) == (2 if first is None else 3)


@pytest.mark.parametrize(
    "region",
    [
        pytest.param({"time": slice(24, 48)}, id="slice, to_zarr's own form"),
        pytest.param({"time": slice(24, 48), "lat": slice(None, None)}, id="open slice"),
        pytest.param({"time": slice(24, 48), "lat": "auto"}, id="slice and auto"),
        pytest.param("auto", id="auto"),
    ],
)
def test_region_writes_match_to_icechunk(
    formatted: str, spec_version: int, dask_address: str, tmp_path: Path, region: Any
) -> None:
    ours(formatted, dask_address, SOURCE, mode="w", encoding=ENCODING)
    ref = reference(tmp_path / "ref", SOURCE.open(), spec_version, mode="w", encoding=ENCODING)
    update = (SOURCE.time_slice(24, 48) * 2).drop_vars(["lat", "lon"])

    ours(formatted, dask_address, update, mode="r+", region=region)
    reference(tmp_path / "ref", update, spec_version, mode="r+", region=_as_slices(region))

    xr.testing.assert_identical(opened(formatted), opened(ref))
    assert float(opened(formatted).t2m.isel(time=30).mean()) > 400  # the doubled values landed


def _as_slices(region: Any) -> Any:
    """A region as to_icechunk takes it: slices where the flow's JSON parameters have [start, stop]."""
    if region in (None, "auto"):
        return region
    return {dim: v if isinstance(v, slice) or v == "auto" else slice(*v) for dim, v in region.items()}


def _refusals() -> list[Any]:
    wide = SyntheticDataset(ntime=24, nlat=19, nlon=40, time_chunk=24).open()
    text = SOURCE.time_slice(0, 24).assign(t2m=lambda d: d.t2m.astype(str))
    update = SOURCE.time_slice(0, 24).drop_vars(["lat", "lon"])
    return [
        pytest.param({"source": SOURCE.open(), "mode": "w-"}, id="w- on an existing group"),
        pytest.param({"source": wide, "append_dim": "time"}, id="append with mismatched dims"),
        pytest.param({"source": text, "append_dim": "time"}, id="append with mismatched dtype"),
        pytest.param(
            {"source": update, "mode": "r+", "region": {"time": slice(60, 84)}}, id="region outside the array"
        ),
        pytest.param({"source": update, "mode": "r+", "region": {"time": slice(12, 36)}}, id="region not aligned"),
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

    region = _as_slices(kwargs.get("region"))
    expected = raised_by(lambda: reference(tmp_path / "ref", dataset, **{**kwargs, "region": region}))
    with pytest.raises(type(expected)) as ours_error:
        ours(repo_path, dask_address, dataset, **kwargs)

    if isinstance(ours_error.value, MissingGroupError):  # xarray names only the store; ours says what to do
        assert "has no group missing; write it first with mode 'w', 'w-' or 'a'" in str(ours_error.value)
    elif isinstance(ours_error.value, UnknownVariableError):  # xarray's KeyError names the key alone
        assert "encoding names ['nope'], which the dataset does not have" in str(ours_error.value)
    else:
        assert _masked(ours_error.value) == _masked(expected)
    assert open_repo(repo_path).lookup_branch("main") == before


def _masked(error: Exception) -> str:
    """The message without the snapshot id a store's repr shows: the two repositories differ in that alone."""
    return re.sub(r"snapshot_id: \w+", "snapshot_id: <id>", str(error))


def test_netcdf_files_on_disk_land_like_to_icechunk(repo_path: str, dask_address: str, tmp_path: Path) -> None:
    netcdf_files(tmp_path / "files", SOURCE.open(), steps_per_file=24)
    source = NetCDFSource(paths=str(tmp_path / "files" / "*.nc"), concat_dim="time")

    ours(repo_path, dask_address, source, mode="w", encoding=ENCODING)
    ref = reference(tmp_path / "ref", source.open(), mode="w", encoding=ENCODING)

    xr.testing.assert_identical(opened(repo_path), opened(ref))
    xr.testing.assert_identical(opened(repo_path).drop_encoding(), SOURCE.open().compute())
    assert snapshot_count(repo_path) == 2


@pytest.mark.s3
def test_netcdf_files_on_s3_are_read_through_s3fs(s3_target: str, dask_address: str, tmp_path: Path) -> None:
    """Source files and target repository both on the loopback S3 server; endpoint and keys only in the env."""
    prefix = s3_target.removeprefix(f"s3://{BUCKET}/")
    client = boto3.client("s3")
    for path in netcdf_files(tmp_path / "files", SOURCE.open(), steps_per_file=24):
        client.upload_file(str(path), BUCKET, f"{prefix}-source/{path.name}")
    source = NetCDFSource(paths=f"s3://{BUCKET}/{prefix}-source/part-*.nc", concat_dim="time")

    ours(s3_target, dask_address, source, mode="w", encoding=ENCODING)

    xr.testing.assert_identical(opened(s3_target).drop_encoding(), SOURCE.open().compute())
    assert snapshot_count(s3_target) == 2


def test_a_callable_source_is_named_by_its_import_path(repo_path: str, dask_address: str) -> None:
    ours(repo_path, dask_address, CallableSource(function="tests.sources:synthetic", keywords={"ntime": 48}))

    xr.testing.assert_identical(opened(repo_path), SOURCE.time_slice(0, 48).compute())


@pytest.mark.parametrize(
    ("source", "message"),
    [
        pytest.param(NetCDFSource(paths="/nowhere/*.nc"), "matches no file", id="source path missing"),
        pytest.param(CallableSource(function="nowhere.mod:fn"), "cannot be imported", id="callable not importable"),
    ],
)
def test_a_source_that_cannot_be_opened_changes_nothing(
    repo_path: str, dask_address: str, source: NamedSource, message: str
) -> None:
    ours(repo_path, dask_address, SOURCE, mode="w", encoding=ENCODING)
    before = open_repo(repo_path).lookup_branch("main")

    with pytest.raises(InvalidRequestError, match=message):
        ours(repo_path, dask_address, source, append_dim="time")

    assert open_repo(repo_path).lookup_branch("main") == before


def test_a_validation_hook_sees_the_initialized_group_and_can_stop_the_run(repo_path: str, dask_address: str) -> None:
    hook = "tests.sources:time_must_increase"
    ours(repo_path, dask_address, SOURCE.time_slice(0, 48), mode="w", encoding=ENCODING, validation_hook=hook)
    before = open_repo(repo_path).lookup_branch("main")

    with pytest.raises(ValidationHookError, match=r"refused the write .*time is not strictly increasing"):
        ours(repo_path, dask_address, SOURCE.time_slice(24, 48), append_dim="time", validation_hook=hook)

    assert open_repo(repo_path).lookup_branch("main") == before
    ours(repo_path, dask_address, SOURCE.time_slice(48, 72), append_dim="time", validation_hook=hook)
    xr.testing.assert_identical(opened(repo_path), SOURCE.open().compute())
