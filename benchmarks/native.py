"""libfuse's own C passthrough filesystems (passthrough_ll, passthrough_hp),
built from the Debian fuse3 source package into the cache directory.

The source comes from ``apt-get source fuse3=<version>`` through the test
matrix's PRIVATE apt configuration (fuseshim.matrix.apt: own sources.list
with the mirror copied at run time from the system's apt sources, own lists
and archive cache under the cache dir).  The system's apt lists are never
touched.
The source and build trees stay in the cache (never in the repository).

    python -m benchmarks.native            # fetch + build (or reuse), print paths
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import sys

from fuseshim.matrix.apt import PrivateApt, system_mirror
from fuseshim.matrix.libfuse import build_tools_env, meson_cmd
from fuseshim.matrix.util import Log, StageError, run

DEBIAN_PACKAGE = 'fuse3'
DEBIAN_VERSION = '3.14.0-4'      # bookworm: the libfuse this machine's fuseshim links
DEBIAN_SUITE = 'bookworm'
MESON_OPTIONS = ['-Dexamples=true', '-Dutils=false', '-Dtests=false']
TARGETS = ('passthrough_ll', 'passthrough_hp')


class NativeUnavailable(Exception):
    """The C peers could not be fetched or built (the reason is the message)."""


def cache_dir() -> str:
    base = os.environ.get('FUSESHIM_CACHE') or os.path.join(
        os.path.expanduser('~'), '.cache', 'fuseshim')
    return os.path.join(base, 'bench')


def build_root(version: str = DEBIAN_VERSION) -> str:
    return os.path.join(cache_dir(), f'libfuse-{version}')


def binaries(version: str = DEBIAN_VERSION) -> dict:
    """{name: path} of the built C examples that exist (possibly empty)."""
    ex = os.path.join(build_root(version), 'build', 'example')
    return {t: os.path.join(ex, t) for t in TARGETS if os.access(os.path.join(ex, t), os.X_OK)}


def _run(cmd, log, cwd=None, env=None, timeout=900):
    try:
        run(cmd, cwd=cwd, env=env, log=log, timeout=timeout)
    except StageError as e:
        raise NativeUnavailable(f'{" ".join(map(str, cmd[:3]))}... failed: {e}; '
                                f'see {log.path}') from None


def ensure(version: str = DEBIAN_VERSION, rebuild: bool = False, quiet: bool = False) -> dict:
    """Fetch and build passthrough_ll/hp (or reuse them); -> {name: path}."""
    root = build_root(version)
    have = binaries(version)
    stamp = os.path.join(root, 'stamp.json')
    key = {'version': version, 'options': MESON_OPTIONS}
    if not rebuild and len(have) == len(TARGETS) and os.path.exists(stamp):
        with open(stamp) as f:
            if json.load(f) == key:
                return have
    for tool in ('apt-get', 'dpkg-source', 'cc', 'c++'):
        if not shutil.which(tool):
            raise NativeUnavailable(f'{tool} is missing (apt-get install dpkg-dev gcc g++)')
    os.makedirs(root, exist_ok=True)
    log_path = os.path.join(root, 'build.log')
    if os.path.exists(log_path):
        os.remove(log_path)
    log = Log(log_path)
    if not quiet:
        print(f'native: fetching {DEBIAN_PACKAGE} {version} and building {", ".join(TARGETS)} '
              f'(log: {log_path})', flush=True)
    src = os.path.join(root, 'src')
    tree = _source_tree(src)
    if tree is None or rebuild:
        shutil.rmtree(src, ignore_errors=True)
        os.makedirs(src, exist_ok=True)
        try:
            apt = PrivateApt(cache_dir(), system_mirror(), [DEBIAN_SUITE], log=log)
            apt.ensure()
            apt.apt_get('source', f'{DEBIAN_PACKAGE}={version}', cwd=src, log=log)
        except StageError as e:
            raise NativeUnavailable(str(e)) from None
        tree = _source_tree(src)
        if tree is None:
            raise NativeUnavailable(f'apt-get source left no meson tree in {src}')
    build = os.path.join(root, 'build')
    env = build_tools_env()
    env.pop('PKG_CONFIG_PATH', None)
    if rebuild or not os.path.exists(os.path.join(build, 'build.ninja')):
        shutil.rmtree(build, ignore_errors=True)
        _run(meson_cmd() + ['setup', build, tree, '--buildtype=release', *MESON_OPTIONS],
             log, env=env)
    _run(meson_cmd() + ['compile', '-C', build] + [f'example/{t}' for t in TARGETS], log,
         env=env)
    have = binaries(version)
    if len(have) != len(TARGETS):
        raise NativeUnavailable(f'built {sorted(have)} only; see {log_path}')
    with open(stamp, 'w') as f:
        json.dump(key, f)
    return have


def _source_tree(src):
    tops = [d for d in glob.glob(os.path.join(src, '*'))
            if os.path.isdir(d) and os.path.exists(os.path.join(d, 'meson.build'))]
    return tops[0] if len(tops) == 1 else None


if __name__ == '__main__':
    try:
        for name, path in ensure(rebuild='--rebuild' in sys.argv).items():
            print(f'{name}: {path}')
    except NativeUnavailable as e:
        print(f'native peers unavailable: {e}', file=sys.stderr)
        sys.exit(1)
