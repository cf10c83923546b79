"""Whether the user has a Prefect API configured, answered without importing Prefect when the answer is plain.

Importing Prefect's settings costs a third of a second; a command that will not use Prefect should not pay it.
Prefect reads PREFECT_API_URL from the environment, a `.env`, `prefect.toml` or `pyproject.toml` in the working
directory, and the active profile of its profiles file. When none of those places could name an API, the answer is
no; when one could, Prefect's own settings decide (tests/flows/cli/test_prefect_config.py holds this against
Prefect's answer).
"""

import os
import sys
from pathlib import Path


def _might_configure_api() -> bool:
    if any(os.environ.get(name) for name in ("PREFECT_PROFILE", "PREFECT_PROFILES_PATH")):
        return True
    if Path(".env").is_file() or Path("prefect.toml").is_file():
        return True
    pyproject = Path("pyproject.toml")
    if pyproject.is_file() and "[tool.prefect" in pyproject.read_text(errors="replace"):
        return True
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    profiles = home / "profiles.toml"
    return profiles.is_file() and "PREFECT_API_URL" in profiles.read_text(errors="replace")


def prefect_api_configured() -> bool:
    """Whether Prefect would report runs to an API of the user's (rather than start a temporary server)."""
    if "prefect.settings" not in sys.modules:  # once Prefect is imported, its settings (and their context) decide
        if "PREFECT_API_URL" in os.environ:
            return bool(os.environ["PREFECT_API_URL"])
        if not _might_configure_api():
            return False
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)
