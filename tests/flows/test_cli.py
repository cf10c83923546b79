"""The `icefloe` command: demo, write (and --dry-run), history, --help, and its errors."""

import re
from pathlib import Path
from uuid import UUID

import httpx
import pytest
import xarray as xr
from prefect.settings import PREFECT_API_URL

from flows.cli import demo_source, main, parse_source
from tasks.sources import SyntheticDataset
from tests.conftest import open_repo, snapshot_count
from tests.sources import netcdf_files

SMALL = '{"kind": "synthetic", "ntime": 48, "nlat": 19, "nlon": 36, "time_chunk": 24}'


def test_demo_writes_a_dataset_that_reads_back_identical(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = str(tmp_path / "demo.icechunk")

    assert main(["demo", "--gib", "0.05", "--target", target, "--n-workers", "1"]) == 0

    repo = open_repo(target)
    written = xr.open_zarr(repo.readonly_session("main").store, consolidated=False)
    xr.testing.assert_identical(written, demo_source(0.05).open())
    out = capsys.readouterr().out
    assert f"snapshot {repo.lookup_branch('main')} on {target}" in out
    assert "MB/s" in out
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
        (["write", "/nowhere/*.nc", "REPO"], 1, "run failed, nothing was committed: InvalidRequestError: source glob"),
        (["write", "nowhere.module:fn", "REPO"], 1, "'nowhere.module:fn' cannot be imported"),
        (["write", SMALL, "REPO", "--mode", "r+", "--dry-run"], 2, "GroupNotFoundError: No group found in store"),
        (["write", SMALL, "REPO", "--region", "time=a:b"], 2, "use dim=start:stop, dim=auto or auto"),
    ],
)
def test_bad_input_exits_with_a_clear_message_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    """Exit code 2: refused before any run; 1: the run started and failed."""
    target = tmp_path / "repo"
    assert main([str(target) if a == "REPO" else a for a in argv]) == code
    assert message in capsys.readouterr().err
    assert not target.exists()


@pytest.mark.parametrize("command", [[], ["demo"], ["write"], ["history"], ["serve"]])
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: icefloe" in capsys.readouterr().out


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
