# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PACKAGES := safe-singer-common tap-jira-safe tap-dynamodb-streams target-postgres-atomic state-service
PYTEST_ARGS ?=
# `make test` runs these again in a second venv holding the LOWEST version the pyprojects allow
# of each direct dependency of our packages (singer-sdk above all: the plugins use some of its
# private members), so a lower bound that is not true fails here; the test tools are the newest.
# .venv resolves everything to the highest allowed.
LOWEST       := .venv-lowest
LOWEST_BIN   := $(LOWEST)/bin
# The lowest run tests our code at our declared minimums: the four plugin packages' own tests
# (state-service's run on the newest versions only), less two kinds, whose behaviour the first
# run covers on the newest versions:
# - a test that runs `meltano run` (-k 'not meltano_run'): Meltano's own dependencies then sit
#   below what Meltano needs (typing_extensions);
# - a test marked slow (-m 'not slow'): today the two long runs of tap-dynamodb-streams'
#   test_change_events (split generations with faults; max_run_seconds), 27 s and 13 s of
#   worker time there. They drive our own ordering logic at length; the calls they make into
#   singer-sdk, boto3 and botocore are the ones the other tests of that file make at the lowest.
LOWEST_TESTS ?= safe-singer-common/tests tap-jira-safe/tests tap-dynamodb-streams/tests target-postgres-atomic/tests
LOWEST_SELECT ?= -m 'not slow' -k 'not meltano_run'
# Parallel workers for `make test`: most of the suite waits (pacing, leases, idle shards, process
# start-ups), so more workers than cores pay. xdist_group marks are inert with pytest 9 and
# pytest-xdist 3.8 (xdist sets item._nodeid, which pytest 9 no longer reads): tests that share
# a thing take a lock (dist.build, peers.py). 4 workers measured no faster than 3 (CPU ~87% busy).
TEST_WORKERS ?= 3

.PHONY: install install-lowest browser servers test demo lint soak bench clean dist hub

install: $(STAMP)

# uv's --compile-bytecode skips editable sources: compileall compiles ours, as a wheel install
# would (with PYTHONDONTWRITEBYTECODE set, each run would compile them again: ~40 ms a start).
$(STAMP): Makefile requirements-dev.txt $(wildcard */pyproject.toml)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --upgrade --compile-bytecode --python $(BIN)/python -r requirements-dev.txt $(addprefix -e ./,$(PACKAGES))
	@$(BIN)/python -m compileall -q $(PACKAGES)
	@touch $@

install-lowest: $(LOWEST)/.installed

$(LOWEST)/.installed: $(STAMP)
	@test -x $(LOWEST_BIN)/python || $(PYTHON) -m venv $(LOWEST)
	$(BIN)/uv pip install --quiet --reinstall --compile-bytecode --python $(LOWEST_BIN)/python -r requirements-dev.txt
	$(BIN)/uv pip install --quiet --reinstall --resolution lowest-direct --compile-bytecode --python $(LOWEST_BIN)/python $(addprefix -e ./,$(PACKAGES))
	@$(LOWEST_BIN)/python -c 'import importlib.metadata as m; print("lowest: singer-sdk", m.version("singer-sdk"))'
	@touch $@

# The status-page test drives the system Chromium; as root, install it when it is missing.
browser:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@command -v chromium >/dev/null || echo "chromium missing: sudo apt-get install -y chromium"

# The target's SSH tunnel and SSL tests start their own sshd and an SSL PostgreSQL (the
# pgserver build has no SSL); as root, install them when they are missing. Only the programs:
# no service starts (policy-rc.d refuses, as in Docker images) and no cluster is made
# (createcluster.conf, before the server package), so port 22 stays closed and 5432 stays
# whoever's it was.
APT_INSTALL = DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends
servers:
	@[ "$$(id -u)" != 0 ] || { command -v /usr/sbin/sshd >/dev/null && \
		ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || { \
		policy=/usr/sbin/policy-rc.d; ours=; \
		[ -e $$policy ] || { printf '#!/bin/sh\nexit 101\n' >$$policy && chmod +x $$policy && ours=1; }; \
		{ apt-get update -qq && \
		{ command -v /usr/sbin/sshd >/dev/null || $(APT_INSTALL) openssh-server; } && \
		{ ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
			$(APT_INSTALL) postgresql-common && \
			sed -i 's/^#* *create_main_cluster *=.*/create_main_cluster = false/' \
				/etc/postgresql-common/createcluster.conf && \
			$(APT_INSTALL) postgresql; }; }; }; \
		status=$$?; [ -z "$$ours" ] || rm -f $$policy; exit $$status; }
	@command -v /usr/sbin/sshd >/dev/null || echo "sshd missing: sudo apt-get install -y openssh-server"
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		echo "PostgreSQL server programs missing: sudo apt-get install -y postgresql"

test: install browser servers install-lowest
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)
	$(LOWEST_BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(LOWEST_SELECT) $(LOWEST_TESTS)

demo: install
	$(BIN)/python -m safe_singer_testing.demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m safe_singer_testing.python_versions
	$(BIN)/python hub/generate.py --check

# A wheel and an sdist of each package into dist/ (tests/integration/test_dist.py installs each
# wheel alone). safe-singer-testing, the tests' own package, is not one of PACKAGES: never built.
dist: install
	rm -rf dist
	for package in $(PACKAGES); do $(BIN)/uv build --quiet --out-dir dist $$package || exit 1; done

# Meltano Hub definitions (hub/) and meltano.yml's plugin entries, from each plugin's --about.
hub: install
	$(BIN)/python hub/generate.py

soak: install
	RUN_SOAK=1 $(BIN)/python -m pytest -m soak $(PYTEST_ARGS)

BENCH_ARGS ?=
bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(LOWEST) .meltano .mypy_cache .ruff_cache .pytest_cache */.pytest_cache
