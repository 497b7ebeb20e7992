# `make demo` and `make test` work on a fresh machine: the first call makes .venv and installs promptkit with
# the tested stack of constraints.txt (about 3 minutes, mostly torch), later calls reuse it.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test install image-demo frames-demo t2i-demo

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -c constraints.txt -e '.[test,t2i,vis]'
	touch $@

demo: $(VENV)/.installed
	$(PY) tools/demo.py

test: $(VENV)/.installed
	$(PY) -m pytest -q

image-demo: $(VENV)/.installed
	$(PY) tools/image_demo.py

frames-demo: $(VENV)/.installed
	$(PY) tools/frames_demo.py

t2i-demo: $(VENV)/.installed
	$(PY) tools/t2i_demo.py
