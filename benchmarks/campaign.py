"""A randomized fault campaign: real `icefloe write` commands, faulted at a random moment, then run again until they
succeed, each round checked for lost, duplicated or unreadable data.

    uv run python -m benchmarks.campaign --rounds 200            # seeds 0-199
    uv run python -m benchmarks.campaign --rounds 50 --seed 1000 --kinds sigkill,gc
    uv run python -m benchmarks.campaign --replay 1042            # one round again, by its seed

Round i runs with seed `--seed` + i, and every choice of the round comes from that seed alone: the target (a local
directory or a prefix on moto's S3 server, which runs in its own process behind `tests/fault_proxy.py`'s proxy),
where the run is recorded (no Prefect API, `--temporary-server`, or one `prefect server start` the campaign keeps
for all rounds), where blocks run (the command's threads, `--processes`, or a `dask scheduler` with two `dask
worker`s the campaign keeps), whether the target already holds steps 0-48 (the request then appends 48-96 along
time; otherwise it writes all 96 steps into a new repository), `--publish`, a pause per source chunk, and one or two
faults, each at a random delay after the command starts, once a random number of blocks are kept under
`icefloe/kept`, or the moment the request's snapshot lands on the branch (while the command still reports):

    sigkill   SIGKILL of the command, or of its process group
    sigterm   SIGTERM of the command
    ctrl-c    SIGINT to the command's process group, as a terminal sends it
    worker    SIGKILL of a Dask worker the request's blocks run on (its nanny starts another)
    s3        a burst of 500/503 answers or dropped connections from the S3 endpoint, for a few seconds
    writer    another writer commits a new array to the branch with Icechunk directly (rebasing, as Icechunk
              allows; on a local target it takes the same file lock icefloe does)
    gc        Icechunk's garbage collection (after snapshot expiry half of the time) with the cutoff Icechunk assumes,
              older than every session that may still commit: while a command runs, a cutoff from before the
              round's first attempt; when none runs, a cutoff of now, and the next attempt (and the other writer)
              waits for it to finish.
              Half of the time the command is first killed (SIGKILL of its group): the nightly collection between
              a failed run and its retry, which deletes what the run kept

Then the same request runs again until it exits 0 (at most 5 attempts), unless its snapshot has landed: an attempt
killed after its commit may have committed, and an append is to_zarr's append, which a second run would append
again, so the campaign looks at the branch, as `icefloe history` shows it to a user, before running it again.

Each round then checks: the branch tip equals the source exactly (xarray's `assert_identical`), every snapshot of
the branch reads back, the snapshots are the ones expected (one for the request, one for a writer that committed,
fewer by what expiry removed), an attempt that exited 1, 130 or 143 committed nothing (the command's promise) and
one that exited 0 committed once, no process the command started is left (`ICEFLOE_TEST_MARKER`), the target's lock
is free within seconds (its file lock; the Prefect slot, read from the API or shown by the next run's `holding
target ... after X s`), and no object of the target (nor any log line) holds the S3 secret of `tests/conftest.py`.

It prints a table of rounds by fault kind (a round with two faults counts in both rows) with the seed of each
failed round, the commit it ran (and whether the package changed meanwhile: commands import it afresh), and the
directory that keeps each round's plan, faults (with their times, to set beside the commands' log lines), attempts'
output, phases and problems (`round-SEED/`; `diagnosis.txt` after a failed data check: the repository's log, the
snapshots and every chunk of the tip that cannot be read); a failed round's target is kept too (S3: until the
campaign's server stops). A replay makes the same choices; the machine's timing decides where exactly in the run
the same delay lands, so a failure that depends on a race may need a few replays.
"""

import argparse
import json
import logging
import os
import random
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, redirect_stderr, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import numpy as np
import xarray as xr

from tasks.logs import quiet_icechunk
from tasks.storage.synthetic import SyntheticDataset
from tests.fault_proxy import Faults, fault_proxy
from tests.processes import BIN, command_env, free_port, processes, processes_marked, wait_for

# The command imports this module for its source (`steps`), as Dask workers do: what only the campaign needs
# (boto3, distributed, Prefect, the test fixtures) is imported where it is used, not here.

type TargetKind = Literal["local", "s3"]
type PrefectKind = Literal["none", "api", "temporary"]
type ClusterKind = Literal["threads", "dask", "processes"]
TARGETS: tuple[TargetKind, ...] = ("local", "s3")
PREFECTS: tuple[PrefectKind, ...] = ("none", "api", "temporary")
CLUSTERS: tuple[ClusterKind, ...] = ("threads", "dask", "processes")
KINDS = ("sigkill", "sigterm", "ctrl-c", "worker", "s3", "writer", "gc")
SIGNALS = {"sigkill": signal.SIGKILL, "sigterm": signal.SIGTERM, "ctrl-c": signal.SIGINT}
SERIES = SyntheticDataset(ntime=96, nlat=73, nlon=144, time_chunk=8)  # 8 MB: 12 chunks of both variables
HELD_STEPS = 48  # what an appending round's target holds before it
BLOCK_MIB = "0.5"  # below one chunk of both variables (0.67 MB): a block per chunk
MAX_ATTEMPTS = 5
ATTEMPT_TIMEOUT = 240.0
# "within seconds": a waiter checks the recorded holder every 2 s, and frees a slot taken with no holder recorded
# after 10 s (flows.target_lock.UNRECORDED_SECONDS: a holder killed as it took or released the slot)
LOCK_SECONDS = 15.0
PROCESS_SECONDS = 10.0
WRITER_ARRAY = "campaign_other"
WRITER_MESSAGE = "campaign: another writer"
STARTUP = {"none": 2.5, "api": 6.0, "temporary": 8.0}  # an attempt's seconds before its blocks, roughly


def _pause(x: np.ndarray, seconds: float) -> np.ndarray:
    time.sleep(seconds)
    return x


def steps(start: int, stop: int, pause: float = 0.0) -> xr.Dataset:
    """Steps [start, stop) of the campaign's series (a callable source); each dask chunk takes `pause` seconds to
    compute, so that a random moment can fall while blocks are written. Its dask names depend on the arguments
    only: the same request run again can adopt what an earlier attempt kept."""
    dataset = SERIES.time_slice(start, stop)
    if not pause:
        return dataset
    return dataset.map(lambda v: v.copy(data=v.data.map_blocks(_pause, pause, dtype=v.dtype)) if v.chunks else v)


# --- what a round does, from its seed ---


@dataclass(frozen=True)
class Fault:
    """One fault: its kind, when it comes (`delay`: seconds after the first attempt starts; `kept`: once that many
    blocks are kept; `landed`: once the request's snapshot is on the branch) and what exactly it does."""

    kind: str
    trigger: Literal["delay", "kept", "landed"]
    at: float
    detail: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        when = {
            "delay": f"at {self.at:.2f} s",
            "kept": f"once {self.at:.0f} blocks are kept",
            "landed": "once its snapshot has landed",
        }[self.trigger]
        details = " ".join(f"{k}={v}" for k, v in self.detail.items())
        return f"{self.kind} {when}" + (f" ({details})" if details else "")


@dataclass(frozen=True)
class Plan:
    seed: int
    target: TargetKind
    prefect: PrefectKind
    cluster: ClusterKind
    append: bool
    publish: bool
    pause: float
    faults: tuple[Fault, ...]

    @property
    def start(self) -> int:
        return HELD_STEPS if self.append else 0

    @property
    def blocks(self) -> int:
        return (SERIES.ntime - self.start) // SERIES.time_chunk

    def setting(self) -> str:
        prefect = {"none": "no Prefect API", "api": "Prefect API", "temporary": "--temporary-server"}[self.prefect]
        return f"{self.target}, {prefect}"

    def describe(self) -> str:
        request = f"append {self.start}-{SERIES.ntime}" if self.append else f"new repository, 0-{SERIES.ntime}"
        extra = ", --publish" if self.publish else ""
        return (
            f"seed {self.seed}: {self.setting()}, blocks on {self.cluster}, {request}{extra}, pause "
            f"{self.pause} s; " + "; ".join(f.describe() for f in self.faults)
        )


def plan(seed: int, kinds: tuple[str, ...]) -> Plan:
    """Every choice of round `seed`, drawn from `kinds` (the same seed and kinds give the same plan)."""
    rng = random.Random(seed)
    chosen = rng.sample(kinds, 2 if len(kinds) > 1 and rng.random() < 0.3 else 1)
    target: TargetKind = "s3" if "s3" in chosen else rng.choice(TARGETS)
    prefect = rng.choices(PREFECTS, weights=(6, 3, 1))[0]
    cluster: ClusterKind = "dask" if "worker" in chosen else rng.choices(CLUSTERS, weights=(7, 2, 1))[0]
    append = "writer" in chosen or rng.random() < 0.6  # another writer needs a branch to commit to
    publish = rng.random() < 0.25
    pause = rng.choice((0.0, 0.1, 0.3))
    blocks = (SERIES.ntime - (HELD_STEPS if append else 0)) // SERIES.time_chunk
    threads = 2
    expected = STARTUP[prefect] + (4.0 if cluster == "processes" else 0.0) + blocks * pause / threads + 0.5
    faults = tuple(_fault(kind, rng, expected, blocks) for kind in chosen)
    return Plan(seed, target, prefect, cluster, append, publish, pause, faults)


def _fault(kind: str, rng: random.Random, expected_seconds: float, blocks: int) -> Fault:
    draw = rng.random()
    # "landed": the moment the request's snapshot is on the branch, where the command still reports, removes its
    # kept set and stops (a worker or the object store failing then changes nothing)
    trigger: Literal["delay", "kept", "landed"] = (
        "kept" if draw < 0.3 else "landed" if draw < 0.5 and kind not in ("worker", "s3") else "delay"
    )
    at = {
        "kept": float(rng.randint(1, max(1, blocks // 2))),
        "landed": 0.0,
        "delay": round(rng.uniform(0.0, expected_seconds), 2),
    }[trigger]
    detail: dict[str, Any] = {}
    if kind == "sigkill":
        detail["group"] = rng.random() < 0.5
    elif kind == "worker":
        detail["which"] = rng.randrange(2)
    elif kind == "gc":
        detail["expire"] = rng.random() < 0.5
        detail["stop"] = rng.random() < 0.5  # the command killed first: the nightly collection after a failed run
    elif kind == "s3":
        style = rng.choice(("errors", "drops", "mixed"))
        share = round(rng.uniform(0.3, 1.0), 2)
        shares = {"errors": (0.4, 0.6, 0.0, 0.0), "drops": (0.0, 0.0, 0.5, 0.5), "mixed": (0.25, 0.25, 0.25, 0.25)}
        detail |= dict(zip(("error_500", "error_503", "drop_before", "drop_after"),
                           (round(share * s, 2) for s in shares[style]), strict=True))  # fmt: skip
        detail |= {"seconds": round(rng.uniform(0.5, 4.0), 2), "seed": rng.randrange(1000)}
    return Fault(kind, trigger, at, detail)


# --- the servers a campaign keeps for all its rounds ---


class Switch:
    """A TCP relay on loopback in front of the S3 endpoint, whose upstream can change while clients are connected.

    A command's endpoint is fixed when it starts; a burst of faults must start and end at a random moment within
    it. Changing the upstream drops every connection in flight, so keep-alive clients reconnect to the new one.
    """

    def __init__(self, upstream: str) -> None:
        self._upstream = _address(upstream)
        self._live: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._accept, name="campaign-switch", daemon=True).start()

    def route(self, upstream: str) -> None:
        with self._lock:
            self._upstream = _address(upstream)
            live, self._live = self._live, set()
        for connection in live:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with self._lock:
            upstream = self._upstream
            self._live.add(client)  # before connecting: a change of route meanwhile drops it too
        pump = selectors.DefaultSelector()
        server = None
        try:
            server = socket.create_connection(upstream, timeout=30)
            server.settimeout(None)
            with self._lock:
                self._live.add(server)
            pump.register(client, selectors.EVENT_READ, server)
            pump.register(server, selectors.EVENT_READ, client)
            while True:
                for key, _ in pump.select():
                    data = key.fileobj.recv(1 << 16)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            pump.close()
            with self._lock:
                self._live.discard(client)
                if server is not None:
                    self._live.discard(server)
            for end in (client, server):
                if end is not None:
                    end.close()


def _address(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    assert parsed.hostname is not None, url
    assert parsed.port is not None, url
    return parsed.hostname, parsed.port


@dataclass
class Services:
    """What rounds share: where things go, the S3 server (its clean endpoint and the switch commands use), the
    Prefect API, the Dask cluster, and the S3 credentials every command gets (their secret is searched for)."""

    workdir: Path
    s3_env: dict[str, str]
    s3_clean: str | None = None
    switch: Switch | None = None
    api: str | None = None
    dask_address: str | None = None
    dask_client: Any = None
    bucket: str = ""
    _client: Any = None

    def s3_client(self) -> Any:
        """One client for the campaign (around the switch): the rounds poll and scan with it."""
        import boto3
        from botocore.config import Config

        if self._client is None:
            self._client = boto3.client(
                "s3",
                config=Config(max_pool_connections=16),  # a connection per thread that scans a target
                endpoint_url=self.s3_clean,
                region_name=self.s3_env["AWS_REGION"],
                aws_access_key_id=self.s3_env["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=self.s3_env["AWS_SECRET_ACCESS_KEY"],
            )
        return self._client


@contextmanager
def services(plans: list[Plan], workdir: Path) -> Iterator[Services]:
    """Start what the rounds need, once: an S3 server (SeaweedFS) and its proxy (with the switch in front), a Prefect
    server, a Dask scheduler with two workers. Everything is stopped on the way out, whatever happens."""
    from benchmarks.object_store import BUCKET, s3_server
    from tests.conftest import S3_ENV

    shared = Services(workdir, dict(S3_ENV), bucket=BUCKET)
    with ExitStack() as stack:
        if any(p.target == "s3" for p in plans):
            s3 = stack.enter_context(s3_server(latency_ms=5))
            shared.s3_clean = s3.endpoint
            shared.switch = Switch(s3.endpoint)
            stack.callback(shared.switch.close)
            # this process reads and checks targets around the switch: its faults are the commands' alone
            os.environ.update({**S3_ENV, "AWS_ENDPOINT_URL": s3.endpoint})
            print(f"S3: moto behind {s3.endpoint}, commands through {shared.switch.endpoint}", flush=True)
        start = stack.enter_context(processes())
        if any(p.prefect == "api" for p in plans):
            port = free_port()
            home = workdir / "prefect-server"
            home.mkdir(exist_ok=True)
            start("prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port),
                  env={"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"},
                  log=workdir / "prefect-server.log")  # fmt: skip
            shared.api = f"http://127.0.0.1:{port}/api"
            wait_for(lambda: _get(f"{shared.api}/health"), "prefect server start", timeout=180)
            print(f"Prefect API: {shared.api}", flush=True)
        if any(p.cluster == "dask" for p in plans):
            from distributed import Client

            scheduler_file = workdir / "scheduler.json"
            scheduler_file.unlink(missing_ok=True)  # a campaign's before it in the same directory
            common = ["--no-dashboard", "--scheduler-file", str(scheduler_file)]
            start("dask", "scheduler", "--host", "127.0.0.1", "--port", "0", *common, env={},
                  log=workdir / "dask-scheduler.log")  # fmt: skip
            wait_for(lambda: scheduler_file.exists() or None, "dask scheduler start", timeout=60)
            workers_env = {**shared.s3_env, "PREFECT_HOME": str(workdir / "prefect-workers")}
            if shared.switch is not None:
                workers_env["AWS_ENDPOINT_URL"] = shared.switch.endpoint
            start("dask", "worker", "--nworkers", "2", "--nthreads", "1", *common, env=workers_env,
                  log=workdir / "dask-workers.log")  # fmt: skip
            client = stack.enter_context(Client(scheduler_file=str(scheduler_file), timeout=60))
            client.wait_for_workers(2, timeout=180)
            shared.dask_address, shared.dask_client = client.scheduler.address, client
            print(f"Dask: {shared.dask_address}, 2 workers", flush=True)
        yield shared


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


# --- a round ---


@dataclass
class Attempt:
    number: int
    exit_code: int
    seconds: float
    signals: list[str] = field(default_factory=list)
    landed: bool = False
    timed_out: bool = False
    last_line: str = ""


@dataclass
class Running:
    """What the fault threads see of the round: the command running now, if any, and when the first began."""

    message: str = ""
    began: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    started_at: float = 0.0
    first_began: datetime = field(default_factory=lambda: datetime.now(UTC))
    # held while an attempt starts, and by a collection with a cutoff of now for as long as it runs
    starting: threading.Lock = field(default_factory=threading.Lock)
    # held by the other writer while it writes and commits, and by a collection with a cutoff of now
    other_writing: threading.Lock = field(default_factory=threading.Lock)
    process: "subprocess.Popen[bytes] | None" = None
    attempt: Attempt | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    writer_snapshot: str | None = None
    expired: set[str] = field(default_factory=set)

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at


@dataclass
class RoundResult:
    plan: Plan
    seconds: float
    attempts: list[Attempt]
    faults: list[dict[str, Any]]
    problems: list[str]
    notes: list[str]

    @property
    def passed(self) -> bool:
        return not self.problems

    def missed(self, kind: str) -> bool:
        return any(f["kind"] == kind and f["missed"] for f in self.faults)


@dataclass(frozen=True)
class Target:
    """A round's repository: where it is, and how to list, read and remove its stored objects."""

    url: str
    services: Services

    @property
    def local(self) -> Path | None:
        return None if self.url.startswith("s3://") else Path(self.url)

    def _prefix(self) -> str:
        return urlparse(self.url).path.strip("/") + "/"

    def objects(self) -> Iterator[tuple[str, bytes]]:
        if self.local is not None:
            for path in sorted(self.local.rglob("*")):
                if path.is_file():
                    yield str(path), path.read_bytes()
            return
        client = self.services.s3_client()

        def read(key: str) -> tuple[str, bytes]:
            return key, client.get_object(Bucket=self.services.bucket, Key=key)["Body"].read()

        with ThreadPoolExecutor(16) as pool:  # each GET waits on the proxy's latency
            yield from pool.map(read, self.keys(client))

    def keys(self, client: Any, under: str = "") -> list[str]:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.services.bucket, Prefix=self._prefix() + under
        )
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def kept_blocks(self) -> int:
        if self.local is not None:
            return len(list(self.local.glob("icefloe/kept/*/*/blocks/*")))
        return sum("/blocks/" in key for key in self.keys(self.services.s3_client(), "icefloe/kept/"))

    def remove(self) -> None:
        if self.local is not None:
            shutil.rmtree(self.local, ignore_errors=True)
            return
        client = self.services.s3_client()
        keys = self.keys(client)
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i : i + 1000]]
            client.delete_objects(Bucket=self.services.bucket, Delete={"Objects": batch})


def repository(target: str) -> Any:
    """The target's repository, or None while there is none (this process reads around the faulty switch)."""
    from tasks.storage.target import find_repository

    return find_repository(target)


def ours(target: str, message: str) -> list[str]:
    """The snapshots on main whose message is the round's: what its request committed."""
    repo = repository(target)
    if repo is None:
        return []
    return [s.id for s in repo.ancestry(branch="main") if s.message == message]


def run_round(plan: Plan, services: Services, stamp: str) -> RoundResult:
    began = time.monotonic()
    logs = services.workdir / f"round-{plan.seed}"
    shutil.rmtree(logs, ignore_errors=True)  # a replay into the same directory
    logs.mkdir()
    (logs / "plan.json").write_text(json.dumps(asdict(plan), indent=1))
    if plan.target == "local":
        target = Target(str(services.workdir / "targets" / f"round-{plan.seed}.icechunk"), services)
    else:
        target = Target(f"s3://{services.bucket}/{stamp}/round-{plan.seed}", services)
    message = f"campaign round {plan.seed}"
    marker = uuid.uuid4().hex
    env = _command_env(plan, services, marker)
    argv = _request(plan, target.url, services, message)
    (logs / "request.txt").write_text(" ".join(argv) + "\n")
    phases: dict[str, float] = {}
    mark = time.monotonic()

    def phase(name: str) -> None:  # where a round's time goes, in its result.json
        nonlocal mark
        phases[name] = round(time.monotonic() - mark, 2)
        mark = time.monotonic()

    if plan.append:
        _write_held(target.url)
    held = 0 if not plan.append else len(list(repository(target.url).ancestry(branch="main")))
    phase("held steps")

    running = Running(message)
    threads = [
        threading.Thread(target=_fault_thread, args=(f, running, target, services), name=f"fault-{f.kind}")
        for f in plan.faults
    ]
    for thread in threads:
        thread.start()
    attempts: list[Attempt] = []
    problems: list[str] = []
    try:
        for number in range(1, MAX_ATTEMPTS + 1):
            attempt = _attempt(number, argv, env, logs / f"attempt-{number}.log", running)
            attempts.append(attempt)
            problems += _processes_left(marker, f"attempt {number}")
            if attempt.exit_code == 0:
                break
            attempt.landed = bool(ours(target.url, message))
            if attempt.landed:  # committed before it was stopped: a user reads the history, not the exit code
                break
            time.sleep(0.2)
        phase("attempts")
    finally:
        running.finished.set()
        for thread in threads:
            thread.join()
    (logs / "faults.json").write_text(json.dumps(running.outcomes, indent=1))
    problems += _processes_left(marker, "the faults")  # a kill between attempts or after the last one
    phase("faults")

    problems += check_attempts(plan, attempts, logs)
    found = check_data(plan, target.url, message, held, running)
    if found:
        _diagnose(target.url, logs / "diagnosis.txt")
    problems += found
    phase("data")
    problems += check_lock(plan, target, attempts, services, env, logs, marker)
    phase("lock")
    problems += check_secret(target, services, logs)
    phase("secret")
    notes = leftovers(target, attempts)
    result = RoundResult(plan, time.monotonic() - began, attempts, running.outcomes, problems, notes)
    if result.passed:
        target.remove()
    elif target.local is not None:
        (logs / "target").symlink_to(target.local)
    if plan.cluster == "dask" and services.dask_client is not None:
        services.dask_client.wait_for_workers(2, timeout=120)  # a killed worker's nanny starts another
    phase("cleanup")
    written = {"passed": result.passed, "problems": problems, "notes": notes, "phases": phases}
    (logs / "result.json").write_text(json.dumps(written | {"attempts": [asdict(a) for a in attempts]}, indent=1))
    return result


def _command_env(plan: Plan, services: Services, marker: str) -> dict[str, str]:
    """A user's environment: S3 credentials always (so a local round can leak them too), no Prefect API but the
    campaign's server in `api` rounds; one Prefect home per setting, so temporary servers migrate their database
    once."""
    home = services.workdir / f"home-{plan.prefect}"
    home.mkdir(exist_ok=True)
    extra = {**services.s3_env, "ICEFLOE_TEST_MARKER": marker}
    if services.switch is not None:
        extra["AWS_ENDPOINT_URL"] = services.switch.endpoint
    if plan.prefect == "api":
        assert services.api is not None
        extra["PREFECT_API_URL"] = services.api
    return command_env(home, **extra)


def _request(plan: Plan, target: str, services: Services, message: str) -> list[str]:
    keywords = {"start": plan.start, "stop": SERIES.ntime, "pause": plan.pause}
    source = json.dumps({"kind": "callable", "function": "benchmarks.campaign:steps", "keywords": keywords})
    argv = [str(BIN / "icefloe"), "write", source, target, "--block-mib", BLOCK_MIB, "--message", message]
    if plan.append:
        argv += ["--append-dim", "time"]
    if plan.publish:
        argv += ["--publish"]
    if plan.prefect == "temporary":
        argv += ["--temporary-server"]
    if plan.cluster == "dask":
        assert services.dask_address is not None
        argv += ["--dask-address", services.dask_address]
    elif plan.cluster == "processes":
        argv += ["--processes", "--n-workers", "2"]
    return argv


def _write_held(target: str) -> None:
    """The steps the target holds before the round, committed with Icechunk's own `to_icechunk`."""
    import icechunk
    from icechunk.xarray import to_icechunk

    from tasks.storage.target import repository_storage

    session = icechunk.Repository.create(repository_storage(target)).writable_session("main")
    to_icechunk(steps(0, HELD_STEPS), session, mode="w")
    session.commit("campaign: the steps held before the round")


def _attempt(number: int, argv: list[str], env: dict[str, str], log: Path, running: Running) -> Attempt:
    attempt = Attempt(number, 0, 0.0)
    started = time.monotonic()
    with log.open("wb") as out:
        with running.starting, running.lock:
            process = subprocess.Popen(argv, env=env, cwd=log.parent, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)  # fmt: skip
            running.process, running.attempt = process, attempt
            if not running.began.is_set():
                running.started_at, running.first_began = started, datetime.now(UTC)
                running.began.set()
        try:
            attempt.exit_code = process.wait(timeout=ATTEMPT_TIMEOUT)
        except subprocess.TimeoutExpired:
            attempt.timed_out = True
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            attempt.exit_code = process.wait()
        finally:
            with running.lock:
                running.process = None
    attempt.seconds = round(time.monotonic() - started, 2)
    lines = log.read_text(errors="replace").strip().splitlines()
    attempt.last_line = lines[-1][:300] if lines else ""
    return attempt


def _processes_left(marker: str, after: str) -> list[str]:
    """Processes the command started that outlive it (beyond a few seconds); they are killed, so that the next
    rounds run on a clean machine."""
    deadline = time.monotonic() + PROCESS_SECONDS
    while processes_marked(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = processes_marked(marker)
    for entry in left:
        with suppress(ProcessLookupError, ValueError):
            os.kill(int(entry.split(":", 1)[0]), signal.SIGKILL)
    return [f"processes left {PROCESS_SECONDS:.0f} s after {after}: {left}"] if left else []


# --- the faults ---


def _fault_thread(fault: Fault, running: Running, target: Target, services: Services) -> None:
    outcome: dict[str, Any] = {"kind": fault.kind, "planned": fault.describe(), "missed": False}
    try:
        running.began.wait()
        came = _wait_for_moment(fault, running, target)
        outcome["at"] = round(running.elapsed(), 2)
        outcome["started"] = _now()  # to set beside the commands' own log lines
        with running.lock:
            attempt = running.attempt.number if running.process is not None and running.attempt else None
        outcome["during_attempt"] = attempt
        if not came and fault.kind in ("sigkill", "sigterm", "ctrl-c", "worker", "s3"):
            outcome |= {"missed": True, "what": "the request had finished before the moment came"}
        else:
            outcome["what"] = FIRE[fault.kind](fault, running, target, services)
            outcome["missed"] = outcome["what"].startswith("missed")
    except Exception as e:
        outcome |= {"missed": True, "what": f"the fault itself failed: {type(e).__name__}: {e}",
                    "traceback": traceback.format_exc()}  # fmt: skip
    outcome["ended"] = _now()
    with running.lock:
        running.outcomes.append(outcome)


def _now() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]


def _wait_for_moment(fault: Fault, running: Running, target: Target) -> bool:
    """Wait for the fault's moment; False when the request finished first."""
    if fault.trigger == "delay":
        return not running.finished.wait(max(0.0, fault.at - running.elapsed()))
    while not running.finished.is_set():
        with suppress(Exception):  # a listing while the directory or prefix is being made
            if fault.trigger == "kept" and target.kept_blocks() >= fault.at:
                return True
            if fault.trigger == "landed" and ours(target.url, running.message):
                return True
        time.sleep(0.05)
    return False


def _signal(fault: Fault, running: Running, target: Target, services: Services) -> str:
    return _send_signal(running, SIGNALS[fault.kind], group=fault.kind == "ctrl-c" or bool(fault.detail.get("group")))


def _send_signal(running: Running, number: signal.Signals, group: bool) -> str:
    """`number` to the running command, or to its process group: what was sent, or why nothing was ("missed")."""
    with running.lock:
        process, attempt = running.process, running.attempt
        if process is None or attempt is None or process.poll() is not None:
            return "missed: no command running"
        try:
            (os.killpg if group else os.kill)(process.pid, number)
        except ProcessLookupError:
            return "missed: the command had just ended"
        attempt.signals.append(number.name)
    return f"{number.name} to the command's {'process group' if group else 'process'} {process.pid}"


def _kill_worker(fault: Fault, running: Running, target: Target, services: Services) -> str:
    assert services.dask_client is not None
    pids = services.dask_client.run(os.getpid, wait=True)
    pid = sorted(pids.values())[int(fault.detail["which"]) % len(pids)]
    os.kill(pid, signal.SIGKILL)
    return f"SIGKILL to Dask worker {pid}" + ("" if running.process is not None else " (no command running)")


def _s3_burst(fault: Fault, running: Running, target: Target, services: Services) -> str:
    assert services.switch is not None
    assert services.s3_clean is not None
    share = {k: float(fault.detail[k]) for k in ("error_500", "error_503", "drop_before", "drop_after")}
    faults = Faults(share["error_500"], share["error_503"], share["drop_before"], share["drop_after"],
                    seed=int(fault.detail["seed"]))  # fmt: skip
    with fault_proxy(services.s3_clean, faults) as faulty:
        services.switch.route(faulty)
        try:
            running.finished.wait(float(fault.detail["seconds"]))
        finally:
            services.switch.route(services.s3_clean)
    counts = dict(faults.counts)
    return f"{counts.get('forwarded', 0)} requests forwarded, faults {counts} over {fault.detail['seconds']} s"


def _other_writer(fault: Fault, running: Running, target: Target, services: Services) -> str:
    """Another writer's commit: a new array beside the request's, rebased over whatever landed meanwhile."""
    import icechunk
    import zarr

    from tasks.storage.target import local_target_lock

    with running.other_writing, local_target_lock(target.url, logging.getLogger("campaign")):
        session = repository(target.url).writable_session("main")
        array = zarr.open_group(session.store, mode="r+").create_array(
            WRITER_ARRAY, shape=(3,), chunks=(3,), dtype="i4", dimension_names=("other",)
        )
        array[:] = 7
        snapshot = session.commit(WRITER_MESSAGE, rebase_with=icechunk.ConflictDetector(), rebase_tries=10)
    running.writer_snapshot = snapshot
    return f"committed {snapshot}"


def _collect(fault: Fault, running: Running, target: Target, services: Services) -> str:
    """Expiry (half of the time) and a collection, with a cutoff older than every session that may still commit.

    Icechunk assumes that of a collection's cutoff (its design doc 011): one of now that overlaps a commit deletes
    chunks the commit refers to, and nothing the writer does can stop it (the first campaigns' seed 83). While a
    command runs, every session that may commit began after the round's first attempt did; when none runs, the
    cutoff is now, and neither an attempt nor the other writer starts until the collection is done.
    """
    with ExitStack() as stack:
        stack.enter_context(running.starting)
        with running.lock:
            process = running.process
        stopped = ""
        if process is not None and fault.detail.get("stop"):
            sent = _send_signal(running, signal.SIGKILL, group=True)
            stopped = "" if sent.startswith("missed") else f"{sent}, then "
            while running.process is process:  # the round's loop sees it end; no attempt starts meanwhile
                time.sleep(0.01)
        with running.lock:
            writing = running.process is not None
        if writing:
            stack.close()  # an attempt may start meanwhile: the cutoff is older than it too
            # two seconds before: an object store may give times to the second (moto's listings do)
            cutoff, when = running.first_began - timedelta(seconds=2), "before the first attempt"
        else:
            stack.enter_context(running.other_writing)  # the other writer's session may commit too
            cutoff, when = datetime.now(UTC), "now, no command running"
        repo = repository(target.url)
        if repo is None:
            return f"{stopped}no repository yet: nothing collected" if stopped else "missed: no repository yet"
        expired: set[str] = set()
        if fault.detail.get("expire"):
            on_main = {s.id for s in repo.ancestry(branch="main")}
            expired = set(repo.expire_snapshots(cutoff)) & on_main
            running.expired |= expired
        summary = repo.garbage_collect(cutoff)
    return (
        f"{stopped}cutoff {when} ({cutoff:%H:%M:%S.%f}); expired {len(expired)} snapshots of main; collected "
        f"{summary.chunks_deleted} chunks, {summary.manifests_deleted} manifests, {summary.snapshots_deleted} snapshots"
    )


FIRE: dict[str, Callable[[Fault, Running, Target, Services], str]] = {
    "sigkill": _signal,
    "sigterm": _signal,
    "ctrl-c": _signal,
    "worker": _kill_worker,
    "s3": _s3_burst,
    "writer": _other_writer,
    "gc": _collect,
}


# --- the checks ---

ALLOWED_EXITS = {0, 1, 128 + signal.SIGINT, 128 + signal.SIGTERM, -signal.SIGKILL, -signal.SIGTERM, -signal.SIGINT}
SAYS_NOTHING_COMMITTED = {1, 128 + signal.SIGINT, 128 + signal.SIGTERM}


def check_attempts(plan: Plan, attempts: list[Attempt], logs: Path) -> list[str]:
    """Exit codes as the README gives them; no attempt that said it committed nothing committed; the request
    succeeded (or landed) within the attempts; no wait for the target beyond a few seconds."""
    problems = []
    for a in attempts:
        if a.timed_out:
            problems.append(f"attempt {a.number} did not end within {ATTEMPT_TIMEOUT:.0f} s (killed)")
        elif a.exit_code not in ALLOWED_EXITS:
            problems.append(f"attempt {a.number} exited {a.exit_code}: {a.last_line}")
        if a.landed and a.exit_code in SAYS_NOTHING_COMMITTED:
            problems.append(
                f"attempt {a.number} exited {a.exit_code} ({a.last_line!r}) but its snapshot landed: a user who "
                "believes it runs the request again" + (", which appends the same steps twice" if plan.append else "")
            )
        for line, waited in _waits(logs / f"attempt-{a.number}.log"):
            if waited > LOCK_SECONDS:
                problems.append(f"attempt {a.number} waited {waited} s for the target: {line[:200]}")
    last = attempts[-1]
    if last.exit_code != 0 and not last.landed:
        problems.append(f"not committed after {len(attempts)} attempts (exits {[a.exit_code for a in attempts]})")
    return problems


def check_data(plan: Plan, target: str, message: str, held: int, running: Running) -> list[str]:
    """The tip equals the source exactly, every snapshot of main reads back, and main holds the snapshots expected:
    the request's once, the other writer's when it committed, fewer by what expiry removed."""
    problems = []
    repo = repository(target)
    if repo is None:
        return ["no repository at the target"]
    ancestry = list(repo.ancestry(branch="main"))
    mine = [s.id for s in ancestry if s.message == message]
    if len(mine) != 1:
        problems.append(f"{len(mine)} snapshots of the request on main ({mine}), not 1")
    writer = [s.id for s in ancestry if s.message == WRITER_MESSAGE]
    if writer != ([running.writer_snapshot] if running.writer_snapshot else []):
        problems.append(f"the other writer's snapshots on main are {writer}, it committed {running.writer_snapshot}")
    before = held if plan.append else 1  # the repository's first snapshot, which icefloe creates
    expected = before + 1 + (running.writer_snapshot is not None) - len(running.expired)
    if len(ancestry) != expected:
        listed = [(s.id, s.message) for s in ancestry]
        problems.append(f"{len(ancestry)} snapshots on main, expected {expected}: {listed}")
    for snapshot in ancestry[1:-1] if len(ancestry) > 1 else []:
        try:
            xr.open_zarr(repo.readonly_session(snapshot_id=snapshot.id).store, consolidated=False).load()
        except Exception as e:
            problems.append(f"snapshot {snapshot.id} ({snapshot.message}) does not read back: {_one_line(e)}")
    try:
        tip = xr.open_zarr(repo.readonly_session("main").store, consolidated=False).load()
    except Exception as e:
        return [*problems, f"the tip does not read back: {_one_line(e)}"]
    if running.writer_snapshot is not None:
        other = tip.get(WRITER_ARRAY)
        if other is None or not bool((other == 7).all()):
            problems.append(f"the other writer's array is lost from the tip: {other}")
    try:
        xr.testing.assert_identical(tip.drop_vars([WRITER_ARRAY], errors="ignore"), steps(0, SERIES.ntime).load())
    except AssertionError as e:
        times = tip.sizes.get("time")
        problems.append(f"the tip differs from the source ({times} steps, expected {SERIES.ntime}): {_one_line(e)}")
    return problems


def _diagnose(target: str, to: Path) -> None:
    """For a failed data check: the repository's log and main's snapshots with their times, and which chunks of
    each array of the tip cannot be read, beside the round's other logs."""
    import zarr

    from tasks.storage.chunk_reads import unreadable_chunks

    lines: list[str] = []
    try:
        repo = repository(target)
        lines += [f"log {u.updated_at.isoformat()} {type(u.kind).__name__}" for u in repo.ops_log()]
        for snapshot in repo.ancestry(branch="main"):
            lines.append(f"snapshot {snapshot.id} {snapshot.written_at.isoformat()} {snapshot.message}")
        store = repo.readonly_session("main").store
        group = zarr.open_group(store, mode="r")
        arrays = {name: np.ndindex(*array.cdata_shape) for name, array in group.arrays()}
        lines += [f"unreadable {c.describe()}" for c in unreadable_chunks(store, arrays)]
    except Exception as e:
        lines.append(f"diagnosis failed: {_one_line(e)}")
    to.write_text("\n".join(lines) + "\n")


def check_lock(
    plan: Plan,
    target: Target,
    attempts: list[Attempt],
    services: Services,
    env: dict[str, str],
    logs: Path,
    marker: str,
) -> list[str]:
    """The target's lock is free within seconds: a local repository's file lock can be taken; a Prefect slot has
    no holder (read from the API), or, after a command killed once its snapshot had landed (no later run to
    show it), the next run takes it within seconds."""
    problems = []
    if target.local is not None and not _file_lock_free(target.url):
        problems.append(f"the file lock of {target.url} was still held {LOCK_SECONDS:.0f} s after the round")
    if plan.prefect == "none":
        return problems
    if attempts[-1].exit_code != 0:
        probe = json.dumps({"kind": "synthetic", "ntime": 1, "nlat": 1, "nlon": 1})
        argv = [str(BIN / "icefloe"), "write", probe, target.url, "--group", "lock-probe"]
        if plan.prefect == "temporary":
            argv.append("--temporary-server")
        log = logs / "lock-probe.log"
        probed = _attempt(0, argv, env, log, Running())
        problems += _processes_left(marker, "the lock probe")
        waited = [seconds for line, seconds in _waits(log) if "holding target" in line]
        if probed.exit_code != 0 or not waited or waited[0] > LOCK_SECONDS:
            problems.append(f"the next write took the target after {waited} s, exit {probed.exit_code}")
    elif plan.prefect == "api":
        from flows.target_lock import lock_name

        assert services.api is not None
        url = f"{services.api}/v2/concurrency_limits/{lock_name(target.url, 'main')}"
        deadline = time.monotonic() + LOCK_SECONDS
        while (slots := _active_slots(url)) and time.monotonic() < deadline:
            time.sleep(0.2)
        if slots:
            problems.append(f"the target's Prefect slot still held {LOCK_SECONDS:.0f} s after the round")
    return problems


HOLDING = re.compile(r"holding (target )?\S+ .*after ([\d.]+) s")


def _waits(log: Path) -> list[tuple[str, float]]:
    """The lines where a run says how long it waited for the target (Prefect's slot, or the file lock), with the
    seconds."""
    lines = log.read_text(errors="replace").splitlines()
    return [(line.strip(), float(m.group(2))) for line in lines if (m := HOLDING.search(line))]


def _active_slots(url: str) -> int:
    try:
        return int(_get(url)["active_slots"])
    except urllib.error.HTTPError as e:
        if e.code == 404:  # no run created the target's limit
            return 0
        raise


def _file_lock_free(target: str) -> bool:
    """Whether icefloe's own file lock on a local target (`local_target_lock`) can be taken within seconds."""
    from tasks.storage.target import local_target_lock

    taken = threading.Event()

    def take() -> None:
        with local_target_lock(target, logging.getLogger("campaign")):
            taken.set()

    threading.Thread(target=take, daemon=True, name="campaign-lock").start()  # waits on while a holder lives
    return taken.wait(LOCK_SECONDS)


def check_secret(target: Target, services: Services, logs: Path) -> list[str]:
    """No stored object of the target, and no line any attempt printed, holds the S3 secret."""
    secret = services.s3_env["AWS_SECRET_ACCESS_KEY"].encode()
    found = [name for name, data in target.objects() if secret in data]
    found += [str(p) for p in logs.glob("*.log") if secret in p.read_bytes()]
    return [f"the S3 secret is in {found[:5]}"] if found else []


def leftovers(target: Target, attempts: list[Attempt]) -> list[str]:
    """What a successful last attempt left beside the target (kept blocks, staging branches): noted, not failed,
    since a run that cannot remove them says so and goes on."""
    if attempts[-1].exit_code != 0:
        return []
    notes = []
    with suppress(Exception):
        if kept := target.kept_blocks():
            notes.append(f"{kept} kept blocks left after a successful run")
    repo = repository(target.url)
    staging = [b for b in repo.list_branches() if b != "main"] if repo is not None else []
    if staging:
        notes.append(f"branches left after a successful run: {sorted(staging)}")
    return notes


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:400]


# --- the campaign ---


def report(results: list[RoundResult], kinds: tuple[str, ...], seconds: float, workdir: Path, replay: str) -> None:
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    passed = sum(r.passed for r in results)
    print(f"\nicefloe fault campaign, {date}: {len(results)} rounds, {passed} passed, {len(results) - passed} failed; "
          f"wall time {seconds / 60:.1f} min ({seconds / max(1, len(results)):.1f} s a round)")  # fmt: skip
    print("\n| fault kind | rounds | passed | failed | missed | seeds of failures |")
    print("| --- | --- | --- | --- | --- | --- |")
    rows = [(kind, [r for r in results if any(f.kind == kind for f in r.plan.faults)]) for kind in kinds]
    rows.append(("two faults", [r for r in results if len(r.plan.faults) == 2]))
    rows.append(("all rounds", results))
    for name, rounds in rows:
        failed = [str(r.plan.seed) for r in rounds if not r.passed]
        missed = sum(r.missed(name) for r in rounds) if name in kinds else sum(
            any(f["missed"] for f in r.faults) for r in rounds)  # fmt: skip
        print(f"| {name} | {len(rounds)} | {len(rounds) - len(failed)} | {len(failed)} | {missed} | "
              f"{' '.join(failed) or '-'} |")  # fmt: skip
    print("\n(missed: the fault came when no command ran, e.g. after the request had committed; a round with two "
          "faults counts in both rows)")  # fmt: skip
    print("\n| setting | rounds | passed | failed |")
    print("| --- | --- | --- | --- |")
    for setting in sorted({r.plan.setting() for r in results}):
        rounds = [r for r in results if r.plan.setting() == setting]
        ok = sum(r.passed for r in rounds)
        print(f"| {setting} | {len(rounds)} | {ok} | {len(rounds) - ok} |")
    attempts = [len(r.attempts) for r in results]
    landed = sum(any(a.landed for a in r.attempts) for r in results)
    mean = sum(attempts) / max(1, len(attempts))
    print(f"\nattempts per round: {mean:.2f} on average, at most {max(attempts, default=0)}; {landed} rounds whose "
          "request landed in an attempt that was then killed")  # fmt: skip
    noted = [r for r in results if r.notes]
    if noted:
        print(f"rounds that left something after a successful run: {len(noted)} "
              f"({', '.join(f'{r.plan.seed}: {r.notes[0]}' for r in noted[:10])})")  # fmt: skip
    for r in results:
        if not r.passed:
            print(f"\nFAILED {r.plan.describe()}")
            for problem in r.problems:
                print(f"  - {problem}")
            print(f"  replay: {replay.format(seed=r.plan.seed)}   logs: {workdir / f'round-{r.plan.seed}'}")
    print(f"\nlogs: {workdir}")


def code_version() -> str:
    """The commit the commands run, with the trees of the package (`flows/`, `tasks/`) and its files changed since:
    the code under test can change while a long campaign runs (the command imports it afresh for every attempt),
    and only a change to the package changes what the rounds test."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False).stdout.strip()

    trees = " ".join(git("rev-parse", "--short", f"HEAD:{d}") for d in ("flows", "tasks"))
    changed = [line[3:] for line in git("status", "--porcelain", "--", "flows", "tasks").splitlines()]
    dirty = f" with uncommitted changes to {', '.join(changed)}" if changed else ""
    return f"{git('rev-parse', '--short', 'HEAD')} (flows/ tasks/ trees {trees}){dirty}"


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.add_argument("--rounds", type=int, default=20, help="rounds to run (default 20)")
    arguments.add_argument("--seed", type=int, default=0, help="seed of the first round; round i uses seed + i")
    arguments.add_argument("--replay", type=int, metavar="SEED", help="run only the round of this seed")
    arguments.add_argument("--kinds", default=",".join(KINDS), help=f"fault kinds to draw from: {','.join(KINDS)}")
    arguments.add_argument("--workdir", type=Path, help="where logs and targets go (default: a new temporary dir)")
    args = arguments.parse_args()
    kinds = tuple(k for k in args.kinds.split(",") if k)
    if unknown := set(kinds) - set(KINDS):
        arguments.error(f"unknown fault kinds {sorted(unknown)}; choose among {','.join(KINDS)}")
    quiet_icechunk()  # this process opens local repositories too: not a warning for each
    seeds = [args.replay] if args.replay is not None else [args.seed + i for i in range(args.rounds)]
    plans = [plan(seed, kinds) for seed in seeds]
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix=f"icefloe-campaign-{stamp}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "targets").mkdir(exist_ok=True)
    kinds_flag = "" if kinds == KINDS else f" --kinds {','.join(kinds)}"
    replay = f"{sys.executable} -m benchmarks.campaign --replay {{seed}}{kinds_flag}"
    version = code_version()
    print(f"campaign: {len(plans)} rounds, seeds {seeds[0]}-{seeds[-1]}, code {version}, logs in {workdir}", flush=True)
    started = time.monotonic()
    results: list[RoundResult] = []
    # what servers and libraries print in this process (the burst proxy's broken pipes, Dask's client) goes to a
    # file: the campaign's own output is its progress and its table
    with (
        (workdir / "campaign-stderr.log").open("a") as errors,
        redirect_stderr(errors),
        services(plans, workdir) as shared,
    ):
        for plan_ in plans:
            try:
                result = run_round(plan_, shared, stamp)
            except Exception as e:  # the campaign's own failure: reported as the round's, the campaign goes on
                trace = traceback.format_exc()
                (workdir / f"round-{plan_.seed}" / "campaign-error.txt").write_text(trace)
                result = RoundResult(plan_, 0.0, [Attempt(0, -1, 0.0)], [], [f"campaign error: {_one_line(e)}"], [])
            results.append(result)
            exits = ",".join(str(a.exit_code) for a in result.attempts)
            state = "passed" if result.passed else "FAILED: " + "; ".join(result.problems)[:300]
            print(f"[{len(results)}/{len(plans)}] {result.seconds:5.1f} s  exits {exits:<12} "
                  f"{plan_.describe()}  {state}", flush=True)  # fmt: skip
    report(results, kinds, time.monotonic() - started, workdir, replay)
    print(f"code: {version}")
    if (now := code_version()).split(" ", 1)[1] != version.split(" ", 1)[1]:
        print(f"the package changed while the campaign ran: now {now}; rounds ran on either")


if __name__ == "__main__":
    main()
