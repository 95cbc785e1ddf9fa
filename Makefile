# lindyn: make run | make test | make install
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# the MLflow tracking server of the end-to-end test (tests/e2e/test_bridges.py), in an environment of its own:
# the full mlflow package pins pyarrow<26 and graphql-core<3.3, below this project's
MLFLOW_VENV ?= .venv-mlflow
MLFLOW_STAMP := $(MLFLOW_VENV)/.installed

.PHONY: install mlflow-server run test test-fast bench migrate clean mutation

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[server,dev]' --config-settings editable_mode=compat
	@touch $(STAMP)

mlflow-server: $(MLFLOW_STAMP)

$(MLFLOW_STAMP):
	@test -x $(MLFLOW_VENV)/bin/python || $(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install -q 'mlflow>=3.17'
	@touch $(MLFLOW_STAMP)

# make run PORT=8080 HOST=0.0.0.0 (or LINDYN_PORT, LINDYN_HOST); default 127.0.0.1:8000
run: install
	$(BIN)/lindyn serve $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

test: install mlflow-server
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m 'not e2e and not gpu' $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench.gd_speed
	$(BIN)/python -m bench.self_consistent_speed

# mutation testing (slow: hours on a shared 2-core machine; not in CI): mutmut over pyproject's [tool.mutmut]
# paths, then the score. Results stay in mutants/: an interrupted run resumes, a later run re-tests only changed
# functions (`make clean` starts over). MUTANTS="dynamics.result*" runs (or re-runs) a part.
MUTATION_CHILDREN ?= 2
MUTANTS ?=
mutation: install
	nice -n 10 $(BIN)/mutmut run --max-children $(MUTATION_CHILDREN) $(MUTANTS) || true
	$(BIN)/python -m tests.mutation_score

clean:
	rm -rf $(VENV) $(MLFLOW_VENV) build *.egg-info .pytest_cache mutants

migrate: install
	$(BIN)/lindyn migrate
