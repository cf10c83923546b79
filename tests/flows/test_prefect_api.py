"""What the flow's tasks are told about its Prefect API (flows/prefect_api.py)."""

from prefect import flow
from prefect.context import FlowRunContext, SettingsContext
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.prefect_api import workers_report_to_flow_api


@flow
def settings_inside(spelling: str | None) -> tuple[str | None, bool, str]:
    """The API URL workers are sent, whether the settings were rebuilt for it, and the flow client's URL."""
    client = str(FlowRunContext.get().client.api_url).rstrip("/")  # type: ignore[union-attr]
    with temporary_settings(updates={PREFECT_API_URL: spelling} if spelling else {}):
        before = SettingsContext.get()
        with workers_report_to_flow_api():
            return PREFECT_API_URL.value(), SettingsContext.get() is not before, client


def test_workers_are_sent_the_flows_own_api_url() -> None:
    """Settings spelling the API otherwise than the flow's client does: the workers get the client's."""
    other = PREFECT_API_URL.value().replace("127.0.0.1", "localhost")
    sent, rebuilt, client = settings_inside(other)
    assert (sent, rebuilt) == (client, True)


def test_settings_already_naming_the_flows_api_are_not_rebuilt() -> None:
    sent, rebuilt, client = settings_inside(None)
    assert (sent, rebuilt) == (client, False)
