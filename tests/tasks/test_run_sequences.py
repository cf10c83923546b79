"""Any order of runs, faults, another writer and housekeeping on one target leaves what serial `to_zarr` would.

A Hypothesis state machine drives icefloe's plain run (`tasks/running/runs.py` with the local orchestrator) on a
small local repository: writes (mode "w", appends, region "r+" rewrites, a new variable, a refused request), each
possibly publishing through the gate, failing at a stage or at a block, and with another writer committing before
one of its stages; the same request again, its source unchanged or changed; Icechunk's snapshot expiry and garbage
collection; a rejected snapshot published by force. The model is a dict of numpy arrays updated serially as
`Dataset.to_zarr` would. After every step: the branch reads back whole and equals the model, every staging branch
equals what its run staged; each run added one snapshot (and the other writer's, when it committed) or, failed,
none; no kept set outlives the commit it served.

`make test` runs a bounded, derandomized number of sequences; `HYPOTHESIS_PROFILE=long` runs 1,000 random ones.
"""

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tasks.committing.kept_forks import kept_runs
from tasks.committing.publishing import STAGED, publish_staged
from tasks.errors import (
    BlockWriteError,
    CommitConflictError,
    IcefloeError,
    PublishRejectedError,
    UnreadableChunksError,
)
from tasks.records import Logger
from tasks.request import DatasetWrite, WriteOptions, dataset_write_gate
from tasks.running.local import LocalOrchestrator
from tasks.running.runs import run_write_dataset
from tests.conftest import open_repo

X = 3  # the second dimension's length
STEP = 2  # Zarr chunk along time: every write here is of whole chunks, as to_zarr's safe_chunks wants
T0 = np.datetime64("2020-01-01T00", "ns")
OFFSETS = {"a": 0, "b": 500, "c": 900}
ARMED: dict[str, int] = {}
"""The dask chunk (along time) of the source that fails when computed, while armed: the same graph both times, so
the same request run again after the fault is resumed."""


def _fail_where_armed(x: np.ndarray, block_info: Any = None) -> np.ndarray:
    if block_info and block_info[0]["chunk-location"][0] == ARMED.get("chunk"):
        raise OSError("injected: connection reset while reading the source")
    return x


def values(name: str, start: int, stop: int, version: int) -> np.ndarray:
    steps = np.arange(start, stop, dtype="f4")[:, None]
    return version * 10_000 + OFFSETS[name] + steps * 10 + np.arange(X, dtype="f4")


def times(start: int, stop: int) -> np.ndarray:
    return T0 + np.arange(start, stop).astype("timedelta64[h]")


@dataclass(frozen=True)
class Request:
    """One write: what a user asks for. `kind` is "w" (steps [0, stop)), "append" (`stop - start` steps),
    "region" (steps [start, stop) rewritten), "new" (variable "c" over every step) or "refused" (a region past the
    end)."""

    kind: str
    start: int
    stop: int
    version: int
    dask_steps: int
    publish: bool = False
    nan_step: bool = False  # one step NaN everywhere: a publish must refuse it

    def names(self, model: "Model") -> tuple[str, ...]:
        """An append carries every variable (one left out would leave the group unopenable, as to_zarr would)."""
        if self.kind == "append":
            return tuple(sorted(model.variables))
        return ("c",) if self.kind == "new" else ("a", "b")

    def span(self, model: "Model") -> tuple[int, int]:
        """Steps written, in the target's numbering."""
        if self.kind == "append":
            return model.length, model.length + self.stop - self.start
        if self.kind == "new":
            return 0, model.length
        return self.start, self.stop

    def source(self, model: "Model") -> xr.Dataset:
        start, stop = self.span(model)
        data = {}
        for name in self.names(model):
            array = values(name, start, stop, self.version)
            if self.nan_step:
                array[1] = np.nan
            dask = da.from_array(array, chunks=(self.dask_steps, X)).map_blocks(_fail_where_armed, dtype="f4")
            data[name] = (("time", "x"), dask)
        return xr.Dataset(data, coords={"time": times(start, stop)})

    def write(self) -> DatasetWrite:
        chunks = {"chunks": (STEP, X)}
        return {
            "w": DatasetWrite(mode="w", encoding={"a": chunks, "b": chunks}),
            "append": DatasetWrite(append_dim="time"),
            "new": DatasetWrite(mode="a", encoding={"c": chunks}),
        }.get(self.kind, DatasetWrite(mode="r+", region={"time": slice(self.start, self.stop)}))


@dataclass(frozen=True)
class Model:
    """What the branch holds: each variable's values, the time labels, and the other writer's array (in a group of
    its own, which `to_zarr` of the root group leaves alone but mode "w" deletes)."""

    variables: dict[str, np.ndarray]
    time: np.ndarray
    other: np.ndarray | None = None

    @property
    def length(self) -> int:
        return len(self.time)

    def after(self, request: Request) -> "Model":
        """The model after `request`, as serial `to_zarr` leaves it."""
        start, stop = request.span(self)
        written = request.source(self).compute()
        if request.kind == "w":
            return Model({n: written[n].values for n in ("a", "b")}, written["time"].values)
        variables = dict(self.variables)
        for name in request.names(self):
            new = written[name].values
            if request.kind in ("append", "region"):
                old = variables[name] if request.kind == "region" else np.concatenate([variables[name], new])
                new = old.copy()
                new[start:stop] = written[name].values
            variables[name] = new
        time = np.concatenate([self.time, written["time"].values]) if request.kind == "append" else self.time
        return Model(variables, time, self.other)

    def rejected_by_gate(self, request: Request) -> bool:
        """Whether the publish gate refuses what `request` makes of this: a NaN step, or a mode "w" that shrinks or
        drops a variable or the other writer's group."""
        loses = request.kind == "w" and (request.stop < self.length or "c" in self.variables or self.other is not None)
        return request.nan_step or loses


OTHER_WRITES = ("elsewhere", "a-chunk-0", "collect")
"""What another writer does: commit an array of its own group, or the first chunk of variable "a" (a conflict for
any run that writes that chunk too), or collect garbage (the operator's job, with a cutoff of now: what the run has
written but not committed yet is garbage to it)."""


def with_other(model: Model, what: str, value: float) -> Model:
    """`model` after the other writer's commit."""
    if what == "elsewhere":
        return replace(model, other=np.full(4, value))
    a = model.variables["a"].copy()
    a[0:STEP] = value
    return replace(model, variables={**model.variables, "a": a})


def commit_other(target: str, what: str, value: float) -> str:
    """Commit as a writer outside icefloe would; the snapshot."""
    session = open_repo(target).writable_session("main")
    if what == "elsewhere":
        group = zarr.open_group(session.store, mode="a").require_group("elsewhere")
        group.create_array("v", shape=(4,), dtype="f8", overwrite=True)[:] = value
    else:
        zarr.open_array(session.store, path="a", mode="r+")[0:STEP] = value
    return session.commit(f"another writer: {what}")


class InjectedFault(IcefloeError):
    pass


class FaultyOrchestrator(LocalOrchestrator):
    """The local orchestrator, failing as the stage `fail_at` starts, and running `before[stage]` first."""

    def __init__(self, fail_at: str | None, before: dict[str, list[Callable[[], None]]]) -> None:
        super().__init__()
        self.fail_at, self.before = fail_at, before

    def stage[R](self, name: str, work: Callable[[Logger], R]) -> R:
        for action in self.before.pop(name, []):
            action()
        if name == self.fail_at:
            raise InjectedFault(f"injected: the run fails as its {name} stage starts")
        return super().stage(name, work)


FAULTS = (None, "initialize", "block", "merge-and-commit", "conflict")
"""Where a run fails: nowhere, as a stage starts, in a block, or at the commit (another writer moved the branch and
the run may not rebase: `commit_retries=0`)."""
STAGES = ("initialize", "merge-and-commit")


@dataclass
class OtherWriter:
    """The other writer's commits during one run: those before the run read its tip, and those after."""

    target: str
    commits: int
    early: list[tuple[str, float]] = field(default_factory=list)
    late: list[tuple[str, float]] = field(default_factory=list)
    started_on: str | None = None  # the tip the run initialized on, when the writer moved it first
    collected: bool = False

    def at(self, stage: str, what: str) -> Callable[[], None]:
        def commit() -> None:
            if what == "collect":
                open_repo(self.target).garbage_collect(datetime.now(UTC))
                self.collected = True
                return
            self.commits += 1
            value = -float(self.commits)
            snapshot = commit_other(self.target, what, value)
            (self.early if stage == "initialize" else self.late).append((what, value))
            self.started_on = snapshot if stage == "initialize" else self.started_on

        return commit

    def fired(self) -> int:
        return len(self.early) + len(self.late)

    @staticmethod
    def applied(model: Model, commits: list[tuple[str, float]]) -> Model:
        for what, value in commits:
            model = with_other(model, what, value)
        return model


@dataclass
class Sequence:
    target: str
    model: Model
    other_commits: int = 0
    failed: Request | None = None  # the last failed request, to run again
    staged: dict[str, Model] = field(default_factory=dict)  # what each staging branch must hold


RUNS: dict[str, st.SearchStrategy[Any]] = dict(
    fault=st.sampled_from(FAULTS),
    other=st.none() | st.tuples(st.sampled_from(STAGES), st.sampled_from(OTHER_WRITES)),
    version=st.integers(1, 3),
    dask_steps=st.sampled_from([STEP, 2 * STEP]),
    publish=st.booleans(),
)


class RunSequences(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = tempfile.mkdtemp(prefix="icefloe-sequences-")
        self.s = Sequence(os.path.join(self.root, "repo"), Model({}, times(0, 0)))

    def teardown(self) -> None:
        ARMED.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def snapshots(self) -> int:
        return len(list(open_repo(self.s.target).ancestry(branch="main")))

    def staging(self) -> set[str]:
        return {b for b in open_repo(self.s.target).list_branches() if b.startswith(STAGED)}

    def kept(self) -> dict[str, str]:
        """The branch's kept sets: where each is, and the tip it was made over."""
        return {k.location: k.parent_id for k in kept_runs(self.s.target) if k.branch == "main"}

    def run(self, request: Request, fault: str | None, other: tuple[str, str] | None) -> None:
        """Run `request`, failing at `fault`, with the other writer committing `other[1]` as stage `other[0]`
        starts; then check the outcome against the model."""
        others = OtherWriter(self.s.target, self.s.other_commits)
        before = {stage: [] for stage in STAGES}
        if other:
            before[other[0]].append(others.at(*other))
        if fault == "conflict":
            before["merge-and-commit"].append(others.at("merge-and-commit", "elsewhere"))
        snapshots, staging, kept = self.snapshots(), self.staging(), self.kept()
        tip = open_repo(self.s.target).lookup_branch("main")
        options = WriteOptions(block_bytes=STEP * X * 4, retries=0, n_workers=2, commit_retries=0 if fault else 5)
        write = request.write()
        gate = dataset_write_gate(True, write, allow_nan=False, check=None) if request.publish else None
        orchestrator = FaultyOrchestrator(fault if fault in STAGES else None, before)
        source = request.source(self.s.model)  # the request as the user made it, against the tip they saw
        ARMED.update({"chunk": 0} if fault == "block" else {})
        result = None
        try:
            result = run_write_dataset(orchestrator, self.s.target, source, write, None, options, gate)
            error: Exception | None = None
        except (InjectedFault, BlockWriteError, CommitConflictError, PublishRejectedError, UnreadableChunksError) as e:
            error = e
        finally:
            ARMED.clear()
            self.s.other_commits = others.commits

        initialized_on = others.applied(self.s.model, others.early)  # what the run read as its tip
        unchanged = others.applied(initialized_on, others.late)
        rejected = request.publish and initialized_on.rejected_by_gate(request)
        if result is not None:
            reused_all = result.reused_blocks == result.blocks  # an earlier attempt's: no block computed, none failed
            assert fault is None or (fault == "block" and reused_all), f"the run should have failed at {fault}"
            assert not rejected, "the gate should have refused it"
            # the run's changes over the other writer's (rebased), or (an array it never saw) beside them
            serial = unchanged.after(request)
            beside = others.applied(initialized_on.after(request), others.late)
            held = self.held("main")
            only_beside = others.late and all(what == "elsewhere" for what, _ in others.late)
            self.s.model = beside if only_beside and same(held, beside) else serial
            self.s.failed = None
            left = self.kept()
            assert set(left) <= set(kept), "a kept set outlived the commit it served"
            assert set(left.values()) <= {others.started_on or tip}, "a kept set over an older tip was left"
        else:
            if isinstance(error, PublishRejectedError):
                assert rejected, f"refused by the gate: {error}"
            elif isinstance(error, UnreadableChunksError):  # what it wrote was collected before its commit
                assert others.collected, error
            else:  # the fault, or a real conflict with the other writer's change
                assert fault is not None or others.late, error
            self.s.model, self.s.failed = unchanged, request
        assert self.snapshots() == snapshots + others.fired() + (result is not None), (request, fault, other, error)
        for name in self.staging() - staging:
            assert request.publish
            self.s.staged[name] = initialized_on.after(request)
        for name in staging - self.staging():
            self.s.staged.pop(name)

    # -- rules --------------------------------------------------------------------------------------------------

    @initialize(n=st.integers(1, 4), dask_steps=st.sampled_from([STEP, 2 * STEP]))
    def first_write(self, n: int, dask_steps: int) -> None:
        request = Request("w", 0, n * STEP, 0, dask_steps)
        run_write_dataset(LocalOrchestrator(), self.s.target, request.source(self.s.model), request.write())
        self.s.model = self.s.model.after(request)

    @rule(n=st.integers(1, 4), nan=st.booleans(), **RUNS)
    def write_w(self, n: int, nan: bool, **kw: Any) -> None:
        self.run_request(Request("w", 0, n * STEP, kw["version"], kw["dask_steps"], kw["publish"], nan), kw)

    @rule(n=st.integers(1, 3), nan=st.booleans(), **RUNS)
    def append(self, n: int, nan: bool, **kw: Any) -> None:
        self.run_request(Request("append", 0, n * STEP, kw["version"], kw["dask_steps"], kw["publish"], nan), kw)

    @rule(first=st.integers(0, 99), chunks=st.integers(1, 99), **RUNS)
    def rewrite_region(self, first: int, chunks: int, **kw: Any) -> None:
        """Whole chunks of the steps held, drawn by place (what the branch holds varies with what failed)."""
        held = self.s.model.length // STEP
        start = first % held
        stop = start + 1 + (chunks - 1) % (held - start)
        request = Request("region", start * STEP, stop * STEP, kw["version"], kw["dask_steps"], kw["publish"])
        self.run_request(request, kw)

    @rule(**RUNS)
    def new_variable(self, **kw: Any) -> None:
        """Variable "c" over every step, once. Every rule is always enabled, whatever failed before: Hypothesis
        draws the same values for the same sequence however runs turned out, as it must to replay one."""
        if "c" not in self.s.model.variables:
            self.run_request(Request("new", 0, 0, kw["version"], kw["dask_steps"], kw["publish"]), kw)

    @rule(past=st.integers(1, 2))
    def refused_request(self, past: int) -> None:
        """A region past the end: refused before anything is written."""
        length = self.s.model.length
        request = Request("region", length, length + past * STEP, 1, STEP)
        snapshots, kept = self.snapshots(), self.kept()
        with pytest.raises(ValueError, match="region"):
            run_write_dataset(LocalOrchestrator(), self.s.target, request.source(self.s.model), request.write())
        assert (self.snapshots(), self.kept()) == (snapshots, kept)

    def run_request(self, request: Request, kw: dict[str, Any]) -> None:
        self.run(request, kw["fault"], kw["other"])

    @rule(changed=st.booleans())
    def same_request_again(self, changed: bool) -> None:
        """The failed request again, fault gone; its source changed meanwhile (a new version of the data), or not."""
        if self.s.failed is None:
            return
        request = self.s.failed
        if changed:
            request = replace(request, version=request.version + 10)
        self.run(request, None, None)

    @rule()
    def housekeeping(self) -> None:
        """The operator's nightly job: expire every snapshot but the tips, then collect garbage older than now."""
        repo = open_repo(self.s.target)
        now = datetime.now(UTC)
        repo.expire_snapshots(now)
        repo.garbage_collect(now)

    @rule(which=st.integers(0, 15))
    def publish_by_force(self, which: int) -> None:
        """`icefloe publish --staged NAME --force`: moves the branch when it has not moved since, else refuses."""
        if not self.s.staged:
            return
        names = sorted(self.s.staged)  # named by run keys, which differ from one replay to the next: drawn by place
        name = names[which % len(names)]
        repo = open_repo(self.s.target)
        tip, snapshots = repo.lookup_branch("main"), self.snapshots()
        staged_over = repo.lookup_snapshot(repo.lookup_branch(name)).parent_id
        logger: Logger = LocalOrchestrator().logger
        if staged_over != tip:
            with pytest.raises(CommitConflictError):
                publish_staged(repo, name, self.s.target, True, logger)
            assert self.snapshots() == snapshots
            return
        publish_staged(repo, name, self.s.target, True, logger)
        self.s.model = self.s.staged.pop(name)
        self.s.failed = None
        assert self.snapshots() == snapshots + 1
        assert name not in self.staging()

    # -- invariants ---------------------------------------------------------------------------------------------

    def held(self, branch: str) -> Model:
        session = open_repo(self.s.target).readonly_session(branch=branch)
        dataset = xr.open_zarr(session.store, consolidated=False).compute()
        group = zarr.open_group(session.store, mode="r")
        other = group["elsewhere/v"][:] if "elsewhere" in group else None  # type: ignore[index]
        return Model({n: v.values for n, v in dataset.data_vars.items()}, dataset["time"].values, other)

    @invariant()
    def branches_hold_the_model(self) -> None:
        assert_same(self.held("main"), self.s.model, "main")
        for name, expected in self.s.staged.items():
            assert_same(self.held(name), expected, name)


def same(held: Model, expected: Model) -> bool:
    try:
        assert_same(held, expected, "")
    except AssertionError:
        return False
    return True


def assert_same(held: Model, expected: Model, where: str) -> None:
    assert sorted(held.variables) == sorted(expected.variables), where
    np.testing.assert_array_equal(held.time, expected.time, err_msg=where)
    for name, array in expected.variables.items():
        np.testing.assert_array_equal(held.variables[name], array, err_msg=f"{where}: {name}")
    if expected.other is None:
        assert held.other is None, where
    else:
        np.testing.assert_array_equal(held.other, expected.other, err_msg=where)


LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
pytestmark = pytest.mark.timeout(0 if LONG else 600)  # the long profile runs for an hour or more
PROFILES = {
    "long": settings(max_examples=1000, stateful_step_count=25),
    "default": settings(max_examples=25, stateful_step_count=15, derandomize=True),
}
TestRunSequences = RunSequences.TestCase
TestRunSequences.settings = settings(
    PROFILES["long" if LONG else "default"],
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
