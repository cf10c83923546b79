"""Finished blocks kept until the commit, so the next attempt at a failed, interrupted or killed run writes only the
blocks that are missing.

A run's kept set sits under its target (a local repository's directory, or the repository's prefix on S3):

    icefloe/kept/<branch digest>/<run key>/run.json      what the key was made of (to say why a set is not reused)
                                          /session       the initialized writable session
                                          /block-bytes   the block size the set was planned with
                                          /blocks/<digest of the block's name>   one pickled fork per finished block

The run key digests everything a block's bytes depend on: the branch tip the run started from, the initialized
arrays (their metadata and whatever initialization wrote), each write's region and grid, and the source (its dask
graph names, the files' sizes and modification times). A re-run with the same key adopts the kept session, whose
node ids the kept forks refer to, and writes only the blocks not kept; any difference means nothing is reused.
A commit removes its own kept set; the next run on the branch says why it does not reuse any other and removes
those based on an older tip. Nothing secret is kept: sessions and forks read credentials from the
environment wherever they are used.
"""

import hashlib
import json
import pickle
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np
import zarr
from fsspec.implementations.local import LocalFileSystem
from icechunk import ForkSession, Session

from tasks.arrays import ResolvedWrite
from tasks.icechunk_internals import session_bytes, session_from_bytes
from tasks.plan import Block
from tasks.target import local_path, storage_options

if TYPE_CHECKING:
    from tasks.orchestration import Logger  # which imports this module, through tasks.write
    from tasks.write import WrittenBlock

KEPT = "icefloe/kept"


def _digest(text: str, length: int = 24) -> str:
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
        return _digest(json.dumps([self.branch, self.parent_id, self.request, self.source]))


def _initialized_state(session: Session) -> list[Any]:
    """The session's uncommitted changes: every touched node's metadata and the values of every chunk written."""
    diff = session.status()
    store = session.store
    state: list[Any] = [sorted(diff.deleted_groups), sorted(diff.deleted_arrays)]
    for path in sorted(diff.new_groups | diff.new_arrays | diff.updated_groups | diff.updated_arrays):
        state.append([path, zarr.open(store, path=path.lstrip("/"), mode="r").metadata.to_dict()])
    for path, indices in sorted(diff.updated_chunks.items()):
        array = zarr.open_array(store, path=path.lstrip("/"), mode="r")
        for index in sorted(map(tuple, indices)):
            values = np.asarray(array.get_block_selection(index))
            data = repr(values.tolist()).encode() if values.dtype.hasobject else values.tobytes()
            state.append([path, index, hashlib.sha256(data).hexdigest()])
    return state


def run_key(session: Session, resolved: list[ResolvedWrite], parent_id: str, source_state: str) -> RunKey:
    """The key of a run whose arrays `session` has just initialized; `source_state` is `source_fingerprint`'s."""
    writes = sorted([r.path, r.region, r.unit] for r in resolved)
    request = json.dumps([_initialized_state(session), writes], default=str)
    source = json.dumps([sorted(r.write.source.name for r in resolved), source_state])
    return RunKey(str(session.branch), parent_id, _digest(request, 64), _digest(source, 64))


def _filesystem(target: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and the directory that hold `target`'s kept sets."""
    path = local_path(target)
    if path is not None:
        return LocalFileSystem(), f"{path}/{KEPT}"
    # no listings cache: other processes add and remove kept sets while a served process lives on
    fs, root = fsspec.url_to_fs(target, use_listings_cache=False, **(storage_options(target) or {}))
    return fs, f"{root.rstrip('/')}/{KEPT}"


def _matches(fs: fsspec.AbstractFileSystem, pattern: str) -> list[str]:
    try:
        return list(fs.glob(pattern))
    except FileNotFoundError:  # s3fs, when another run removed the directory while it was listed
        return []


def _listing(fs: fsspec.AbstractFileSystem, directory: str) -> list[str]:
    try:
        return list(fs.ls(directory, detail=False))
    except FileNotFoundError:
        return []


def _remove(fs: fsspec.AbstractFileSystem, directory: str) -> None:
    """Remove `directory` and all in it; another run on the branch may be removing it too."""
    with suppress(FileNotFoundError):
        fs.rm(directory, recursive=True)


def _why_not(kept: dict[str, Any], key: RunKey) -> str:
    if kept.get("parent_id") != key.parent_id:
        return f"the branch tip moved (they were written on {kept.get('parent_id')}, the tip is {key.parent_id})"
    if kept.get("source") != key.source:
        return "the source changed"
    return "the request differs (arrays, regions, encoding or initialized values)"


@dataclass(frozen=True)
class KeptForks:
    """One run's kept set. Picklable: block tasks save their forks into it wherever they run."""

    target: str
    key: RunKey

    def _location(self) -> tuple[fsspec.AbstractFileSystem, str, str]:
        fs, root = _filesystem(self.target)
        branch_dir = f"{root}/{_digest(self.key.branch, 16)}"
        return fs, branch_dir, f"{branch_dir}/{self.key.digest}"

    def resume_session(self, session: Session, logger: "Logger") -> Session:
        """The kept session when an earlier attempt of this run left one, else `session`, kept from now on."""
        fs, branch_dir, run_dir = self._location()
        try:
            kept = session_from_bytes(fs.cat_file(f"{run_dir}/session"))
            if kept.snapshot_id == self.key.parent_id and kept.branch == self.key.branch:
                return kept
            logger.warning("kept session at %s is not based on %s; starting over", run_dir, self.key.parent_id)
        except FileNotFoundError:
            self._explain_others(fs, branch_dir, logger)
        except Exception as e:  # a truncated or foreign file: start this run's set afresh
            logger.warning("cannot read the kept session at %s (%s); starting over", run_dir, e)
        _remove(fs, run_dir)
        fs.makedirs(f"{run_dir}/blocks", exist_ok=True)
        run = {"branch": self.key.branch, "parent_id": self.key.parent_id, "source": self.key.source}
        fs.pipe_file(f"{run_dir}/run.json", json.dumps({**run, "created": time.time()}).encode())
        fs.pipe_file(f"{run_dir}/session", session_bytes(session))
        return session

    def _explain_others(self, fs: fsspec.AbstractFileSystem, branch_dir: str, logger: "Logger") -> None:
        """Say why other kept sets of the branch are not reused; remove those based on an older tip (none of
        their blocks can be reused again)."""
        for run_json in _matches(fs, f"{branch_dir}/*/run.json"):
            run_dir = run_json.rsplit("/", 1)[0]
            try:
                kept = json.loads(fs.cat_file(run_json))
            except FileNotFoundError:
                continue  # a concurrent run on the branch removed it first
            blocks = len(_listing(fs, f"{run_dir}/blocks"))
            logger.info("not reusing %d blocks kept by an earlier run: %s", blocks, _why_not(kept, self.key))
            if kept.get("parent_id") != self.key.parent_id:
                _remove(fs, run_dir)

    def block_bytes(self, proposed: int) -> int:
        """The block size the kept set was planned with (the same blocks, so they can be reused), else `proposed`."""
        fs, _, run_dir = self._location()
        try:
            return int(fs.cat_file(f"{run_dir}/block-bytes"))
        except FileNotFoundError:
            fs.pipe_file(f"{run_dir}/block-bytes", str(proposed).encode())
            return proposed

    def _block_path(self, run_dir: str, block: Block) -> str:
        return f"{run_dir}/blocks/{_digest(block.name)}"

    def save_block(self, block: Block, fork: ForkSession) -> None:
        fs, _, run_dir = self._location()
        fs.pipe_file(self._block_path(run_dir, block), pickle.dumps(fork))

    def load_blocks(self, blocks: list[Block], session: Session, logger: "Logger") -> list["WrittenBlock"]:
        """The kept forks of `blocks` that were written from `session` (their arrays have the same node ids)."""
        from tasks.write import WrittenBlock  # tasks.write keeps forks through this module

        fs, _, run_dir = self._location()
        kept = set(_listing(fs, f"{run_dir}/blocks"))
        found: list[WrittenBlock] = []
        for block in blocks:
            path = self._block_path(run_dir, block)
            if path not in kept:
                continue
            try:
                fork: ForkSession = pickle.loads(fs.cat_file(path))
                # Node ids, not snapshot ids: each fork is based on a snapshot of its own.
                same = all(fork.get_node_id(f"/{a}") == session.get_node_id(f"/{a}") for a in block.arrays)
            except Exception as e:
                logger.warning("kept block %s is unreadable (%s); writing it again", block.name, e)
                continue
            if same:
                found.append(WrittenBlock(block, fork, kept=True))
            else:
                logger.warning("kept block %s belongs to another attempt's session; writing it again", block.name)
        return found

    def clear(self) -> None:
        """Remove this run's kept set, once its commit has landed. Other runs' sets on the branch are explained
        and removed by the next run that starts on it."""
        fs, _, run_dir = self._location()
        _remove(fs, run_dir)


@dataclass(frozen=True)
class KeptRun:
    """A kept set as `icefloe kept` lists it."""

    location: str
    branch: str
    parent_id: str
    blocks: int
    created: float


def kept_runs(target: str) -> list[KeptRun]:
    fs, root = _filesystem(target)
    runs = []
    for run_json in sorted(_matches(fs, f"{root}/*/*/run.json")):
        run_dir = run_json.rsplit("/", 1)[0]
        kept = json.loads(fs.cat_file(run_json))
        blocks = _listing(fs, f"{run_dir}/blocks")
        runs.append(
            KeptRun(
                location=fs.unstrip_protocol(run_dir),
                branch=kept["branch"],
                parent_id=kept["parent_id"],
                blocks=len(blocks),
                created=float(kept["created"]),
            )
        )
    return runs


def clear_kept(target: str) -> int:
    """Remove every kept set of `target`; how many there were."""
    runs = kept_runs(target)
    fs, root = _filesystem(target)
    _remove(fs, root)
    return len(runs)
