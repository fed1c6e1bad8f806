# Entry points for a fresh Debian 12 machine (run as root).
#   make matrix  - install everything, run the default migration matrix (reports in matrix-report/)
#   make test    - install everything, run the whole test suite
#   make demo    - install everything, mount the memfs example and use it
#   make bench   - install everything (peers too), run the full benchmark (docs/performance.md)
PYTHON ?= python3
APT_PACKAGES := libfuse3-dev fuse3 libfuse2 libfuse-dev pkg-config attr util-linux gcc g++ fio
PIP_BUILD := meson-python>=0.15 meson>=1.1 ninja Cython>=3.0
PRESET ?= full
# cell builds must be readable by `nobody` (the unprivileged-mount tests)
export FUSESHIM_CACHE ?= /var/cache/fuseshim
MATRIX_ARGS ?=
BENCH_ARGS ?=

.PHONY: setup demo test matrix bench

setup:
	@dpkg -s $(APT_PACKAGES) >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); }
	$(PYTHON) -m pip install -q --disable-pip-version-check $(foreach p,$(PIP_BUILD),'$(p)')
	@# with build isolation: the peers' sdists (pyfuse3 3.5) need a newer
	@# setuptools than Debian 12's Python ships
	$(PYTHON) -m pip install -q --disable-pip-version-check '.[test,matrix]'

demo: setup
	bash scripts/demo.sh

test: setup
	$(PYTHON) -m pytest -p no:cacheprovider compat_tests

matrix: setup
	$(PYTHON) -m fuseshim.matrix --install-prereqs
	$(PYTHON) -m fuseshim.matrix --preset $(PRESET) $(MATRIX_ARGS)

bench: setup
	$(PYTHON) -m benchmarks --install-prereqs $(BENCH_ARGS)
