"""The `icefloe` command answers at once: its module imports nothing heavy, and every command has help."""

import argparse
import subprocess
import sys

import pytest

from flows.cli.main import main

HEAVY = ("prefect", "xarray", "icechunk", "dask", "distributed", "zarr", "numpy", "pandas", "pydantic")


def imported_after(code: str) -> list[str]:
    """Top-level packages among HEAVY that a fresh interpreter has imported after running `code`."""
    probe = f"{code}\nimport sys\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return list(eval(done.stdout.strip().splitlines()[-1]))


def test_help_imports_none_of_the_heavy_packages() -> None:
    code = "from flows.cli.main import main\ntry:\n    main(['write', '--help'])\nexcept SystemExit:\n    pass"
    assert imported_after(code) == []


def commands() -> list[list[str]]:
    """The command itself and each of its subcommands, as its parser knows them."""
    from flows.cli.main import parser

    subparsers = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return [[], *([name] for action in subparsers for name in action.choices)]


def test_help_is_checked_for_every_command() -> None:
    expected = {"write", "demo", "history", "validate", "publish", "staged", "kept", "serve"}
    assert expected <= {c[0] for c in commands() if c}


@pytest.mark.parametrize("command", commands())
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: icefloe" in capsys.readouterr().out


def test_exit_2_means_refused_by_the_request_itself_and_anything_later_is_a_failure() -> None:
    import icechunk

    from flows.cli.exit_codes import refused
    from tasks.errors import InvalidRequestError, OverlappingWritesError, note_started_writing

    overlap = OverlappingWritesError("block t[0:10] came back twice")
    assert refused(overlap)
    note_started_writing(overlap)  # what write_and_commit adds to whatever it raises
    assert not refused(overlap)
    assert refused(ValueError("xarray: mode 'x' is not one of ..."), "write")  # to_zarr's own refusals
    assert not refused(ValueError("a decoding error while checking"), "validate")
    assert refused(InvalidRequestError("no Icechunk repository at x"), "validate")
    assert not refused(icechunk.IcechunkError("object not found"), "validate")
    assert not refused(icechunk.IcechunkError("object not found"), "write")
