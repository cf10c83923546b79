"""`icefloe publish TARGET --staged NAME`: publish a staged snapshot once inspected: its checks again, then its
branch moved to it from the tip it was staged over."""

import argparse
import sys


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    publish = commands.add_parser(
        "publish",
        help="publish a staged snapshot: check it again and move its branch to it",
        description="Check the snapshot on the staging branch NAME again (with the checks its run asked for) and "
        "move the branch it was staged for to it, only if that branch is still at the tip it was staged over. "
        "Exit 1 when a check fails (--force publishes it anyway) or the branch moved.",
    )
    publish.add_argument("target", help="repository: a local path or s3://bucket/prefix")
    publish.add_argument("--staged", required=True, metavar="NAME", help="staging branch (`icefloe staged` lists)")
    publish.add_argument("--force", action="store_true", help="publish even if a check fails")
    publish.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from flows.cli.validate import print_checks
    from tasks.committing.publishing import publish_staged
    from tasks.records import failures
    from tasks.storage.target import open_existing

    repo = open_existing(args.target)
    gated = publish_staged(repo, args.staged, args.target, args.force, logging.getLogger("icefloe"))
    print(f"snapshot {gated.snapshot_id} of {args.target} (staged on {gated.staged})")
    print_checks(gated.checks)
    if not gated.published:
        print(f"icefloe publish: failed its checks, not published: {failures(gated.checks)}", file=sys.stderr)
        return 1
    print(f"published snapshot {gated.snapshot_id} (parent {gated.parent_id})")
    return 0
