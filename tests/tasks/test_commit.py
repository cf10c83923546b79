"""The one commit of a run on a real repository: rebased over another writer's commit that touched other chunks,
refused naming the paths when both wrote the same chunk, and refused when the branch keeps moving."""

from pathlib import Path

import icechunk
import numpy as np
import pytest
import zarr

from tasks.committing.commit import commit_session
from tasks.errors import CommitConflictError


@pytest.fixture
def repo(tmp_path: Path) -> icechunk.Repository:
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "repo")))
    session = repo.writable_session("main")
    zarr.open_group(session.store, mode="a").create_array("x", shape=(4,), chunks=(2,), dtype="f4", fill_value=0)
    session.commit("x")
    return repo


def write(repo: icechunk.Repository, where: slice, value: float) -> icechunk.Session:
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="x", mode="r+")[where] = value
    return session


def test_a_commit_is_rebased_over_another_writers_commit_to_other_chunks(repo: icechunk.Repository) -> None:
    ours, theirs = write(repo, slice(0, 2), 1), write(repo, slice(2, 4), 2)
    theirs.commit("theirs")

    snapshot = commit_session(ours, "ours", {"icefloe": {}}, rebase_tries=3)

    tip = zarr.open_array(repo.readonly_session(snapshot_id=snapshot).store, path="x", mode="r")
    np.testing.assert_array_equal(tip[:], [1, 1, 2, 2])
    assert [s.message for s in repo.ancestry(branch="main")][:2] == ["ours", "theirs"]


def test_both_writing_one_chunk_is_refused_naming_the_path_and_nothing_is_committed(repo: icechunk.Repository) -> None:
    ours, theirs = write(repo, slice(0, 2), 1), write(repo, slice(0, 2), 2)
    theirs.commit("theirs")

    with pytest.raises(CommitConflictError, match=r"another commit on branch 'main' changed the same data \(/x\)"):
        commit_session(ours, "ours", {}, rebase_tries=3)
    assert next(repo.ancestry(branch="main")).message == "theirs"


def test_without_rebases_a_moved_branch_is_refused(repo: icechunk.Repository) -> None:
    ours, theirs = write(repo, slice(0, 2), 1), write(repo, slice(2, 4), 2)
    theirs.commit("theirs")

    with pytest.raises(CommitConflictError, match=r"branch 'main' kept moving after 0 rebases; nothing was committed"):
        commit_session(ours, "ours", {}, rebase_tries=0)
