"""A private apt configuration under the cache directory.

The runner never touches the system's apt lists: it writes its own
sources.list (deb + deb-src for the suites the matrix needs) and keeps lists
and downloaded archives under ``$CACHE/apt``.  The mirror URL is copied from
/etc/apt at run time (or taken from matrix.yaml's ``mirror``)."""
from __future__ import annotations

import glob
import os
import re
import subprocess
import threading
import time

from .util import StageError, run

KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg'
LISTS_MAX_AGE = 24 * 3600


def system_mirror(etc='/etc/apt') -> str:
    """The Debian archive URL this machine's apt uses (not the security one)."""
    candidates = []
    for path in [os.path.join(etc, 'sources.list')] + sorted(
            glob.glob(os.path.join(etc, 'sources.list.d', '*'))):
        try:
            with open(path, encoding='utf-8', errors='replace') as f:
                text = f.read()
        except OSError:
            continue
        if path.endswith('.sources'):
            for stanza in re.split(r'\n\s*\n', text):
                fields = {}
                for line in stanza.splitlines():
                    if line.startswith('#') or ':' not in line:
                        continue
                    k, _, v = line.partition(':')
                    fields[k.strip().lower()] = v.strip()
                if fields.get('enabled', 'yes').lower() == 'no':
                    continue
                for uri in fields.get('uris', '').split():
                    candidates.append((uri, fields.get('suites', '').split()))
        elif path.endswith('.list'):
            for line in text.splitlines():
                line = re.sub(r'\[[^]]*\]', '', line.split('#', 1)[0]).split()
                if len(line) >= 3 and line[0] == 'deb':
                    candidates.append((line[1], [line[2]]))
    for uri, suites in candidates:
        if any(s in ('bullseye', 'bookworm', 'trixie', 'forky', 'sid', 'stable', 'testing',
                     'unstable', 'oldstable') for s in suites) and 'security' not in uri:
            return uri.rstrip('/')
    raise StageError('no Debian mirror found in /etc/apt/sources.list{,.d}: set "mirror:" '
                     'in matrix.yaml to the archive URL')


class PrivateApt:
    def __init__(self, cache_dir: str, mirror: str, suites: list[str], log=None):
        self.root = os.path.join(cache_dir, 'apt')
        self.mirror = mirror
        self.suites = list(dict.fromkeys(suites))
        self.log = log
        self.sources = os.path.join(self.root, 'etc', 'sources.list')
        self.lists = os.path.join(self.root, 'lists')
        self.cache = os.path.join(self.root, 'cache')
        self._updated = False
        self._lock = threading.RLock()   # one apt at a time on the private lists

    def options(self) -> list[str]:
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

    def apt_get(self, *args, cwd=None, log=None, timeout=1200):
        with self._lock:
            return run(['apt-get', '-q', *self.options(), *args], cwd=cwd, log=log or self.log,
                       timeout=timeout)

    def apt_cache(self, *args) -> str:
        with self._lock:
            return subprocess.run(['apt-cache', *self.options(), *args], check=True,
                                  capture_output=True, text=True).stdout

    def sources_text(self) -> str:
        signed = f' [signed-by={KEYRING}]' if os.path.exists(KEYRING) else ''
        lines = ['# written by fuseshim.matrix; private to its cache']
        for s in self.suites:
            lines.append(f'deb{signed} {self.mirror} {s} main')
            lines.append(f'deb-src{signed} {self.mirror} {s} main')
        return '\n'.join(lines) + '\n'

    def ensure(self, refresh=False):
        """Write the configuration and run apt-get update when the lists are
        missing, older than a day, for other suites, or refresh is asked."""
        with self._lock:
            self._ensure(refresh)

    def _ensure(self, refresh):
        if self._updated and not refresh:
            return
        for d in (os.path.dirname(self.sources), os.path.join(self.lists, 'partial'),
                  os.path.join(self.cache, 'archives', 'partial')):
            os.makedirs(d, exist_ok=True)
        text = self.sources_text()
        old = None
        if os.path.exists(self.sources):
            with open(self.sources) as f:
                old = f.read()
        stamp = os.path.join(self.root, 'updated')
        fresh = (old == text and os.path.exists(stamp)
                 and time.time() - os.path.getmtime(stamp) < LISTS_MAX_AGE)
        if fresh and not refresh:
            self._updated = True
            return
        with open(self.sources, 'w') as f:
            f.write(text)
        self.apt_get('update')
        with open(stamp, 'w') as f:
            f.write(time.strftime('%Y-%m-%dT%H:%M:%S\n'))
        self._updated = True

    def resolve(self, pattern: str, suite: str | None = None) -> tuple[str, str]:
        """Cached per apt-get update (apt-cache can take seconds per call)."""
        import json
        memo_path = os.path.join(self.root, 'resolved.json')
        stamp = os.path.join(self.root, 'updated')
        tag = str(os.path.getmtime(stamp)) if os.path.exists(stamp) else ''
        key = f'{suite or ""}|{pattern}'
        with self._lock:
            try:
                with open(memo_path) as f:
                    memo = json.load(f)
            except (OSError, ValueError):
                memo = {}
            if memo.get('_tag') != tag:
                memo = {'_tag': tag}
            if key in memo:
                return tuple(memo[key])
            got = self._resolve(pattern, suite)
            memo[key] = list(got)
            with open(memo_path + '.tmp', 'w') as f:
                json.dump(memo, f, indent=1)
            os.replace(memo_path + '.tmp', memo_path)
            return got

    def _resolve(self, pattern: str, suite: str | None = None) -> tuple[str, str]:
        """Highest package matching ``pattern`` (optionally only in ``suite``)
        -> (name, version).  A pattern starting with ^ is a regular
        expression (use it to exclude flavours: ^linux-image-6\\.1\\.0-\\d+-amd64$),
        anything else a shell glob."""
        import fnmatch
        if pattern.startswith('^'):
            rx = re.compile(pattern)
            prefix = re.match(r'[A-Za-z0-9_-]*', pattern[1:]).group(0)
            ok = rx.search
        else:
            prefix = re.split(r'[*?\[]', pattern, 1)[0]
            ok = lambda n: fnmatch.fnmatchcase(n, pattern)  # noqa: E731
        names = [n for n in self.apt_cache('pkgnames', prefix).split() if ok(n)]
        best = None
        for name in names:
            for version, suites in self.versions(name):
                if suite and suite not in suites:
                    continue
                key = (_natural(version), _natural(name))
                if best is None or key > best[0]:
                    best = (key, name, version)
        if best is None:
            raise StageError(f'no package matches {pattern!r}'
                             + (f' in {suite}' if suite else '') + ' (private apt lists in '
                             f'{self.lists}; run with --refresh to update them)')
        return best[1], best[2]

    def versions(self, name: str) -> list[tuple[str, set]]:
        """[(version, {suites})] from apt-cache policy."""
        out = []
        cur = None
        for line in self.apt_cache('policy', name).splitlines():
            m = re.match(r'^\s+(?:\*\*\* )?(\S+) (-?\d+)$', line)
            if m:
                cur = (m.group(1), set())
                out.append(cur)
                continue
            m = re.match(r'^\s+-?\d+ \S+ (\S+?)/\S+ ', line)
            if m and cur is not None:
                cur[1].add(m.group(1))
        return out

    def download(self, specs: list[str], dest: str, log=None) -> list[str]:
        """apt-get download into ``dest``; returns the .deb paths."""
        os.makedirs(dest, exist_ok=True)
        before = set(os.listdir(dest))
        self.apt_get('download', *specs, cwd=dest, log=log)
        return sorted(os.path.join(dest, f) for f in set(os.listdir(dest)) - before
                      if f.endswith('.deb'))

    def source(self, spec: str, dest: str, log=None):
        """apt-get source (downloads and unpacks with dpkg-source)."""
        os.makedirs(dest, exist_ok=True)
        self.apt_get('source', spec, cwd=dest, log=log)


def _natural(s: str):
    return [(0, int(t), '') if t.isdigit() else (1, 0, t) for t in re.findall(r'\d+|\D+', s)]
