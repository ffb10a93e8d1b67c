# Two commands matter: `make run` serves the API on :7071, `make test` runs the tests.
# `make run PORT=8080 HOST=0.0.0.0` listens elsewhere (all interfaces: containers, WSL, a remote box).
# Both set everything up on a fresh clone (virtualenv, packages, embedded Postgres).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Processes serving HTTP in `make run` (one background worker among them), and where they listen.
WORKERS ?= 2
PORT ?= 7071
HOST ?= 127.0.0.1
export HF_HUB_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install run test test-quick browser spark lint migrate seed clean

install: $(VENV)/.installed

# Rebuilt from scratch when the requirements change, so nothing they dropped lingers.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	rm -rf $(VENV)
	@echo "Setting up .venv: the packages (about a minute, 157 MB of downloads) ..."
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

run: install
	$(PY) cli.py seed --if-empty
	$(PY) local_runner.py --workers $(WORKERS) --host $(HOST) --port $(PORT)

test: install browser spark
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest

# The quick loop for everyday edits: everything but the tests that drive the service over HTTP.
test-quick: install
	$(PY) -m ruff check .
	$(PY) -m pytest -m "not service"

# tests/test_ui_browser.py drives Debian's chromium through chromedriver, and skips, saying why,
# where they are missing. Installed here with apt-get when we are root or `sudo -n` works.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then \
		echo "No apt-get: the browser test will skip (it needs chromium and chromedriver)."; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else \
		echo "Not root, no sudo: the browser test will skip (apt-get install chromium chromium-driver)."; \
		exit 0; fi; \
	echo "Installing chromium and chromedriver for the browser test (apt-get)"; \
	$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends chromium chromium-driver \
		|| echo "apt-get could not install chromium and chromium-driver: the browser test will skip."

# tests/test_spark_job.py runs the Spark training job (recommender/spark/train.py) in local mode: it
# needs Java and the Postgres JDBC driver (Debian's, installed with apt-get as `browser` installs
# chromium) and pyspark, in a virtualenv of its own (.venv-spark), never in the service's.
SPARK_VENV := .venv-spark

spark: $(SPARK_VENV)/.installed
	@if command -v java >/dev/null && [ -f /usr/share/java/postgresql.jar ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then \
		echo "No apt-get: the Spark job's test will skip (it needs java and the Postgres JDBC driver)."; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else \
		echo "Not root, no sudo: the Spark job's test will skip" \
			"(apt-get install openjdk-17-jre-headless libpostgresql-jdbc-java)."; exit 0; fi; \
	echo "Installing Java 17 and the Postgres JDBC driver for the Spark job's test (apt-get)"; \
	$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless libpostgresql-jdbc-java \
		|| echo "apt-get could not install Java and the JDBC driver: the Spark job's test will skip."

# Rebuilt from scratch when requirements-spark.txt changes, like .venv.
$(SPARK_VENV)/.installed: requirements-spark.txt
	rm -rf $(SPARK_VENV)
	@echo "Setting up .venv-spark for the Spark job's test: pyspark (about 320 MB of downloads) ..."
	$(PYTHON) -m venv $(SPARK_VENV)
	$(SPARK_VENV)/bin/python -m pip install --quiet -r requirements-spark.txt
	touch $@

lint: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

migrate: install
	$(PY) cli.py migrate

seed: install
	$(PY) cli.py seed

clean:
	rm -rf $(VENV) $(SPARK_VENV) .data .pytest_cache .ruff_cache

# Benchmarks: recommend latency and throughput against a naive baseline, recall, ingest, scale.
# Writes bench/results.json and bench/RESULTS.md; built catalogs are cached in bench/.work/.
.PHONY: bench bench-quick

bench: install
	$(PY) -m bench.run

bench-quick: install
	$(PY) -m bench.run --quick

# The collaborative model's refresh at 100k episodes x 10M events (also a phase of `make bench`).
.PHONY: bench-collab

bench-collab: install
	$(PY) -m bench.collab

# Soak (issue 21): listeners mixing pages, feedback, searches, history updates and new episodes
# against the service as `make run` starts it, 16 for 10 minutes; fails on any 5xx or deadlock.
# Writes the "soak" key of bench/results.json and bench/SOAK_RESULTS.md. Shorter or heavier:
# make bench-soak SOAK_ARGS="--clients 8 --minutes 2"
.PHONY: bench-soak

bench-soak: install
	$(PY) -m bench.soak $(SOAK_ARGS)

# Real-data replays (bench/REAL_RESULTS.md): real listeners against the service and offline
# baselines, three split seeds each; every data set one after the other (HetRec 2011 Last.fm, then
# FilmTrust's ratings), or one: make bench-real DATA_SET=filmtrust. The data sets stay outside the
# repository, under ../shared/data (another place: REAL_ARGS="--data PATH" with one DATA_SET).
DATA_SET ?= lastfm filmtrust
.PHONY: bench-real

bench-real: install
	set -e; for data_set in $(DATA_SET); do $(PY) -m bench.real_replay --data-set $$data_set $(REAL_ARGS); done
