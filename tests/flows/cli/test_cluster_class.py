"""Clusters by class, as HPC users start them: `icefloe write --cluster-class` with dask-jobqueue's own machinery.

`dask_jobqueue.local.LocalCluster` runs every job as a local process through the same JobQueueCluster code as
`SLURMCluster` and `PBSCluster` (its job script, its adaptive scaling, its job cancellation), on loopback here. The
cluster is started for the run and closed after it, however it ends: no job is left."""

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import xarray as xr

from tasks.storage.synthetic import SyntheticDataset
from tests.conftest import open_repo, snapshot_count
from tests.processes import BIN, command_env, icefloe, processes_marked, started_prefect_home, wait_for
from tests.sources import chunks_read, counted, netcdf_files

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

JOBQUEUE = ["--cluster-class", "dask_jobqueue.local.LocalCluster",
            "--cluster-kwargs", json.dumps({"cores": 1, "memory": "2GiB", "processes": 1, "interface": "lo",
                                            "scheduler_options": {"interface": "lo"}}),
            "--adapt-kwargs", json.dumps({"minimum": 1, "maximum": 2})]  # fmt: skip
SOURCE = SyntheticDataset(ntime=96, nlat=19, nlon=36, time_chunk=24)


def files(tmp_path: Path) -> str:
    netcdf_files(tmp_path / "files", SOURCE.open(), steps_per_file=24)
    return str(tmp_path / "files" / "*.nc")


def written(target: Path) -> xr.Dataset:
    return xr.open_zarr(open_repo(str(target)).readonly_session("main").store, consolidated=False).load()


def jobs(marker: str) -> list[str]:
    """The cluster's worker jobs still running (their environment carries the command's marker)."""
    return [p for p in processes_marked(marker) if "dask_worker" in p or "distributed.cli" in p]


def tree(pid: int) -> list[int]:
    """A process and its descendants."""
    children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == pid]
    return [pid, *(d for child in children for d in tree(child))]


def _parent(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


@pytest.mark.parametrize("prefect", ["without-prefect", "temporary-server"])
def test_a_write_on_a_jobqueue_cluster_started_for_it_lands_and_leaves_no_job(tmp_path: Path, prefect: str) -> None:
    marker = uuid.uuid4().hex
    env = command_env(started_prefect_home(tmp_path / "home"), ICEFLOE_TEST_MARKER=marker)
    extra = [*JOBQUEUE, "--temporary-server"] if prefect == "temporary-server" else JOBQUEUE
    target = tmp_path / "repo"

    done = icefloe("write", files(tmp_path), str(target), "--concat-dim", "time", "--block-mib", "0.1", *extra,
                   env=env, cwd=Path.cwd())  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    assert "started a dask_jobqueue.local.LocalCluster (adapting {'minimum': 1, 'maximum': 2})" in done.stderr
    assert snapshot_count(str(target)) == 2
    xr.testing.assert_identical(written(target), SOURCE.open().load())
    assert processes_marked(marker) == [], "the command left processes behind"


def slow_write(tmp_path: Path, marker: str) -> "subprocess.Popen[str]":
    """`icefloe write` of blocks that take a second each on the jobqueue cluster, once a block has been read from
    (dask's probes of the source do not count); in a session of its own, as a batch system's jobs are."""
    source = json.dumps({"kind": "callable", "function": "tests.sources:counted",
                         "keywords": {"marker_dir": str(tmp_path), "pause": 1.0}})  # fmt: skip
    argv = [str(BIN / "icefloe"), "write", source, str(tmp_path / "repo"), "--block-mib", "0.125", *JOBQUEUE]
    env = command_env(tmp_path / "home", ICEFLOE_TEST_MARKER=marker)
    command = subprocess.Popen(argv, env=env, cwd=Path.cwd(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)  # fmt: skip
    wait_for(lambda: chunks_read(tmp_path) or None, "a block's first read", timeout=120)
    return command


def test_a_job_killed_mid_run_has_its_blocks_written_by_another_and_the_run_commits_once(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    target = tmp_path / "repo"
    with slow_write(tmp_path, marker) as command:
        # kill the job writing: the adaptive cluster starts another
        (victim, *_) = jobs(marker)
        for pid in tree(int(victim.split(":")[0])):  # the job: its nanny and the worker process it runs
            os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        _, stderr = command.communicate(timeout=300)

    assert command.returncode == 0, stderr[-3000:]
    read = chunks_read(tmp_path)
    assert len(read) > len(set(read)), read  # the killed job's chunk was computed again, by another job
    assert snapshot_count(str(target)) == 2
    (tmp_path / "unused").mkdir()
    xr.testing.assert_identical(written(target), counted(str(tmp_path / "unused")).load())
    assert time.monotonic() - killed_at < 300
    assert processes_marked(marker) == []


def test_an_address_and_a_class_together_are_refused_naming_both(tmp_path: Path) -> None:
    done = icefloe("write", "synthetic", str(tmp_path / "repo"), "--dask-address", "tcp://127.0.0.1:8786",
                   "--cluster-class", "dask_jobqueue.SLURMCluster", env=command_env(tmp_path / "home"),
                   cwd=tmp_path)  # fmt: skip

    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "dask_address 'tcp://127.0.0.1:8786'" in last
    assert "cluster_class 'dask_jobqueue.SLURMCluster'" in last
    assert not (tmp_path / "repo").exists()


def test_a_write_interrupted_mid_run_cancels_its_jobs_and_commits_nothing(tmp_path: Path) -> None:
    """SIGINT (what Ctrl-C sends; dask-jobqueue takes it over as it is imported) reaches the command only, as a batch
    system's jobs are not in a login shell's process group: the command itself closes its cluster, which cancels
    every job. (SIGTERM takes the same path: tests/flows/cli/test_interrupt.py.)"""
    number = signal.SIGINT
    marker = uuid.uuid4().hex
    target = tmp_path / "repo"
    with slow_write(tmp_path, marker) as command:
        assert jobs(marker), "no job was running"
        command.send_signal(number)
        _, stderr = command.communicate(timeout=120)

    assert command.returncode == 128 + number, stderr[-3000:]
    assert f"interrupted ({number.name})" in stderr
    assert snapshot_count(str(target)) == 1
    wait_for(lambda: processes_marked(marker) == [] or None, "the jobs to end", timeout=30)
