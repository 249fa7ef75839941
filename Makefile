# The two commands of the README:
#   make run    set everything up, then train the built-in default (the quickstart preset)
#   make test   set everything up, then run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
# A pinned torch resolves to the CPU wheel on machines of this kind; an unpinned one pulls a multi-GB CUDA build.
TORCH ?= torch==2.13.0
# Debian libraries for headless MuJoCo rendering through EGL (Mesa, software); installed when root and missing.
# OSMesa (libosmesa6) is a fallback the code also supports; it is not installed by default.
DEBIAN_PACKAGES := libegl1 libegl-mesa0 libgl1-mesa-dri
RUN_ARGS ?= size=quickstart
RUN_DIR ?= runs/quickstart

.PHONY: setup run test clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $$missing; \
	  else echo "note: missing Debian packages ($$missing); install them as root for headless MuJoCo rendering"; fi; \
	fi
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[all]"
	touch $@

# One torch thread: the networks are small, and on a shared 2-core box extra threads cost 15-20x (docs/results.md).
run: setup
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(VENV)/bin/ssmrl train $(RUN_ARGS) --run-dir $(RUN_DIR)

test: setup
	$(PY) -m pytest -q -p no:cacheprovider; rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

clean:
	rm -rf $(VENV) runs
