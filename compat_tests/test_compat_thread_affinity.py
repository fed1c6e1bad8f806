"""Thread affinity of the path-based layers, compared with the real peers.

With ``nothreads=True`` libfuse's single-threaded loop runs every callback,
``init`` and ``destroy`` included, on the thread that called ``FUSE()``.
ratarmount depends on it: its SQLite index connection, made in
``__init__``, may only be used by the thread that created it.  The same
script runs against the real fusepy/mfusepy and against fuseshim's layers;
every callback uses an ``sqlite3`` connection created in ``__init__`` and
records its thread.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from test_compat_fusepy import FLAVORS, _peer_available  # noqa: F401  (the flavour list)

MODULES = {'fusepy': 'fuse', 'fusepy-compat': 'fuseshim.compat.fusepy',
           'mfusepy': 'mfusepy', 'mfusepy-compat': 'fuseshim.compat.mfusepy'}

SCRIPT = textwrap.dedent('''
    import errno, importlib, json, os, sqlite3, stat, subprocess, sys, threading, time
    fuse = importlib.import_module(sys.argv[1])
    mnt, nothreads = sys.argv[2], sys.argv[3] == '1'
    calls, errors = [], []

    class DBFS(fuse.Operations):
        def __init__(self):
            self.db = sqlite3.connect(':memory:')      # bound to this thread
            self.db.execute('create table f (name text, data blob)')
            self.db.execute("insert into f values ('hello', x'68690a')")

        def _use(self, op):
            calls.append((op, threading.get_ident()))
            try:
                return self.db.execute('select name, data from f').fetchall()
            except sqlite3.ProgrammingError as e:
                errors.append(f'{op}: {e}')
                raise fuse.FuseOSError(errno.EINVAL)

        def init(self, path):
            try:
                self._use('init')
            except fuse.FuseOSError:      # recorded; a failing init would end the mount
                pass

        def destroy(self, path):
            try:
                self._use('destroy')
            except fuse.FuseOSError:
                pass

        def getattr(self, path, fh=None):
            rows = self._use('getattr')
            if path == '/':
                return {'st_mode': stat.S_IFDIR | 0o755, 'st_nlink': 2}
            for name, data in rows:
                if path == '/' + name:
                    return {'st_mode': stat.S_IFREG | 0o644, 'st_nlink': 1,
                            'st_size': len(data)}
            raise fuse.FuseOSError(errno.ENOENT)

        def readdir(self, path, fh):
            return ['.', '..'] + [n for n, _ in self._use('readdir')]

        def open(self, path, flags):
            self._use('open')
            return 0

        def read(self, path, size, offset, fh):
            data = dict(self._use('read'))[path[1:]]
            return data[offset:offset + size]

        def release(self, path, fh):
            self._use('release')
            return 0

    def client():
        deadline = time.monotonic() + 20
        # not os.path.ismount: its lstat fails while getattr cannot use the db
        while f' {mnt} ' not in open('/proc/self/mounts').read() and time.monotonic() < deadline:
            time.sleep(0.02)
        try:
            seen = sorted(os.listdir(mnt))
            with open(os.path.join(mnt, 'hello'), 'rb') as f:
                data = f.read()
            result['client'] = [seen, data.decode()]
        except OSError as e:
            result['client'] = repr(e)
        finally:
            subprocess.run(['umount', mnt])

    result = {}
    threading.Thread(target=client, daemon=True).start()
    caller = threading.get_ident()
    fuse.FUSE(DBFS(), mnt, foreground=True, nothreads=nothreads)
    where = {}
    for op, t in calls:
        where.setdefault(op, set()).add('caller' if t == caller else 'other')
    result['threads'] = {op: sorted(w) for op, w in where.items()}
    result['errors'] = errors
    print(json.dumps(result))
''')


def _run(api, mnt, nothreads):
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    if api.startswith('mfusepy'):
        env['FUSE_LIBRARY_NAME'] = 'fuse3'
    os.makedirs(mnt, exist_ok=True)
    r = subprocess.run([sys.executable, '-c', SCRIPT, MODULES[api], mnt, '1' if nothreads else '0'],
                       capture_output=True, text=True, env=env, timeout=60)
    subprocess.run(['umount', '-l', mnt], capture_output=True)   # last resort, if still there
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize('flavor', sorted(FLAVORS))
def test_nothreads_runs_every_callback_on_the_calling_thread(flavor, tmp_path):
    peer, compat = FLAVORS[flavor]
    ok, why = _peer_available(peer)
    if not ok:
        pytest.skip(f'the real {flavor} does not import here: {why}')
    ref = _run(peer, str(tmp_path / 'ref'), nothreads=True)
    got = _run(compat, str(tmp_path / 'got'), nothreads=True)
    assert ref['client'] == [['hello'], 'hi\n'] and ref['errors'] == [], ref
    assert set(ref['threads']) >= {'init', 'destroy', 'getattr', 'readdir', 'open', 'read',
                                   'release'}, ref
    assert all(w == ['caller'] for w in ref['threads'].values()), ref
    assert got == ref


@pytest.mark.parametrize('flavor', sorted(FLAVORS))
def test_threaded_callbacks_run_on_workers(flavor, tmp_path):
    """Without nothreads callbacks run on worker threads (with the real peers
    too): a thread-bound SQLite connection fails there, as with libfuse."""
    peer, compat = FLAVORS[flavor]
    got = _run(compat, str(tmp_path / 'got'), nothreads=False)
    requests = {op: w for op, w in got['threads'].items() if op not in ('init', 'destroy')}
    assert requests and all(w == ['other'] for w in requests.values()), got
    assert got['errors'], got
