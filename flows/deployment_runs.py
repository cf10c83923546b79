"""A deployment's run: started through the Prefect API (its UI, its REST API, a schedule, an automation)."""

from prefect.context import FlowRunContext


def is_deployment_run() -> bool:
    """Whether this flow run belongs to a deployment (its parameters came as JSON, from whoever reached the API)."""
    context = FlowRunContext.get()
    return context is not None and context.flow_run is not None and context.flow_run.deployment_id is not None
