# Two entry points (see README): `make run` and `make test`. Both install into .venv first.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test install

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/actstore run $(ARGS)

# the suite in one pytest-xdist worker per core, each with one torch/BLAS thread (2 cores: 7.2 min, against 8.9 in one
# process with 2 threads and 8.2 in two workers with 2 threads each); each test file stays in one worker, so its module
# fixtures are built once, and the session's smoke root is built once for all workers (tests/conftest.py)
test: $(STAMP)
	OMP_NUM_THREADS=1 $(VENV)/bin/python -m pytest -q -n auto --dist loadfile $(ARGS)
