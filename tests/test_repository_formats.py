"""The core scenarios on the repositories users hold: Icechunk format 1 (written by Icechunk 1.x, or by Icechunk 2 with
`spec_version=1`, which keeps no operations log) and format 2, on local disk and on a real S3 server (SeaweedFS).

Each scenario runs `icefloe` as a user types it, without a Prefect API, into a repository created beforehand in
the format under test, and checks what the user would: the exit status, one new snapshot per run, the data read
back equal to the source, and the repository still of its format.
"""

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import icechunk
import pytest
import xarray as xr
import zarr

from tasks.storage.target import repository_storage
from tests.conftest import BUCKET, S3_ENV
from tests.processes import command_env, icefloe
from tests.sources import chunks_read, counted, defective, steps

GRID = {"ntime": 16, "time_chunk": 2, "nlat": 300, "nlon": 400}
"""`counted`'s grid for the resumed runs: 8 blocks; coordinates large enough to be chunk objects, which garbage
collection can delete (small ones sit inline in the session)."""
BLOCK = ["--block-mib", str(2 * 300 * 400 * 4 * 2 / 2**20), "--retries", "0"]


@dataclass(frozen=True)
class Place:
    """A repository of one format, and the environment a user's command runs in to reach it."""

    target: str
    env: dict[str, str]
    cwd: Path

    def icefloe(self, *args: str) -> CompletedProcess[str]:
        return icefloe(*args, env=self.env, cwd=self.cwd)

    def write(self, source: str, *args: str) -> CompletedProcess[str]:
        done = self.icefloe("write", source, self.target, *args)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    def repository(self) -> icechunk.Repository:
        return icechunk.Repository.open(repository_storage(self.target))

    def snapshots(self) -> int:
        return len(list(self.repository().ancestry(branch="main")))

    def tip(self) -> xr.Dataset:
        session = self.repository().readonly_session("main")
        group = zarr.open_group(session.store, mode="r")
        for name in group.array_keys():
            group[name][...]  # every chunk: raises StorageError for one whose object is gone
        return xr.open_zarr(session.store, consolidated=False).load()


@pytest.fixture(params=[1, 2], ids=["format-1", "format-2"])
def spec_version(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture(params=["local", "s3"])
def place(
    request: pytest.FixtureRequest, spec_version: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Place]:
    env = command_env(tmp_path / "home")
    if request.param == "local":
        target = str(tmp_path / "repo")
    else:
        s3 = {**S3_ENV, "AWS_ENDPOINT_URL": request.getfixturevalue("s3_endpoint")}
        for name, value in s3.items():
            monkeypatch.setenv(name, value)  # for this process's reads of the repository
        env |= s3
        target = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    icechunk.Repository.create(repository_storage(target), spec_version=spec_version)
    place = Place(target, env, tmp_path)
    yield place
    assert int(place.repository().spec_version) == spec_version  # icefloe never upgrades a repository


def callable_source(function: str, **keywords: Any) -> str:
    return json.dumps({"kind": "callable", "function": f"tests.sources:{function}", "keywords": keywords})


def test_a_write_commits_one_snapshot_that_validates(place: Place) -> None:
    done = place.write(callable_source("steps", start=0, stop=48), "--mode", "w", "--message", "two days")

    assert place.snapshots() == 2
    xr.testing.assert_identical(place.tip(), steps(0, 48).load())
    assert "snapshot" in done.stdout
    validated = place.icefloe("validate", place.target)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert f"snapshot {place.repository().lookup_branch('main')} of" in validated.stdout  # the commit it checked


def test_an_append_and_a_region_each_commit_one_snapshot(place: Place) -> None:
    place.write(callable_source("steps", start=0, stop=24))
    place.write(callable_source("steps", start=24, stop=48), "--append-dim", "time")
    assert place.snapshots() == 3
    xr.testing.assert_identical(place.tip(), steps(0, 48).load())

    place.write(callable_source("steps", start=24, stop=48, scale=2.0), "--mode", "r+", "--region", "auto")

    assert place.snapshots() == 4
    expected = xr.concat([steps(0, 24), steps(24, 48, scale=2.0)], dim="time").load()
    xr.testing.assert_identical(place.tip(), expected)


def test_publishing_moves_the_branch_only_past_its_checks_and_publish_forces_a_staged_one(place: Place) -> None:
    place.write(callable_source("steps", start=0, stop=24))
    place.write(callable_source("steps", start=24, stop=48), "--append-dim", "time", "--publish")
    assert place.snapshots() == 3
    xr.testing.assert_identical(place.tip(), steps(0, 48).load())

    nan_day = callable_source("defective", start=48, stop=72, defect="nan")
    rejected = place.icefloe("write", nan_day, place.target, "--append-dim", "time", "--publish")

    assert rejected.returncode == 1, rejected.stderr[-3000:]
    assert "failed its checks, not published" in rejected.stderr
    assert place.snapshots() == 3
    (name,) = set(place.repository().list_branches()) - {"main"}  # the published run left no staging branch
    listed = place.icefloe("staged", place.target)
    assert name in listed.stdout, listed.stdout + listed.stderr
    forced = place.icefloe("publish", place.target, "--staged", name, "--force")
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert place.snapshots() == 4
    xr.testing.assert_identical(place.tip(), xr.concat([steps(0, 48), defective(48, 72, "nan")], dim="time").load())


def fail_once(place: Place, markers: Path) -> None:
    """The resumed runs' first attempt: block 3 fails, the others are kept for the next."""
    (markers / "fail-3-0-0").touch()
    failed = place.icefloe("write", callable_source("counted", marker_dir=str(markers), **GRID), place.target, *BLOCK)
    (markers / "fail-3-0-0").unlink()
    assert failed.returncode == 1, failed.stderr[-3000:]
    assert "the same request run again writes only the others" in failed.stderr
    assert place.snapshots() == 1


def expected_counted(tmp_path: Path) -> xr.Dataset:
    (tmp_path / "unused").mkdir(exist_ok=True)
    return counted(str(tmp_path / "unused"), **GRID).load()  # type: ignore[arg-type]


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    (tmp_path / "markers").mkdir()
    return tmp_path / "markers"


def test_a_failed_write_run_again_writes_only_the_block_that_failed(place: Place, markers: Path) -> None:
    fail_once(place, markers)
    for read in markers.glob("read-*"):
        read.unlink()

    done = place.write(callable_source("counted", marker_dir=str(markers), **GRID), *BLOCK)

    assert "7 blocks kept by an earlier attempt are reused" in done.stderr
    assert chunks_read(markers) == ["t2m-3-0-0", "u10-3-0-0"]  # only the block that failed
    assert place.snapshots() == 2
    xr.testing.assert_identical(place.tip(), expected_counted(markers.parent))


def test_a_garbage_collection_between_a_failed_write_and_its_retry_loses_nothing(place: Place, markers: Path) -> None:
    fail_once(place, markers)
    time.sleep(1.1)  # an object store dates objects to the second: a cutoff of now must be past what was written
    assert place.repository().garbage_collect(datetime.now(UTC)).chunks_deleted > 0

    done = place.write(callable_source("counted", marker_dir=str(markers), **GRID), *BLOCK)

    assert "garbage collection ran on the repository since they were written" in done.stderr
    assert "not reusing 7 blocks kept by an earlier attempt" in done.stderr
    assert place.snapshots() == 2
    xr.testing.assert_identical(place.tip(), expected_counted(markers.parent))
