"""What the UI shows of each deployment, and the files that declare the stack: prefect.yaml, docker-compose.yml."""

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployments.serve import IngestSchedule, build_deployments
from flows.cli.main import parser
from tasks.errors import InvalidRequestError
from tasks.running.cluster import WORKER_PRELOAD

ROOT = Path(__file__).parents[2]


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """A property with its $ref (and the non-null branch of an Optional) followed into the definitions."""
    if "$ref" in node:
        return {**node, **_resolve(schema, schema["definitions"][node["$ref"].rsplit("/", 1)[1]])}
    options = [o for o in node.get("anyOf", []) if o.get("type") != "null"]
    if len(options) == 1:
        return {**node, **_resolve(schema, options[0])}
    return node


@pytest.mark.parametrize("deployment", build_deployments(), ids=lambda d: d.name)
def test_every_parameter_has_a_title_a_description_and_its_default(deployment: Any) -> None:
    schema = deployment._parameter_openapi_schema.model_dump()
    assert deployment.enforce_parameter_schema

    for name, prop in schema["properties"].items():
        assert prop["title"] == name
        assert len(prop.get("description", "")) > 10, f"{deployment.name}.{name} has no description"
        assert name in schema.get("required", []) or "default" in prop, f"{deployment.name}.{name} has no default"
    assert schema["required"][0] == "repo"
    if deployment.name == "validate":
        return
    assert schema["required"][:2] == ["repo", "source"]
    source = _resolve(schema, schema["properties"]["source"])
    # one object, not a union: Prefect's form shows a union as tabs that jump back to another kind as the user types
    assert (source["type"], "anyOf" in source, "oneOf" in source) == ("object", False, False)
    assert {"netcdf", "grib", "zarr", "icechunk", "callable"} <= set(source["properties"]["kind"]["enum"])
    for name, prop in source["properties"].items():
        assert prop["title"], f"{deployment.name}.source.{name}"
        assert len(prop["description"]) > 10, f"{deployment.name}.source.{name}"


def test_enums_for_modes_and_overlaps() -> None:
    write, ingest, *_ = build_deployments()
    write_schema = write._parameter_openapi_schema.model_dump()
    ingest_schema = ingest._parameter_openapi_schema.model_dump()

    assert _resolve(write_schema, write_schema["properties"]["mode"])["enum"] == ["w", "w-", "a", "a-", "r+"]
    overlap = _resolve(ingest_schema, ingest_schema["properties"]["overlap"])
    assert (overlap["enum"], overlap["default"]) == (["refuse", "skip", "rewrite"], "skip")


def test_a_schedule_with_bad_parameters_is_refused_before_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICEFLOE_ALLOWED_TARGETS", "s3://lake/")
    monkeypatch.setenv("ICEFLOE_ALLOWED_SOURCES", "s3://raw/")
    good = {"repo": "s3://lake/era5.icechunk", "source": {"kind": "zarr", "url": "s3://raw/era5.zarr"}}
    refused = {
        "source.netcdf.paths: Field required": {**good, "source": {"kind": "netcdf"}},
        "ICEFLOE_ALLOWED_TARGETS": {**good, "repo": "s3://elsewhere/era5.icechunk"},
        "ICEFLOE_ALLOWED_FUNCTIONS": {**good, "source": {"kind": "callable", "function": "mypkg.era5:yesterday"}},
        "colour: not a parameter of ingest": {**good, "colour": 1},
    }
    for says, parameters in refused.items():
        with pytest.raises(InvalidRequestError, match=f"ingest schedule's parameters are invalid: .*{says}"):
            build_deployments(IngestSchedule(parameters, cron="0 6 * * *"))
    scheduled = build_deployments(IngestSchedule(good, "0 6 * * *"))
    assert [s.schedule.cron for s in scheduled[1].schedules] == ["0 6 * * *"]


def test_prefect_yaml_declares_the_served_deployments() -> None:
    declared = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    served = {d.name: d for d in build_deployments()}

    assert {d["name"] for d in declared} == set(served)
    for deployment in declared:
        twin = served[deployment["name"]]
        assert deployment["entrypoint"] == twin.entrypoint  # module paths, both
        assert deployment["description"] == twin.description
        assert deployment["tags"] == twin.tags
        assert deployment["enforce_parameter_schema"] is True
        assert deployment["work_pool"]["name"] == "icefloe"
        triggers = [
            {k: v for k, v in t.items() if k not in ("type", "enabled")} for t in deployment.get("triggers", [])
        ]
        assert triggers == [
            {"name": t.name, "expect": sorted(t.expect), "parameters": t.parameters} for t in twin.triggers
        ]
        if twin.concurrency_limit is None:
            assert "concurrency_limit" not in deployment
        else:
            assert twin.concurrency_options is not None
            strategy = twin.concurrency_options.collision_strategy
            assert deployment["concurrency_limit"] == {"limit": twin.concurrency_limit, "collision_strategy": strategy}


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return compose


def _port(url: str) -> int:
    match = re.search(r":(\d+)(/|$)", url)
    assert match, url
    return int(match.group(1))


def test_compose_services_run_real_entry_points() -> None:
    services = _compose()["services"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    icefloe_commands = set(parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]

    assert {"postgres", "prefect-server", "dask-scheduler", "dask-worker-1", "dask-worker-2", "minio", "minio-init",
            "runner"} <= set(services)  # fmt: skip
    for name in ("dask-scheduler", "dask-worker-1", "dask-worker-2", "runner"):
        assert services[name]["build"] == ".", f"{name} runs the project's own image"
        program, subcommand = services[name]["command"][:2]
        if program == "icefloe":
            assert program in scripts
            assert subcommand in icefloe_commands
        else:
            assert (program, subcommand) in {("dask", "scheduler"), ("dask", "worker")}
    assert services["prefect-server"]["command"][:3] == ["prefect", "server", "start"]
    assert re.fullmatch(r"quay\.io/minio/minio:RELEASE\.\d{4}-\d\d-\d\dT[\d-]+Z", services["minio"]["image"])
    assert "healthcheck" in services["prefect-server"]


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_compose_addresses_match_the_ports_services_listen_on() -> None:
    services = _compose()["services"]
    runner = services["runner"]["environment"]
    server_port = int(services["prefect-server"]["command"][services["prefect-server"]["command"].index("--port") + 1])
    scheduler_port = int(
        services["dask-scheduler"]["command"][services["dask-scheduler"]["command"].index("--port") + 1]
    )
    minio_port = _port(services["minio"]["command"][services["minio"]["command"].index("--address") + 1])

    for name in ("runner", "dask-worker-1", "dask-worker-2"):
        environment = services[name]["environment"]
        assert environment["PREFECT_API_URL"] == f"http://prefect-server:{server_port}/api"
        assert environment["AWS_ENDPOINT_URL"] == f"http://minio:{minio_port}"
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"} <= set(environment)
    assert runner["ICEFLOE_DASK_ADDRESS"] == f"tcp://dask-scheduler:{scheduler_port}"
    for name in ("dask-worker-1", "dask-worker-2"):
        assert services[name]["command"][2] == f"tcp://dask-scheduler:{scheduler_port}"
        assert _option(services[name]["command"], "--preload") == WORKER_PRELOAD  # as every cluster icefloe starts
    assert f"127.0.0.1:{server_port}:{server_port}" in _published(services["prefect-server"])
    assert _port(services["prefect-server"]["environment"]["PREFECT_UI_API_URL"]) == server_port


COMPOSE_VARIABLE = re.compile(r"\$\{(\w+)(?::([?-])([^}]*))?\}")
"""`${NAME}`, `${NAME:?message}` (compose refuses to start while NAME is empty) or `${NAME:-default}`."""
SECRETS = ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "PREFECT_AUTH_STRING")


def _example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and line[0] != "#")


def _published(service: dict[str, Any]) -> list[str]:
    """A service's published ports as compose starts them with an .env that sets no optional variable."""
    default = lambda m: m.group(3) if m.group(2) == "-" else m.group(0)  # noqa: E731
    return [COMPOSE_VARIABLE.sub(default, port) for port in service["ports"]]


def test_every_variable_compose_needs_is_in_env_example_and_no_secret_is_committed() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    needed = {m.group(1) for m in COMPOSE_VARIABLE.finditer(text) if m.group(2) != "-"}
    needed |= set(re.findall(r"\$\$([A-Z_]+)", text))  # a shell's own variables are lowercase
    example = _example()

    assert needed <= set(example)
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    for service in _compose()["services"].values():
        for key, value in service.get("environment", {}).items():
            if any(word in key for word in ("PASSWORD", "SECRET", "AUTH_STRING")):
                assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", value), f"{key} must come from .env, and be set there"


def test_the_compose_stack_is_closed_by_default() -> None:
    """What docker-compose.yml publishes and who it lets in, read from the file (no Docker engine runs here)."""
    services = _compose()["services"]
    example = _example()

    server = services["prefect-server"]["environment"]
    assert COMPOSE_VARIABLE.fullmatch(server["PREFECT_SERVER_API_AUTH_STRING"]).group(1) == "PREFECT_AUTH_STRING"  # type: ignore[union-attr]
    assert server["PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED"] == "true"
    clients = [name for name, service in services.items() if "PREFECT_API_URL" in service.get("environment", {})]
    assert set(clients) == {"dask-worker-1", "dask-worker-2", "runner"}
    for name in clients:
        auth = COMPOSE_VARIABLE.fullmatch(services[name]["environment"]["PREFECT_API_AUTH_STRING"])
        assert auth is not None, name
        assert auth.group(1) == "PREFECT_AUTH_STRING", name
    for name, service in services.items():
        for port in _published(service) if "ports" in service else []:
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond this machine"
    # the server on the newest Prefect minor the clients may resolve: a server must be at least as new as its clients
    requirement = next(d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
                       if d.startswith("prefect>="))  # fmt: skip
    below = re.search(r"<(\d+)\.(\d+)", requirement)
    assert below is not None, requirement
    newest_minor = f"{below.group(1)}.{int(below.group(2)) - 1}"
    image = re.fullmatch(r"prefecthq/prefect:(\d+\.\d+)\.\d+-python3\.12", services["prefect-server"]["image"])
    assert image is not None, services["prefect-server"]["image"]
    assert image.group(1) == newest_minor
    # no default password starts the stack: empty in .env.example, required by compose, and not change-me
    assert all(example[name] == "" for name in SECRETS)
    check = services["settings-check"]
    for name in set(services) - {"settings-check"}:
        assert _starts_after_the_check(services, name), f"{name} can start before the settings are checked"
    for values, refused in (({"a": "x"}, False), ({"a": "change-me"}, True), ({"a": ""}, True)):
        env = {name: values["a"] if name == SECRETS[1] else "a-real-secret" for name in SECRETS}
        done = subprocess.run(["sh", "-c", check["command"][0].replace("$$", "$")], env=env, capture_output=True,
                              text=True, check=False)  # fmt: skip
        assert (done.returncode != 0) == refused, (values, done.stderr)
    # the deployment runs reach only the stack's bucket
    runner = services["runner"]["environment"]
    assert runner["ICEFLOE_ALLOWED_TARGETS"] == runner["ICEFLOE_ALLOWED_SOURCES"] == "s3://${ICEFLOE_BUCKET}/"
    assert example["ICEFLOE_ALLOWED_FUNCTIONS"] == ""


def _starts_after_the_check(services: dict[str, Any], name: str, seen: frozenset[str] = frozenset()) -> bool:
    """Whether `name` waits, itself or through what it waits for, for settings-check to complete."""
    depends = services[name].get("depends_on", {})
    waits = dict.fromkeys(depends) if isinstance(depends, list) else depends
    if "settings-check" in waits:
        return True
    return any(_starts_after_the_check(services, other, seen | {name}) for other in waits if other not in seen)


def test_the_project_image_runs_as_a_user_of_its_own() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users, "the image runs as root"
    assert users[-1] not in ("root", "0")


def test_the_dockerfile_installs_the_project_with_uv() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.12", dockerfile, re.MULTILINE)
    assert "uv sync --no-dev" in dockerfile
    for folder in ("flows", "tasks", "deployments"):
        assert f"COPY {folder} ./{folder}" in dockerfile
