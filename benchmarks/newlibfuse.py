"""fuseshim built against a libfuse >= 3.17, for the FUSE passthrough row
(``fuseshim-passthrough-backing``: open() returns FileInfo.backing_fd).

The benchmarks otherwise run the fuseshim this interpreter imports, linked
against the system libfuse (3.14 on Debian 12, no passthrough API).  This
module builds the variant the way the test matrix does (fuseshim.matrix):

- libfuse: the matrix.yaml entry of PASSTHROUGH_LIBFUSE (a Debian source
  package, e.g. fuse3 3.18.3-1 from sid), fetched with ``apt-get source``
  through a PRIVATE apt configuration and built with meson into
  ``$FUSESHIM_CACHE/libfuse/<version>`` -- the very prefix the matrix uses,
  so a matrix run's build is reused (and vice versa);
- fuseshim: this source tree, meson-built against that prefix into
  ``$FUSESHIM_CACHE/bench/fuseshim/<version>/site`` (its own build dir, so
  it never fights the matrix's build of another source tree).

The daemon then runs with PYTHONPATH=<site>:<shims> (a sitecustomize that
drops the editable-install finder) and LD_LIBRARY_PATH=<prefix>/lib.

    python -m benchmarks.newlibfuse          # fetch + build (or reuse), print the env
"""
from __future__ import annotations

import os
import sys

from fuseshim.matrix import build as mbuild
from fuseshim.matrix import libfuse as mlibfuse
from fuseshim.matrix.apt import PrivateApt, system_mirror
from fuseshim.matrix.util import Log, StageError, cache_dir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSTHROUGH_LIBFUSE = '3.18.3'     # an entry of matrix.yaml (libfuse:) with passthrough


class Unavailable(Exception):
    """The variant cannot be built or cannot work here (the reason is the message)."""


def bench_dir() -> str:
    return os.path.join(cache_dir(), 'bench')


def matrix_entry(version: str = PASSTHROUGH_LIBFUSE):
    """The libfuse entry as the matrix itself reads it (schema-checked and
    normalised: the cache key must be the matrix's, or the build is redone)."""
    from fuseshim.matrix import schema
    try:
        spec = schema.load(os.path.join(REPO, 'matrix.yaml'))
    except schema.MatrixError as e:
        raise Unavailable(f'matrix.yaml: {e}') from None
    for e in spec.libfuse:
        if e.version == version:
            return e
    raise Unavailable(f'matrix.yaml has no libfuse entry {version}')


def kernel_reason() -> str | None:
    """Why this kernel cannot do FUSE passthrough, or None."""
    rel = os.uname().release
    try:
        major, minor = (int(x) for x in rel.split('.')[:2])
    except ValueError:
        return None
    if (major, minor) < (6, 9):
        return f'kernel {rel} has no FUSE passthrough (needs Linux >= 6.9)'
    if os.geteuid() != 0:
        return 'FUSE passthrough needs CAP_SYS_ADMIN (run as root)'
    return None


def ensure(build: bool = True, quiet: bool = False, version: str = PASSTHROUGH_LIBFUSE) -> dict:
    """Build (or reuse) fuseshim against libfuse ``version``; -> the env the
    daemon needs ({'PYTHONPATH': ..., 'LD_LIBRARY_PATH': ...}) plus 'version'."""
    why = kernel_reason()
    if why:
        raise Unavailable(why)
    entry = matrix_entry(version)
    # the log and shims live beside build_fuseshim's tree: it removes that tree
    # when the source or the libfuse changed
    own = os.path.join(bench_dir(), 'newlibfuse')
    os.makedirs(own, exist_ok=True)
    log = Log(os.path.join(own, f'build-{version}.log'))
    base = cache_dir()
    apt = PrivateApt(own, system_mirror(),
                     [entry.debian.suite], log=log)
    stamp = os.path.join(base, 'libfuse', version, 'stamp.json')
    if not build and not os.path.exists(stamp):
        raise Unavailable(f'libfuse {version} is not built (drop --no-build, or run '
                          'python -m benchmarks.newlibfuse)')
    if not quiet:
        print(f'newlibfuse: libfuse {version} and fuseshim against it (log: {log.path})',
              flush=True)
    try:
        lf = mlibfuse.ensure_libfuse(entry, base, apt, log)
        built = mbuild.build_fuseshim(REPO, lf, bench_dir(), log)
    except (StageError, OSError) as e:
        raise Unavailable(f'building against libfuse {version} failed: {e}; see {log.path}') \
            from None
    if built.get('problems'):
        raise Unavailable('; '.join(built['problems']))
    shims = mbuild.write_shims(os.path.join(own, 'shims'))
    env = {'PYTHONPATH': os.pathsep.join([built['site'], shims, REPO])}
    if lf.libdir:
        env['LD_LIBRARY_PATH'] = lf.libdir
    return {'env': env, 'version': version, 'so': built['so']}


if __name__ == '__main__':
    try:
        out = ensure(build='--no-build' not in sys.argv)
    except Unavailable as e:
        print(f'unavailable: {e}', file=sys.stderr)
        sys.exit(1)
    for k, v in out['env'].items():
        print(f'{k}={v}')
    print(f'extension: {out["so"]}')
