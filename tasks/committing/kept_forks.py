"""Finished blocks kept until the commit, so the next attempt at a failed, interrupted or killed run writes only the
blocks that are missing (`tasks/committing/resumption.py` decides what is adopted).

A run's kept set sits under its target (a local repository's directory, or the repository's prefix on S3):

    icefloe/kept/<branch digest>/<run key>/run.json      what the key was made of (to say why a set is not reused),
                                                          the block size it was planned with, a digest of the
                                                          chunks initialization wrote, and where the repository's
                                                          operations log stood before it was written
                                          /session       the initialized writable session
                                          /blocks/<digest of the block's name>   one pickled fork per finished block

Finding a set costs one listing of the branch's kept sets; a new set is written while the blocks are; a commit
removes its own set. Nothing secret is kept: sessions and forks read credentials from the environment wherever they
are used.
"""

import json
import pickle
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass

import fsspec
from fsspec.implementations.local import LocalFileSystem
from icechunk import ForkSession

from tasks.committing.run_key import RunKey, digest
from tasks.records import Block
from tasks.storage.target import local_path, storage_options

KEPT = "icefloe/kept"


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


def files_under(fs: fsspec.AbstractFileSystem, directory: str) -> list[str]:
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
    return fs, f"{root}/{digest(branch, 16)}"


def list_kept(target: str, branch: str) -> list[str]:
    """Every file of the branch's kept sets. A run lists them in a thread as it takes its target: on an object
    store the listing (and the client it needs, whose import alone takes a quarter of a second) is ready by the
    time the run has initialized its arrays and can tell which set would be its own."""
    return files_under(*_branch_dir(target, branch))


def remove(fs: fsspec.AbstractFileSystem, directory: str) -> None:
    """Remove `directory` and all in it; another run on the branch may be removing it too."""
    with suppress(FileNotFoundError):
        fs.rm(directory, recursive=True)


@dataclass(frozen=True)
class KeptForks:
    """One run's kept set. Picklable: block tasks save their forks into it wherever they run."""

    target: str
    key: RunKey

    def location(self) -> tuple[fsspec.AbstractFileSystem, str, str]:
        fs, branch_dir = _branch_dir(self.target, self.key.branch)
        return fs, branch_dir, f"{branch_dir}/{self.key.digest}"

    def block_path(self, run_dir: str, block: Block) -> str:
        return f"{run_dir}/blocks/{digest(block.name)}"

    def save_block(self, block: Block, fork: ForkSession) -> None:
        fs, _, run_dir = self.location()
        fs.pipe_file(self.block_path(run_dir, block), pickle.dumps(fork))

    def clear(self, blocks: Iterable[Block], earlier: Iterable[str] = ()) -> None:
        """Remove this run's kept set, once its commit has landed: on an object store, its objects by name (its
        own two, one per block of the run's plan, and the `earlier` files an adopted set held) in one batch
        request, with no listing first (deleting a name that holds nothing is no error there); a local set as a
        directory. Other runs' sets on the branch are explained and removed by the next run that starts on it."""
        fs, _, run_dir = self.location()
        if isinstance(fs, LocalFileSystem):
            remove(fs, run_dir)
            return
        named = {f"{run_dir}/run.json", f"{run_dir}/session", *earlier}
        named |= {self.block_path(run_dir, block) for block in blocks}
        with suppress(FileNotFoundError):
            fs.rm(sorted(named))


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
    remove(fs, root)
    return len(runs)
