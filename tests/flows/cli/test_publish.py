"""Publishing through a staging branch (`--publish`), by the command, as a user runs it against a Prefect API: a
snapshot that fails a check leaves its branch where it was, is kept on a staging branch that `icefloe staged` lists
and `icefloe publish --staged` publishes (with --force while it fails); a good one moves the branch as a plain write
does; a publish interrupted by SIGKILL is finished by the same request, with no block written again."""

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
import xarray as xr
from prefect.settings import PREFECT_API_URL

from flows.cli.main import main
from tasks.running.local import LocalOrchestrator
from tasks.running.runs import run_write_dataset
from tests.conftest import committed, open_repo, snapshot_count
from tests.processes import command_env, icefloe, wait_for
from tests.sources import KILL_FILE, steps


def source(function: str = "steps", **keywords: Any) -> str:
    return json.dumps({"kind": "callable", "function": f"tests.sources:{function}", "keywords": keywords})


@pytest.fixture(scope="module")
def two_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository holding steps 0-48, written once for the module (each test works on its own copy)."""
    target = tmp_path_factory.mktemp("two-days") / "repo"
    run_write_dataset(LocalOrchestrator(), str(target), steps(0, 48))
    return target


def copy_of(two_days: Path, tmp_path: Path) -> str:
    target = tmp_path / "repo"
    shutil.copytree(two_days, target)
    return str(target)


def rejected_events(target: str) -> list[dict[str, Any]] | None:
    response = httpx.post(
        f"{PREFECT_API_URL.value()}/events/filter",
        json={"filter": {"event": {"name": ["icefloe.snapshot.rejected"]}}, "limit": 50},
        timeout=30,
    )
    events = response.raise_for_status().json()["events"]
    return [e for e in events if e["resource"]["icefloe.target"] == target] or None


DEFECTS = {
    "a NaN step": (
        [source("defective", start=48, stop=72, defect="nan"), "--append-dim", "time"],
        "no all-NaN 'time' step: NaN everywhere: 't2m' at 2020-01-03 01:00:00, 'u10' at 2020-01-03 01:00:00",
    ),
    "time going backwards": (
        [source("defective", start=48, stop=72, defect="backwards"), "--append-dim", "time"],
        "'time' increasing, no duplicates: goes back at",
    ),
    "a dtype change": (
        [source("defective", start=0, stop=48, defect="float64"), "--mode", "w"],
        "nothing shrank, disappeared or changed type: 't2m' dtype float32 -> float64",
    ),
    "a shrinking dimension": (
        [source(start=0, stop=24), "--mode", "w"],
        "nothing shrank, disappeared or changed type: 't2m' shape (48, 19, 36) -> (24, 19, 36) (shrank)",
    ),
    "the user's check raising": (
        [source(start=48, stop=72), "--append-dim", "time", "--publish-check", "tests.sources:refuse_everything"],
        "the user's check tests.sources:refuse_everything: raised: ValueError: this hook refuses every write",
    ),
}


@pytest.mark.parametrize("defect", DEFECTS)
def test_a_snapshot_that_fails_a_check_is_kept_off_its_branch_until_forced(
    defect: str, two_days: Path, tmp_path: Path, dask_address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = copy_of(two_days, tmp_path)
    tip = open_repo(target).lookup_branch("main")
    arguments, named = DEFECTS[defect]
    capsys.readouterr()

    code = main(["write", arguments[0], target, *arguments[1:], "--publish", "--dask-address", dask_address])

    err = capsys.readouterr().err
    assert code == 1
    assert "icefloe write: failed its checks, not published" in err
    assert named in err
    repo = open_repo(target)
    assert repo.lookup_branch("main") == tip
    (staged,) = [b for b in repo.list_branches() if b != "main"]
    assert f"kept on the staging branch {staged}" in err
    staged_id = repo.lookup_branch(staged)
    assert main(["staged", target]) == 0
    assert staged in capsys.readouterr().out
    held = committed(target, branch=staged)  # the staged snapshot reads back
    assert held.sizes["time"] in (24, 48, 72)
    (event,) = wait_for(lambda: rejected_events(target), "the rejected event", timeout=30)
    assert event["payload"]["staged_branch"] == staged
    failed = [f"{c['check']}: {c['detail']}" for c in event["payload"]["failed_checks"]]
    assert any(f.startswith(named) for f in failed), failed

    assert main(["publish", target, "--staged", staged]) == 1
    assert repo.lookup_branch("main") == tip
    assert main(["publish", target, "--staged", staged, "--force"]) == 0
    published = open_repo(target)
    assert staged not in published.list_branches()
    assert [s.id for s in published.ancestry(branch="main")][:2] == [staged_id, tip]
    xr.testing.assert_identical(committed(target), held)


def test_a_good_write_with_publish_moves_the_branch_as_a_plain_write_does(
    two_days: Path, tmp_path: Path, dask_address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    plain, gated = copy_of(two_days, tmp_path / "plain"), copy_of(two_days, tmp_path / "gated")

    append = [source(start=48, stop=96), "--append-dim", "time", "--dask-address", dask_address]
    assert main(["write", append[0], plain, *append[1:]]) == 0
    assert main(["write", append[0], gated, *append[1:], "--publish"]) == 0
    assert "published: staged on icefloe.staged.main." in capsys.readouterr().out

    assert snapshot_count(gated) == snapshot_count(plain) == 3
    assert open_repo(gated).list_branches() == {"main"}
    xr.testing.assert_identical(committed(gated), committed(plain))
    xr.testing.assert_identical(committed(gated), steps(0, 96).compute())
    assert main(["staged", gated]) == 0
    assert f"nothing staged in {gated}" in capsys.readouterr().out


def test_a_publish_killed_after_the_staged_commit_is_finished_by_the_same_request(
    two_days: Path, tmp_path: Path
) -> None:
    target, marker = copy_of(two_days, tmp_path), tmp_path / "kill-once"
    env = command_env(tmp_path / "home", **{KILL_FILE: str(marker)})
    tip = open_repo(target).lookup_branch("main")
    request = [source(start=48, stop=96), target, "--append-dim", "time", "--publish"]
    marker.touch()

    killed = icefloe("write", *request, "--publish-check", "tests.sources:killed_once", env=env, cwd=tmp_path)

    assert killed.returncode == -9, killed.stderr
    repo = open_repo(target)
    assert repo.lookup_branch("main") == tip
    (staged,) = [b for b in repo.list_branches() if b != "main"]
    staged_snapshot = repo.lookup_branch(staged)

    again = icefloe("write", *request, "--publish-check", "tests.sources:killed_once", env=env, cwd=tmp_path)

    assert again.returncode == 0, again.stderr
    assert f"an earlier attempt staged snapshot {staged_snapshot} on {staged}: checking it, no block written" in (
        again.stderr
    )
    assert "writing 2 arrays in" not in again.stderr  # no block planned, none written
    assert f"snapshot {staged_snapshot} on {target}" in again.stdout
    repo = open_repo(target)
    assert repo.lookup_branch("main") == staged_snapshot
    assert repo.list_branches() == {"main"}
    assert not list((Path(target) / "icefloe" / "kept").rglob("run.json"))  # the kept set went with the publish
    xr.testing.assert_identical(committed(target), steps(0, 96).compute())
    assert [s.id for s in repo.ancestry(branch="main")][1] == tip


def test_publish_refuses_a_staging_branch_that_is_not_there_and_fails_once_the_branch_moved(
    two_days: Path, tmp_path: Path, dask_address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = copy_of(two_days, tmp_path)
    nan_day = source("defective", start=48, stop=72, defect="nan")
    assert main(["write", nan_day, target, "--append-dim", "time", "--publish", "--dask-address", dask_address]) == 1
    repo = open_repo(target)
    (staged,) = repo.list_branches() - {"main"}
    capsys.readouterr()

    assert main(["publish", target, "--staged", "icefloe.staged.main.nothing"]) == 2
    assert f"no staging branch 'icefloe.staged.main.nothing' in {target}" in capsys.readouterr().err

    moved = main(["write", source(start=48, stop=72), target, "--append-dim", "time", "--dask-address", dask_address])
    assert moved == 0
    tip = repo.lookup_branch("main")
    assert main(["staged", target]) == 0
    assert f"(the tip is now {tip})" in capsys.readouterr().out
    assert main(["publish", target, "--staged", staged, "--force"]) == 1
    assert "branch 'main' moved to" in capsys.readouterr().err
    assert open_repo(target).lookup_branch("main") == tip

    assert main(["staged", target, "--clear"]) == 0
    assert f"removed 1 staging branches of {target}" in capsys.readouterr().out
    assert open_repo(target).list_branches() == {"main"}
