"""Scenario of the clients stage for ratarmount (mfusepy API; its sdist ships
no tests): archives of several formats, made here from a known tree, mounted
with ratarmount's real command line and default settings, and compared with
the tree.  Archives under 1000 members get ratarmount's in-memory SQLite
index (the one bound to the thread that made it: ``FUSE(nothreads=True)``),
larger ones an index file.  Runs with the real mfusepy and with fuseshim
providing ``mfusepy``."""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
import zipfile

import pytest

from scenario_util import (compare_trees, make_tree, mounted, processes_with_arg, stop,
                           unmount, wait_mounted)

RATARMOUNT = os.path.join(os.path.dirname(sys.executable), 'ratarmount')
SMALL, LARGE = 40, 1100        # members: under and over ratarmount's 1000


def _tar(mode):
    def make(src, out):
        with tarfile.open(out, mode) as t:
            for name in sorted(os.listdir(src)):
                t.add(os.path.join(src, name), arcname=name)
    return make


def _zip(src, out):
    with zipfile.ZipFile(out, 'w', zipfile.ZIP_DEFLATED) as z:
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            for n in sorted(dirnames) + sorted(filenames):
                p = os.path.join(dirpath, n)
                z.write(p, os.path.relpath(p, src))


def _7z(src, out):
    import py7zr      # a dependency of ratarmount's 7z support
    with py7zr.SevenZipFile(out, 'w') as z:
        for name in sorted(os.listdir(src)):
            z.writeall(os.path.join(src, name), name)


# (format, members): compressed tars, zip and 7z; big ones over 1000 members
FORMATS = {'tar': _tar('w'), 'tar.gz': _tar('w:gz'), 'tar.bz2': _tar('w:bz2'),
           'tar.xz': _tar('w:xz'), 'zip': _zip, '7z': _7z}
CASES = [(f, SMALL) for f in FORMATS] + [(f, LARGE) for f in ('tar', 'tar.gz', 'zip')]


def _archive(tmp_path, fmt, members):
    src = str(tmp_path / 'src')
    make_tree(src, members, seed=members)
    archive = str(tmp_path / f'archive.{fmt}')
    FORMATS[fmt](src, archive)
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    return src, archive, str(mnt)


@pytest.mark.parametrize('fmt,members', CASES, ids=[f'{f}-{m}' for f, m in CASES])
def test_mount_archive(tmp_path, fmt, members):
    """ratarmount -f ARCHIVE MNT, default settings otherwise."""
    src, archive, mnt = _archive(tmp_path, fmt, members)
    log = str(tmp_path / 'ratarmount.log')
    with open(log, 'wb') as out:
        proc = subprocess.Popen([RATARMOUNT, '-f', archive, mnt], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_mounted(mnt, proc, log)
        tar = fmt.startswith('tar')
        compare_trees(src, mnt, modes=tar, mtimes=tar)
    finally:
        unmount(mnt)
        code = stop(proc)
    assert code == 0, f'ratarmount exited {code} after its unmount'


def test_daemon_mode(tmp_path):
    """ratarmount ARCHIVE MNT: without -f it returns once the mount is up and
    serves from a detached process, which must end with its unmount."""
    src, archive, mnt = _archive(tmp_path, 'tar', SMALL)
    log = str(tmp_path / 'ratarmount.log')
    with open(log, 'wb') as out:
        r = subprocess.run([RATARMOUNT, archive, mnt], stdout=out, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, timeout=120)
    try:
        assert r.returncode == 0, open(log).read()
        wait_mounted(mnt, None, log)
        compare_trees(src, mnt, modes=True, mtimes=True)
    finally:
        daemons = processes_with_arg(mnt)
        unmount(mnt)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(os.path.exists(f'/proc/{p}')
                                                  for p in daemons):
            time.sleep(0.1)
        left = [p for p in daemons if os.path.exists(f'/proc/{p}')]
        for p in left:       # the daemon this test started, found by its unique mountpoint
            os.kill(p, 9)
    assert not mounted(mnt)
    assert not left, f'the ratarmount daemon (pids {left}) outlived its unmount'
