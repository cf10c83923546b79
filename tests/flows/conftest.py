import pytest


@pytest.fixture(autouse=True)
def _every_flow_test_reports_to_the_test_api(prefect_api: None) -> None:
    """Flow tests run against the session's real Prefect API."""
