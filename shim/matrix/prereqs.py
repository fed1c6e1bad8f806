"""fuseshim-matrix --install-prereqs: install what the runner needs.

Standard library only: it runs on a machine where the ``matrix`` extra (the
runner's Python dependencies, which it installs) is still missing."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

# liburing's build dependencies, for the libfuse row built with io_uring
URING_BUILD_DEPS = ('liburing-dev', 'libnuma-dev')
APT_PACKAGES = ('qemu-system-x86', 'e2fsprogs', *URING_BUILD_DEPS)


def matrix_extra() -> list[str]:
    """The requirements of fuseshim's "matrix" extra as the installed
    fuseshim declares them (pyproject.toml is the one list: a second one here
    would drift from it)."""
    from importlib.metadata import requires
    out = []
    for req in requires('fuseshim') or []:
        spec, _, marker = req.partition(';')
        if re.fullmatch(r'\s*extra\s*==\s*["\']matrix["\']\s*', marker):
            out.append(spec.strip())
    return out


def install() -> int:
    cmds = [['apt-get', 'install', '-y', '--no-install-recommends', *APT_PACKAGES],
            [sys.executable, '-m', 'pip', 'install', *matrix_extra()]]
    for cmd in cmds:
        print('$', shlex.join(cmd), flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
        if subprocess.run(cmd, env=env).returncode != 0:
            if cmd[0] == 'apt-get':
                print('apt-get install failed; the system package lists may be missing: '
                      'run "apt-get update" and retry', file=sys.stderr)
            return 1
    return 0
