"""peer_sources: sdists fetched from the package index as files, hash-checked.

Against a local simple-API server (127.0.0.1) for each answer an index can
give, and once against the index pip is configured with for a real peer.
"""
from __future__ import annotations

import hashlib
import http.server
import io
import json
import socket
import tarfile
import threading
import time

import pytest

import peer_sources
from compat_helpers import PYFUSE3_VERSION


def _sdist_bytes(top: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w:gz') as tf:
        data = b'print("hello")\n'
        info = tarfile.TarInfo(f'{top}/examples/hello.py')
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _Index:
    """A tiny simple-repository index: JSON (PEP 691) or HTML (PEP 503)."""

    def __init__(self, files: dict[str, bytes], *, fmt='json', bad_hash=False):
        self.files, self.fmt, self.bad_hash = files, fmt, bad_hash
        self.requests: list[tuple[str, str]] = []
        index = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                index.requests.append((self.path, self.headers.get('Accept', '')))
                if self.path == '/simple/demo-peer/':
                    return self._listing()
                name = self.path.rsplit('/', 1)[-1]
                if self.path.startswith('/files/') and name in index.files:
                    return self._send(200, 'application/octet-stream', index.files[name])
                self._send(404, 'text/plain', b'not found')

            def _listing(self):
                entries = []
                for name, data in index.files.items():
                    sha = hashlib.sha256(data).hexdigest()
                    if index.bad_hash:
                        sha = '0' * 64
                    entries.append((name, sha))
                if index.fmt == 'json':
                    body = json.dumps({'meta': {'api-version': '1.0'}, 'name': 'demo-peer',
                                       'files': [{'filename': n, 'url': f'/files/{n}',
                                                  'hashes': {'sha256': h}}
                                                 for n, h in entries]}).encode()
                    return self._send(200, peer_sources.SIMPLE_JSON, body)
                body = ''.join(f'<a href="../../files/{n}#sha256={h}">{n}</a><br>'
                               for n, h in entries).encode()
                self._send(200, 'text/html', b'<html><body>' + body + b'</body></html>')

            def _send(self, code, ctype, body):
                self.send_response(code)
                self.send_header('Content-Type', ctype)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.server.server_port}/simple/'
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def _closed_port_url() -> str:
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()                      # nothing listens there: connection refused
    return f'http://127.0.0.1:{port}/simple/'


FILES = {'demo_peer-1.2.tar.gz': _sdist_bytes('demo_peer-1.2'),
         'demo_peer-1.20.tar.gz': _sdist_bytes('demo_peer-1.20'),
         'demo_peer-1.2-py3-none-any.whl': b'not an sdist'}


@pytest.mark.parametrize('fmt', ['json', 'html'])
def test_fetches_the_exact_sdist_and_unpacks_it(tmp_path, fmt):
    with _Index(FILES, fmt=fmt) as idx:
        top = peer_sources.fetch_sdist('demo-peer', '1.2', tmp_path, indexes=[idx.url])
        assert top.name == 'demo_peer-1.2'
        assert (top / 'examples' / 'hello.py').read_text() == 'print("hello")\n'
        assert idx.requests[0][1].startswith(peer_sources.SIMPLE_JSON)
        # cached: a second call asks nothing
        n = len(idx.requests)
        assert peer_sources.fetch_sdist('demo-peer', '1.2', tmp_path, indexes=[idx.url]) == top
        assert len(idx.requests) == n


def test_hash_mismatch_fails_and_leaves_nothing(tmp_path):
    with _Index(FILES, bad_hash=True) as idx:
        with pytest.raises(peer_sources.PeerSourceError, match='sha256'):
            peer_sources.fetch_sdist('demo-peer', '1.2', tmp_path, indexes=[idx.url])
    assert not list(tmp_path.rglob('*.tar.gz')) and not list(tmp_path.rglob('.part-*'))


def test_missing_version_or_project_fails_loudly(tmp_path):
    with _Index(FILES) as idx:
        with pytest.raises(peer_sources.PeerSourceError, match='no sdist of demo-peer 9.9'):
            peer_sources.fetch_sdist('demo-peer', '9.9', tmp_path, indexes=[idx.url])
        with pytest.raises(peer_sources.PeerSourceError, match='no sdist of other'):
            peer_sources.fetch_sdist('other', '1.0', tmp_path, indexes=[idx.url])


def test_unreachable_only_when_no_index_answers(tmp_path):
    dead = _closed_port_url()
    with pytest.raises(peer_sources.IndexUnreachable):
        peer_sources.fetch_sdist('demo-peer', '1.2', tmp_path, indexes=[dead])
    # one dead index and one that answers: the answer counts
    with _Index(FILES) as idx:
        top = peer_sources.fetch_sdist('demo-peer', '1.2', tmp_path, indexes=[dead, idx.url])
        assert top.name == 'demo_peer-1.2'


def test_real_peer_from_the_configured_index(tmp_path):
    """pyfuse3's pinned sdist from the index pip uses: seconds, no build."""
    t0 = time.monotonic()
    try:
        top = peer_sources.fetch_sdist('pyfuse3', PYFUSE3_VERSION, tmp_path)
    except peer_sources.IndexUnreachable as e:
        pytest.skip(f'no package index reachable: {e}')
    took = time.monotonic() - t0
    assert (top / 'examples' / 'hello.py').is_file()
    print(f'pyfuse3 {PYFUSE3_VERSION} sdist fetched and unpacked in {took:.1f} s')
