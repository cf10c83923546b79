"""`icefloe staged TARGET`: the snapshots publishing runs staged and did not publish (a check failed, or the run
stopped before publishing); clearing them."""

import argparse


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    staged = commands.add_parser(
        "staged",
        help="list (or clear) the snapshots publishing runs staged and did not publish",
        description="A publishing run (write --publish, ingest, backfill) commits to a staging branch first and "
        "moves its branch there only once the snapshot passed its checks. This lists the staging branches left: "
        "inspect one by opening it as a branch, publish it with `icefloe publish TARGET --staged NAME`, or remove "
        "them all with --clear.",
    )
    staged.add_argument("target", help="repository: a local path or s3://bucket/prefix")
    staged.add_argument("--clear", action="store_true", help="remove every staging branch of the target")
    staged.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tasks.committing.publishing import staged_snapshots
    from tasks.storage.target import open_existing

    repo = open_existing(args.target)
    found = staged_snapshots(repo)
    if args.clear:
        for staged in found:
            repo.delete_branch(staged.name)
        print(f"removed {len(found)} staging branches of {args.target}")
        return 0
    if not found:
        print(f"nothing staged in {args.target}")
    branches = repo.list_branches()
    for staged in found:
        tip = repo.lookup_branch(staged.branch) if staged.branch in branches else None
        over = "over its tip" if tip == staged.parent_id else f"over {staged.parent_id} (the tip is now {tip})"
        when = staged.written_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        print(f"{staged.name}  snapshot {staged.snapshot_id} for {staged.branch}, {over}, staged {when}")
    return 0
