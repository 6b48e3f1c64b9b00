# The README's two commands are `make run` and `make test`; .ci/run calls `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test install install-test lint typecheck compose pytest mariadb postgresql packages bench clean

run: install  ## install and start the service (SQLite, bundled model) on http://127.0.0.1:8000
	$(BIN)/whisper-service serve

test: install-test packages mariadb postgresql lint typecheck compose pytest  ## install everything and run every check

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $@

# torch comes first, pinned, so that the diarize extra's range is already met (a plain `torch` pulls a multi-GB CUDA
# build; 2.13.0 is the CPU build this project's CI machine holds). Override TORCH to pick another build.
TORCH ?= torch==2.13.0

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet --disable-pip-version-check '$(TORCH)'
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,diarize]'
	touch $@

packages:  ## system packages the tests need (Debian's chromium for the browser test)
	bash .ci/packages.sh

mariadb:  ## make sure a MariaDB server answers on 127.0.0.1:3306 (installs and starts one if needed)
	bash .ci/mariadb.sh

postgresql:  ## make sure a PostgreSQL server answers on 127.0.0.1:5432 (installs and starts one if needed)
	bash .ci/postgresql.sh

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy app workers crawlers

compose:  ## docker-compose.yml parses (with and without the gpu and monitoring profiles); no Docker engine needed
	docker compose config -q
	docker compose --profile gpu config -q
	docker compose --profile monitoring config -q

# Two processes: most tests wait on servers, subprocesses and the database more than they compute.
PYTEST_WORKERS ?= 2

pytest:
	$(BIN)/pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --durations=30

bench: install-test  ## print the benchmark tables
	$(BIN)/python -m bench.overhead
	$(BIN)/python -m bench.openai_latency
	$(BIN)/python -m bench.queue
	$(BIN)/python -m bench.decoding
	$(BIN)/python -m bench.scaling
	$(BIN)/python -m bench.windows
	$(BIN)/python -m bench.concurrency
	$(BIN)/python -m bench.memory
	$(BIN)/python -m bench.diarization

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
