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

from debian import deb822

from .util import StageError, run

KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg'
APT_HELPER = '/usr/lib/apt/apt-helper'
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
        if path.endswith('.sources'):      # deb822 format (sources.list(5))
            for stanza in deb822.Deb822.iter_paragraphs(text.splitlines()):
                if stanza.get('Enabled', 'yes').lower() == 'no':
                    continue
                for uri in stanza.get('URIs', '').split():
                    candidates.append((uri, stanza.get('Suites', '').split()))
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
        """Highest package matching ``pattern`` (optionally only in ``suite``)
        -> (name, version), cached per apt-get update.  A pattern starting
        with ^ is a regular expression (use it to exclude flavours:
        ^linux-image-6\\.1\\.0-\\d+-amd64$), anything else a shell glob."""
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
            got = highest(self.packages(package_matcher(pattern), suite), pattern, suite)
            if got is None:
                raise StageError(f'no package matches {pattern!r}'
                                 + (f' in {suite}' if suite else '') + ' (private apt lists in '
                                 f'{self.lists}; run with --refresh to update them)')
            memo[key] = list(got)
            os.makedirs(self.root, exist_ok=True)
            with open(memo_path + '.tmp', 'w') as f:
                json.dump(memo, f, indent=1)
            os.replace(memo_path + '.tmp', memo_path)
            return got

    def packages(self, wanted, suite: str | None = None):
        """Yield (name, version, suite) for every binary package in the
        private lists whose name ``wanted(name)`` accepts.

        The lists are read as apt keeps them: ``apt-get indextargets`` names
        each Packages file and its codename, ``apt-helper cat-file``
        decompresses it, and python-debian's deb822 parses the stanzas (only
        those whose Package line is wanted: sid alone has ~70,000)."""
        for target in deb822.Deb822.iter_paragraphs(
                self.apt_get_output('indextargets', 'Identifier: Packages')):
            codename = target.get('Codename') or target.get('Release', '')
            if suite and suite not in (codename, target.get('Suite')):
                continue
            text = self.cat_file(target['Filename'])
            for stanza in text.split('\n\n'):
                name = stanza[len('Package: '):stanza.find('\n')] \
                    if stanza.startswith('Package: ') else None
                if name and wanted(name):
                    fields = deb822.Packages(stanza)
                    yield fields['Package'], fields['Version'], codename

    def apt_get_output(self, *args) -> str:
        with self._lock:
            return subprocess.run(['apt-get', *self.options(), *args], check=True,
                                  capture_output=True, text=True).stdout

    @staticmethod
    def cat_file(path: str) -> str:
        """An apt list file's text, whatever compression apt kept it in."""
        try:
            return subprocess.run([APT_HELPER, 'cat-file', path], check=True,
                                  capture_output=True, text=True).stdout
        except (OSError, subprocess.CalledProcessError) as e:
            raise StageError(f'cannot read apt list {path}: {e}') from e

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



def package_matcher(pattern: str):
    """A predicate on package names: ^regex, else a shell glob."""
    import fnmatch
    if pattern.startswith('^'):
        return re.compile(pattern).search
    return lambda name: fnmatch.fnmatchcase(name, pattern)


def highest(candidates, pattern='', suite=None) -> tuple[str, str] | None:
    """(name, version) of the candidate with the highest Debian version
    (python-debian's comparison: ``7.3~rc7-1~exp1`` sorts before ``7.3-1``,
    epochs first); equal versions go to the larger name, so the choice does
    not depend on the order of the lists."""
    from debian.debian_support import Version
    best = None
    for name, version, _suite in candidates:
        key = (Version(version), name)
        if best is None or key > best:
            best = key
    return None if best is None else (best[1], str(best[0]))
