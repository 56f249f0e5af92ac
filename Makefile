# Two commands matter: `make demo` (the lifecycle on the embedded default) and `make test`.
# Both build .venv from the lock file the first time.
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/var/dagster_home

$(BIN)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

install: $(BIN)/.installed

$(DAGSTER_HOME)/dagster.yaml: deploy/dagster-local.yaml
	mkdir -p $(DAGSTER_HOME)
	cp deploy/dagster-local.yaml $@

demo: $(BIN)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m orchestration.demo

test: $(BIN)/.installed
	$(BIN)/python -m pytest

ui: $(BIN)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

# The online tier (docs/online-serving.md): every use case's champion over KServe V2 on 127.0.0.1:8080.
serve: $(BIN)/.installed
	$(BIN)/python -m serving

.PHONY: install demo test ui serve
