"""Whether a Prefect API is configured: the command's quick answer agrees with Prefect's own settings, and needs
no Prefect import when nothing could configure one."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import command_env

PROBE = """
import sys
from flows.cli.prefect_config import prefect_api_configured
ours, imported = prefect_api_configured(), "prefect" in sys.modules
from prefect.settings import get_current_settings
print(ours, bool(get_current_settings().api.url), imported)
"""
URL = "http://127.0.0.1:4200/api"
PROFILES = """active = "{active}"
[profiles.team]
PREFECT_API_URL = "{url}"
[profiles.solo]
PREFECT_SERVER_ANALYTICS_ENABLED = "false"
"""

CASES = {
    "nothing": ({}, {}, False),
    "environment": ({"PREFECT_API_URL": URL}, {}, True),
    "empty environment": ({"PREFECT_API_URL": ""}, {}, False),
    "active profile": ({}, {"home/profiles.toml": PROFILES.format(active="team", url=URL)}, True),
    "other profile": ({}, {"home/profiles.toml": PROFILES.format(active="solo", url=URL)}, False),
    "PREFECT_PROFILE": (
        {"PREFECT_PROFILE": "team"},
        {"home/profiles.toml": PROFILES.format(active="solo", url=URL)},
        True,
    ),
    "prefect.toml": ({}, {"cwd/prefect.toml": f'[api]\nurl = "{URL}"\n'}, True),
    "pyproject.toml": ({}, {"cwd/pyproject.toml": f'[tool.prefect.api]\nurl = "{URL}"\n'}, True),
    ".env": ({}, {"cwd/.env": f"PREFECT_API_URL={URL}\n"}, True),
    "unrelated .env": ({}, {"cwd/.env": "AWS_REGION=us-east-1\n"}, False),
}


@pytest.mark.parametrize("case", CASES)
def test_the_quick_answer_is_prefects_answer(case: str, tmp_path: Path) -> None:
    env_extra, files, expected = CASES[case]
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "cwd").mkdir(exist_ok=True)
    env = command_env(tmp_path / "home", **env_extra)

    done = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path / "cwd", env=env, capture_output=True,
                          text=True, check=True)  # fmt: skip

    ours, prefects, imported = done.stdout.split()
    assert (ours, prefects) == (str(expected), str(expected))
    if case == "nothing":
        assert imported == "False"  # the plain case never pays for importing Prefect
