# `make demo` and `make test` work on a fresh machine: the first call makes .venv and installs promptkit with
# its pinned stack (about 3 minutes, mostly torch), later calls reuse it.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test install image-demo t2i-demo

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(PY) tools/demo.py

test: $(VENV)/.installed
	$(PY) -m pytest -q

image-demo: $(VENV)/.installed
	$(PY) tools/image_demo.py

t2i-demo: $(VENV)/.installed
	$(PY) tools/t2i_demo.py
