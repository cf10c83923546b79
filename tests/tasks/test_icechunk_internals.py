"""The contract icefloe relies on in Icechunk's private API (`tasks/internals/icechunk.py`). If an Icechunk upgrade
breaks it, these fail first, and loudly: resuming a run depends on it."""

import pickle
from pathlib import Path

import icechunk
import numpy as np
import zarr

from tasks.internals.icechunk import session_bytes, session_from_bytes


def initialized(repo: icechunk.Repository) -> icechunk.Session:
    session = repo.writable_session("main")
    zarr.open_group(session.store, mode="a").create_array("x", shape=(10,), chunks=(5,), dtype="f4")
    return session


def test_a_restored_writable_session_keeps_its_node_ids_and_takes_its_forks_back(tmp_path: Path) -> None:
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "repo")))
    first = initialized(repo)
    fork = first.fork()
    zarr.open_array(fork.store, path="x", mode="r+")[0:5] = 1
    kept_fork = pickle.dumps(fork)

    restored = session_from_bytes(session_bytes(first))

    assert not restored.read_only
    assert restored.branch == "main"
    assert restored.get_node_id("/x") == first.get_node_id("/x")
    other = restored.fork()
    zarr.open_array(other.store, path="x", mode="r+")[5:10] = 2
    restored.merge(pickle.loads(kept_fork), other)
    restored.commit("resumed")
    values = zarr.open_array(repo.readonly_session("main").store, path="x", mode="r")[:]
    np.testing.assert_array_equal(values, [1] * 5 + [2] * 5)


def test_why_it_is_needed_a_fresh_initialization_gets_new_node_ids_and_loses_kept_chunks() -> None:
    repo = icechunk.Repository.create(icechunk.in_memory_storage())
    first = initialized(repo)
    fork = first.fork()
    zarr.open_array(fork.store, path="x", mode="r+")[0:5] = 1
    again = initialized(repo)

    assert again.get_node_id("/x") != first.get_node_id("/x")
    again.merge(fork)  # silently keeps nothing of the fork: its chunks belong to another node
    assert not again.status().updated_chunks
