"""No process outlives an `icefloe write`: not on success, not on failure, not on Ctrl-C to its process group.

Each command runs in a session of its own with a marker in its environment; after it exits, no process anywhere
may still carry the marker (the temporary server runs in a session of its own, so the group alone would not tell).
"""

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.processes import BIN, command_env, processes_marked, started_prefect_home

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SOURCES = {
    "success": '{"kind": "synthetic", "ntime": 48, "nlat": 19, "nlon": 36, "time_chunk": 24}',
    "failure": "tests.sources:broken",
    "interrupt": '{"kind": "callable", "function": "tests.sources:slow", "keywords": {"seconds": 2.0}}',
}
EXIT_CODES = {"success": 0, "failure": 1, "interrupt": 130}  # 128 + SIGINT
MODES = {"threads": [], "processes": ["--processes", "--n-workers", "2"], "temporary-server": ["--temporary-server"]}


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Prefect home for the module, its database that of a server started once."""
    return started_prefect_home(tmp_path_factory.mktemp("prefect-home"))


def left_behind(marker: str, grace: float = 5.0) -> list[str]:
    """What still carries `marker` after `grace` seconds (children are reaped asynchronously by init)."""
    deadline = time.monotonic() + grace
    while (found := processes_marked(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


@pytest.mark.parametrize("outcome", ["success", "failure", "interrupt"])
@pytest.mark.parametrize("mode", list(MODES))
def test_no_process_outlives_the_command(mode: str, outcome: str, prefect_home: Path, tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    env = command_env(prefect_home, ICEFLOE_TEST_MARKER=marker)
    argv = [str(BIN / "icefloe"), "write", SOURCES[outcome], str(tmp_path / "repo"), "--retries", "0", *MODES[mode]]
    log = tmp_path / "stderr.log"
    with log.open("wb") as stderr:
        command = subprocess.Popen(argv, env=env, cwd=Path.cwd(), stdout=subprocess.DEVNULL, stderr=stderr,
                                   start_new_session=True)  # fmt: skip
        if outcome == "interrupt":
            deadline = time.monotonic() + 240
            while b"writing" not in log.read_bytes() and command.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert command.poll() is None, log.read_text()[-3000:]
            os.killpg(command.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
        code = command.wait(timeout=300)

    assert code == EXIT_CODES[outcome], log.read_text()[-3000:]
    assert left_behind(marker) == []
