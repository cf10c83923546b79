"""The README's commands and code, read from the README itself: a test runs them as written, with only what names
this machine's services (a Dask scheduler's address, `uv run`) replaced."""

import os
import re
import subprocess
from pathlib import Path

import boto3
import fsspec
import xarray as xr

from tests.conftest import s3_keys
from tests.processes import BIN

ROOT = Path(__file__).resolve().parents[1]


def block(containing: str) -> str:
    """The README's one code block that contains `containing`."""
    found = [b for b in re.findall(r"```[a-z]*\n(.*?)```", (ROOT / "README.md").read_text(), re.S) if containing in b]
    assert len(found) == 1, f"{len(found)} README code blocks contain {containing!r}"
    return found[0]


def commands(text: str) -> list[str]:
    """A shell block's commands, continuation lines joined."""
    return [line for line in text.replace("\\\n", " ").splitlines() if line.strip()]


def run(command: str, env: dict[str, str], cwd: Path, replace: dict[str, str] | None = None) -> str:
    """One README command through bash, as written but for `replace`; its output. Fails naming the command."""
    for old, new in (replace or {}).items():
        command = command.replace(old, new)
    command = re.sub(r"^uv run ", "", command)  # the project's environment is on PATH
    env = {**env, "PATH": f"{BIN}:{env.get('PATH') or os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", command], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    output = f"{done.stdout[-3000:]}{done.stderr[-3000:]}"
    assert done.returncode == 0, f"README: {command}\nexit {done.returncode}\n{output}"
    return done.stdout


def fresh_buckets(endpoint: str, *names: str) -> None:
    """The README's buckets (raw, lake, ...) on the test's S3 server, empty."""
    s3 = boto3.resource("s3", endpoint_url=endpoint, region_name="us-east-1", **s3_keys())
    for name in names:
        bucket = s3.Bucket(name)
        if bucket.creation_date is None:
            bucket.create()
        bucket.objects.all().delete()


def small(ntime: int, start: str, seed: int = 0, full: bool = False) -> xr.Dataset:
    """The synthetic dataset, loaded: on the README's 1-degree grid when `full`, else a 10-degree one."""
    from tasks.storage.synthetic import SyntheticDataset

    grid = {} if full else {"nlat": 19, "nlon": 36}
    return SyntheticDataset(ntime=ntime, start=start, seed=seed, time_chunk=24, **grid).open().compute()


def upload(dataset: xr.Dataset, url: str, scratch: Path) -> None:
    """A NetCDF file of `dataset` at `url` (s3://bucket/key)."""
    local = scratch / Path(url).name
    dataset.to_netcdf(local, engine="h5netcdf")
    fsspec.filesystem("s3").put_file(str(local), url)
