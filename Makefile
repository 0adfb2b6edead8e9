# Two set-up commands: `make demo` and `make test`. Both create .venv with the running python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint install tools clean nab nab-seeds skab asd reliability soak startup bench-smoke cuda

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, pinned to the release that lies on disk here (a bare "torch" would pull a CUDA build).
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The Prometheus, Alertmanager and compose tests run the real tools: Debian's packages,
# installed here (never inside a test) when one is missing. Root and apt-get, as on CI.
DEBIAN_TOOLS := promtool:prometheus prometheus:prometheus amtool:prometheus-alertmanager \
	docker-compose:docker-compose
tools:
	@missing=""; for pair in $(DEBIAN_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "make tools: installing Debian's$$missing (the Prometheus and compose tests run them)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; fi

# Two tiers: the fast one first (unit tests, about a minute), then the CLI runs and the real
# broker and Prometheus. Each on TEST_WORKERS processes (pytest-xdist; each its own broker): the
# broker tier waits on brokers and daemons most of its time (its serial run kept 2 cores 30%
# busy); 0 runs them in this process, as when debugging.
TEST_WORKERS ?= 2
test: lint tools
	$(BIN)/pytest -n $(TEST_WORKERS) tests/unit
	$(BIN)/pytest -n $(TEST_WORKERS) tests/cli tests/integration

# aemon bench end to end on a small topic (under two minutes): outside the correctness tiers.
bench-smoke: install
	$(BIN)/pytest tests/benchmarks -p no:cacheprovider

# aemon --help and --version: the median of 10 fresh processes each (README, "Start-up").
startup: install
	$(BIN)/python -m tests.benchmarks.cli_startup --runs 10

# Daemons broken on purpose against the real embedded broker; prints the table the README holds.
reliability: install
	$(BIN)/pytest tests/reliability -m reliability -p no:cacheprovider

# 30 minutes at half the measured capacity: RSS, file descriptors and threads must stay flat.
soak: install
	$(BIN)/pytest tests/reliability -m soak -p no:cacheprovider

# On a machine with CUDA (README, "On a GPU"): each family trained on the CPU and on CUDA, the
# scorer on each, and the tests that hold the daemon on CUDA to offline scoring on the CPU.
MNIST ?= ../shared/data/mnist
cuda: install
	$(BIN)/python -m tests.benchmarks.cuda_vs_cpu --mnist $(MNIST)
	$(BIN)/aemon bench --scorer
	CUDA_VISIBLE_DEVICES= $(BIN)/aemon bench --scorer
	$(BIN)/pytest -p no:cacheprovider tests/unit/test_families.py tests/unit/test_learning.py \
	  tests/unit/test_profile.py tests/integration/test_stream_matches_offline.py \
	  tests/integration/test_samples.py tests/integration/test_series.py tests/integration/test_delivery.py

demo: install
	$(BIN)/aemon demo

# The label-blind NAB protocol (README, "Telemetry: NAB"): train on each file's probationary
# rows, stream the rest through the embedded broker and one daemon, score with NAB's scorer.
NAB ?= ../shared/data/nab
NAB_SCORER ?= ../shared/tools/nab_score.py
nab: install
	$(BIN)/aemon nab $(NAB) --out runs/nab
	$(BIN)/python $(NAB_SCORER) $(NAB) runs/nab/detections --detectors numenta randomCutForest random

# One setting's NAB total at each of SEEDS, offline (which equals the daemon), scored by NAB's
# scorer into runs/nab-SETTING/seed-S.json, for `aemon held-out` (README, "Telemetry: NAB"):
#   make nab-seeds SETTING=learn300 NAB_FLAGS='--learn-every 300 --learn-delay 300'
SEEDS ?= 0 1 2 3 4 5
SETTING ?= default
NAB_FLAGS ?=
nab-seeds: install
	@for s in $(SEEDS); do \
	  echo "nab-seeds: $(SETTING), seed $$s" >&2; \
	  $(BIN)/aemon nab $(NAB) --out runs/nab-$(SETTING)/seed-$$s --offline-only --seed $$s $(NAB_FLAGS) > /dev/null || exit 1; \
	  $(BIN)/python $(NAB_SCORER) $(NAB) runs/nab-$(SETTING)/seed-$$s/detections --json > runs/nab-$(SETTING)/seed-$$s.json || exit 1; \
	done

# SKAB's and ASD's protocols, the same way (README, "Telemetry: SKAB and ASD").
SKAB ?= ../shared/data/skab
ASD ?= ../shared/data/asd
SEGMENT_SCORER ?= ../shared/tools/segment_score.py
skab: install
	$(BIN)/aemon skab $(SKAB) --out runs/skab
	$(BIN)/python $(SEGMENT_SCORER) $(SKAB) runs/skab/detections --skip 400 | tail -5
asd: install
	$(BIN)/aemon asd $(ASD) --out runs/asd
	$(BIN)/python $(SEGMENT_SCORER) $(ASD) runs/asd/detections | tail -5

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
