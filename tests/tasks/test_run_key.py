"""A run's key says when an earlier attempt's kept blocks may be reused: the same branch, tip, initialized arrays,
regions and source; and when they may not, the log says which of those differs."""

from pathlib import Path

import dask.array as da
import icechunk
import pytest
import zarr

from tasks.committing.run_key import RunKey, run_key, why_not_reused
from tasks.planning.arrays import ResolvedWrite, initialize_arrays, resolve_writes
from tasks.request import ArraySpec, ArrayWrite


@pytest.fixture
def repo(tmp_path: Path) -> icechunk.Repository:
    return icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "repo")))


def key_of(
    repo: icechunk.Repository, source: da.Array, *, chunks: int = 4, state: str = "s1", name: str = "x"
) -> RunKey:
    session = repo.writable_session("main")
    group = zarr.open_group(session.store, mode="a")
    spec = ArraySpec(path=name, shape=source.shape, chunks=(chunks,), dtype="f4")
    resolved: list[ResolvedWrite] = resolve_writes(group, [ArrayWrite(source=source, target=spec)])
    initialize_arrays(group, resolved)
    return run_key(session, resolved, repo.lookup_branch("main"), state)


SOURCE = da.ones(16, chunks=4, dtype="f4")


def test_the_same_request_on_the_same_tip_has_the_same_key(repo: icechunk.Repository) -> None:
    assert key_of(repo, SOURCE) == key_of(repo, SOURCE)
    assert key_of(repo, SOURCE).digest == key_of(repo, SOURCE).digest


def test_what_a_block_depends_on_changes_the_key(repo: icechunk.Repository) -> None:
    first = key_of(repo, SOURCE)
    assert key_of(repo, SOURCE, chunks=8).request != first.request  # other arrays initialized
    assert key_of(repo, SOURCE, name="y").request != first.request
    assert key_of(repo, SOURCE, state="s2").source != first.source  # the source's files changed
    assert key_of(repo, da.zeros(16, chunks=4, dtype="f4")).source != first.source  # another graph
    assert key_of(repo, SOURCE, state="s2").request == first.request


def test_the_log_says_why_a_kept_set_is_not_reused(repo: icechunk.Repository) -> None:
    key = key_of(repo, SOURCE)
    kept = {"parent_id": key.parent_id, "source": key.source, "request": key.request}

    assert why_not_reused({**kept, "parent_id": "OTHERTIP"}, key).startswith(
        "the branch tip moved (they were written on"
    )
    assert why_not_reused({**kept, "source": "other"}, key) == "the source changed"
    assert why_not_reused({**kept, "request": "other"}, key) == "the request differs (arrays, regions or encoding)"
