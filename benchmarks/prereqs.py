"""Install what a full benchmark run needs on Debian 12, as root: the
peers (pyfuse3, llfuse, mfusepy, fusepy), the tools (perf, py-spy,
matplotlib for the plot) and what building libfuse's C examples from the
Debian source package takes.  ``python -m benchmarks --install-prereqs``
(``make bench`` runs it first)."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys

# llfuse builds against libfuse 2 (libfuse-dev); passthrough_hp is C++;
# apt-get source unpacks with dpkg-source; perf counts FUSE requests
APT = ['fuse3', 'libfuse3-dev', 'libfuse-dev', 'libfuse2', 'pkg-config', 'gcc', 'g++',
       'dpkg-dev', 'linux-perf']
PIP = ['pyfuse3', 'trio', 'llfuse', 'mfusepy', 'fusepy', 'matplotlib', 'py-spy',
       'meson', 'ninja']


def _run(cmd) -> int:
    print('$', shlex.join(cmd), flush=True)
    return subprocess.run(cmd, env=dict(os.environ, DEBIAN_FRONTEND='noninteractive')).returncode


def install() -> int:
    apt = ['apt-get', 'install', '-y', '-q', '--no-install-recommends', *APT]
    if _run(apt) != 0 and (_run(['apt-get', 'update', '-q']) != 0 or _run(apt) != 0):
        print('benchmarks: apt-get install failed', file=sys.stderr)
        return 1
    if _run([sys.executable, '-m', 'pip', 'install', '-q', *PIP]) != 0:
        print('benchmarks: pip install failed', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(install())
