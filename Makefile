# lindyn: make run | make test | make install
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test test-fast bench migrate clean mutation

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[server,dev]' --config-settings editable_mode=compat
	@touch $(STAMP)

run: install
	$(BIN)/lindyn serve

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m 'not e2e and not gpu' $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench.gd_speed
	$(BIN)/python -m bench.self_consistent_speed

# mutation testing (slow: minutes to hours; not in CI): mutmut over pyproject's [tool.mutmut] paths, then the score
MUTATION_CHILDREN ?= 2
mutation: install
	rm -rf mutants
	nice $(BIN)/mutmut run --max-children $(MUTATION_CHILDREN) || true
	$(BIN)/python -m tests.mutation_score

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache mutants

migrate: install
	$(BIN)/lindyn migrate
