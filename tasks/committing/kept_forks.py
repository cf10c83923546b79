"""Finished blocks kept until the commit, so the next attempt at a failed, interrupted or killed run writes only the
blocks that are missing.

A run's kept set sits under its target (a local repository's directory, or the repository's prefix on S3):

    icefloe/kept/<branch digest>/<run key>/run.json      what the key was made of (to say why a set is not reused),
                                                          the block size it was planned with, and where the
                                                          repository's operations log stood before it was written
                                          /session       the initialized writable session
                                          /blocks/<digest of the block's name>   one pickled fork per finished block

The run key digests everything a block's bytes depend on: the branch tip the run started from, the initialized
arrays' metadata, each write's region and grid, and the source (its dask graph names, the files' sizes and
modification times); `run.json` adds a digest of the chunks initialization wrote (coordinates), taken as the set is
kept, beside the blocks: on an object store reading them back is a round trip that a run with nothing to resume
need not wait for. A re-run with the same key and the same initialized chunks adopts the kept session, whose node
ids the kept forks refer to, and writes only the blocks not kept; any difference means nothing is reused.

Nothing in a kept set is referenced by a snapshot, so Icechunk's garbage collection deletes what it refers to (the
chunks the session and the forks wrote, the forks' own snapshots) once they are older than its cutoff. A set is
adopted as it is only when the operations log shows no collection since it was written; otherwise every chunk it
refers to is read back (one byte each) and what is gone is written again (`tasks/storage/garbage_collection.py`).

Finding a set costs one listing of the branch's kept sets; a new set is written while the blocks are; a commit
removes its own set, and the next run on the branch says why it does not reuse any other and removes those based
on an older tip. Nothing secret is kept: sessions and forks read credentials from the environment wherever they
are used.
"""

import hashlib
import json
import pickle
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from typing import Any

import fsspec
import icechunk
import zarr
from fsspec.implementations.local import LocalFileSystem
from icechunk import ForkSession, Session
from zarr.abc.store import Store

from tasks.errors import one_line
from tasks.internals.icechunk import session_bytes, session_from_bytes
from tasks.planning.arrays import ResolvedWrite
from tasks.records import Block, Logger, WrittenBlock
from tasks.storage.chunk_reads import Chunks, stored_bytes, unreadable_chunks
from tasks.storage.garbage_collection import Mark, collections_since
from tasks.storage.target import local_path, storage_options

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
    return _digest(json.dumps(state), 64)


def run_key(session: Session, resolved: list[ResolvedWrite], parent_id: str, source_state: str) -> RunKey:
    """The key of a run whose arrays `session` has just initialized; `source_state` is `source_fingerprint`'s."""
    writes = sorted([r.path, r.region, r.unit] for r in resolved)
    request = json.dumps([_initialized_metadata(session), writes], default=str)
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


def _files(fs: fsspec.AbstractFileSystem, directory: str) -> list[str]:
    """Every file under `directory`: one listing on an object store (by prefix: s3fs would look again for a file
    of that name when it finds none)."""
    try:
        if isinstance(fs, LocalFileSystem):
            return list(fs.find(directory))
        parent, name = directory.rsplit("/", 1)
        return list(fs.find(parent, prefix=f"{name}/"))
    except FileNotFoundError:
        return []


def _branch_dir(target: str, branch: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, root = _filesystem(target)
    return fs, f"{root}/{_digest(branch, 16)}"


def list_kept(target: str, branch: str) -> "Future[list[str]]":
    """Every file of the branch's kept sets, listed in a thread from now: on an object store the listing (and the
    client it needs, whose import alone takes a quarter of a second) is ready by the time the run has initialized
    its arrays and can tell which set would be its own."""
    listed: Future[list[str]] = Future()

    def run() -> None:
        try:
            listed.set_result(_files(*_branch_dir(target, branch)))
        except BaseException as e:
            listed.set_exception(e)

    threading.Thread(target=run, name="icefloe-kept-listing", daemon=True).start()
    return listed


def _remove(fs: fsspec.AbstractFileSystem, directory: str) -> None:
    """Remove `directory` and all in it; another run on the branch may be removing it too."""
    with suppress(FileNotFoundError):
        fs.rm(directory, recursive=True)


def why_not_reused(kept: dict[str, Any], key: RunKey) -> str:
    if kept.get("parent_id") != key.parent_id:
        return f"the branch tip moved (they were written on {kept.get('parent_id')}, the tip is {key.parent_id})"
    if kept.get("source") != key.source:
        return "the source changed"
    return "the request differs (arrays, regions or encoding)"


@dataclass(frozen=True)
class KeptForks:
    """One run's kept set. Picklable: block tasks save their forks into it wherever they run."""

    target: str
    key: RunKey

    def _location(self) -> tuple[fsspec.AbstractFileSystem, str, str]:
        fs, branch_dir = _branch_dir(self.target, self.key.branch)
        return fs, branch_dir, f"{branch_dir}/{self.key.digest}"

    def _block_path(self, run_dir: str, block: Block) -> str:
        return f"{run_dir}/blocks/{_digest(block.name)}"

    def save_block(self, block: Block, fork: ForkSession) -> None:
        fs, _, run_dir = self._location()
        fs.pipe_file(self._block_path(run_dir, block), pickle.dumps(fork))

    def clear(self) -> None:
        """Remove this run's kept set, once its commit has landed. Other runs' sets on the branch are explained
        and removed by the next run that starts on it."""
        fs, _, run_dir = self._location()
        _remove(fs, run_dir)


@dataclass
class Resumption:
    """What a run takes from its kept set, found by `resume`: the session to fork from, the block size to plan with
    (None: plan afresh), the kept blocks' files, and the point of the repository's log as of which every object they
    refer to is known to exist (a collection after it means the commit must check them again)."""

    kept: KeptForks
    session: Session
    block_bytes: int | None
    files: set[str] = field(default_factory=set)
    proven: Mark | None = None
    check_forks: bool = False

    def keeping(self, block_bytes: int) -> Callable[[], None]:
        """What starts this run's set (once its blocks are planned), to run beside the blocks: the session as it is
        now, before any block is merged into it, and all the next attempt needs to adopt it."""
        if self.block_bytes is not None:
            return lambda: None  # adopted: the set is there already
        fs, _, run_dir = self.kept._location()
        key = self.kept.key
        run = {"branch": key.branch, "parent_id": key.parent_id, "source": key.source, "created": time.time()}
        run |= {"block_bytes": block_bytes, "mark": None if self.proven is None else asdict(self.proven)}
        session, store, chunks = session_bytes(self.session), self.session.store, self.session.status().updated_chunks

        def keep() -> None:
            if isinstance(fs, LocalFileSystem):  # an object store has no directories to make
                fs.makedirs(f"{run_dir}/blocks", exist_ok=True)
            described = json.dumps(run | {"chunks": initialized_chunks(store, chunks)}).encode()
            fs.pipe({f"{run_dir}/run.json": described, f"{run_dir}/session": session})

        return keep

    def load_blocks(self, blocks: list[Block], logger: Logger) -> list[WrittenBlock]:
        """The kept forks of `blocks` that were written from this session (their arrays have the same node ids)
        and, when a collection ran since they were kept, whose every chunk still reads back."""
        fs, _, run_dir = self.kept._location()
        wanted = {self.kept._block_path(run_dir, b): b for b in blocks}
        paths = sorted(p for p in wanted if p in self.files)
        contents = fs.cat(paths, on_error="return") if paths else {}  # all at once: one round trip on S3
        found: list[WrittenBlock] = []
        for path in paths:
            block = wanted[path]
            try:
                data = contents[path]
                if isinstance(data, BaseException):
                    raise data
                fork: ForkSession = pickle.loads(data)
                # Node ids, not snapshot ids: each fork is based on a snapshot of its own.
                same = all(fork.get_node_id(f"/{a}") == self.session.get_node_id(f"/{a}") for a in block.arrays)
                lost = unreadable_chunks(fork.store, fork.status().updated_chunks) if same and self.check_forks else []
            except Exception as e:
                logger.warning("kept block %s is unreadable (%s); writing it again", block.name, one_line(e))
                continue
            if not same:
                logger.warning("kept block %s belongs to another attempt's session; writing it again", block.name)
            elif lost:
                logger.warning(
                    "kept block %s lost %d chunks to garbage collection (%s); writing it again",
                    block.name,
                    len(lost),
                    lost[0].describe(),
                )
            else:
                found.append(WrittenBlock(block, fork, kept=True))
        return found


def resume(
    kept: KeptForks,
    session: Session,
    repository: icechunk.Repository,
    since: Mark | None,
    logger: Logger,
    listed: "Future[list[str]] | None" = None,
) -> Resumption:
    """The kept set an earlier attempt of this run left, when it can be proven whole, else a new one for `session`
    (just initialized, after `since` was read off the repository's log).

    One listing (`list_kept`'s, when given) finds every kept set of the branch: this run's, and others, said why
    they are not reused (and removed when based on an older tip).
    """
    fs, branch_dir, run_dir = kept._location()
    by_run: dict[str, set[str]] = defaultdict(set)
    for path in _files(fs, branch_dir) if listed is None else listed.result():
        by_run[path.removeprefix(branch_dir + "/").split("/", 1)[0]].add(path)
    ours = by_run.pop(kept.key.digest, set())
    for other, paths in sorted(by_run.items()):
        _explain_other(fs, f"{branch_dir}/{other}", paths, kept.key, logger)
    fresh = Resumption(kept, session, None, proven=since)
    if not ours:
        return fresh
    try:
        adopted = _adopt(fs, run_dir, ours, kept, session, repository, logger)
    except Exception as e:  # a truncated or foreign file: start this run's set afresh
        logger.warning("cannot read the kept session at %s (%s); starting over", run_dir, one_line(e))
        adopted = None
    if adopted is None:
        _remove(fs, run_dir)
        return fresh
    return adopted


def _adopt(
    fs: fsspec.AbstractFileSystem,
    run_dir: str,
    files: set[str],
    kept: KeptForks,
    initialized: Session,
    repository: icechunk.Repository,
    logger: Logger,
) -> Resumption | None:
    """This run's kept set, or None (and why, logged) when it cannot be adopted in place of `initialized`."""
    names = [f"{run_dir}/run.json", f"{run_dir}/session"]
    if not set(names) <= files:
        logger.warning("the kept set at %s is incomplete (its run was stopped as it began); starting over", run_dir)
        return None
    contents = fs.cat(names)
    run = json.loads(contents[names[0]])
    session = session_from_bytes(contents[names[1]])
    if session.snapshot_id != kept.key.parent_id or session.branch != kept.key.branch:
        logger.warning("kept session at %s is not based on %s; starting over", run_dir, kept.key.parent_id)
        return None
    blocks = {f for f in files if f.startswith(f"{run_dir}/blocks/")}
    if run.get("chunks") != initialized_chunks(initialized.store, initialized.status().updated_chunks):
        logger.warning(
            "not reusing %d blocks kept by an earlier attempt: the chunks its initialization wrote (coordinates) "
            "differ from this run's; writing every block again",
            len(blocks),
        )
        return None
    kept_mark = Mark(**run["mark"]) if run.get("mark") else None
    collections = collections_since(repository, kept_mark)
    if collections.clear:
        return Resumption(kept, session, int(run["block_bytes"]), blocks, kept_mark)
    logger.info(
        "%d kept blocks: %s; reading back what they refer to", len(blocks), collections.describe("they were written")
    )
    lost = unreadable_chunks(session.store, session.status().updated_chunks)
    if lost:
        logger.warning(
            "not reusing %d blocks kept by an earlier attempt: %d chunks its initialized session wrote are gone "
            "(%s); writing every block again",
            len(blocks),
            len(lost),
            ", ".join(c.describe() for c in lost[:3]),
        )
        return None
    return Resumption(kept, session, int(run["block_bytes"]), blocks, collections.now, check_forks=True)


def _explain_other(fs: fsspec.AbstractFileSystem, run_dir: str, paths: set[str], key: RunKey, logger: Logger) -> None:
    """Say why another kept set of the branch is not reused; remove it when based on an older tip (none of its
    blocks can be reused again)."""
    try:
        other = json.loads(fs.cat_file(f"{run_dir}/run.json"))
    except FileNotFoundError:
        return  # a concurrent run on the branch removed it first, or it was stopped as it began
    blocks = sum(p.startswith(f"{run_dir}/blocks/") for p in paths)
    logger.info("not reusing %d blocks kept by an earlier run: %s", blocks, why_not_reused(other, key))
    if other.get("parent_id") != key.parent_id:
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
