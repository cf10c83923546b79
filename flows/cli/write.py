"""`icefloe write` (and `--dry-run`) and `icefloe demo`."""

import argparse
import json
import os
import re
from typing import TYPE_CHECKING, Any

import xarray as xr

if TYPE_CHECKING:
    from pydantic import ValidationError

from flows.cli.run import Prefect, WriteCall, print_summary, run_write
from tasks.errors import InvalidRequestError
from tasks.planning.arrays import region_bytes
from tasks.planning.blocks import LOCAL_SIZING, PREFECT_SIZING
from tasks.planning.dataset import RegionParameter
from tasks.planning.jobs import block_size, group_writes
from tasks.records import format_region
from tasks.request import WriteOptions
from tasks.running.runs import prepare_write
from tasks.storage.callables import CALLABLE_PATTERN
from tasks.storage.sources import (
    CallableSource,
    IcechunkSource,
    NamedSource,
    NetCDFSource,
    SyntheticDataset,
    ZarrSource,
)

DEMO_VARIABLES = ("t2m", "u10")
DEMO_ENCODING = {name: {"chunks": (8, 361, 720)} for name in DEMO_VARIABLES}  # ~8 MiB chunks


def demo_source(gib: float) -> SyntheticDataset:
    """The demo's synthetic 0.25-degree dataset of about `gib` GiB (two float32 variables, 6-hourly)."""
    step_bytes = 721 * 1440 * 4 * 2
    ntime = max(8, round(gib * 2**30 / step_bytes / 8) * 8)
    return SyntheticDataset(ntime=ntime, nlat=721, nlon=1440, variables=DEMO_VARIABLES, time_chunk=8, freq="6h")


def parse_source(text: str, concat_dim: str | None = None) -> NamedSource:
    """A source from the command line: JSON (any kind), `synthetic`, `package.module:function`, a `.zarr` store,
    an `.icechunk` repository, or else NetCDF files (a path, URL or glob)."""
    from pydantic import TypeAdapter, ValidationError

    if text.lstrip().startswith("{"):
        try:
            return TypeAdapter(NamedSource).validate_json(text)
        except ValidationError as e:
            raise InvalidRequestError(f"source {text}: {validation_problems(e, tagged=True)}") from e
    if text == "synthetic":
        return SyntheticDataset()
    if re.fullmatch(CALLABLE_PATTERN, text):
        return CallableSource(function=text)
    if text.rstrip("/").endswith(".zarr"):
        return ZarrSource(url=text)
    if text.rstrip("/").endswith(".icechunk"):
        return IcechunkSource(repo=text)
    return NetCDFSource(paths=text, concat_dim=concat_dim)


def parse_region(values: list[str] | None) -> RegionParameter:
    """`auto`, or `dim=start:stop` (either end may be empty) / `dim=auto`, repeated."""
    if not values:
        return None
    if values == ["auto"]:
        return "auto"
    region: dict[str, Any] = {}
    for value in values:
        match = re.fullmatch(r"(\w+)=(?:(auto)|(\d*):(\d*))", value)
        if match is None:
            raise argparse.ArgumentTypeError(f"--region {value!r}: use dim=start:stop, dim=auto or auto")
        dim, auto, start, stop = match.groups()
        region[dim] = "auto" if auto else (int(start) if start else None, int(stop) if stop else None)
    return region


OPTION_FLAGS = {"block_bytes": "--block-mib", "retries": "--retries", "n_workers": "--n-workers",
                "dask_address": "--dask-address", "storage_max_tries": "--storage-max-tries",
                "max_task_runs": "--max-task-runs", "manifest_split_chunks": "--manifest-split-chunks",
                "manifest_fetch_concurrency": "--manifest-fetch-concurrency"}  # fmt: skip


def validation_problems(error: "ValidationError", names: dict[str, str] | None = None, tagged: bool = False) -> str:
    """Pydantic's errors on one line: where (as the user named it), what is wrong, what was given. For a tagged
    union (`tagged`), the first part of each location is the member pydantic tried, not a field the user wrote."""
    problems = []
    for problem in error.errors(include_url=False):
        where = ".".join(str(part) for part in problem["loc"][1 if tagged else 0 :])
        where = (names or {}).get(where, where)
        given = f" (given: {problem['input']!r})" if problem["type"] != "missing" and where else ""
        problems.append(f"{where + ': ' if where else ''}{problem['msg']}{given}")
    return "; ".join(problems)


def _options(args: argparse.Namespace, **overrides: Any) -> WriteOptions:
    from pydantic import ValidationError

    try:
        return WriteOptions(
            dask_address=args.dask_address, n_workers=args.n_workers, processes=args.processes, **overrides
        )
    except ValidationError as e:
        raise InvalidRequestError(f"options: {validation_problems(e, OPTION_FLAGS)}") from e


def _encoding(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        encoding = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidRequestError(
            f'--encoding {text!r} is not JSON ({e}); e.g. \'{{"t2m": {{"chunks": [24, 181, 360]}}}}\''
        ) from e
    if not isinstance(encoding, dict):
        raise InvalidRequestError(f"--encoding {text!r}: give a JSON object of variable names to encodings")
    return encoding


def write(args: argparse.Namespace, prefect: Prefect | None) -> int:
    source = parse_source(args.source, args.concat_dim)
    keywords: dict[str, Any] = {
        "group": args.group,
        "mode": args.mode,
        "append_dim": args.append_dim,
        "region": parse_region(args.region),
        "encoding": _encoding(args.encoding),
        "safe_chunks": args.safe_chunks,
        "align_chunks": args.align_chunks,
        "branch": args.branch,
        "validation_hook": args.validation_hook,
    }
    block_bytes = None if args.block_mib is None else int(args.block_mib * 2**20)
    options = _options(
        args,
        block_bytes=block_bytes,
        retries=args.retries,
        storage_max_tries=args.storage_max_tries,
        manifest_split_chunks=args.manifest_split_chunks,
        **(
            {}
            if args.manifest_fetch_concurrency is None
            else {"manifest_fetch_concurrency": args.manifest_fetch_concurrency}
        ),
        max_task_runs=args.max_task_runs,
    )
    if prefect is None:  # --dry-run
        from flows.cli.prefect_config import prefect_api_configured

        return dry_run(args.target, source, keywords, options, prefect_api_configured())
    result, recorded = run_write(WriteCall(args.target, source, keywords, args.message, options), prefect)
    print_summary(result, args.target, recorded)
    return 0


def dry_run(
    target: str, source: NamedSource, keywords: dict[str, Any], options: WriteOptions, with_prefect: bool
) -> int:
    """Every check of a real run, then the plan it would make on a local cluster; nothing is written or created."""
    prepared = prepare_write(target, source, create=False, **keywords)
    total = sum(region_bytes(r.region, r.dtype.itemsize) for r in prepared.resolved)
    sizing = PREFECT_SIZING if with_prefect else LOCAL_SIZING
    block_bytes = block_size(prepared.resolved, options.block_bytes, sizing, os.cpu_count() or 1)
    where = f"snapshot {prepared.parent_id}" if prepared.parent_id else "a new repository"
    print(f"dry run: {source.kind} -> {target} (branch {keywords['branch']}, from {where})")
    blocks = 0
    for group in group_writes(prepared.resolved):
        planned = group.blocks(block_bytes)
        blocks += len(planned)
        first = f", first [{format_region(planned[0].region)}]" if planned else ""
        print(
            f"  {'+'.join(group.arrays)}: region [{format_region(group.region)}] of shape {group.shape}, "
            f"grid {group.unit}, {len(planned)} blocks{first}"
        )
    print(f"would write {total / 1e6:.1f} MB in {blocks} blocks of about {block_bytes / 2**20:.0f} MiB, one commit")
    print("nothing was written")
    return 0


def demo(args: argparse.Namespace, prefect: Prefect) -> int:
    import icechunk

    from tasks.storage.target import repository_storage

    source = demo_source(args.gib)
    print(f"demo: synthetic dataset {dict(source.open().sizes)}, {source.variables}, -> {args.target}")
    keywords = {"mode": "w", "encoding": DEMO_ENCODING}
    result, recorded = run_write(WriteCall(args.target, source, keywords, "icefloe demo", _options(args)), prefect)
    print_summary(result, args.target, recorded)
    repo = icechunk.Repository.open(repository_storage(args.target))
    written = xr.open_zarr(repo.readonly_session("main").store, consolidated=False)
    xr.testing.assert_identical(written, source.open())
    print("read back with xr.open_zarr(repo.readonly_session('main').store): identical to the source")
    return 0
