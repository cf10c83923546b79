"""`icefloe write` and `icefloe demo`: here without a Prefect API, as flow runs with one; the plan of a dry run; the
summary; and the errors."""

import json
import re
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import httpx
import pytest
import xarray as xr
from distributed import LocalCluster
from prefect.settings import PREFECT_API_URL

from flows.cli.demo import demo_source
from flows.cli.main import main
from flows.cli.requests import parse_source
from tasks.storage.synthetic import SyntheticDataset
from tests.conftest import open_repo, snapshot_count
from tests.processes import command_env, icefloe
from tests.sources import netcdf_files

SMALL = '{"kind": "synthetic", "ntime": 48, "nlat": 19, "nlon": 36, "time_chunk": 24}'
MEDIUM = '{"kind": "synthetic", "ntime": 96, "nlat": 181, "nlon": 360, "time_chunk": 24}'  # 50 MB, 12.5 MB a step
SUMMARY = re.compile(
    r"(\d+) MB in (\d+) blocks: written in [\d.]+ s \(\d+ MB/s\); "
    r"start-up ([\d.]+) s, commit [\d.]+ s; ([\d.]+) s in all"
)


def test_without_a_prefect_api_the_write_runs_here_and_says_where_the_time_went(tmp_path: Path) -> None:
    target = tmp_path / "repo"

    done = icefloe(
        "write", SMALL, str(target), "--message", "one-off", env=command_env(tmp_path / "home"), cwd=tmp_path
    )

    assert done.returncode == 0, done.stderr
    tip = open_repo(str(target)).lookup_branch("main")
    assert f"snapshot {tip} on {target} (branch main)" in done.stdout
    summary = SUMMARY.search(done.stdout)
    assert summary is not None, done.stdout
    startup, total = float(summary.group(3)), float(summary.group(4))
    assert 0 < startup <= total  # start-up counts from the process start, apart from the writing
    assert "not recorded in Prefect: no API is configured" in done.stdout
    assert "temporary server" not in done.stderr.lower()
    assert "Flow run" not in done.stderr
    snapshots = list(open_repo(str(target)).ancestry(branch="main"))
    assert [s.message for s in snapshots] == ["one-off", "Repository initialized"]
    assert snapshots[0].metadata["icefloe"]["orchestrator"] == "local"
    written = xr.open_zarr(open_repo(str(target)).readonly_session("main").store, consolidated=False)
    xr.testing.assert_identical(written, SyntheticDataset(**json.loads(SMALL)).open())


@pytest.mark.parametrize("icechunk_log", [None, "warn"])
def test_icechunks_warnings_on_every_open_are_off_unless_asked_for(tmp_path: Path, icechunk_log: str | None) -> None:
    env = {k: v for k, v in command_env(tmp_path / "home").items() if k != "ICECHUNK_LOG"}  # a user's environment
    flag = ["--icechunk-log", icechunk_log] if icechunk_log else []

    done = icefloe(*flag, "write", SMALL, str(tmp_path / "repo"), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    noise = "The LocalFileSystem storage is not safe for concurrent commits"
    assert (noise in done.stderr) == (icechunk_log == "warn"), done.stderr


def test_a_write_without_a_prefect_api_never_imports_prefect(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom flows.cli.main import main\n"
        f"assert main(['write', {SMALL!r}, {str(tmp_path / 'repo')!r}]) == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('prefect', 'prefect_dask')))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=command_env(tmp_path / "home"), cwd=tmp_path,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_without_a_prefect_api_blocks_go_to_the_scheduler_named(tmp_path: Path) -> None:
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as cluster:  # fmt: skip
        argv = [
            "write",
            MEDIUM,
            str(tmp_path / "repo"),
            "--dask-address",
            cluster.scheduler_address,
            "--block-mib",
            "32",
        ]
        done = icefloe(*argv, env=command_env(tmp_path / "home"), cwd=Path.cwd())
        block_tasks = {entry[0] for entry in cluster.scheduler.transition_log if str(entry[0]).startswith("write-")}

    assert done.returncode == 0, done.stderr
    assert "in 2 blocks" in done.stdout
    assert len(block_tasks) == 2  # the blocks ran on the cluster named, as plain Dask tasks
    written = xr.open_zarr(open_repo(str(tmp_path / "repo")).readonly_session("main").store, consolidated=False)
    xr.testing.assert_identical(written, SyntheticDataset(**json.loads(MEDIUM)).open())


def test_a_block_that_keeps_failing_is_retried_then_nothing_is_committed(tmp_path: Path) -> None:
    target = tmp_path / "repo"
    env = command_env(tmp_path / "home")

    done = icefloe("write", "tests.sources:broken", str(target), "--retries", "1", env=env, cwd=Path.cwd())

    assert done.returncode == 1, done.stderr
    assert "retry 1 of 1" in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("icefloe write: failed, nothing was committed: BlockWriteError: 1 of 1 blocks failed")
    assert snapshot_count(str(target)) == 1  # only the repository's own first snapshot


def test_an_error_raised_once_blocks_are_written_is_a_failure_not_a_refusal(tmp_path: Path) -> None:
    """Exit 2 says "your request was refused, nothing was written"; once blocks are written, whatever fails (here an
    invalid-request error from inside a block) is a failed run: exit 1."""
    target = tmp_path / "repo"

    done = icefloe(
        "write", "tests.sources:invalid_in_a_block", str(target), env=command_env(tmp_path / "home"), cwd=Path.cwd()
    )

    assert done.returncode == 1, done.stderr
    assert "icefloe write: failed, nothing was committed: BlockWriteError" in done.stderr
    assert "injected: this block's part of the source is wrong" in done.stderr
    assert snapshot_count(str(target)) == 1


def test_the_demo_without_a_prefect_api_reads_back_identical(tmp_path: Path) -> None:
    """What `make demo` runs on a machine with no Prefect API configured."""
    target = tmp_path / "demo.icechunk"

    done = icefloe("demo", "--gib", "0.05", "--target", str(target), env=command_env(tmp_path / "home"), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "identical to the source" in done.stdout
    assert "not recorded in Prefect" in done.stdout
    written = xr.open_zarr(open_repo(str(target)).readonly_session("main").store, consolidated=False)
    xr.testing.assert_identical(written, demo_source(0.05).open())


def test_demo_writes_a_dataset_that_reads_back_identical(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """In this process Prefect is imported and the test's API configured: the demo is a flow run there."""
    target = str(tmp_path / "demo.icechunk")

    assert main(["demo", "--gib", "0.05", "--target", target]) == 0

    repo = open_repo(target)
    written = xr.open_zarr(repo.readonly_session("main").store, consolidated=False)
    xr.testing.assert_identical(written, demo_source(0.05).open())
    out = capsys.readouterr().out
    assert f"snapshot {repo.lookup_branch('main')} on {target}" in out
    assert SUMMARY.search(out)
    assert "see the run: http://" in out  # the test's Prefect API keeps the run


def test_write_shows_progress_then_history_shows_the_run(
    tmp_path: Path, dask_address: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ICEFLOE_PROGRESS", "1")  # a bar, as on a terminal
    netcdf_files(tmp_path / "files", SyntheticDataset(ntime=48, nlat=181, nlon=360).open(), steps_per_file=12)
    target = str(tmp_path / "repo")
    common = ["--dask-address", dask_address, "--concat-dim", "time", "--block-mib", "1"]

    code = main(["write", str(tmp_path / "files" / "*.nc"), target, "--message", "first load", *common])
    assert code == 0
    assert main(["history", target]) == 0

    out, err = capsys.readouterr()
    tip = open_repo(target).lookup_branch("main")
    assert f"snapshot {tip} on {target}" in out
    assert "in 4 blocks" in out
    assert re.search(r"writing blocks .* 4/4", err)
    run_id = UUID(re.findall(r"/runs/flow-run/([0-9a-f-]{36})", out)[0])
    body = {"artifacts": {"flow_run_id": {"any_": [str(run_id)]}, "type": {"any_": ["progress"]}}}
    response = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", json={**body, "limit": 10, "offset": 0})
    artifacts = response.raise_for_status().json()
    assert [a["data"] for a in artifacts] == [100.0]  # the UI shows the blocks written
    history = out[out.index(f"{tip}  ") :]
    assert "first load" in history
    assert "flow_name=write-dataset" in history
    assert "Repository initialized" in history
    assert snapshot_count(target) == 2


def test_dry_run_checks_and_prints_the_plan_but_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "repo"
    encoding = '{"t2m": {"chunks": [12, 19, 36]}}'

    assert main(["write", SMALL, str(target), "--encoding", encoding, "--block-mib", "1", "--dry-run"]) == 0

    out = capsys.readouterr().out
    assert "from a new repository" in out
    assert "t2m: region [0:48, 0:19, 0:36] of shape (48, 19, 36), grid (12, 19, 36)" in out
    assert "would write 0.3 MB in 2 blocks" in out
    assert not target.exists()


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["write", "/nowhere/*.nc", "REPO"], 2, "refused, nothing was written: source glob"),
        (["write", "nowhere.module:fn", "REPO"], 2, "'nowhere.module:fn' cannot be imported"),
        (["write", SMALL, "REPO", "--mode", "r+", "--dry-run"], 2, "mode 'r+' writes into an existing group"),
        (["write", SMALL, "REPO", "--region", "time=a:b"], 2, "use dim=start:stop, dim=auto or auto"),
    ],
)
def test_bad_input_exits_with_a_clear_message_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    """Exit code 2: refused before anything was written; 1: the write started and failed."""
    target = tmp_path / "repo"
    assert main([str(target) if a == "REPO" else a for a in argv]) == code
    assert message in capsys.readouterr().err
    assert not target.exists()


def test_sources_on_the_command_line() -> None:
    assert parse_source("data/*.nc", "time").model_dump(include={"kind", "concat_dim"}) == {
        "kind": "netcdf",
        "concat_dim": "time",
    }
    assert parse_source("s3://bucket/era5.zarr").kind == "zarr"
    assert parse_source("/data/other.icechunk").kind == "icechunk"
    assert parse_source("mypkg.loaders:yesterday").kind == "callable"
    assert parse_source("synthetic").kind == "synthetic"
    assert parse_source('{"kind": "icechunk", "repo": "s3://b/r", "tag": "v1"}').model_dump()["tag"] == "v1"
