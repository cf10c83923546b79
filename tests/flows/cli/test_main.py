"""The `icefloe` command answers at once: its module imports nothing heavy, and every command has help."""

import subprocess
import sys

import pytest

from flows.cli import main

HEAVY = ("prefect", "xarray", "icechunk", "dask", "distributed", "zarr", "numpy", "pandas", "pydantic")


def imported_after(code: str) -> list[str]:
    """Top-level packages among HEAVY that a fresh interpreter has imported after running `code`."""
    probe = f"{code}\nimport sys\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return list(eval(done.stdout.strip().splitlines()[-1]))


def test_help_imports_none_of_the_heavy_packages() -> None:
    code = "from flows.cli import main\ntry:\n    main(['write', '--help'])\nexcept SystemExit:\n    pass"
    assert imported_after(code) == []


@pytest.mark.parametrize("command", [[], ["demo"], ["write"], ["history"], ["serve"]])
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: icefloe" in capsys.readouterr().out
