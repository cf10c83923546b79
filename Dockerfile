# icefloe's image: the project and its locked-by-pyproject dependencies, installed with uv.
# The same image runs the Dask scheduler, the Dask workers and the deployment runner (see docker-compose.yml).
FROM python:3.12-slim

COPY --from=ghcr.io/astral-sh/uv:0.9.7 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/opt/venv PATH="/opt/venv/bin:$PATH"

WORKDIR /app
# dependencies first, so that a code change does not reinstall them
COPY pyproject.toml README.md ./
RUN uv sync --no-dev --no-install-project
COPY flows ./flows
COPY tasks ./tasks
COPY deployments ./deployments
COPY prefect.yaml ./
RUN uv sync --no-dev

# Not root: a run executes with the privileges of this user, whatever its parameters ask
RUN useradd --create-home --uid 10001 icefloe
USER icefloe

CMD ["icefloe", "--help"]
