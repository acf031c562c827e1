# Grad-CAM Studio — the two commands: `make run` (start the app) and `make test` (run every test);
# `make test-fast` runs the quick tier (no slow, no e2e tests) for the edit–test loop.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501

.PHONY: run dev test test-fast install install-dev browser postgres bench clean soak

# (re)create the virtual environment whenever a requirements file changes
$(VENV)/.runtime: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.dev: requirements-dev.txt requirements-ray.txt $(VENV)/.runtime
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

run: install
	$(VENV)/bin/streamlit run app.py --server.port $(PORT)

# development: re-run the page when a project file is saved (polling the project's files, not .venv's)
dev: install
	$(VENV)/bin/streamlit run app.py --server.port $(PORT) --server.fileWatcherType poll \
	  --server.runOnSave true --server.folderWatchBlacklist .venv

# Debian's Chromium for the real-browser tests (Playwright drives it; no browser download)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Chromium is missing: sudo apt-get install chromium"; exit 1; fi; }

# Debian's PostgreSQL server binaries: tests/test_store_postgres.py starts its own server from them (tests/pg.py)
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "PostgreSQL is missing: sudo apt-get install postgresql"; exit 1; fi; }

# the library's tests in $(WORKERS) processes (pytest-xdist, a test file per process at a time), then the real-browser
# and load tests one at a time, alone on the machine (they time what a person waits for); both parts always run
WORKERS ?= 2
test: install-dev browser postgres
	$(PY) -m pytest -n $(WORKERS) --dist loadfile -m "not e2e"; lib=$$?; \
	$(PY) -m pytest -m e2e; e2e=$$?; test $$lib = 0 && test $$e2e = 0

# the fast tier for the edit–test loop: every package's quick tests, no real browser or server
# (markers in pytest.ini, the slow list in tests/conftest.py)
test-fast: install-dev
	$(PY) -m pytest -n $(WORKERS) --dist loadfile -m "not slow and not e2e"

bench: install
	$(PY) -m core bench

clean:
	rm -rf $(VENV) .pytest_cache artifacts

# issue 23: N browser sessions x M minutes of mixed use; the server's RSS per minute, its peak and slope (not in CI)
soak: install-dev browser
	$(PY) tools/soak.py
