"""Starting the stack's programs as local processes on loopback, as docker-compose would start them."""

import atexit
import functools
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, suppress
from pathlib import Path

BIN = Path(sys.executable).parent  # the project environment's entry points: prefect, dask, icefloe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for[T](check: Callable[[], T | None], what: str, timeout: float = 120) -> T:
    """Poll `check` until it returns something other than None (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except Exception:
            value = None
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.5)


@contextmanager
def processes() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """`start(program, *args, env=..., log=...)` launches one; all are stopped (with their children) at exit."""
    started: list[subprocess.Popen[bytes]] = []

    def start(program: str, *args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(BIN / program), *args],
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopping it stops the runs it started
            )
        started.append(process)
        return process

    try:
        yield start
    finally:
        # one after the other, the last started first: a served process (Prefect 3.9's runner) pauses its
        # deployments through the API as it stops, and waited out the whole timeout when the server stopped with it
        for process in reversed(started):
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


def command_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user who has no Prefect API configured: no PREFECT_* variable, a Prefect home of its
    own (no profile names an API)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ICEFLOE_"))}
    return {**env, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **extra}


def started_prefect_home(home: Path) -> Path:
    """`home`, holding a copy of the database of a Prefect server that has started once, as a user's home is after
    a first run: a server's first start on a new home migrates its database and registers Prefect's block types
    (~10 s of a 14 s start here), paid here once per test session rather than by every test's new home."""
    home.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(_started_database())) as source, closing(sqlite3.connect(home / "prefect.db")) as copy:
        source.backup(copy)  # one consistent file, whatever the template's write-ahead log still held
    return home


@functools.cache
def _started_database() -> Path:
    template = Path(tempfile.mkdtemp(prefix="icefloe-test-prefect-home-"))
    atexit.register(shutil.rmtree, template, ignore_errors=True)
    start_once = "from flows.temporary_server import TemporaryServer as S; s = S.start(); s.api_url(); s.stop()"
    subprocess.run([sys.executable, "-c", start_once], env=command_env(template), check=True, timeout=300)
    return template / "prefect.db"


def icefloe(*args: str, env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the `icefloe` command as a user would, in a process of its own."""
    return subprocess.run(
        [str(BIN / "icefloe"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def processes_marked(marker: str) -> list[str]:
    """Every process (in any session) whose environment holds ICEFLOE_TEST_MARKER=`marker`: what a command started,
    whatever became of its parent."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if f"ICEFLOE_TEST_MARKER={marker}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                found.append(f"{proc.name}: {(proc / 'cmdline').read_bytes().replace(b'\0', b' ').decode()[:200]}")
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found
