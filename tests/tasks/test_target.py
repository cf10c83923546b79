import fcntl
import logging
import pickle
import subprocess
import sys
from pathlib import Path

import icechunk
import pytest

from tasks.errors import InvalidRequestError
from tasks.storage.target import check_branch, local_path, local_target_lock, open_target, repository_storage
from tests.conftest import S3_ENV


def test_a_local_path_is_created_on_first_use(tmp_path) -> None:
    target = str(tmp_path / "new" / "repo")
    opened = open_target(target, "main")

    assert opened.repository is not None
    assert check_branch(opened.repository, "main") == opened.parent_id == opened.repository.lookup_branch("main")
    assert open_target(target, "main").parent_id == opened.parent_id


def test_an_unknown_branch_is_refused_naming_the_existing_ones(tmp_path) -> None:
    open_target(str(tmp_path), "main")
    with pytest.raises(InvalidRequestError, match=r"branch 'nightly' does not exist.*\['main'\]"):
        open_target(str(tmp_path), "nightly")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("s3://bucket-only", "names no bucket or no prefix"),
        ("s3:///prefix", "names no bucket or no prefix"),
        ("gs://bucket/prefix", "has scheme 'gs'"),
    ],
)
def test_targets_icefloe_cannot_write_are_refused(target: str, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        repository_storage(target)


@pytest.mark.s3
def test_no_credential_travels_in_a_pickled_fork(s3_target: str) -> None:
    """Credentials come from each process's environment; a fork sent to a worker (or kept as a result) has none."""
    session = open_target(s3_target, "main").session
    pickled = pickle.dumps(session.fork())

    assert S3_ENV["AWS_SECRET_ACCESS_KEY"].encode() not in pickled
    assert S3_ENV["AWS_ACCESS_KEY_ID"].encode() not in pickled
    assert isinstance(pickle.loads(pickled), icechunk.ForkSession)


def _taken_elsewhere(lock_file: Path) -> bool:
    """Whether another open file description holds the lock (flock locks belong to those, not to processes)."""
    with lock_file.open("a") as other:
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(other, fcntl.LOCK_UN)
        return False


def test_a_local_repository_is_held_under_every_spelling_of_its_path(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    lock_file = tmp_path / "data" / ".x.icechunk.icefloe-lock"

    with local_target_lock("data/x.icechunk", logging.getLogger("test")):
        assert _taken_elsewhere(lock_file)
        for spelling in (
            "./data/x.icechunk",
            str(tmp_path / "data" / "x.icechunk"),
            f"file://{tmp_path}/data/x.icechunk",
        ):
            assert local_path(spelling) == local_path("data/x.icechunk")
    assert not _taken_elsewhere(lock_file)


def test_a_killed_holder_frees_the_repository_at_once(tmp_path: Path) -> None:
    target = str(tmp_path / "x.icechunk")
    holder = subprocess.Popen(
        [sys.executable, "-c", f"""
import logging, sys, time
from tasks.storage.target import local_target_lock
with local_target_lock({target!r}, logging.getLogger()):
    print("held", flush=True)
    time.sleep(600)
"""],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    assert _taken_elsewhere(tmp_path / ".x.icechunk.icefloe-lock")

    holder.kill()
    holder.wait()

    assert not _taken_elsewhere(tmp_path / ".x.icechunk.icefloe-lock")


def test_an_object_store_target_takes_no_local_lock(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with local_target_lock("s3://bucket/prefix", logging.getLogger("test")):
        assert list(tmp_path.iterdir()) == []
