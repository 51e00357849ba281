# Two commands do all the set-up: `make run` (install, migrate, demo catalog, serve) and `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint bench worker serve browser

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch and torchvision first, pinned, so pip takes them from the local wheel store.
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py setup_demo
	$(PY) manage.py repair_index
	@echo "Serving on http://$(HOST):$(PORT)/  (admin: http://$(HOST):$(PORT)/admin/)"
	$(PY) manage.py runserver $(HOST):$(PORT)

# Production-style server (gunicorn) for the app as it is configured by the environment.
serve: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py repair_index
	$(VENV)/bin/gunicorn fashion_search.wsgi --bind $(HOST):$(PORT) --workers 2 --threads 4 --timeout 60

worker: install
	$(VENV)/bin/celery -A fashion_search worker --loglevel=INFO --concurrency=1

# Browser tests (tests/e2e, marker `browser`) drive Debian's Chromium through Playwright, which never
# downloads a browser of its own. Installed with apt the first time; skipped (with a warning) without apt.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q

browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium and chromium-driver for the browser tests"; \
	    $(APT_INSTALL) chromium chromium-driver || { $(SUDO) apt-get update -q && $(APT_INSTALL) chromium chromium-driver; }; \
	  else \
	    echo "warning: no $(CHROMIUM) and no apt-get: the browser tests will be skipped"; \
	  fi; \
	fi

test: install browser
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .

# Load benchmark, not a test: 50 shoppers search by photo for 60 s against gunicorn on PostgreSQL
# (BENCH_DATABASE_URL, default database fashion_bench on 127.0.0.1), all on loopback; see bench/README.md.
.PHONY: bench-load
$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e '.[bench]'
	touch $@

bench-load: $(VENV)/.bench-installed
	$(PY) bench/load_search.py

# Benchmarks, not tests: embedding throughput (naive eager PyTorch against ONNX Runtime, OpenVINO, int8),
# what smaller inputs would buy, vector search latency and recall at 10k/100k/1M (HNSW built at 1M: 6-7
# min), upload-to-results over HTTP with a 100k catalog, tagging into that catalog with a real worker,
# bulk tagging, peak memory. Prints tables and writes them into bench/README.md with the machine they
# ran on: about 21 min on this project's 2-core development machine, 2 more the first time (it embeds
# the dataset's 3,400 photos once and fills a 100k-item PostgreSQL database); a machine three times
# slower, as one earlier session's was, takes about an hour.
bench: $(VENV)/.bench-installed
	$(PY) bench/run_all.py
