"""The source archives (sdists) of pinned PyPI releases, fetched as files, never built.

``pip download --no-binary :all:`` prepares the sdist's metadata, which
builds its build dependencies (Cython, setuptools_scm, ...) from source:
minutes on a fresh machine.  The tests need only the files inside (the
peers' examples and test suites), so this asks the package index pip is
configured with for the exact sdist file of a pinned version (the simple
repository API: JSON per PEP 691, HTML per PEP 503 as a fallback), downloads
it, checks its sha256 against the index and unpacks it.

A peer that cannot be had skips the test with the reason only when no
index answered at all (the machine is offline); an index that answers but
lacks the file, a hash mismatch or a broken archive fails loudly.
"""
from __future__ import annotations

import hashlib
import html.parser
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

SIMPLE_JSON = 'application/vnd.pypi.simple.v1+json'
ACCEPT = f'{SIMPLE_JSON}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1'
TIMEOUT = 60


class IndexUnreachable(Exception):
    """No configured index answered (no network)."""


class PeerSourceError(Exception):
    """An index answered, but the sdist could not be had as pinned."""


@dataclass(frozen=True)
class SdistFile:
    filename: str
    url: str
    sha256: str


def normalize(name: str) -> str:
    """PEP 503 project name normalisation."""
    return re.sub(r'[-_.]+', '-', name).lower()


def _pip_config() -> dict[str, str]:
    r = subprocess.run([sys.executable, '-m', 'pip', 'config', 'list'], capture_output=True,
                       text=True, timeout=60)
    conf = {}
    for line in r.stdout.splitlines():
        key, _, value = line.partition('=')
        # "global.index-url='...'" or ":env:.index-url='...'": the option name
        conf[key.rsplit('.', 1)[-1]] = value.strip().strip('\'"')
    return conf


def index_urls() -> list[str]:
    """The simple-API index URLs pip would use: index-url (pip's default
    when unset) then the extra-index-urls."""
    conf = _pip_config()
    main = conf.get('index-url')
    if not main:
        from pip._internal.models.index import PyPI   # pip's own default index
        main = PyPI.simple_url
    return [main] + conf.get('extra-index-url', '').split()


def _ssl_context() -> ssl.SSLContext:
    cafile = os.environ.get('PIP_CERT') or _pip_config().get('cert')
    return ssl.create_default_context(cafile=cafile if cafile and os.path.exists(cafile)
                                      else None)


class _Anchors(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href = None

    def handle_starttag(self, tag, attrs):
        if tag == 'a':
            self._href = dict(attrs).get('href')

    def handle_data(self, data):
        if self._href is not None:
            self.links.append((data.strip(), self._href))
            self._href = None


def _project_files(index: str, project: str, ctx) -> list[SdistFile] | None:
    """The files an index lists for a project; None when it has no such
    project (404, or a local index without the directory)."""
    base = index.rstrip('/') + '/' + normalize(project) + '/'
    url = base + 'index.html' if base.startswith('file:') else base
    req = urllib.request.Request(url, headers={'Accept': ACCEPT})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT, context=ctx) as r:
            ctype = r.headers.get('Content-Type', '') if r.headers else ''
            body = r.read()
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise PeerSourceError(f'{url}: HTTP {e.code} {e.reason}') from e
    except urllib.error.URLError as e:
        if url.startswith('file:') and isinstance(e.reason, (FileNotFoundError,
                                                             NotADirectoryError)):
            return None
        if isinstance(e.reason, ssl.SSLError):       # it answered, but not as trusted
            raise PeerSourceError(f'{url}: {e.reason}') from e
        if isinstance(e.reason, OSError):            # refused, no route, no DNS, timeout
            raise IndexUnreachable(f'{url}: {e.reason}') from e
        raise
    except (socket.timeout, ConnectionError) as e:
        raise IndexUnreachable(f'{url}: {e}') from e
    if ctype.startswith(SIMPLE_JSON):
        doc = json.loads(body)
        return [SdistFile(f['filename'], urllib.parse.urljoin(url, f['url']),
                          f.get('hashes', {}).get('sha256', '')) for f in doc['files']]
    parser = _Anchors()
    parser.feed(body.decode('utf-8', 'replace'))
    files = []
    for text, href in parser.links:
        link, _, frag = urllib.parse.urljoin(url, href).partition('#')
        sha = frag[len('sha256='):] if frag.startswith('sha256=') else ''
        files.append(SdistFile(text or link.rsplit('/', 1)[-1], link, sha))
    return files


def _is_sdist_of(filename: str, project: str, version: str) -> bool:
    for ext in ('.tar.gz', '.zip'):
        if filename.endswith(ext):
            stem = filename[:-len(ext)]
            name, _, ver = stem.rpartition('-')
            return normalize(name) == normalize(project) and ver == version
    return False


def find_sdist(project: str, version: str, indexes: list[str] | None = None) -> SdistFile:
    ctx = _ssl_context()
    unreachable, looked = [], []
    for index in index_urls() if indexes is None else indexes:
        try:
            files = _project_files(index, project, ctx)
        except IndexUnreachable as e:
            unreachable.append(str(e))
            continue
        looked.append(index)
        for f in files or ():
            if _is_sdist_of(f.filename, project, version):
                if not f.sha256:
                    raise PeerSourceError(f'{index} lists {f.filename} without a sha256')
                return f
    if not looked:
        raise IndexUnreachable('; '.join(unreachable))
    raise PeerSourceError(f'no sdist of {project} {version} in {", ".join(looked)}'
                          + (f' (unreachable: {"; ".join(unreachable)})' if unreachable else ''))


def download(f: SdistFile, dest: Path) -> Path:
    """Download to ``dest/filename`` (atomically), checking the sha256."""
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f.filename
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=dest, prefix='.part-')
    try:
        try:
            with urllib.request.urlopen(f.url, timeout=TIMEOUT, context=_ssl_context()) as r, \
                    os.fdopen(fd, 'wb') as out:
                while chunk := r.read(1 << 16):
                    digest.update(chunk)
                    out.write(chunk)
        except urllib.error.HTTPError as e:
            raise PeerSourceError(f'{f.url}: HTTP {e.code} {e.reason}') from e
        except (urllib.error.URLError, socket.timeout, ConnectionError) as e:
            raise IndexUnreachable(f'{f.url}: {getattr(e, "reason", e)}') from e
        if digest.hexdigest() != f.sha256:
            raise PeerSourceError(f'{f.filename}: sha256 {digest.hexdigest()} is not the '
                                  f'index\'s {f.sha256}')
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def unpack(archive: Path, root: Path) -> Path:
    """Unpack into ``root`` (replacing it) and return the sdist's top directory."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    if archive.name.endswith('.zip'):
        shutil.unpack_archive(archive, root)
    else:
        with tarfile.open(archive) as tf:
            if hasattr(tarfile, 'data_filter'):      # Python >= 3.11.4
                tf.extractall(root, filter='data')
            else:
                tf.extractall(root)
    tops = [p for p in root.iterdir() if p.is_dir()]
    if len(tops) != 1:
        raise PeerSourceError(f'{archive.name} unpacked into {len(tops)} directories')
    return tops[0]


def fetch_sdist(project: str, version: str, cache: Path,
                indexes: list[str] | None = None) -> Path:
    """The unpacked sdist of ``project==version`` under ``cache`` (fetched
    once; a later call reuses it).  Returns its top directory."""
    root = cache / f'{project}-{version}' / 'src'
    done = root / '.complete'
    if not done.exists():
        f = find_sdist(project, version, indexes)
        archive = download(f, cache / f'{project}-{version}')
        top = unpack(archive, root)
        done.write_text(f'{f.filename} sha256={f.sha256}\n')
        return top
    [top] = [p for p in root.iterdir() if p.is_dir()]
    return top
