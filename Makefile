# epgembed: two commands on a fresh machine.
#   make run    bootstrap, train on the embedded sample, serve related titles
#   make test   bootstrap, run the tests
PY      ?= $(shell command -v python3.11 || command -v python3)
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt pyproject.toml | cksum | cut -d' ' -f1)
SAMPLE  := data/sample.xml.gz
MODEL   := models/sample
PORT    ?= 8000

.PHONY: install run train-sample test bench bench-quality clean

$(STAMP):
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

$(SAMPLE): | $(STAMP)
	$(BIN)/python -m epgembed.sample $(SAMPLE)

train-sample: $(STAMP) $(SAMPLE)
	$(BIN)/epgembed train $(SAMPLE) --out $(MODEL)
	$(BIN)/epgembed related $(MODEL) --title "Football Tonight" -k 5

run: train-sample

test: $(STAMP)
	$(BIN)/python -m pytest

bench-quality: $(STAMP)
	$(BIN)/python bench/quality.py

bench: bench-quality

clean:
	rm -rf models .pytest_cache
