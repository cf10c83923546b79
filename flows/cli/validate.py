"""`icefloe validate TARGET`: a committed snapshot's checks, as a table; exit 1 when one fails."""

import argparse
import sys
from typing import TYPE_CHECKING

from flows.cli.arguments import SOURCE_HELP, add_branch

if TYPE_CHECKING:
    from tasks.records import Check


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    validate = commands.add_parser(
        "validate",
        help="check a committed snapshot: chunks present, no all-NaN steps, time increasing, sample vs source",
        description="Check the tip of BRANCH (or --snapshot) of the repository TARGET as an operational pipeline "
        "checks each update: every chunk its commit wrote is present, no step along --time-dim is NaN everywhere, "
        "that coordinate increases without duplicates, dtypes and shapes are as the commit declared, and a sample "
        "of chunks equals --source when given. Exit 1 when a check fails.",
    )
    validate.add_argument("target", help="repository: a local path or s3://bucket/prefix")
    add_branch(validate)
    validate.add_argument("--snapshot", help="snapshot to check (default: the branch's tip)")
    validate.add_argument("--source", help="what it was written from, to compare a sample with: " + SOURCE_HELP)
    validate.add_argument("--time-dim", default="time", help="dimension of the time steps (default time)")
    validate.add_argument("--allow-nan", action="store_true", help="allow steps that are NaN everywhere")
    validate.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from flows.cli.requests import parse_source
    from tasks.committing.validate import validate_snapshot
    from tasks.storage.sources import open_source

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
    print_checks(validation.checks)
    if not validation.passed:
        print(f"icefloe validate: failed: {validation.failures()}", file=sys.stderr)
        return 1
    return 0


def print_checks(checks: "list[Check]") -> None:
    """A check per line: outcome, name, what it found."""
    width = max((len(c.check) for c in checks), default=0)
    for check in checks:
        print(f"  {check.outcome:<7}  {check.check:<{width}}  {check.detail}")
