"""Concurrent stress: many client processes change the same directories at
once (create, write, read+verify, truncate, rename, link, symlink, unlink,
mkdir, rmdir, readdir, fsync, I/O on held-open files; see stress_client.py).

Afterwards:
- no client saw an unexpected errno or a corrupt block, and every file's
  blocks still verify;
- the daemon's own bookkeeping is consistent (memfs: link counts, parents,
  handles; passthrough: its inode table and backing fds);
- after the kernel's caches are dropped (echo 3 > drop_caches) every lookup
  was forgotten exactly: no lookup count left, no forget beyond a count, no
  removed inode left behind;
- after unmount the tables are consistent again and destroy ran.

Also: the startup paths keep their guarantees while another mount is under
this load.  FUSESHIM_LONG=1 runs longer with more clients.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from child_signals import popen
from ops_scenarios import open_fds_below

import fuseshim
import stress_client
from conftest import mounted
from fuseshim.examples.memfs import AsyncMemFS, MemFS
from fuseshim.examples.passthrough import PassthroughFS
from reliability_helpers import LONG, drop_caches_until, long_only
from startup_helpers import BlockingInit, RaisingInit, RecordingHello, fuseshim_threads, mounted_at

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS, SECONDS = (16, 60.0) if LONG else (8, 5.0)


def run_clients(root, clients=CLIENTS, seconds=SECONDS, seed=0):
    """Start the clients on ``root``, wait (bounded), return their reports."""
    for i in range(4):
        os.makedirs(os.path.join(root, f'd{i}'), exist_ok=True)
    procs = [popen([sys.executable, os.path.join(HERE, 'stress_client.py'), root,
                               str(i), str(seed * 1000 + i), str(seconds)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(clients)]
    reports = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=seconds + 120)
            assert out.strip(), f'client died (rc {p.returncode}): {err[-2000:]}'
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    failures = [f'client {r["client"]}: {f}' for r in reports for f in r['failures']]
    assert not failures, '\n'.join(failures[:40])
    return reports


def verify_tree(root) -> int:
    """Every regular file's blocks verify (no concurrency now); returns the
    number of files checked."""
    checked = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames:
            p = os.path.join(dirpath, n)
            if os.path.islink(p):
                continue
            with open(p, 'rb') as f:
                problem = stress_client.check_blocks(f.read(), p)
            assert problem is None, problem
            checked += 1
    return checked


def summary(reports) -> str:
    ops = sum(r['ops'] for r in reports)
    ok = sum(sum(r['counts'].values()) for r in reports)
    return f'{len(reports)} clients, {ops} operations ({ok} succeeded)'


MODES = [('sync', 'sync', 4), ('classic', 'sync', 1), ('sync', 'async', 2)]


@pytest.mark.parametrize('startup, handlers, workers', MODES,
                         ids=[f'{s}-{h}-w{w}' for s, h, w in MODES])
def test_memfs_concurrent_stress(tmp_path, startup, handlers, workers, record_property):
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    ops = AsyncMemFS() if handlers == 'async' else MemFS()
    with mounted(ops, mnt, startup=startup, workers=workers):
        reports = run_clients(str(mnt / 'work'))
        files = verify_tree(str(mnt / 'work'))
        assert ops.check_consistency() == []
        drop_caches_until(lambda: not ops.lookup_counts())
        with ops._lock:
            # nothing the kernel forgot and nothing unlinked may be kept
            assert all(n.nlink > 0 for n in ops.inodes.values())
            assert not ops.files and not ops.dirs
            live = len(ops.inodes)
        assert ops.check_consistency() == []
        # the tree is still whole after the kernel forgot everything
        walked = 1 + sum(len(d) + len(f) for _, d, f in os.walk(mnt))
        drop_caches_until(lambda: not ops.lookup_counts())
        with ops._lock:
            distinct = len(ops.inodes)
        assert distinct == live
        assert walked >= distinct      # hard links: several names, one inode
    assert ops.destroyed and ops.check_consistency() == []
    assert ops.calls['forget'] > 0
    record_property('stress', summary(reports) + f', {files} files verified')
    print(f'\nmemfs {startup}-{handlers}-w{workers}: {summary(reports)}, {files} files verified,'
          f' {distinct} inodes live, {ops.calls["forget"]} forget calls')


@pytest.mark.parametrize('startup, workers', [('sync', 4), ('classic', 2)])
def test_passthrough_concurrent_stress(tmp_path, startup, workers, record_property):
    src, mnt = tmp_path / 'src', tmp_path / 'mnt'
    src.mkdir()
    mnt.mkdir()
    ops = PassthroughFS(str(src))
    with mounted(ops, mnt, startup=startup, workers=workers):
        reports = run_clients(str(mnt / 'work'))
        files = verify_tree(str(mnt / 'work'))
        assert verify_tree(str(src / 'work')) == files
        assert ops.check_consistency() == []
        drop_caches_until(lambda: not ops.lookup_counts())
        assert ops.check_consistency() == []
        assert open_fds_below(str(src)) == {str(src)}, 'backing fds leaked'
    assert ops.check_consistency() == [] and ops.lookup_counts() == {}
    record_property('stress', summary(reports) + f', {files} files verified')
    print(f'\npassthrough {startup}-w{workers}: {summary(reports)}, {files} files verified')


@pytest.mark.parametrize('startup', ['sync', 'classic'])
def test_startup_guarantees_under_load(tmp_path, startup):
    """While eight clients hammer one memfs mount, another mountpoint goes
    through 20 mount/unmount cycles, an init handler that raises and one
    that never answers: each behaves exactly as without load."""
    busy, other = tmp_path / 'busy', tmp_path / 'other'
    busy.mkdir()
    other.mkdir()
    ops = MemFS()
    # allow_errors: the InitTimeout below logs its aborted connection
    with mounted(ops, busy, startup='sync', workers=4, allow_errors=True):
        for i in range(4):
            os.makedirs(busy / 'work' / f'd{i}')
        clients = [popen([sys.executable, os.path.join(HERE, 'stress_client.py'),
                                     str(busy / 'work'), str(i), str(i), '600'],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                   for i in range(8)]
        try:
            time.sleep(0.5)
            for _ in range(20):
                with fuseshim.mount(RecordingHello(), other, startup=startup, workers=2) as m:
                    assert m.startup_path == startup
                    if startup == 'sync':
                        assert m.init_before_mount_returned
                    assert open(other / 'hello').read() == 'Hello, world!\n'
                assert not mounted_at(str(other))
            with pytest.raises(fuseshim.InitError):
                fuseshim.mount(RaisingInit(), other, startup=startup)
            assert not mounted_at(str(other))
            blocking = BlockingInit()
            t0 = time.monotonic()
            try:
                with pytest.raises(fuseshim.InitTimeout):
                    fuseshim.mount(blocking, other, startup=startup, init_timeout=0.5)
                assert time.monotonic() - t0 < 10
            finally:
                blocking.release.set()
            assert not mounted_at(str(other))
            assert all(c.poll() is None for c in clients), 'a stress client died'
        finally:
            for c in clients:
                c.kill()
            for c in clients:
                c.wait(10)
        drop_caches_until(lambda: not ops.lookup_counts())
        assert ops.check_consistency() == []
    deadline = time.monotonic() + 10
    while fuseshim_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fuseshim_threads() == []


# InitTimeout logs an ERROR (the aborted connection) on purpose
test_startup_guarantees_under_load = pytest.mark.expected_errors(
    test_startup_guarantees_under_load)


@long_only
def test_memfs_stress_long(tmp_path, record_property):
    """FUSESHIM_LONG=1: 16 clients for 5 minutes on 4 workers."""
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    ops = MemFS()
    with mounted(ops, mnt, startup='sync', workers=4):
        reports = run_clients(str(mnt / 'work'), clients=16, seconds=300)
        files = verify_tree(str(mnt / 'work'))
        drop_caches_until(lambda: not ops.lookup_counts())
        assert ops.check_consistency() == []
    assert ops.check_consistency() == []
    record_property('stress', summary(reports) + f', {files} files verified')
    print(f'\nmemfs long: {summary(reports)}, {files} files verified')
