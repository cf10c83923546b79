"""`icefloe write --dry-run`: every check of a real run, then the plan it would make, from the same planning
functions a real run uses; nothing is written or created."""

import argparse
import os

from flows.cli.prefect_config import prefect_api_configured
from flows.cli.requests import dataset_write, parse_source, write_options
from tasks.planning.arrays import region_bytes
from tasks.planning.blocks import LOCAL_SIZING, PREFECT_SIZING
from tasks.planning.jobs import block_size, group_writes
from tasks.records import format_region
from tasks.running.runs import prepare_write


def dry_run(args: argparse.Namespace) -> int:
    """The plan on a local cluster of a thread per core (Prefect's block sizes when an API is configured)."""
    source, write, options = parse_source(args.source, args.concat_dim), dataset_write(args), write_options(args)
    prepared = prepare_write(args.target, source, write, create=False)
    sizing = PREFECT_SIZING if prefect_api_configured() else LOCAL_SIZING
    block_bytes = block_size(prepared.resolved, options.block_bytes, sizing, os.cpu_count() or 1)
    where = f"snapshot {prepared.parent_id}" if prepared.parent_id else "a new repository"
    print(f"dry run: {source.kind} -> {args.target} (branch {write.branch}, from {where})")
    blocks = 0
    for group in group_writes(prepared.resolved):
        planned = group.blocks(block_bytes)
        blocks += len(planned)
        first = f", first [{format_region(planned[0].region)}]" if planned else ""
        print(
            f"  {'+'.join(group.arrays)}: region [{format_region(group.region)}] of shape {group.shape}, "
            f"grid {group.unit}, {len(planned)} blocks{first}"
        )
    total = sum(region_bytes(r.region, r.dtype.itemsize) for r in prepared.resolved)
    print(f"would write {total / 1e6:.1f} MB in {blocks} blocks of about {block_bytes / 2**20:.0f} MiB, one commit")
    print("nothing was written")
    return 0
