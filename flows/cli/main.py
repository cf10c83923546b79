"""The `icefloe` command's entry point: the parser of every command, then the one it names, run with signals that
unwind it and an exit code that says how far it got (`flows/cli/exit_codes.py`).

It answers at once: this module and each command's parser import only the standard library; a command imports
what it needs when it runs.
"""

import argparse
import logging
import os
import signal
import sys
from typing import NoReturn

from flows.cli import demo, history, kept, publish, serve, staged, validate, write
from flows.cli.exit_codes import report
from flows.cli.signals import interruptible
from tasks.committing.landing import held_signals, landed_snapshot
from tasks.logs import quiet_icechunk

COMMANDS = (write, demo, history, validate, publish, staged, kept, serve)


def parser() -> argparse.ArgumentParser:
    icefloe = argparse.ArgumentParser(prog="icefloe", description="Parallel, atomic writes into Icechunk with Prefect")
    icefloe.add_argument(
        "--icechunk-log",
        metavar="FILTER",
        help="Icechunk's own log filter, e.g. warn or debug (default: warnings, without the two it gives on every "
        "open; the ICECHUNK_LOG environment variable does the same)",
    )
    commands = icefloe.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(commands)
    return icefloe


def entry_point() -> NoReturn:
    """The `icefloe` executable: `main`, then a quick exit.

    Once a command has closed what it opened, the interpreter's own teardown (freeing every module and object of
    xarray, Dask and Icechunk) still took ~0.35 s here, a tenth of a 1 GiB write. Without Prefect loaded there is
    no background queue left to deliver, so the process ends at once; with Prefect, its exit hooks deliver the
    run's last logs and events first. An interrupted command ends at once too: the interpreter would wait for the
    threads of the blocks still running (20 s and more) only to drop what they write; logging's shutdown has
    delivered the run's logs by then.
    """
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    if "prefect" not in sys.modules or code in (128 + signal.SIGINT, 128 + signal.SIGTERM):
        os._exit(code)
    sys.exit(code)


def _a_stop(error: BaseException) -> bool:
    """Ctrl-C, or the SIGTERM Prefect's own handler turns into `TerminationSignal` while a flow runs."""
    exceptions = sys.modules.get("prefect.exceptions")
    return isinstance(error, KeyboardInterrupt) or (
        exceptions is not None and isinstance(error, exceptions.TerminationSignal)
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.icechunk_log:
        os.environ["ICECHUNK_LOG"] = args.icechunk_log  # read on icechunk's import, here and in every worker
    quiet_icechunk()
    # Dask's per-worker INFO lines drown the run's own log; workers read this from the environment.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    stopped_by: list[int] = []
    with interruptible(args.command in ("write", "demo"), stopped_by):
        try:
            code = int(args.run(args))
        except BaseException as e:
            if landed_snapshot() is not None and (stopped_by or _a_stop(e)):
                # stopped after its snapshot landed: saying "interrupted" would have the same append run twice
                number = stopped_by[-1] if stopped_by else signal.SIGTERM
                print(
                    f"icefloe {args.command}: stopped ({signal.Signals(number).name}) after snapshot "
                    f"{landed_snapshot()} landed on its branch: the write is complete",
                    file=sys.stderr,
                )
                return 0
            if stopped_by or isinstance(e, KeyboardInterrupt):
                # whatever the interrupt became on its way out (libraries wrap it), the user stopped the command
                number = stopped_by[0] if stopped_by else signal.SIGINT
                print(f"icefloe {args.command}: interrupted ({signal.Signals(number).name})", file=sys.stderr)
                return 128 + number
            if isinstance(e, Exception):
                return report(args.command, e)
            raise
        for number in held_signals():
            name = signal.Signals(number).name
            print(f"icefloe {args.command}: {name} came as the run moved its branch; it finished", file=sys.stderr)
        return code
