"""A Prefect server for the length of one command, when the user asks for one and none is configured.

Prefect's own temporary server starts on the first API call, after the calling process has imported Prefect's
server code (~2 s of CPU here) only to launch it, and then waits for it. This one is launched by the command before
it imports anything heavy, so the server's start-up overlaps the command's own imports, source and cluster. It
serves on a socket the command bound (no port to race for), runs in its own session (a terminal's Ctrl-C does not
reach it: the command stops it once the run has released its target and flushed its logs), and exits when the
command's end of its stdin pipe closes, even if the command was killed with SIGKILL.

Its runs are kept in the database of PREFECT_HOME, as with Prefect's own temporary server.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Self


class TemporaryServer:
    """`start()` returns at once; `api_url()` waits until the server answers."""

    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.port = port

    @classmethod
    def start(cls) -> Self:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            env = {**os.environ, "PREFECT_UI_ENABLED": "0"}
            env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # a temporary server need not phone home
            process = subprocess.Popen(
                [sys.executable, "-m", "flows.temporary_server", str(listener.fileno())],
                pass_fds=[listener.fileno()],
                stdin=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
            return cls(process, int(listener.getsockname()[1]))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def api_url(self, timeout: float = 180) -> str:
        """The API's URL once it answers (a first start on a new PREFECT_HOME migrates the database first)."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(f"the temporary Prefect server exited with code {code} before it answered")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
                    if response.status == 200:
                        return self.url
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the temporary Prefect server did not answer within {timeout:.0f} s")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server and wait for it; safe to call more than once."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdin is not None:
            self.process.stdin.close()


def _exit_with_parent() -> None:
    """Stop the server once stdin reaches its end: the command closed it or died."""
    sys.stdin.buffer.read()
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn shuts down gracefully on SIGTERM
    time.sleep(15)
    os._exit(1)


def _serve(fd: int) -> None:
    threading.Thread(target=_exit_with_parent, daemon=True, name="exit-with-parent").start()
    import uvicorn
    from prefect.server.api.server import create_app

    # ephemeral: no UI and no background services, as Prefect's own temporary server
    config = uvicorn.Config(create_app(ephemeral=True, final=True), log_level="error", lifespan="on")
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=fd)])


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
