"""`icefloe validate`: a committed snapshot's checks, as a table; exit 1 when one fails."""

import argparse
import sys

from flows.cli.write import parse_source
from tasks.committing.validate import validate_snapshot
from tasks.storage.sources import open_source


def validate(args: argparse.Namespace) -> int:
    source = open_source(parse_source(args.source)) if args.source else None
    validation = validate_snapshot(
        args.target,
        branch=args.branch,
        snapshot_id=args.snapshot,
        source=source,
        time_dim=args.time_dim,
        allow_nan=args.allow_nan,
    )
    print(f"snapshot {validation.snapshot} of {validation.target} (branch {validation.branch})")
    width = max(len(c.check) for c in validation.checks)
    for check in validation.checks:
        print(f"  {check.outcome:<7}  {check.check:<{width}}  {check.detail}")
    if not validation.passed:
        print(f"icefloe validate: failed: {validation.failures()}", file=sys.stderr)
        return 1
    return 0
