"""A deployment's run: started through the Prefect API (its UI, its REST API, a schedule, an automation) by whoever
reaches it. Each flow checks such a run's parameters against the operator's allowance (`check_allowed`,
`tasks/allowance.py`) as it begins, before anything is imported, read, connected or written; a flow called from
Python, or by the command in the user's own process, is the user's and is not checked."""

from collections.abc import Mapping

from prefect.context import FlowRunContext

from tasks.allowance import check_address, check_bounds, check_function, check_place
from tasks.errors import InvalidRequestError
from tasks.request import WriteOptions
from tasks.storage.file_sources import FileSource
from tasks.storage.sources import CallableSource, DatasetSource, IcechunkSource, ZarrSource


def is_deployment_run() -> bool:
    """Whether this flow run belongs to a deployment (its parameters came as JSON, from whoever reached the API)."""
    context = FlowRunContext.get()
    return context is not None and context.flow_run is not None and context.flow_run.deployment_id is not None


def check_allowed(
    *,
    target: str | None = None,
    reads: str | None = None,
    source: DatasetSource | None = None,
    functions: Mapping[str, str | None] | None = None,
    options: WriteOptions | None = None,
) -> None:
    """Refuse what the operator did not allow a deployment run: the `target` it writes (a repository it only
    `reads` may also be a source), the places and function its `source` names, the `functions` it names by
    parameter, and its `options`' scheduler and sizes."""
    if target is not None:
        check_place("repo", target, "ICEFLOE_ALLOWED_TARGETS")
    if reads is not None:  # a repository the run only reads
        check_place("repo", reads, "ICEFLOE_ALLOWED_TARGETS", "ICEFLOE_ALLOWED_SOURCES")
    if source is not None:
        _check_source(source)
    for parameter, reference in (functions or {}).items():
        if reference is not None:
            check_function(parameter, reference)
    if options is not None:
        if options.cluster_class is not None:  # a class to import and start, with arguments: code
            raise InvalidRequestError(
                f"options.cluster_class {options.cluster_class!r}: deployment runs use the runner's cluster, whose "
                "class the operator chooses with ICEFLOE_CLUSTER_CLASS (ICEFLOE_CLUSTER_KWARGS, ICEFLOE_ADAPT_KWARGS) "
                "in the runner's environment"
            )
        if options.dask_address is not None:
            check_address("options.dask_address", options.dask_address)
        check_bounds("options", options.model_dump())


def _check_source(source: DatasetSource) -> None:
    if isinstance(source, CallableSource):
        check_function("source.function", source.function)
    elif isinstance(source, FileSource):
        for path in [source.paths] if isinstance(source.paths, str) else source.paths:
            check_place("source.paths", path, "ICEFLOE_ALLOWED_SOURCES")
    elif isinstance(source, ZarrSource):
        check_place("source.url", source.url, "ICEFLOE_ALLOWED_SOURCES")
    elif isinstance(source, IcechunkSource):
        check_place("source.repo", source.repo, "ICEFLOE_ALLOWED_SOURCES")
    # synthetic data names no place; an in-memory Dataset never comes through the API
