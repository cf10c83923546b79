"""Whether a run adopts the blocks an earlier attempt of it kept (`tasks/committing/kept_forks.py`), and what it
writes again.

A re-run with the same key (`tasks/committing/run_key.py`) and the same initialized chunks adopts the kept session,
whose node ids the kept forks refer to, and writes only the blocks not kept; any difference means nothing is reused,
and the log says why. Other kept sets of the branch are explained, and removed when based on an older tip.

Nothing in a kept set is referenced by a snapshot, so Icechunk's garbage collection deletes what it refers to (the
chunks the session and the forks wrote, the forks' own snapshots) once they are older than its cutoff. A set is
adopted as it is only when its mark shows no collection since it was written (the operations log, or on format 1
a canary snapshot); otherwise every chunk it refers to is read back (one byte each) and what is gone is written
again (`tasks/storage/garbage_collection.py`).
"""

import json
import pickle
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field

import fsspec
import icechunk
from fsspec.implementations.local import LocalFileSystem
from icechunk import ForkSession, Session

from tasks.committing.kept_forks import KeptForks, files_under, remove
from tasks.committing.run_key import RunKey, initialized_chunks, why_not_reused
from tasks.errors import one_line
from tasks.internals.icechunk import session_bytes, session_from_bytes
from tasks.records import Block, Logger, WrittenBlock
from tasks.storage.chunk_reads import unreadable_chunks
from tasks.storage.garbage_collection import Mark, collections_since, mark_from_dict


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
        fs, _, run_dir = self.kept.location()
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

    def clear(self, blocks: list[Block]) -> None:
        """Remove the run's kept set once its commit has landed (`blocks`: the run's plan)."""
        self.kept.clear(blocks, self.files)

    def load_blocks(self, blocks: list[Block], logger: Logger) -> list[WrittenBlock]:
        """The kept forks of `blocks` that were written from this session (their arrays have the same node ids)
        and, when a collection ran since they were kept, whose every chunk still reads back."""
        fs, _, run_dir = self.kept.location()
        wanted = {self.kept.block_path(run_dir, b): b for b in blocks}
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
    fs, branch_dir, run_dir = kept.location()
    by_run: dict[str, set[str]] = defaultdict(set)
    for path in files_under(fs, branch_dir) if listed is None else listed.result():
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
        remove(fs, run_dir)
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
    kept_mark = mark_from_dict(run["mark"]) if run.get("mark") else None
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
        remove(fs, run_dir)
