import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_workers_report_to_the_flows_temporary_api_when_none_is_configured(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    # a first start migrates a new database: on a loaded 2-core machine that can outlast the default 20 s
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"

    done = subprocess.run(
        [sys.executable, "-m", "tests.run_without_server", str(tmp_path / "repo")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    assert "blocks=4 completed_block_runs=4" in done.stdout
    # one temporary server, the flow's: no worker started one of its own
    assert done.stderr.count("Starting temporary server") == 1, done.stderr[-3000:]
