"""libfuse's own C passthrough filesystems (passthrough_ll, passthrough_hp),
built from the Debian fuse3 source package into the cache directory.

The source comes from ``apt-get source fuse3=<version>`` run with a PRIVATE
apt configuration under ``$FUSESHIM_CACHE/bench/apt`` (or
``~/.cache/fuseshim/bench/apt``): its own sources.list holding one deb-src
line whose mirror URL is copied at run time from the system's apt sources,
its own lists and archive cache.  The system's apt lists are never touched.
The source and build trees stay in the cache (never in the repository).

    python -m benchmarks.native            # fetch + build (or reuse), print paths
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys

DEBIAN_PACKAGE = 'fuse3'
DEBIAN_VERSION = '3.14.0-4'      # bookworm: the libfuse this machine's fuseshim links
DEBIAN_SUITE = 'bookworm'
KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg'
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


# ---------------------------------------------------------------- private apt

def system_mirror() -> str:
    """The Debian archive URL the system's apt uses (not the security one)."""
    found = []
    paths = ['/etc/apt/sources.list'] + sorted(glob.glob('/etc/apt/sources.list.d/*'))
    for path in paths:
        try:
            with open(path, encoding='utf-8', errors='replace') as f:
                text = f.read()
        except OSError:
            continue
        if path.endswith('.sources'):
            for stanza in re.split(r'\n\s*\n', text):
                fields = {}
                for line in stanza.splitlines():
                    if line.lstrip().startswith('#') or ':' not in line:
                        continue
                    k, _, v = line.partition(':')
                    fields[k.strip().lower()] = v.strip()
                if fields.get('enabled', 'yes').lower() == 'no':
                    continue
                found += fields.get('uris', '').split()
        elif path.endswith('.list'):
            for line in text.splitlines():
                words = re.sub(r'\[[^]]*\]', '', line.split('#', 1)[0]).split()
                if len(words) >= 3 and words[0] in ('deb', 'deb-src'):
                    found.append(words[1])
    for uri in found:
        if 'security' not in uri and '/debian' in uri:
            return uri.rstrip('/')
    if found:
        return found[0].rstrip('/')
    raise NativeUnavailable('no Debian mirror in /etc/apt/sources.list{,.d}')


class PrivateApt:
    def __init__(self, root: str, mirror: str):
        self.root = root
        self.mirror = mirror
        self.sources = os.path.join(root, 'etc', 'sources.list')
        self.lists = os.path.join(root, 'lists')
        self.cache = os.path.join(root, 'cache')

    def options(self) -> list:
        return ['-o', f'Dir::Etc::SourceList={self.sources}',
                '-o', 'Dir::Etc::SourceParts=/dev/null',
                '-o', f'Dir::State::Lists={self.lists}',
                '-o', f'Dir::Cache={self.cache}',
                '-o', 'Dir::Etc::Preferences=/dev/null',
                '-o', 'Dir::Etc::PreferencesParts=/dev/null',
                '-o', 'APT::Sandbox::User=root',
                '-o', 'Acquire::Languages=none',
                '-o', 'Acquire::Retries=3',
                '-o', 'Debug::NoLocking=1']

    def setup(self, log):
        for d in (os.path.dirname(self.sources), os.path.join(self.lists, 'partial'),
                  os.path.join(self.cache, 'archives', 'partial')):
            os.makedirs(d, exist_ok=True)
        signed = f' [signed-by={KEYRING}]' if os.path.exists(KEYRING) else ''
        text = (f'# written by fuseshim benchmarks; private to {self.root}\n'
                f'deb-src{signed} {self.mirror} {DEBIAN_SUITE} main\n')
        old = open(self.sources).read() if os.path.exists(self.sources) else None
        have_lists = bool(glob.glob(os.path.join(self.lists, '*Sources*')))
        if old != text or not have_lists:
            with open(self.sources, 'w') as f:
                f.write(text)
            _run(['apt-get', '-q', *self.options(), 'update'], log)

    def source(self, spec: str, dest: str, log):
        os.makedirs(dest, exist_ok=True)
        _run(['apt-get', '-q', *self.options(), 'source', spec], log, cwd=dest)


def _run(cmd, log, cwd=None, env=None, timeout=900):
    log.write('$ ' + ' '.join(cmd) + '\n')
    log.flush()
    p = subprocess.run(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                       timeout=timeout)
    if p.returncode != 0:
        raise NativeUnavailable(f'{" ".join(cmd[:3])}... failed (exit {p.returncode}); '
                                f'see {log.name}')


def _tools_env() -> dict:
    env = dict(os.environ)
    dirs = [os.path.dirname(sys.executable)]
    try:
        import ninja  # pip's ninja
        dirs.append(ninja.BIN_DIR)
    except (ImportError, AttributeError):
        pass
    env['PATH'] = os.pathsep.join(dirs + [env.get('PATH', '/usr/bin:/bin')])
    env.pop('PKG_CONFIG_PATH', None)
    return env


def _meson() -> list:
    try:
        import mesonbuild  # noqa: F401  (pip's meson)
        return [sys.executable, '-m', 'mesonbuild.mesonmain']
    except ImportError:
        m = shutil.which('meson')
        if not m:
            raise NativeUnavailable('meson is missing: pip install meson ninja') from None
        return [m]


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
    with open(log_path, 'w') as log:
        if not quiet:
            print(f'native: fetching {DEBIAN_PACKAGE} {version} and building {", ".join(TARGETS)} '
                  f'(log: {log_path})', flush=True)
        src = os.path.join(root, 'src')
        tree = _source_tree(src)
        if tree is None or rebuild:
            shutil.rmtree(src, ignore_errors=True)
            apt = PrivateApt(os.path.join(cache_dir(), 'apt'), system_mirror())
            apt.setup(log)
            apt.source(f'{DEBIAN_PACKAGE}={version}', src, log)
            tree = _source_tree(src)
            if tree is None:
                raise NativeUnavailable(f'apt-get source left no meson tree in {src}')
        build = os.path.join(root, 'build')
        env = _tools_env()
        if rebuild or not os.path.exists(os.path.join(build, 'build.ninja')):
            shutil.rmtree(build, ignore_errors=True)
            _run(_meson() + ['setup', build, tree, '--buildtype=release', *MESON_OPTIONS],
                 log, env=env)
        _run(_meson() + ['compile', '-C', build] + [f'example/{t}' for t in TARGETS], log,
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
