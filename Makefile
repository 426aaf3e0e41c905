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

# run = train the sample, publish it into a models root, serve it (Ctrl-C stops)
run: train-sample
	$(BIN)/epgembed publish $(MODEL) --root $(ROOT)
	@echo "related titles on http://127.0.0.1:$(PORT) -- try:"
	@echo "  curl 'http://127.0.0.1:$(PORT)/v1/related?title=Football+Tonight&k=5'"
	@echo "hot reload: in another shell, 'make train-sample && $(BIN)/epgembed publish $(MODEL) --root $(ROOT)'"
	@echo "  and the running service switches to the new version (GET /v1/model) without a restart"
	$(BIN)/epgembed serve --models $(ROOT) --port $(PORT)

# serve a models root (hot reload) or one model directory; default: the sample, published
ROOT    := models/root
MODELS  ?= $(ROOT)
.PHONY: serve bench-serve
$(ROOT)/current: | $(STAMP) $(SAMPLE)
	test -d $(MODEL) || $(BIN)/epgembed train $(SAMPLE) --out $(MODEL)
	$(BIN)/epgembed publish $(MODEL) --root $(ROOT)

serve: $(STAMP) $(if $(filter $(ROOT),$(MODELS)),$(ROOT)/current)
	@echo "serving $(MODELS) on http://127.0.0.1:$(PORT) -- try: curl 'http://127.0.0.1:$(PORT)/v1/related?title=Football+Tonight&k=5'"
	$(BIN)/epgembed serve --models $(MODELS) --port $(PORT)

# gunicorn + wrk on a model of all of ../shared/data/epg -> bench/results/serve.json
bench-serve: $(STAMP)
	$(BIN)/python bench/serve.py

# the explorer page's browser test drives Debian's chromium; installed once, when missing
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	$(if $(filter 0,$(shell id -u)),,sudo) sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium'

test: $(STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest

bench-quality: $(STAMP)
	$(BIN)/python bench/quality.py

.PHONY: bench-outliers
bench-outliers: $(STAMP)
	$(BIN)/python bench/outliers.py

# five real nights of ../shared/data/epg-daily, warm vs cold start -> bench/results/nightly.json
.PHONY: bench-nightly
bench-nightly: $(STAMP)
	$(BIN)/python bench/nightly.py

# every benchmark; figures printed and written to bench/results/
bench: bench-quality bench-serve bench-nightly bench-outliers

clean:
	rm -rf models .pytest_cache
