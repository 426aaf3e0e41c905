# epgembed: two commands on a fresh machine.
#   make run    runtime install (requirements.txt), train the sample if needed, serve related titles
#   make test   runtime + dev extras (requirements-dev.txt, -eval.txt), Debian's chromium, the tests
PY      ?= $(shell command -v python3.11 || command -v python3)
VENV    := .venv
BIN     := $(VENV)/bin
PINS    := $(shell cat requirements.txt requirements-eval.txt requirements-dev.txt pyproject.toml | cksum | cut -d' ' -f1)
RUNTIME := $(VENV)/.installed-runtime-$(PINS)
STAMP   := $(VENV)/.installed-dev-$(PINS)
SAMPLE  := data/sample.xml.gz
MODEL   := models/sample
HOST    ?= 127.0.0.1
PORT    ?= 8000
TRY     := Premier Football Tonight
EMPTY   :=
TRY_URL := $(subst $(EMPTY) $(EMPTY),+,$(TRY))

.PHONY: install install-runtime run train-sample test test-unit bench bench-quality clean

# pyproject.toml reads its dependencies from the requirements files (the one source of
# versions); the runtime install leaves out every test, benchmark and fuzz tool.
$(VENV)/bin/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUNTIME): | $(VENV)/bin/python
	if [ -f $(STAMP) ]; then touch $@; else \
	  $(BIN)/pip install -q -e . && rm -f $(VENV)/.installed-runtime-* && touch $@; fi

$(STAMP): | $(VENV)/bin/python
	$(BIN)/pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@ $(RUNTIME)

install-runtime: $(RUNTIME)
install: $(STAMP)

# the package's bytecode: pip compiles what it installs into site-packages, but not this
# editable checkout, and where PYTHONDONTWRITEBYTECODE is set (as on these machines) every
# command would compile its modules again: about 0.1 s of a 0.5 s query (make bench-cli)
BYTECODE := $(VENV)/.bytecode
$(BYTECODE): $(wildcard epgembed/*.py epgembed/*/*.py service/*.py) | $(RUNTIME)
	$(BIN)/python -m compileall -q epgembed service
	touch $@

$(SAMPLE): | $(RUNTIME)
	$(BIN)/python -m epgembed.gen.sample $(SAMPLE)

# the sample model is rebuilt only when it is missing or older than its input or the code
$(MODEL)/manifest.json: $(SAMPLE) $(wildcard epgembed/*.py epgembed/*/*.py) | $(RUNTIME)
	$(BIN)/epgembed train $(SAMPLE) --out $(MODEL)
	$(BIN)/epgembed related $(MODEL) --title "$(TRY)" -k 5

train-sample: $(RUNTIME) $(SAMPLE)
	$(BIN)/epgembed train $(SAMPLE) --out $(MODEL)
	$(BIN)/epgembed related $(MODEL) --title "$(TRY)" -k 5

# run = check the port (a taken port changes nothing), install the runtime, train the sample
# when needed, publish it into a models root, serve it (Ctrl-C stops). Another port: make run PORT=8001
run:
	@$(PY) tools/port_free.py $(HOST) $(PORT) "make run"
	@$(MAKE) --no-print-directory serve-sample

.PHONY: serve-sample
serve-sample: $(RUNTIME) $(BYTECODE) $(MODEL)/manifest.json
	$(BIN)/epgembed publish $(MODEL) --root $(ROOT)
	@echo "related titles on http://$(HOST):$(PORT) -- try:"
	@echo "  curl 'http://$(HOST):$(PORT)/v1/related?title=$(TRY_URL)&k=5'"
	@echo "hot reload: in another shell, 'make train-sample && $(BIN)/epgembed publish $(MODEL) --root $(ROOT)'"
	@echo "  and the running service switches to the new version (GET /v1/model) without a restart"
	$(BIN)/epgembed serve --models $(ROOT) --host $(HOST) --port $(PORT)

# serve a models root (hot reload) or one model directory; default: the sample, published
ROOT    := models/root
MODELS  ?= $(ROOT)
.PHONY: serve bench-serve
$(ROOT)/current: | $(RUNTIME) $(MODEL)/manifest.json
	$(BIN)/epgembed publish $(MODEL) --root $(ROOT)

serve:
	@$(PY) tools/port_free.py $(HOST) $(PORT) "make serve"
	@$(MAKE) --no-print-directory serve-models

.PHONY: serve-models
serve-models: $(RUNTIME) $(BYTECODE) $(if $(filter $(ROOT),$(MODELS)),$(ROOT)/current)
	@echo "serving $(MODELS) on http://$(HOST):$(PORT) -- try: curl 'http://$(HOST):$(PORT)/v1/related?title=$(TRY_URL)&k=5'"
	$(BIN)/epgembed serve --models $(MODELS) --host $(HOST) --port $(PORT)

# gunicorn + wrk on a model of all of ../shared/data/epg -> bench/results/serve.json
bench-serve: $(STAMP)
	$(BIN)/python bench/serve.py

# the explorer page's browser test drives Debian's chromium (Playwright's own browser
# download is not reachable from these machines); apt-get installs it once, when missing:
# about 150 Debian packages, with sudo when not root (README, "Two commands")
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@echo "make test: installing Debian's chromium for the explorer page's browser test (apt-get, once)"
	$(if $(filter 0,$(shell id -u)),,sudo) sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium'

# the replicas test (tests/test_replicas.py) and bench-replicas run Debian's nginx in front of
# the service, on their own prefix folder and free ports (docs/DEPLOY.md); apt-get installs it
# once, when missing (where systemd runs, Debian also starts its default site on port 80)
NGINX := /usr/sbin/nginx
$(NGINX):
	@echo "make test: installing Debian's nginx for the replicas test (apt-get, once)"
	$(if $(filter 0,$(shell id -u)),,sudo) sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx'

# the fastText reference of EVALUATION.md (the `fasttext` extra): neither the runtime nor
# `make test` needs it; make test-slow runs its test on a tiny dump, make bench-quality uses it
FASTTEXT := $(VENV)/.installed-fasttext-$(shell cat requirements-fasttext.txt | cksum | cut -d' ' -f1)
$(FASTTEXT): $(STAMP)
	$(BIN)/pip install -q -e '.[fasttext]'
	touch $@

# every test (unit, integration, system: markers in pyproject.toml) but the slow ones
test: $(STAMP) $(BYTECODE) $(CHROMIUM) $(NGINX)
	$(BIN)/python -m pytest -m "not slow"

# the slow fault runs (marker `slow`): live servers under load, kill -9 of masters, a kill -9 at
# every rename of a nightly run, the fastText reference on a tiny dump (its extra installed); a
# few minutes
.PHONY: test-slow
test-slow: $(STAMP) $(BYTECODE) $(NGINX) $(FASTTEXT)
	$(BIN)/python -m pytest -m slow

# the unit tests only: pure functions, no training, no subprocess, no server
test-unit: $(STAMP)
	$(BIN)/python -m pytest -m unit

# the fastText reference's test (a tiny dump) runs before the benchmark.
# One quick run, main table and cold start without the ablations: make bench-quality QUALITY_ARGS=--quick

bench-quality: $(STAMP) $(FASTTEXT)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "slow or not slow" tests/test_fasttext_ref.py
	$(BIN)/python bench/quality.py $(QUALITY_ARGS)

.PHONY: bench-outliers
bench-outliers: $(STAMP)
	$(BIN)/python bench/outliers.py

# five real nights of ../shared/data/epg-daily, warm vs cold start -> bench/results/nightly.json
.PHONY: bench-nightly
bench-nightly: $(STAMP)
	$(BIN)/python bench/nightly.py

# in-process query times (by id, by title, unseen, with context, a programme; one answer per series)
# and the training time on all shared dumps -> bench/results/query_speed.json
.PHONY: bench-query
bench-query: $(STAMP) $(BYTECODE)
	$(BIN)/python bench/query_speed.py

# training throughput: the METHOD.md ladder side by side -> bench/results/train_speed.json
.PHONY: bench-train
bench-train: $(STAMP)
	$(BIN)/python bench/train_speed.py

# data-parallel training: 2 ranks (torchrun, gloo on loopback) against one process on every
# shared dump, 3 seeds each: P@10d, time per epoch, bytes exchanged; the exchanges compared;
# the rows K ranks would send -> bench/results/distributed.{json,md} (5-6 minutes)
.PHONY: bench-distributed
bench-distributed: $(STAMP)
	$(BIN)/python bench/distributed.py $(DISTRIBUTED_ARGS)

# the command line in fresh processes: --help and queries on the shared-data model -> bench/results/cli.json
.PHONY: bench-cli
bench-cli: $(STAMP) $(BYTECODE)
	$(BIN)/python bench/cli.py

# the title search box with typos (issue 17): hit@5 of one-edit typos and p99 on the shared-data
# catalog, exact/prefix answers unchanged, build/memory/latency at 100k and 1M synthetic keys
# -> bench/results/search.{json,md} (about 3 minutes)
.PHONY: bench-search
bench-search: $(STAMP)
	$(BIN)/python bench/search.py

# one model or many (issue 27): one model of all shared dumps against one per dump, P@10d per dump on
# the same test titles (the combined model's answers restricted to the query's feed), training time
# and peak memory of each -> bench/results/feeds-model.{json,md} (about 2 minutes)
.PHONY: bench-feeds
bench-feeds: $(STAMP)
	$(BIN)/python bench/feeds.py

# every benchmark; figures printed and written to bench/results/
bench: bench-quality bench-query bench-train bench-serve bench-nightly bench-outliers bench-scale-quick bench-index bench-cli bench-search bench-feeds bench-distributed bench-refresh

# 5 minutes of mixed traffic at 16 connections, a model reload every minute -> bench/results/soak.json
# (quick look: make bench-soak SOAK_ARGS="--seconds 30 --reload-every 10 --window 10")
.PHONY: bench-soak
bench-soak: $(STAMP)
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

# nginx (deploy/nginx) in front of 2 replicas x 2 workers on the shared-data model: throughput
# through nginx to 2 vs 1 replica vs bare gunicorn, a publish and a kill -9 under load, 200 slow
# clients against nginx and against bare gunicorn, 16 clients sending the largest legal request
# (/healthz p99 meanwhile), 2 feeds x 2 replicas behind one nginx (traffic to both, a publish on
# one, kill -9 of a replica of the other) -> bench/results/replicas.json (20 s phases; quick look,
# about a minute: make bench-replicas REPLICAS_ARGS=--quick; one phase, its figures under its own
# key of the file: REPLICAS_ARGS="--only feeds --seconds 10")
.PHONY: bench-replicas
bench-replicas: $(STAMP) $(NGINX)
	$(BIN)/python bench/replicas.py $(REPLICAS_ARGS)

# pins = installed, pip check, pip-audit (says so when its vulnerability data is unreachable)
.PHONY: audit
audit: $(STAMP)
	$(BIN)/python tools/audit.py

# the long fuzz runs: schemathesis with 1000 examples per operation and random seeds
.PHONY: fuzz
fuzz: $(STAMP)
	EPGEMBED_SCHEMA_FUZZ_EXAMPLES=1000 $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_service_schema_fuzz.py

# the long reliability runs (docs/RELIABILITY.md), part of `make fuzz`: the large hypothesis
# profile, the ingest corpus with 8 GB gzip bombs and 400 mutated dumps, 10 random kill -9 of
# the nightly job, then atheris (coverage-guided) on the normalizer and the XMLTV reader for
# FUZZ_SECONDS each; crash inputs are kept in a printed temporary folder
FUZZ_SECONDS ?= 120
.PHONY: fuzz-reliability
fuzz-reliability: $(STAMP)
	EPGEMBED_FUZZ=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_fuzz_ingest.py \
		tests/test_fuzz_text.py tests/test_faults_process.py
	d=$$(mktemp -d) && mkdir $$d/normalize $$d/epg && echo "atheris corpus and crash inputs: $$d" && \
	$(BIN)/python fuzz/fuzz_normalize.py -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$$d/ $$d/normalize && \
	$(BIN)/python fuzz/fuzz_epg.py -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$$d/ $$d/epg && \
	rm -rf $$d
fuzz: fuzz-reliability

# scale and index (docs/PERFORMANCE.md, "Scale and index"): synthetic guides of 10k/100k/1M shows
# (epgembed.gen.synth, cached in bench/cache/synth) -> bench/results/scale.{json,md}; Annoy recall@10
# and latency against exact search on the 100k/1M model vectors -> bench/results/index.{json,md}
# (bench-index, part of `make bench`: the 100k model only -> index-100k.{json,md}, then the
# search of unseen titles on the shared-data and 1M models, bench/unseen.py, with hnswlib as a
# reference -> index-search.{json,md}, docs/SCALE.md); the 1M
# clustered neighbour table rebuilt at probe 64/128/256 -> index-1m-table.{json,md};
# gunicorn + wrk on the 1M model -> bench/results/serve-1m.json. The 1M runs take about an hour.
# bench-calib: the synthetic guide against the shared dumps' model (issue 27): neighbour cosines,
# spectrum and probe recall at 11,791 titles (the calibration; seeds 0-2), 100k and the 1M scale model ->
# bench/results/calib.{json,md} (the 1M model is trained by bench-index's unseen.py when missing).
.PHONY: bench-scale bench-scale-quick bench-index bench-serve-1m bench-calib
bench-calib: $(STAMP)
	$(BIN)/python bench/calib.py --models shared,synth:11791,synth:11791:1,synth:11791:2,synth:100000,1000000 --out bench/results/calib.json
bench-scale-quick: $(STAMP)
	$(BIN)/python bench/scale.py --quick --out bench/results/scale-quick.json
bench-index: $(STAMP)
	$(BIN)/python bench/index.py --sizes 100000 --out bench/results/index-100k.json
	$(BIN)/python bench/unseen.py --sizes shared,1000000 --reference --nice 0 --out bench/results/index-search.json
bench-serve-1m: $(STAMP)
	test -f bench/cache/scale/model-1000000/manifest.json || $(BIN)/python bench/scale.py --sizes 1000000
	$(BIN)/python bench/serve.py --model bench/cache/scale/model-1000000 --no-reload --out bench/results/serve-1m.json
bench-scale: $(STAMP)
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/index.py
	$(BIN)/python bench/index.py --sizes 1000000 --trees "" --table-probes 64,128,256 --out bench/results/index-1m-table.json
	$(BIN)/python bench/serve.py --model bench/cache/scale/model-1000000 --no-reload --out bench/results/serve-1m.json

clean:
	rm -rf models .pytest_cache

# epgembed refresh (issue 24): quality by the cold-start protocol on every shared dump (refreshed
# vs trained), a refresh of 200 titles on the daily feed's model against its nightly, a refresh
# of 200 titles on a 100k synthetic catalog (cached in bench/cache/refresh) and its disk cost,
# the 1M disk cost from a 1M model's files -> bench/results/refresh.json (about 5 minutes with
# the cache, 15 without)
.PHONY: bench-refresh
bench-refresh: $(STAMP)
	$(BIN)/python bench/refresh.py
