"""A failed, interrupted or killed `icefloe write`, run again, writes only the blocks it had not finished.

The source (`tests.sources:counted`) leaves a marker file for every chunk it computes, so the tests count source
reads; four blocks of one 24-step chunk of both variables each.
"""

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import xarray as xr

from tests.conftest import open_repo, snapshot_count
from tests.processes import BIN, command_env, icefloe, processes_marked
from tests.sources import chunks_read, counted

BLOCK = ["--block-mib", "0.125", "--retries", "0"]  # one chunk of both variables per block: four blocks


def request(markers: Path, pause: float = 0.0) -> str:
    return json.dumps({"kind": "callable", "function": "tests.sources:counted",
                       "keywords": {"marker_dir": str(markers), "pause": pause}})  # fmt: skip


def kept_blocks(target: Path) -> list[Path]:
    return list(target.glob("icefloe/kept/*/*/blocks/*"))


def assert_written_once(target: Path, markers: Path) -> None:
    assert snapshot_count(str(target)) == 2  # the repository's first snapshot and the one write
    written = xr.open_zarr(open_repo(str(target)).readonly_session("main").store, consolidated=False)
    xr.testing.assert_identical(written, counted(str(markers.parent / "unused"), pause=0.0).load())


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    (tmp_path / "markers").mkdir()
    (tmp_path / "unused").mkdir()
    return tmp_path / "markers"


def test_a_failed_write_run_again_reads_the_source_only_for_the_block_that_failed(
    tmp_path: Path, markers: Path
) -> None:
    target, env = tmp_path / "repo", command_env(tmp_path / "home")
    (markers / "fail-1-0-0").touch()  # the second block fails on every attempt

    failed = icefloe("write", request(markers), str(target), *BLOCK, env=env, cwd=tmp_path)

    assert failed.returncode == 1, failed.stderr
    assert "failed, nothing was committed" in failed.stderr
    assert "the same request run again writes only the others" in failed.stderr
    assert snapshot_count(str(target)) == 1  # the branch is unchanged
    assert len(kept_blocks(target)) == 3
    listed = icefloe("kept", str(target), env=env, cwd=tmp_path)
    assert "branch main, based on " in listed.stdout
    assert ": 3 blocks kept since " in listed.stdout

    (markers / "fail-1-0-0").unlink()  # the fault clears
    for marker in markers.glob("read-*"):
        marker.unlink()
    again = icefloe("write", request(markers), str(target), *BLOCK, env=env, cwd=tmp_path)

    assert again.returncode == 0, again.stderr
    assert chunks_read(markers) == ["t2m-1-0-0", "u10-1-0-0"], again.stderr
    assert "4 blocks (3 kept by an earlier attempt, not rewritten)" in again.stdout
    assert_written_once(target, markers)
    assert kept_blocks(target) == []  # the commit removed them
    assert "nothing kept" in icefloe("kept", str(target), env=env, cwd=tmp_path).stdout


def test_kept_blocks_are_not_reused_once_the_branch_has_moved_and_the_log_says_why(
    tmp_path: Path, markers: Path
) -> None:
    target, env = tmp_path / "repo", command_env(tmp_path / "home")
    (markers / "fail-1-0-0").touch()
    writing = ["write", request(markers), str(target), "--mode", "a", *BLOCK]
    assert icefloe(*writing, env=env, cwd=tmp_path).returncode == 1
    (markers / "fail-1-0-0").unlink()
    other = '{"kind": "synthetic", "ntime": 24, "nlat": 19, "nlon": 36}'
    assert icefloe("write", other, str(target), "--group", "other", env=env, cwd=tmp_path).returncode == 0
    for marker in markers.glob("read-*"):
        marker.unlink()

    again = icefloe(*writing, env=env, cwd=tmp_path)

    assert again.returncode == 0, again.stderr
    assert "not reusing 3 blocks kept by an earlier run: the branch tip moved" in again.stderr
    assert len(chunks_read(markers)) == 8  # every chunk of both variables
    assert kept_blocks(target) == []


def test_a_write_killed_mid_run_run_again_writes_only_what_it_had_not_finished(tmp_path: Path, markers: Path) -> None:
    target, marker = tmp_path / "repo", uuid.uuid4().hex
    env = command_env(tmp_path / "home", ICEFLOE_TEST_MARKER=marker)
    argv = [str(BIN / "icefloe"), "write", request(markers, pause=1.0), str(target), *BLOCK, "--n-workers", "1"]
    command = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while len(kept_blocks(target)) < 2 and command.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert command.poll() is None, "the write ended before it could be killed"
    os.killpg(command.pid, signal.SIGKILL)
    assert command.wait(timeout=30) == -signal.SIGKILL
    finished = {p.name for p in kept_blocks(target)}
    assert 2 <= len(finished) < 4
    assert snapshot_count(str(target)) == 1
    for read in markers.glob("read-*"):
        read.unlink()

    again = icefloe("write", request(markers, pause=1.0), str(target), *BLOCK, env=env, cwd=tmp_path)

    assert again.returncode == 0, again.stderr
    assert len(chunks_read(markers)) == 2 * (4 - len(finished))  # both variables of each block not kept
    assert f"({len(finished)} kept by an earlier attempt" in again.stdout
    assert_written_once(target, markers)
    assert processes_marked(marker) == []


def test_icefloe_kept_clear_removes_what_a_failed_write_kept(tmp_path: Path, markers: Path) -> None:
    target, env = tmp_path / "repo", command_env(tmp_path / "home")
    (markers / "fail-1-0-0").touch()
    assert icefloe("write", request(markers), str(target), *BLOCK, env=env, cwd=tmp_path).returncode == 1
    assert len(kept_blocks(target)) == 3

    cleared = icefloe("kept", str(target), "--clear", env=env, cwd=tmp_path)

    assert cleared.returncode == 0, cleared.stderr
    assert f"removed 1 kept sets of {target}" in cleared.stdout
    assert kept_blocks(target) == []
    assert "nothing kept" in icefloe("kept", str(target), env=env, cwd=tmp_path).stdout
    assert snapshot_count(str(target)) == 1
