# Two commands: `make run` serves on working defaults, `make test` runs the suite.
# Both create .venv with the machine's python3 and install what they need.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=
CHROMIUM := /usr/bin/chromium
CONTAINER_TOOLS := /usr/bin/podman /usr/bin/runc /usr/bin/mmdebstrap

.PHONY: run test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/flame-cache $(ARGS)

test: $(VENV)/.installed-test $(CHROMIUM) $(CONTAINER_TOOLS)
	$(BIN)/python -m pytest $(ARGS)

# The benchmark (not part of `make test`): Flight and HTTP against a bare Flight
# server and Redis; installs Debian's redis-server when missing.
$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@ $(VENV)/.installed

bench: $(VENV)/.installed-bench
	command -v redis-server >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server)
	$(BIN)/python -m bench.run $(ARGS)

# The web page's test drives Debian's chromium; installed only when missing.
$(CHROMIUM):
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium

# The container test (tests/test_container.py) runs the image under Debian's podman
# with runc, and builds its base image with mmdebstrap; installed only when missing.
$(CONTAINER_TOOLS) &:
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman runc mmdebstrap

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
