PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup test lint demo bench clean

setup: $(BIN)/hpo

$(BIN)/hpo: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/hpo

test: setup
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check .

demo: setup
	$(BIN)/hpo run studies/quickstart.yaml --workers 2

bench: setup
	$(BIN)/python bench/kl_estimators.py
	$(BIN)/python bench/quantum_step.py
	$(BIN)/python bench/convergence.py

clean:
	rm -rf $(VENV) runs build *.egg-info
