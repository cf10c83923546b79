"""Which Prefect API a run and all its Dask workers report to."""

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.context import FlowRunContext
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.environment import environment_variable
from flows.prefect_internals import deliver_queued_logs_and_events
from flows.temporary_server import TemporaryServer


@contextmanager
def running_prefect_api(server: TemporaryServer | None = None) -> Iterator[str]:
    """Use the configured PREFECT_API_URL, or else a temporary server for the duration (`server`, if the caller
    started one early, else one started now), and point to it.

    The URL also goes into the environment, so that worker processes started meanwhile inherit it.
    """
    configured = PREFECT_API_URL.value()
    if configured:
        yield configured
        return
    server = server or TemporaryServer.start()
    try:
        url = server.api_url()
        with environment_variable("PREFECT_API_URL", url), temporary_settings(updates={PREFECT_API_URL: url}):
            try:
                yield url
            finally:
                # Deliver queued logs and events while their server is still there.
                deliver_queued_logs_and_events()
    finally:
        server.stop()


@contextmanager
def workers_report_to_flow_api() -> Iterator[None]:
    """Send tasks with the flow's own API URL in their settings.

    Without a configured PREFECT_API_URL the flow talks to a temporary server; a worker process given no URL would
    start a server of its own (~14 s) and its task runs would never reach the flow's API.
    """
    context = FlowRunContext.get()
    if context is None or context.client is None:
        yield
        return
    url = str(context.client.api_url).rstrip("/")
    if PREFECT_API_URL.value() == url:  # already in the settings: rebuilding them would cost ~35 ms for nothing
        yield
        return
    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield
