"""icefloe against raw Icechunk on object storage: an S3 server on loopback (SeaweedFS, a real S3-compatible server;
or moto's mock with `--server moto`, for continuity with earlier figures), behind a proxy that adds a fixed latency
to every request (as an object store's first byte has) and counts requests by method and kind of object.

    uv run python -m benchmarks.object_store                                  # 256 MiB and 1 GiB at 20 ms, then
                                                                              # 256 MiB at 0 and 50 ms
    uv run python -m benchmarks.object_store --sizes 256MiB --latencies 20 --repeat 3 --no-flow
    uv run python -m benchmarks.object_store --server moto --repeat 3        # the same on moto
    uv run python -m benchmarks.object_store --spec-version 1 --no-flow       # into a format-1
                                                                              # repository made beforehand

The synthetic 0.25-degree dataset (two float32 variables), Zarr chunks of 2 steps (2.1 MB), dask chunks of 8 steps.
Two comparisons, each path run `--repeat` times, alternating, best run of each:

1. The command's path, whole processes (the user's clock: interpreter start, imports, the write, the exit):
   `icefloe write` with no Prefect API against the scripts it replaces (`benchmarks/plain_to_icechunk.py`:
   `to_icechunk`, or `store_dask` per array, on dask's threaded scheduler).
2. A flow run, as a served deployment runs it: a Prefect API and a threaded Dask cluster already up (as
   `icefloe serve` keeps them), the `write_dataset` flow against its peers, the flows a Prefect user writes without
   icefloe (a task that calls `to_icechunk`, or `store_dask`, on that cluster: "Prefect + to_icechunk"), and raw
   `to_icechunk` on that cluster without Prefect, timed in this process from the call to its return. The last line
   is the flow run against "Prefect + to_icechunk" at 256 MiB and 20 ms. Beside them, "Prefect alone": a flow run
   of a write's shape that stores nothing, and the ratio a flow run would reach storing exactly as fast as raw
   (raw / (raw + it)).

Every run gets a new S3 server and proxy (moto holds objects in memory: an earlier run's would slow the next),
started off the clock; with `--spec-version`, every path writes into a repository of that Icechunk format created
off the clock (icefloe then takes the path of a repository that exists: its mark before the write). Printed per
path: seconds, MB/s, chunk PUTs per second, requests by method, and the ratios of throughput icefloe/raw (above 1:
icefloe faster); then, for icefloe, the requests by kind of object beside raw to_icechunk's, which accounts for
every extra request.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
NLAT, NLON, VARIABLES = 721, 1440, ("t2m", "u10")
STEP_BYTES = NLAT * NLON * 4 * len(VARIABLES)
TIME_CHUNK, ZARR_CHUNKS = 8, (2, 361, 720)
ENCODING = {name: {"chunks": list(ZARR_CHUNKS)} for name in VARIABLES}
SIZES = {"64MiB": 2**26, "256MiB": 2**28, "1GiB": 2**30}
BUCKET = "icefloe-bench"
KEYS = {"AWS_ACCESS_KEY_ID": "bench-key", "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_REGION": "us-east-1"}


def ntime(nbytes: int) -> int:
    """Time steps (whole dask chunks) closest to `nbytes`."""
    return max(TIME_CHUNK, round(nbytes / STEP_BYTES / TIME_CHUNK) * TIME_CHUNK)


def source(steps: int) -> dict[str, Any]:
    return {"kind": "synthetic", "ntime": steps, "nlat": NLAT, "nlon": NLON, "time_chunk": TIME_CHUNK, "freq": "6h"}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class S3:
    """A moto server and the latency proxy in front of it, each its own process."""

    endpoint: str  # the proxy's: what clients use
    processes: list[subprocess.Popen[bytes]]

    def requests(self, reset: bool = True) -> Counter[str]:
        request = urllib.request.Request(f"{self.endpoint}/__counts__", method="POST" if reset else "GET")
        with urllib.request.urlopen(request) as answer:
            return Counter(json.loads(answer.read())["requests"])

    def environment(self) -> dict[str, str]:
        return {**KEYS, "AWS_ENDPOINT_URL": self.endpoint}


@contextmanager
def s3_server(latency_ms: float, server: str = "seaweedfs") -> Iterator[S3]:
    """A new S3 server (`moto` or `seaweedfs`) with the bucket, behind the latency proxy."""
    with ExitStack() as stack:
        upstream = stack.enter_context(moto(BUCKET) if server == "moto" else seaweedfs_server(BUCKET))
        proxy = subprocess.Popen(
            [sys.executable, "-m", "tests.fault_proxy", upstream, "--latency-ms", str(latency_ms)],
            stdout=subprocess.PIPE,
        )
        stack.callback(proxy.wait)
        stack.callback(proxy.kill)
        assert proxy.stdout is not None
        s3 = S3(f"http://127.0.0.1:{int(proxy.stdout.readline())}", [proxy])
        s3.requests()  # the bucket's creation went around the proxy; start from zero anyway
        yield s3


@contextmanager
def moto(bucket: str) -> Iterator[str]:
    import boto3

    port = free_port()
    log = subprocess.DEVNULL
    server = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    try:
        client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", **_boto_keys())
        deadline = time.monotonic() + 60
        while True:
            try:
                client.create_bucket(Bucket=bucket)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.kill()
        server.wait()


@contextmanager
def seaweedfs_server(bucket: str) -> Iterator[str]:
    from tests.s3_server import seaweedfs

    root = Path(tempfile.mkdtemp(prefix="icefloe-bench-seaweedfs-"))
    try:
        with seaweedfs(root, bucket, KEYS["AWS_ACCESS_KEY_ID"], KEYS["AWS_SECRET_ACCESS_KEY"]) as endpoint:
            yield endpoint
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _boto_keys() -> dict[str, str]:
    return {
        "aws_access_key_id": KEYS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": KEYS["AWS_SECRET_ACCESS_KEY"],
        "region_name": KEYS["AWS_REGION"],
    }


@dataclass(frozen=True)
class Run:
    seconds: float
    requests: Counter[str]


type Write = Callable[[S3, str], None]
"""One path's write of the source into a target (s3://...) on the given server."""


def command_env(s3: S3, home: Path) -> dict[str, str]:
    """This environment without any Prefect API (a user who has not set one up), with the S3 settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AWS_"))}
    return {**env, **s3.environment(), "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def _run(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed ({done.returncode}): {done.stderr.decode()[-3000:]}")


def script(steps: int, home: Path, *extra: str, existing: bool = False) -> Write:
    def write(s3: S3, target: str) -> None:
        chunks = ",".join(map(str, ZARR_CHUNKS))
        argv = [sys.executable, "-m", "benchmarks.plain_to_icechunk", target, str(steps), "--chunks", chunks]
        argv += ["--existing"] if existing else []
        _run([*argv, "--time-chunk", str(TIME_CHUNK), *extra], command_env(s3, home))

    return write


def icefloe_command(steps: int, home: Path, *extra: str) -> Write:
    def write(s3: S3, target: str) -> None:
        argv = [str(BIN / "icefloe"), "write", json.dumps(source(steps)), target, "--encoding", json.dumps(ENCODING)]
        argv += ["--mode", "w"]
        _run([*argv, *extra], command_env(s3, home))

    return write


@contextmanager
def s3_environment(s3: S3) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in s3.environment()}
    os.environ.update(s3.environment())
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def in_process(write: Callable[[str], object]) -> Write:
    def run(s3: S3, target: str) -> None:
        with s3_environment(s3):
            write(target)

    return run


@dataclass(frozen=True)
class Setting:
    """Where the paths write: the S3 server, its added latency, and the format of a repository made beforehand
    (None: each path creates its own)."""

    latency_ms: float
    server: str = "seaweedfs"
    spec_version: int | None = None


def timed(path: Write, setting: Setting) -> Run:
    with s3_server(setting.latency_ms, setting.server) as s3:
        target = f"s3://{BUCKET}/{uuid.uuid4().hex}"
        if setting.spec_version is not None:
            with s3_environment(s3):
                create_repository(target, setting.spec_version)
            s3.requests()
        started = time.perf_counter()
        path(s3, target)
        seconds = time.perf_counter() - started
        return Run(seconds, s3.requests())


def create_repository(target: str, spec_version: int) -> None:
    import icechunk

    from tasks.storage.target import repository_storage

    icechunk.Repository.create(repository_storage(target), spec_version=spec_version)


def open_or_create(target: str) -> Any:
    import icechunk

    from tasks.storage.target import repository_storage

    return icechunk.Repository.open_or_create(repository_storage(target))


def compare(paths: dict[str, Write], repeat: int, setting: Setting) -> dict[str, list[Run]]:
    runs: dict[str, list[Run]] = {name: [] for name in paths}
    names = list(paths)
    for i in range(repeat):
        for name in names if i % 2 == 0 else list(reversed(names)):
            runs[name].append(timed(paths[name], setting))
    return runs


def methods(requests: Counter[str]) -> str:
    by_method: Counter[str] = Counter()
    for kind, n in requests.items():
        by_method[kind.split()[0]] += n
    return " ".join(f"{m} {by_method[m]}" for m in ("PUT", "GET", "HEAD", "LIST", "DELETE", "POST") if by_method[m])


def report(title: str, runs: dict[str, list[Run]], nbytes: int, raws: tuple[str, ...]) -> dict[str, float]:
    """Print each path's best run and its ratios to `raws`; return each path's best seconds."""
    print(title)
    alone = runs.pop(PREFECT_ALONE, None)
    best = {name: min(r, key=lambda run: run.seconds) for name, r in runs.items()}
    for name, run in best.items():
        chunk_puts = run.requests["PUT chunks"]
        ratios = (
            "" if name in raws else "  " + "  ".join(f"x{best[raw].seconds / run.seconds:.2f} vs {raw}" for raw in raws)
        )
        all_times = " ".join(f"{r.seconds:.2f}" for r in runs[name])
        print(
            f"  {name:<22} {run.seconds:6.2f} s ({all_times})  {nbytes / 1e6 / run.seconds:5.0f} MB/s  "
            f"{chunk_puts / run.seconds:5.0f} chunk PUT/s  {methods(run.requests)}  "
            f"({sum(run.requests.values())} requests){ratios}"
        )
    reference = best[raws[0]].requests
    for name in (n for n in best if n not in raws):
        mine = best[name].requests
        extra = {k: mine[k] - reference[k] for k in sorted(set(mine) | set(reference)) if mine[k] != reference[k]}
        total = sum(mine.values()) / max(1, sum(reference.values()))
        print(f"  {name} requests / {raws[0]}'s: {total:.3f}; differing kinds: {extra}")
    if alone:
        seconds = min(r.seconds for r in alone)
        plain = [raw for raw in raws if raw not in (PREFECT_TO_ICECHUNK, PREFECT_STORE_DASK)]  # no Prefect of their own
        bounds = "  ".join(f"x{best[raw].seconds / (best[raw].seconds + seconds):.2f} vs {raw}" for raw in plain)
        print(
            f"  {PREFECT_ALONE} (a flow run of a write's shape, storing nothing): {seconds:.2f} s "
            f"({' '.join(f'{r.seconds:.2f}' for r in alone)}); writing as fast as raw, a flow run would be at {bounds}"
        )
    return {name: run.seconds for name, run in best.items()}


@contextmanager
def warm_stack() -> Iterator[str]:
    """A Prefect API and a threaded Dask cluster, as `icefloe serve` keeps them; the scheduler's address."""
    from flows.prefect_api import running_prefect_api
    from tasks.request import WriteOptions
    from tasks.running.cluster import local_cluster

    with running_prefect_api(), local_cluster(WriteOptions()) as cluster:
        yield cluster.scheduler_address


def flow_paths(steps: int, address: str) -> dict[str, Write]:
    import icechunk
    import icechunk.dask
    import icechunk.xarray
    import zarr
    from distributed import Client

    from flows.write_dataset import write_dataset
    from tasks.request import WriteOptions
    from tasks.storage.synthetic import SyntheticDataset

    model = SyntheticDataset(**source(steps))
    client = Client(address, set_as_default=False)

    def raw_to_icechunk(target: str) -> None:
        session = open_or_create(target).writable_session("main")
        with client.as_current():
            icechunk.xarray.to_icechunk(model.open(), session, mode="w", encoding=ENCODING)
        session.commit("raw to_icechunk")

    def raw_store_dask(target: str) -> None:
        dataset = model.open()
        session = open_or_create(target).writable_session("main")
        dataset.to_zarr(session.store, mode="w", encoding=ENCODING, compute=False, zarr_format=3, consolidated=False)
        fork = session.fork()
        targets = [zarr.open_array(fork.store, path=name, mode="r+") for name in VARIABLES]
        with client.as_current():
            merged = icechunk.dask.store_dask(sources=[dataset[name].data for name in VARIABLES], targets=targets)
        session.merge(merged)
        session.commit("raw store_dask")

    def flow_run(target: str) -> None:
        write_dataset(
            repo=target, source=model, mode="w", encoding=ENCODING, options=WriteOptions(dask_address=address)
        )

    return {
        PREFECT_TO_ICECHUNK: in_process(users_flow(raw_to_icechunk, "to-icechunk")),
        PREFECT_STORE_DASK: in_process(users_flow(raw_store_dask, "store-dask")),
        "raw to_icechunk": in_process(raw_to_icechunk),
        "icefloe flow run": in_process(flow_run),
        PREFECT_ALONE: in_process(prefect_alone(address)),
    }


PREFECT_TO_ICECHUNK, PREFECT_STORE_DASK = "Prefect + to_icechunk", "Prefect + store_dask"
"""The peers of a flow run: what a team that uses Prefect and not icefloe writes, a flow whose task writes with
Icechunk's own function (session, write, commit, as Icechunk's docs show) on the same warm cluster and API."""


def users_flow(write: Callable[[str], None], name: str) -> Callable[[str], None]:
    """A Prefect flow with one task that calls `write` (in the flow's process; its dask graph on the cluster)."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    @task(name=f"write with {name}", cache_policy=NO_CACHE)
    def write_task(target: str) -> None:
        write(target)

    @flow(name=f"user's {name} flow", log_prints=False)
    def user_flow(target: str) -> None:
        write_task(target)

    return user_flow


PREFECT_ALONE = "Prefect alone"
"""A flow run of a write's shape that stores nothing: what Prefect's own part of a flow run costs here."""


def prefect_alone(address: str, blocks: int = 4) -> Callable[[str], None]:
    """A flow run with what a write's has of Prefect, through icefloe's own paths (the target's slot, the cluster
    connected meanwhile, two stage task runs in the flow's thread, the progress artifact, a task run per block
    submitted as blocks are, the report's two artifacts and event), and no storage at all."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    from flows.fan_out import PrefectBlockRunner
    from flows.orchestrator import PrefectOrchestrator
    from flows.prefect_api import workers_report_to_flow_api
    from flows.prefect_internals import submit_many
    from flows.progress import block_progress
    from tasks.records import CommitResult
    from tasks.request import WriteOptions
    from tasks.running.runs import early_runner

    @task(name="write-block", cache_policy=NO_CACHE, persist_result=False)
    def block(index: int) -> int:
        return index

    @flow(name="prefect-alone")
    def empty_write(target: str) -> None:
        orchestrator = PrefectOrchestrator()
        options = WriteOptions(dask_address=address)
        with orchestrator.hold_target(target, "main"), early_runner(orchestrator, options) as runner:
            orchestrator.stage("initialize", lambda _: None)
            cluster = runner()
            assert isinstance(cluster, PrefectBlockRunner)
            with block_progress(blocks) as progress, workers_report_to_flow_api():
                for future in submit_many(cluster.runner, block, [{"index": i} for i in range(blocks)]):
                    future.result()
                    progress.advance()
            orchestrator.stage("merge-and-commit", lambda _: None)
            now = time.time()
            times = dict.fromkeys(("started_at", "initialized_at", "writing_at", "written_at", "committed_at"), now)
            nothing = CommitResult(target=target, snapshot_id="-", parent_id="-", branch="main", arrays=[], chunks=0,
                                   blocks=blocks, bytes=0, **times)  # fmt: skip
            orchestrator.report(nothing, [])

    return empty_write


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.add_argument("--sizes", default="256MiB,1GiB", help=f"comma-separated, of {', '.join(SIZES)}")
    arguments.add_argument("--latencies", default="20", help="added milliseconds per request, comma-separated")
    arguments.add_argument("--extra", default="0,50", help="latencies also run at the first size only")
    arguments.add_argument("--repeat", type=int, default=3, help="runs of each path (default 3)")
    arguments.add_argument("--no-command", dest="command", action="store_false", help="skip the command's path")
    arguments.add_argument("--no-flow", dest="flow", action="store_false", help="skip the flow runs")
    arguments.add_argument(
        "--server", choices=("seaweedfs", "moto"), default="seaweedfs", help="the S3 server (seaweedfs)"
    )
    arguments.add_argument(
        "--spec-version", type=int, choices=(1, 2), help="write into a repository of this format made beforehand"
    )
    args = arguments.parse_args()
    sizes = [s for s in args.sizes.split(",") if s]
    configurations = [(size, float(ms)) for size in sizes for ms in args.latencies.split(",") if ms]
    configurations += [(sizes[0], float(ms)) for ms in args.extra.split(",") if ms]
    home = Path(tempfile.mkdtemp(prefix="prefect-home-"))
    headline: float | None = None  # the flow run against the Prefect user's flow, 256 MiB at 20 ms
    try:
        if args.command:
            for size, latency in configurations:
                steps = ntime(SIZES[size])
                nbytes = steps * STEP_BYTES
                existing = args.spec_version is not None
                paths = {
                    "raw to_icechunk": script(steps, home, existing=existing),
                    "raw store_dask": script(steps, home, "--store-dask", existing=existing),
                    "icefloe write": icefloe_command(steps, home),
                }
                runs = compare(paths, args.repeat, Setting(latency, args.server, args.spec_version))
                title = f"command, whole processes: {size} ({nbytes / 1e6:.0f} MB) at {latency:.0f} ms per request"
                title += f" on {args.server}" + (f", format {args.spec_version}" if existing else "")
                report(title, runs, nbytes, ("raw to_icechunk", "raw store_dask"))
        if args.flow:
            with warm_stack() as address:
                for size, latency in configurations:
                    steps = ntime(SIZES[size])
                    nbytes = steps * STEP_BYTES
                    setting = Setting(latency, args.server, args.spec_version)
                    runs = compare(flow_paths(steps, address), args.repeat, setting)
                    title = (
                        f"flow run on a warm cluster: {size} ({nbytes / 1e6:.0f} MB) at {latency:.0f} ms per request"
                        f" on {args.server}" + (f", format {args.spec_version}" if args.spec_version else "")
                    )
                    best = report(title, runs, nbytes, (PREFECT_TO_ICECHUNK, PREFECT_STORE_DASK, "raw to_icechunk"))
                    if (size, latency) == ("256MiB", 20.0):
                        headline = best[PREFECT_TO_ICECHUNK] / best["icefloe flow run"]
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if headline is not None:
        print(f"flow run vs {PREFECT_TO_ICECHUNK}: {headline:.2f}")


if __name__ == "__main__":
    main()
