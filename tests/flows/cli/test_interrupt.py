"""An `icefloe write` recorded in Prefect (a temporary server, whose database holds the target's concurrency slot),
stopped every way a user or a machine stops it: nothing is committed, no process is left, and the same request
run again takes the target at once and writes only the blocks the stopped run had not finished."""

import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import xarray as xr

from tests.conftest import committed, open_repo, snapshot_count
from tests.processes import BIN, command_env, icefloe, processes_marked, started_prefect_home
from tests.sources import steps

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

BLOCKS = ["--block-mib", "0.125", "--retries", "0", "--n-workers", "1", "--temporary-server"]
STOPS = {  # how the command is stopped, and the exit status the user then sees
    "ctrl-c": (signal.SIGINT, True, 130),  # a terminal's Ctrl-C: the whole foreground process group
    "sigint": (signal.SIGINT, False, 130),
    "sigterm": (signal.SIGTERM, False, 143),
    "sigkill": (signal.SIGKILL, False, -signal.SIGKILL),
}


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Prefect home: every temporary server of the module uses one database, so the target's slot persists."""
    return started_prefect_home(tmp_path_factory.mktemp("prefect-home"))


def kept_blocks(target: Path) -> list[Path]:
    return list(target.glob("icefloe/kept/*/*/blocks/*"))


@pytest.mark.parametrize("stop", list(STOPS))
def test_a_stopped_write_leaves_nothing_behind_and_the_next_one_resumes_at_once(
    stop: str, prefect_home: Path, tmp_path: Path
) -> None:
    number, whole_group, status = STOPS[stop]
    target, markers, marker = tmp_path / "repo", tmp_path / "markers", uuid.uuid4().hex
    markers.mkdir()
    source = json.dumps({"kind": "callable", "function": "tests.sources:counted",
                         "keywords": {"marker_dir": str(markers), "pause": 0.5}})  # fmt: skip
    env = command_env(prefect_home, ICEFLOE_TEST_MARKER=marker)
    log = tmp_path / "stopped.log"
    with log.open("wb") as stderr:
        command = subprocess.Popen([str(BIN / "icefloe"), "write", source, str(target), *BLOCKS], env=env,
                                   cwd=tmp_path, stdout=stderr, stderr=stderr, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 240
        while not kept_blocks(target) and command.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert command.poll() is None, log.read_text()[-3000:]
        if whole_group:
            os.killpg(command.pid, number)
        else:
            os.kill(command.pid, number)
        assert command.wait(timeout=120) == status, log.read_text()[-3000:]

    if number != signal.SIGKILL:
        assert f"icefloe write: interrupted ({signal.Signals(number).name})" in log.read_text()
    assert snapshot_count(str(target)) == 1
    deadline = time.monotonic() + 10
    while processes_marked(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_marked(marker) == []
    finished = len(kept_blocks(target))

    again = icefloe("write", source, str(target), *BLOCKS, env=env, cwd=tmp_path, timeout=600)

    assert again.returncode == 0, again.stderr[-3000:]
    waited = re.search(r"holding target .* after ([\d.]+) s", again.stderr)
    assert waited is not None, again.stderr[-3000:]
    assert float(waited.group(1)) < 30  # not the 300 s of a lease, nor for ever
    if number == signal.SIGKILL:  # nothing could release the slot: the next run frees it from the dead holder
        assert "freeing the target from flow run" in again.stderr
        assert "has ended" in again.stderr
    assert f"({finished} kept by an earlier attempt, not rewritten)" in again.stdout
    assert snapshot_count(str(target)) == 2


def test_a_write_stopped_once_its_snapshot_has_landed_finishes_and_says_so(prefect_home: Path, tmp_path: Path) -> None:
    """Found by the fault campaign (seeds 8 and 41): a SIGTERM that came after the commit made the command say it
    was interrupted (exit 143) though its snapshot had landed, and the user's next try appended the steps twice."""
    target, marker = tmp_path / "repo", uuid.uuid4().hex
    env = command_env(prefect_home, ICEFLOE_TEST_MARKER=marker)
    assert icefloe("write", "tests.sources:synthetic", str(target), env=env, cwd=tmp_path).returncode == 0
    repo = open_repo(str(target))
    tip = repo.lookup_branch("main")
    source = json.dumps({"kind": "callable", "function": "tests.sources:steps", "keywords": {"start": 48, "stop": 96}})
    argv = ["write", source, str(target), "--append-dim", "time", *BLOCKS]
    with (tmp_path / "stderr.log").open("wb") as stderr:
        command = subprocess.Popen([str(BIN / "icefloe"), *argv], env=env, cwd=tmp_path, stderr=stderr)
        deadline = time.monotonic() + 240
        while repo.lookup_branch("main") == tip and command.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        assert command.poll() is None, "the command ended before the test saw its snapshot land"
        command.send_signal(signal.SIGTERM)  # the snapshot has landed: the report and the server's stop remain
        assert command.wait(timeout=120) == 0
    log = (tmp_path / "stderr.log").read_text()
    # held while the branch moved, or come after: either way the command says the write is complete
    said = r"SIGTERM came as the run moved its branch; it finished|stopped \(SIGTERM\) after snapshot \w+ landed"
    assert re.search(said, log), log[-3000:]
    assert snapshot_count(str(target)) == 3
    xr.testing.assert_identical(committed(str(target)), steps(0, 96).compute())
    # its kept set may be left (the stop can come before the run clears it): the next run on the branch removes it
    assert processes_marked(marker) == []
