"""What a run's blocks depend on (`RunKey`): two runs with equal keys write identical blocks, so one may adopt the
blocks the other kept (`tasks/committing/kept_forks.py`).

The key digests the branch tip the run started from, the initialized arrays' metadata, each write's region and grid,
and the source (its dask graph names, the files' sizes and modification times). The chunks initialization wrote
(coordinates) are digested apart (`initialized_chunks`), as the set is kept: on an object store reading them back is
a round trip that a run with nothing to resume need not wait for.
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import zarr
from icechunk import Session
from zarr.abc.store import Store

from tasks.planning.arrays import ResolvedWrite
from tasks.storage.chunk_reads import Chunks, stored_bytes


def digest(text: str, length: int = 24) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@dataclass(frozen=True)
class RunKey:
    """What a run's blocks depend on; runs with equal keys write identical blocks."""

    branch: str
    parent_id: str
    request: str
    source: str

    @property
    def digest(self) -> str:
        return digest(json.dumps([self.branch, self.parent_id, self.request, self.source]))


def _initialized_metadata(session: Session) -> list[Any]:
    """The session's uncommitted changes but its chunks: every touched node's metadata."""
    diff = session.status()
    state: list[Any] = [sorted(diff.deleted_groups), sorted(diff.deleted_arrays)]
    for path in sorted(diff.new_groups | diff.new_arrays | diff.updated_groups | diff.updated_arrays):
        state.append([path, zarr.open(session.store, path=path.lstrip("/"), mode="r").metadata.to_dict()])
    return state


def initialized_chunks(store: Store, chunks: Chunks) -> str:
    """A digest of the bytes of the chunks `chunks` (what initialization wrote) as `store` holds them (read back
    all at once: one round trip on S3)."""
    state = [[a, i, hashlib.sha256(data).hexdigest()] for a, i, data in stored_bytes(store, chunks)]
    return digest(json.dumps(state), 64)


def run_key(session: Session, resolved: list[ResolvedWrite], parent_id: str, source_state: str) -> RunKey:
    """The key of a run whose arrays `session` has just initialized; `source_state` is `source_fingerprint`'s."""
    writes = sorted([r.path, r.region, r.unit] for r in resolved)
    request = json.dumps([_initialized_metadata(session), writes], default=str)
    source = json.dumps([sorted(r.write.source.name for r in resolved), source_state])
    return RunKey(str(session.branch), parent_id, digest(request, 64), digest(source, 64))


def why_not_reused(kept: dict[str, Any], key: RunKey) -> str:
    if kept.get("parent_id") != key.parent_id:
        return f"the branch tip moved (they were written on {kept.get('parent_id')}, the tip is {key.parent_id})"
    if kept.get("source") != key.source:
        return "the source changed"
    return "the request differs (arrays, regions or encoding)"
