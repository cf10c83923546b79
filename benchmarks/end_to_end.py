"""The user's clock: whole processes, from the command a user types to its exit.

    uv run python -m benchmarks.end_to_end                       # 64 MiB, 1 GiB and 4 GiB, then a served run
    uv run python -m benchmarks.end_to_end --sizes 64MiB --repeat 5 --no-served

1. `icefloe write` of the synthetic dataset with no Prefect server configured, against the plain script it replaces
   (`benchmarks/plain_to_icechunk.py`: `to_icechunk` on dask's threaded scheduler), same data, chunks and disk.
   Both run as new processes, alternating, best of each; the ratio is of wall times (icefloe/plain: below 1 is
   faster). `--temporary-server` runs also time `icefloe write --temporary-server` (the run recorded in a Prefect
   server started for the command). Beside them, the floor of the same bytes on this machine
   (`benchmarks/floor.py`), and each path's ratio to it; at 1 GiB the last line is `command vs floor: <ratio>`.
2. A served run: `prefect server start` and `icefloe serve` are started first (as a team runs them), then a 64 MiB
   write-dataset run is created through the REST API and timed until it is COMPLETED, against the same write done
   in this process. Their difference is what serving costs a run.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from benchmarks.floor import local_floor
from benchmarks.timing import compare

BIN = Path(sys.executable).parent
NLAT, NLON, VARIABLES = 721, 1440, ("t2m", "u10")
STEP_BYTES = NLAT * NLON * 4 * len(VARIABLES)
ENCODING = {name: {"chunks": [8, 361, 720]} for name in VARIABLES}
SIZES = {"64MiB": 2**26, "1GiB": 2**30, "4GiB": 2**32}


def ntime(nbytes: int) -> int:
    """Time steps (a multiple of the 8-step chunk) closest to `nbytes`."""
    return max(8, round(nbytes / STEP_BYTES / 8) * 8)


def source(steps: int) -> dict[str, Any]:
    return {"kind": "synthetic", "ntime": steps, "nlat": NLAT, "nlon": NLON, "time_chunk": 8, "freq": "6h"}


def environment(**extra: str) -> dict[str, str]:
    """This environment without any Prefect API: what a user who has not set one up has."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return {**env, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **extra}


def run(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")


def icefloe_write(steps: int, env: dict[str, str], *extra: str) -> Callable[[Path], None]:
    def write(target: Path) -> None:
        argv = ["write", json.dumps(source(steps)), str(target), "--encoding", json.dumps(ENCODING), *extra]
        run([str(BIN / "icefloe"), *argv], env)

    return write


def plain_script(steps: int, env: dict[str, str]) -> Callable[[Path], None]:
    def write(target: Path) -> None:
        run([sys.executable, "-m", "benchmarks.plain_to_icechunk", str(target), str(steps)], env)

    return write


def summary(name: str, times: list[float]) -> str:
    return f"{name} {' '.join(f'{t:.2f}' for t in times)} -> best {min(times):.2f} s"


def compare_commands(
    sizes: list[str], repeat: int, workdir: Path, temporary_server: bool
) -> dict[str, tuple[float, float]]:
    """Print each size's runs, its floor and the ratios; return the command's best seconds and the floor by size."""
    home = Path(tempfile.mkdtemp(prefix="prefect-home-"))  # one Prefect home: migrated by the first run only
    env = environment(PREFECT_HOME=str(home))
    commands: dict[str, tuple[float, float]] = {}
    try:
        for size in sizes:
            steps = ntime(SIZES[size])
            print(f"{size}: {steps} steps, {steps * STEP_BYTES / 1e6:.0f} MB, {len(VARIABLES)} float32 variables")
            times = compare(plain_script(steps, env), icefloe_write(steps, env), repeat, workdir)
            floor = local_floor(source(steps), tuple(ENCODING[VARIABLES[0]]["chunks"]), workdir)
            commands[size] = min(times["ours"]), floor.seconds
            print(f"  plain to_icechunk:       {summary('', times['raw'])}")
            print(f"  icefloe write:           {summary('', times['ours'])}")
            print(f"  {floor}")
            print(f"  ratio icefloe/plain (wall) = {min(times['ours']) / min(times['raw']):.2f}")
            print(f"  ratios to the floor: icefloe {min(times['ours']) / floor.seconds:.2f}, plain "
                  f"{min(times['raw']) / floor.seconds:.2f}")  # fmt: skip
            if temporary_server:
                served = compare(plain_script(steps, env), icefloe_write(steps, env, "--temporary-server"), 1, workdir)
                print(f"  --temporary-server:      {summary('', served['ours'])} (plain {min(served['raw']):.2f})")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return commands


@contextmanager
def served_stack(workdir: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`prefect server start` and `icefloe serve`, as a team runs them; stopped (with their children) at exit."""
    home = Path(tempfile.mkdtemp(prefix="prefect-home-"))
    with socket_port() as port:
        api = f"http://127.0.0.1:{port}/api"
    env = environment(PREFECT_HOME=str(home), PREFECT_API_URL=api, PREFECT_UI_ENABLED="false")
    started: list[subprocess.Popen[bytes]] = []
    try:
        log = (workdir / "served.log").open("wb")
        started.append(subprocess.Popen([str(BIN / "prefect"), "server", "start", "--port", str(port)], env=env,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True))  # fmt: skip
        wait(lambda: httpx.get(f"{api}/health").status_code == 200, "prefect server start")
        started.append(subprocess.Popen([str(BIN / "icefloe"), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True))  # fmt: skip
        wait(lambda: httpx.get(f"{api}/deployments/name/write-dataset/write-dataset").status_code == 200, "serve")
        yield api, env
    finally:
        for process in reversed(started):
            os.killpg(process.pid, 15)
            process.wait(timeout=60)
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def socket_port() -> Iterator[int]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def wait(check: Callable[[], bool], what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


def served_run(api: str, target: Path, steps: int) -> float:
    """Seconds from the REST call that creates the run to the API reporting it COMPLETED."""
    deployment = httpx.get(f"{api}/deployments/name/write-dataset/write-dataset").json()["id"]
    parameters = {"repo": str(target), "source": source(steps), "mode": "w", "encoding": ENCODING}
    started = time.perf_counter()
    while True:  # a busy SQLite server answers 503: the call is repeated, on the clock
        response = httpx.post(f"{api}/deployments/{deployment}/create_flow_run", json={"parameters": parameters})
        if response.status_code != 503:
            break
    run_id = response.raise_for_status().json()["id"]
    while True:
        state = httpx.get(f"{api}/flow_runs/{run_id}").json()["state_type"]
        if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            break
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    if state != "COMPLETED":
        raise RuntimeError(f"served run {run_id} ended {state}")
    return elapsed


def in_process_write(target: Path, steps: int) -> float:
    """The same write in this process, on a warm interpreter: what the run costs without serving."""
    from tasks.request import DatasetWrite
    from tasks.running.local import LocalOrchestrator
    from tasks.running.runs import run_write_dataset
    from tasks.storage.synthetic import SyntheticDataset

    started = time.perf_counter()
    run_write_dataset(
        LocalOrchestrator(), str(target), SyntheticDataset(**source(steps)), DatasetWrite(mode="w", encoding=ENCODING)
    )
    return time.perf_counter() - started


def compare_served(repeat: int, workdir: Path) -> None:
    steps = ntime(SIZES["64MiB"])
    print(f"served: write-dataset of {steps * STEP_BYTES / 1e6:.0f} MB through `icefloe serve`, from the REST call")
    with served_stack(workdir) as (api, _):
        warm_up = Path(tempfile.mkdtemp(dir=workdir))
        served_run(api, warm_up, steps)  # a served stack runs steadily: its first run's database work is not counted
        shutil.rmtree(warm_up)
        times: dict[str, list[float]] = {"raw": [], "ours": []}
        for _ in range(repeat):
            for name, write in (
                ("ours", lambda p: served_run(api, p, steps)),
                ("raw", lambda p: in_process_write(p, steps)),
            ):
                target = Path(tempfile.mkdtemp(dir=workdir))
                os.sync()
                times[name].append(write(target))
                shutil.rmtree(target)
    print(f"  served, REST call to COMPLETED: {summary('', times['ours'])}")
    print(f"  same write in-process:          {summary('', times['raw'])}")
    print(f"  serving overhead per run = {min(times['ours']) - min(times['raw']):.2f} s")


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.add_argument("--repeat", type=int, default=3, help="runs of each (default 3)")
    arguments.add_argument("--workdir", type=Path, default=Path("data/bench"), help="where the repositories go")
    arguments.add_argument("--sizes", default="64MiB,1GiB,4GiB", help="comma-separated, of 64MiB, 1GiB, 4GiB")
    arguments.add_argument("--temporary-server", action="store_true", help="also time --temporary-server runs")
    arguments.add_argument("--no-served", dest="served", action="store_false", help="skip the served run")
    args = arguments.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    sizes = [s for s in args.sizes.split(",") if s]
    commands = compare_commands(sizes, args.repeat, args.workdir, args.temporary_server) if sizes else {}
    if args.served:
        compare_served(args.repeat, args.workdir)
    if "1GiB" in commands:
        command, floor = commands["1GiB"]
        print(f"command vs floor: {command / floor:.2f}")


if __name__ == "__main__":
    main()
