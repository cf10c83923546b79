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

from tests.conftest import snapshot_count
from tests.processes import BIN, command_env, icefloe, processes_marked, started_prefect_home

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
