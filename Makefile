# Two commands do all set-up on a fresh machine: `make demo` (the main job) and `make test`.
# uv is bootstrapped with the machine's python3; .python-version makes uv (and pyenv) use Python 3.12.
UV := python3 -m uv
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: setup browser demo test bench

setup:
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --quiet

# The UI test drives Debian's chromium; without it (not root, no apt-get) that one test says it skipped and why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium is not installed and could not be: the browser test will be skipped"

demo: setup
	$(UV) run icefloe demo

# The oldest Prefect pyproject.toml admits, in an environment of its own: the contract tests of the Prefect
# internals icefloe uses (flows/prefect_internals.py) must pass there too.
OLDEST_PREFECT := .venv-prefect-3.8.8

test: setup browser
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	$(UV) run pytest -n 2 --dist loadfile
	$(UV) venv --quiet --allow-existing $(OLDEST_PREFECT)
	$(UV) pip install --quiet --compile-bytecode --python $(OLDEST_PREFECT) -e . --group dev \
		prefect==3.8.8 "fastapi<0.151" "sqlalchemy<2.1"
	$(OLDEST_PREFECT)/bin/python -m pytest -q -p no:cacheprovider tests/flows/test_prefect_internals.py

bench: setup
	$(UV) run python -m benchmarks.end_to_end --repeat 5 --temporary-server
	$(UV) run python -m benchmarks.local_cluster --gib 1 --repeat 3
	$(UV) run python -m benchmarks.store_array_vs_store_dask --gib 2 --repeat 5
	$(UV) run python -m benchmarks.write_dataset_vs_to_icechunk --gib 2 --repeat 5
	$(UV) run python -m benchmarks.object_store --repeat 3
	$(UV) run python -m benchmarks.publish_gate --repeat 3
