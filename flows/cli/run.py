"""How the command runs a write, and the summary it prints.

With a Prefect API configured the write is a `write-dataset` flow run reported to it. With none, it runs here without
Prefect (`tasks/running/local.py`): the same run, with nothing to start but its threads. `--temporary-server`
records it in a Prefect server started for the command instead, launched before anything else so that its start-up
overlaps the command's own.
"""

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from flows.bar import terminal_bar
from flows.temporary_server import TemporaryServer

if TYPE_CHECKING:
    from tasks.records import CommitResult
    from tasks.request import DatasetWrite, PublishGate, WriteOptions
    from tasks.storage.sources import DatasetSource


@dataclass
class Prefect:
    """Where the command's runs are recorded: nowhere (`local`), the configured API, or a temporary server."""

    mode: Literal["local", "configured", "temporary"]
    server: TemporaryServer | None = None

    @classmethod
    def choose(cls, temporary_server: bool) -> "Prefect":
        """Decide before any heavy import, and launch the temporary server at once if one is wanted."""
        from flows.cli.prefect_config import prefect_api_configured

        if prefect_api_configured():
            return cls("configured")
        if temporary_server:
            return cls("temporary", TemporaryServer.start())
        return cls("local")

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()


@dataclass(frozen=True)
class WriteCall:
    """One `write_dataset` call."""

    repo: str
    source: "DatasetSource"
    write: "DatasetWrite"
    message: str | None
    options: "WriteOptions"
    gate: "PublishGate | None" = None


def _log_to_terminal() -> None:
    """icefloe's own lines on the terminal, as Prefect's look; only there (not again through Prefect's handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d | %(levelname)-7s | %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("icefloe")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def run_write(call: WriteCall, prefect: Prefect) -> tuple["CommitResult", str]:
    """Run the write where `prefect` says: what it committed, and where the run is recorded. Raise what made it
    fail."""
    terminal_bar.set(sys.stderr.isatty() or bool(os.environ.get("ICEFLOE_PROGRESS")))
    if prefect.mode == "local":
        from flows.bar import block_bar
        from tasks.running.local import LocalOrchestrator
        from tasks.running.runs import run_write_dataset

        _log_to_terminal()
        result = run_write_dataset(
            LocalOrchestrator(block_bar), call.repo, call.source, call.write, call.message, call.options, call.gate
        )
        return result, "not recorded in Prefect: no API is configured (set PREFECT_API_URL, or pass --temporary-server)"
    return _run_flow(call, prefect)


def _run_flow(call: WriteCall, prefect: Prefect) -> tuple["CommitResult", str]:
    """The write as a flow run. While a temporary server starts, this process checks the source and starts the
    cluster (the flow then attaches to it): neither waits for the server, nor the server for them."""
    from flows.cluster import cluster_for_flow_runs
    from flows.prefect_api import running_prefect_api
    from flows.write_dataset import write_dataset
    from tasks.records import CommitResult
    from tasks.storage.sources import open_source_groups

    open_source_groups(call.source)  # a bad source is refused now, not after the server answered
    _log_to_terminal()  # the cluster this process starts says so
    with ExitStack() as stack:
        stack.enter_context(cluster_for_flow_runs(call.options))  # found as `icefloe serve`'s is
        api = stack.enter_context(running_prefect_api(prefect.server))
        stack.enter_context(_no_traceback_for_refusals())
        state = write_dataset(
            repo=call.repo,
            source=call.source,
            message=call.message,
            options=call.options,
            publish=call.gate is not None,
            publish_check=call.gate.check if call.gate else None,
            allow_nan=call.gate.allow_nan if call.gate else False,
            return_state=True,
            **dict(call.write),  # the flow takes them flat, as its form shows them
        )
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, BaseException):
        raise outcome
    assert isinstance(outcome, CommitResult)
    run_id = state.state_details.flow_run_id
    if prefect.mode == "temporary":
        return outcome, f"flow run {run_id} is kept in PREFECT_HOME's database: `prefect server start` shows it"
    return outcome, f"see the run: {api.removesuffix('/api')}/runs/flow-run/{run_id}"


@contextmanager
def _no_traceback_for_refusals() -> Iterator[None]:
    """Prefect's flow engine logs a failed run's exception with its traceback; on the terminal, a refused request
    needs only the one line the command ends with (the run's logs in the API keep the traceback)."""
    from flows.cli.exit_codes import refused

    def without_traceback(record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None and refused(record.exc_info[1]):
            record.exc_info = record.exc_text = None
        return True

    consoles = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]  # Prefect's
    for handler in consoles:
        handler.addFilter(without_traceback)
    try:
        yield
    finally:
        for handler in consoles:
            handler.removeFilter(without_traceback)


def process_started_at() -> float:
    """When this process started (`time.time()` seconds): the user's clock starts at Enter, not at our first line.

    From the kernel's clock ticks since boot (Linux); elsewhere, when this module was imported.
    """
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            start_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
            alive = float(uptime.read().split()[0]) - start_ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - alive
    except (OSError, ValueError, IndexError):
        return _IMPORTED_AT


_IMPORTED_AT = time.time()


def print_summary(result: "CommitResult", target: str, recorded: str) -> None:
    """The snapshot, then where the time went: start-up (process start to the first block), writing, commit."""
    started = process_started_at()
    print(f"snapshot {result.snapshot_id} on {target} (branch {result.branch})")
    if result.published:
        outcomes = [c.outcome for c in result.checks]
        counts = ", ".join(f"{outcomes.count(o)} {o}" for o in ("passed", "skipped") if o in outcomes)
        print(f"published: staged on {result.staged_branch}, then checked ({counts})")
    reused = f" ({result.reused_blocks} kept by an earlier attempt, not rewritten)" if result.reused_blocks else ""
    print(
        f"{result.bytes / 1e6:.0f} MB in {result.blocks} blocks{reused}: written in {result.write_seconds:.1f} s "
        f"({result.write_mb_per_s:.0f} MB/s); start-up {result.writing_at - started:.1f} s, "
        f"commit {result.committed_at - result.written_at:.1f} s; {time.time() - started:.1f} s in all"
    )
    print(recorded)
