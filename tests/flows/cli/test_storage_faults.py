"""`icefloe write` from NetCDF files on S3 into an S3 repository, both through a proxy that fails requests (5xx,
dropped connections) and slows them: the write lands whole, in one snapshot; or, when the faults outlast the
retries, it fails cleanly, naming the storage error, with the branch unchanged."""

import json
from pathlib import Path

import boto3
import pytest
import xarray as xr

from tasks.storage.synthetic import SyntheticDataset
from tests.conftest import BUCKET, S3_ENV, open_repo, snapshot_count
from tests.fault_proxy import Faults, fault_proxy
from tests.processes import command_env, icefloe
from tests.sources import netcdf_files

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SOURCE = SyntheticDataset(ntime=96, nlat=19, nlon=36, time_chunk=24)


@pytest.fixture
def s3_files(s3_endpoint: str, tmp_path: Path) -> str:
    """The source as four NetCDF files on S3 (uploaded without faults); their glob."""
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name=S3_ENV["AWS_REGION"],
                          aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
    for path in netcdf_files(tmp_path / "files", SOURCE.open(), steps_per_file=24):
        client.upload_file(str(path), BUCKET, f"{tmp_path.name}/source/{path.name}")
    return f"s3://{BUCKET}/{tmp_path.name}/source/*.nc"


def write_through(proxy: str, files: str, target: str, tmp_path: Path, *extra: str) -> tuple[int, str]:
    env = command_env(tmp_path / "home", **S3_ENV, AWS_ENDPOINT_URL=proxy)
    encoding = json.dumps({name: {"chunks": [24, 19, 36]} for name in SOURCE.variables})
    done = icefloe("write", files, target, "--concat-dim", "time", "--encoding", encoding, "--block-mib", "0.1",
                   *extra, env=env, cwd=tmp_path, timeout=600)  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def read_back(s3_endpoint: str, target: str, monkeypatch: pytest.MonkeyPatch) -> xr.Dataset:
    for key, value in {**S3_ENV, "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(key, value)
    return xr.open_zarr(open_repo(target).readonly_session("main").store, consolidated=False).load()


def test_a_write_through_failing_requests_lands_whole_in_one_snapshot(
    s3_endpoint: str, s3_files: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = Faults(error_500=0.04, error_503=0.06, drop_before=0.02, drop_after=0.02, latency_seconds=0.005)
    target = f"s3://{BUCKET}/{tmp_path.name}/faulty"

    with fault_proxy(s3_endpoint, faults) as proxy:
        status, output = write_through(proxy, s3_files, target, tmp_path)

    assert status == 0, output[-3000:]
    failed = sum(n for outcome, n in faults.counts.items() if outcome != "forwarded")
    assert failed >= 0.1 * faults.counts.total(), faults.counts  # every 100 requests, 14 failed
    assert failed >= 10, faults.counts
    xr.testing.assert_identical(read_back(s3_endpoint, target, monkeypatch).drop_encoding(), SOURCE.open().load())
    assert snapshot_count(target) == 2  # the repository's first and the write's one


def test_faults_that_outlast_the_retries_fail_the_write_cleanly(
    s3_endpoint: str, s3_files: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = f"s3://{BUCKET}/{tmp_path.name}/faulty"
    with fault_proxy(s3_endpoint, Faults()) as proxy:  # a first write, without faults
        assert write_through(proxy, s3_files, target, tmp_path)[0] == 0
    before = read_back(s3_endpoint, target, monkeypatch)
    tip = open_repo(target).lookup_branch("main")

    faults = Faults(error_503=0.5, seed=1)
    with fault_proxy(s3_endpoint, faults) as proxy:
        status, output = write_through(proxy, s3_files, target, tmp_path, "--mode", "w", "--storage-max-tries", "1",
                                       "--retries", "0")  # fmt: skip

    assert status in (1, 2), output[-3000:]
    last = output.strip().splitlines()[-1]
    assert "nothing was" in last, last
    assert "503" in last or "SlowDown" in last or "Service Unavailable" in last, last
    assert open_repo(target).lookup_branch("main") == tip
    xr.testing.assert_identical(read_back(s3_endpoint, target, monkeypatch), before)
