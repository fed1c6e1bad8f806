# Entry points for a fresh Debian 12 machine (run as root).
#   make demo   - install everything, mount the memfs example, show it working
#   make test   - install everything, run the whole test suite
PYTHON ?= python3
APT_PACKAGES := libfuse3-dev fuse3 pkg-config attr util-linux gcc
PIP_BUILD := meson-python>=0.15 meson>=1.1 ninja Cython>=3.0

.PHONY: setup demo test

setup:
	@dpkg -s $(APT_PACKAGES) >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); }
	$(PYTHON) -m pip install -q --disable-pip-version-check $(foreach p,$(PIP_BUILD),'$(p)')
	$(PYTHON) -m pip install -q --disable-pip-version-check --no-build-isolation '.[test]'

demo: setup
	bash scripts/demo.sh

test: setup
	$(PYTHON) -m pytest -p no:cacheprovider compat_tests
