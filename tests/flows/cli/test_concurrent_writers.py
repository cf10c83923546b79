"""Two `icefloe write` processes appending to one target at the same moment, five rounds: on local disk (one
spelling or two) they take turns; on S3 with no Prefect API they either both land or one fails cleanly. Every
snapshot stays readable and no append is lost or duplicated."""

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BUCKET, S3_ENV, assert_appends_landed_once, open_repo
from tests.processes import BIN, command_env, icefloe

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROUNDS = 5
STEPS = 8  # per write: the first write and 5 rounds of 2 writers take 88 of the 96 steps steps() has


def source(start: int) -> str:
    return json.dumps({"kind": "callable", "function": "tests.sources:steps",
                       "keywords": {"start": start, "stop": start + STEPS}})  # fmt: skip


def run_round(targets: tuple[str, str], starts: tuple[int, int], env: dict[str, str], cwd: Path) -> list[str]:
    """Both writers at once; each one's outcome: "landed", "conflict" (a clean failure) or its error output."""
    argv = [[str(BIN / "icefloe"), "write", source(start), target, "--append-dim", "time"]
            for target, start in zip(targets, starts, strict=True)]  # fmt: skip
    writers = [subprocess.Popen(a, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for a in argv]  # fmt: skip
    outcomes = []
    for writer in writers:
        _, stderr = writer.communicate(timeout=300)
        if writer.returncode == 0:
            outcomes.append("landed")
        elif writer.returncode == 1 and "CommitConflictError" in stderr and "nothing was committed" in stderr:
            outcomes.append("conflict")
        else:
            outcomes.append(f"exit {writer.returncode}: {stderr[-2000:]}")
    return outcomes


@pytest.mark.parametrize("spelling", ["one-spelling", "two-spellings"])
def test_two_writers_on_one_local_target_take_turns(spelling: str, tmp_path: Path) -> None:
    env = command_env(tmp_path / "home")
    absolute = str(tmp_path / "data" / "repo")
    targets = ("data/repo", absolute if spelling == "two-spellings" else "data/repo")
    assert icefloe("write", source(0), absolute, env=env, cwd=tmp_path).returncode == 0
    landed = list(range(STEPS))

    for round_ in range(ROUNDS):
        starts = (STEPS * (1 + 2 * round_), STEPS * (2 + 2 * round_))
        assert run_round(targets, starts, env, tmp_path) == ["landed", "landed"]
        landed += [s for start in starts for s in range(start, start + STEPS)]

    assert_appends_landed_once(absolute, landed)
    assert len(list(open_repo(absolute).ancestry(branch="main"))) == 2 + 2 * ROUNDS


def test_two_writers_on_one_s3_target_without_prefect_both_land_or_one_fails_cleanly(
    s3_endpoint: str, tmp_path: Path
) -> None:
    env = command_env(tmp_path / "home", **S3_ENV, AWS_ENDPOINT_URL=s3_endpoint)
    target = f"s3://{BUCKET}/writers-{tmp_path.name}"
    assert icefloe("write", source(0), target, env=env, cwd=tmp_path).returncode == 0
    landed = list(range(STEPS))
    outcomes: list[str] = []

    for round_ in range(ROUNDS):
        starts = (STEPS * (1 + 2 * round_), STEPS * (2 + 2 * round_))
        round_outcomes = run_round((target, target), starts, env, tmp_path)
        assert sorted(round_outcomes) in (["landed", "landed"], ["conflict", "landed"]), round_outcomes
        outcomes += round_outcomes
        landed += [s for start, o in zip(starts, round_outcomes, strict=True) if o == "landed"
                   for s in range(start, start + STEPS)]  # fmt: skip

    with pytest.MonkeyPatch.context() as env_for_reading:
        for key, value in {**S3_ENV, "AWS_ENDPOINT_URL": s3_endpoint}.items():
            env_for_reading.setenv(key, value)
        assert_appends_landed_once(target, landed)
        assert len(list(open_repo(target).ancestry(branch="main"))) == 2 + outcomes.count("landed")
