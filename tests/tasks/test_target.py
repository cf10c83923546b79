import pickle

import icechunk
import pytest

from tasks.errors import InvalidRequestError
from tasks.target import check_branch, open_repository, repository_storage
from tests.conftest import S3_ENV


def test_a_local_path_is_created_on_first_use(tmp_path) -> None:
    target = str(tmp_path / "new" / "repo")
    repo = open_repository(target)

    assert check_branch(repo, "main") == repo.lookup_branch("main")
    assert open_repository(target).lookup_branch("main") == repo.lookup_branch("main")


def test_an_unknown_branch_is_refused_naming_the_existing_ones(tmp_path) -> None:
    with pytest.raises(InvalidRequestError, match=r"branch 'nightly' does not exist.*\['main'\]"):
        check_branch(open_repository(str(tmp_path)), "nightly")


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
    session = open_repository(s3_target).writable_session("main")
    pickled = pickle.dumps(session.fork())

    assert S3_ENV["AWS_SECRET_ACCESS_KEY"].encode() not in pickled
    assert S3_ENV["AWS_ACCESS_KEY_ID"].encode() not in pickled
    assert isinstance(pickle.loads(pickled), icechunk.ForkSession)
