"""`icefloe kept`: the blocks that failed runs left beside a target for their next attempt; clearing them."""

import argparse
from datetime import UTC, datetime

from tasks.committing.kept_forks import clear_kept, kept_runs


def kept(args: argparse.Namespace) -> int:
    if args.clear:
        print(f"removed {clear_kept(args.target)} kept sets of {args.target}")
        return 0
    runs = kept_runs(args.target)
    if not runs:
        print(f"nothing kept for {args.target}")
    for run in runs:
        when = datetime.fromtimestamp(run.created, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        print(f"branch {run.branch}, based on {run.parent_id}: {run.blocks} blocks kept since {when}  {run.location}")
    return 0
