"""The project's own imports form no circle: each stage imports only the stages before it and the records between
them. Every import counts, also those under `TYPE_CHECKING` and inside functions, which hide a circle from Python
but not from a reader."""

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("flows", "tasks", "deployments", "benchmarks")


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The project modules `name` (at `path`) imports, wherever in it the import stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from package import module` imports the module; `from module import name` the module only
            found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names}
    return {module for module in found if module in modules and module != name}


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imported(path, name, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle through each strongly connected group of modules (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_the_walk_sees_imports_under_type_checking_and_inside_functions() -> None:
    graph = import_graph()
    assert len(graph) > 50  # every package was walked
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_imports_itself_through_others(package: str) -> None:
    graph = import_graph()
    circles = [c for c in cycles(graph) if any(m.split(".")[0] == package for m in c)]
    assert not circles, "import circles:\n" + "\n".join(
        " <-> ".join(c) + "\n  " + "\n  ".join(f"{m} -> {sorted(graph[m] & set(c))}" for m in c) for c in circles
    )


def test_tasks_bans_every_private_api_the_project_bans() -> None:
    """tasks/ruff.toml's table replaces the project's (ruff does not merge them): it must list each ban again."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    tasks = tomllib.loads((ROOT / "tasks" / "ruff.toml").read_text())["lint"]
    banned = project["flake8-tidy-imports"]["banned-api"]
    assert "zarr.core" in banned
    assert set(banned) <= set(tasks["flake8-tidy-imports"]["banned-api"])


def test_importing_icefloe_changes_neither_the_environment_nor_other_modules() -> None:
    """Logging filters and Prefect patches are installed by the entry points (the command, a flow module, a worker
    preload), not by importing the library."""
    code = """
import os, sys
import prefect.flow_engine
before = dict(os.environ)
heartbeats = prefect.flow_engine._send_heartbeats
import tasks, flows.orchestrator, tasks.running.runs, tasks.running.local
assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())
assert prefect.flow_engine._send_heartbeats is heartbeats
import flows.write_dataset  # an entry point: sets both up
assert os.environ["ICECHUNK_LOG"] and prefect.flow_engine._send_heartbeats is not heartbeats
"""
    env = {k: v for k, v in os.environ.items() if k != "ICECHUNK_LOG"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_every_dependency_whose_internals_are_used_has_an_upper_bound() -> None:
    """A release that moves a private name must pass the contract tests before it is admitted."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    specs = {re.split(r"[\[<>=~!]", spec, maxsplit=1)[0]: spec for spec in dependencies}
    for name in ("prefect", "prefect-dask", "icechunk", "zarr", "xarray", "dask", "distributed"):
        assert "<" in specs[name] or "==" in specs[name], specs[name]
