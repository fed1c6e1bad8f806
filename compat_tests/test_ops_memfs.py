"""fuseshim.examples.memfs through real mounts, driven by plain os/fcntl calls.

Each scenario runs on the mount and on a local reference directory; both
records must match step by step (and the scenarios assert what POSIX
promises).  After unmounting, memfs's inode table must be consistent.
Parametrized over startup path x handler kind x worker count.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

import fuseshim
import ops_scenarios as sc
from child_signals import popen
from conftest import MountMode, auto_startup_path, mounted, mounted_paths
from fuseshim.examples.memfs import AsyncMemFS, MemFS


@contextlib.contextmanager
def memfs_mounted(tmp_path, mode: MountMode):
    """Yield (ops, mountpoint) for a fresh memfs; audit its inodes after unmount."""
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    ops = AsyncMemFS() if mode.handlers == 'async' else MemFS()
    with mounted(ops, mnt, startup=mode.startup, workers=mode.workers) as m:
        assert m.startup_path == mode.startup
        yield ops, str(mnt)
    assert ops.destroyed, 'destroy() was not called on unmount'
    assert ops.check_consistency() == []


def _compare_with_reference(tmp_path, mode, scenario, *args):
    ref = sc.run(scenario, tmp_path / 'ref', *args)
    with memfs_mounted(tmp_path, mode) as (ops, mnt):
        got = sc.run(scenario, os.path.join(mnt, 'work'), *args)
        assert ops.check_consistency() == []     # also while mounted
    sc.compare(got, ref, 'memfs', 'local reference')
    return ops


@pytest.mark.parametrize('name', sorted(sc.COMMON_SCENARIOS))
def test_scenario(tmp_path, mount_mode, name):
    scenario, minimum_calls = sc.COMMON_SCENARIOS[name]
    ops = _compare_with_reference(tmp_path, mount_mode, scenario)
    sc.served_at_least(ops, minimum_calls)


def test_locks(tmp_path, mount_mode):
    _compare_with_reference(tmp_path, mount_mode, sc.scenario_locks)


def test_statfs(tmp_path, mount_mode):
    with memfs_mounted(tmp_path, mount_mode) as (ops, mnt):
        before = os.statvfs(mnt)
        assert before.f_bsize == 4096 and before.f_frsize == 4096
        assert before.f_namemax == 255
        assert before.f_blocks == 1 << 20 and before.f_bfree == before.f_bavail
        assert before.f_files == 1 << 20 and before.f_ffree == before.f_files - 1
        with open(os.path.join(mnt, 'f'), 'wb') as f:
            f.write(b'x' * (1 << 20))
        os.mkdir(os.path.join(mnt, 'd'))
        after = os.statvfs(mnt)
        assert before.f_bfree - after.f_bfree == 256
        assert before.f_ffree - after.f_ffree == 2
        df = subprocess.run(['df', '-k', '--output=size', mnt], capture_output=True, text=True,
                            check=True).stdout.split()
        assert df[-1] == str(4 * (1 << 20))


def test_forget_frees_inodes(tmp_path, mount_mode):
    """Once the kernel evicts its inodes, every lookup must have been forgotten
    exactly: removed files vanish, nothing is forgotten twice."""
    with memfs_mounted(tmp_path, mount_mode) as (ops, mnt):
        root = os.path.join(mnt, 'tree')
        os.mkdir(root)
        for i in range(20):
            sub = os.path.join(root, f'd{i}')
            os.mkdir(sub)
            for j in range(5):
                with open(os.path.join(sub, f'f{j}'), 'wb') as f:
                    f.write(b'x' * j)
            os.link(os.path.join(sub, 'f1'), os.path.join(sub, 'hard'))
            os.symlink('f2', os.path.join(sub, 'sym'))
        for dirpath, dirnames, filenames in os.walk(root):   # readdir + lookups
            for n in filenames:
                os.lstat(os.path.join(dirpath, n))
        keep = open(os.path.join(root, 'd0', 'f3'), 'rb')
        for i in range(10):
            os.unlink(os.path.join(root, f'd{i}', 'f4'))
        os.unlink(os.path.join(root, 'd0', 'f3'))          # still open
        os.rename(os.path.join(root, 'd1'), os.path.join(root, 'd1-renamed'))
        removed = [ino for ino, n in ops.inodes.items() if n.nlink == 0]
        assert removed                                      # f3 at least (open)
        assert ops.check_consistency() == []
        assert keep.read() == b'xxx'
        keep.close()
        _evict_kernel_inodes(lambda: not ops.lookup_counts()
                             and all(n.nlink for n in ops.inodes.values()))
        assert ops.lookup_counts() == {}
        assert ops.calls['forget'] > 0
        assert all(n.nlink > 0 for n in ops.inodes.values()), 'unlinked inodes not freed'
        assert ops.check_consistency() == []
        # the tree is intact after the kernel forgot it all
        assert sorted(os.listdir(os.path.join(root, 'd1-renamed'))) == \
            ['f0', 'f1', 'f2', 'f3', 'hard', 'sym']
        assert os.stat(os.path.join(root, 'd5', 'hard')).st_nlink == 2


def _evict_kernel_inodes(done, timeout=10.0):
    """Drop the kernel's dentry and inode caches until ``done()`` (forgets
    arrive asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        with open('/proc/sys/vm/drop_caches', 'w') as f:
            f.write('2')
        time.sleep(0.05)
        if done():
            return
        assert time.monotonic() < deadline, 'the kernel did not forget the inodes'


def test_readdir_10000(tmp_path, mount_startup):
    mode = MountMode(mount_startup, 'sync', 3)
    names = [f'entry-{i:05d}-{"x" * (i % 40)}' for i in range(10_000)]
    ref = sc.run(sc.scenario_many_entries, tmp_path / 'ref', names)
    with memfs_mounted(tmp_path, mode) as (ops, mnt):
        got = sc.run(sc.scenario_many_entries, os.path.join(mnt, 'work'), names)
        assert ops.calls['readdir'] >= 4         # the listing took several calls
        assert ops.check_consistency() == []
    sc.compare(got, ref, 'memfs', 'local reference')


def test_dot_lookups_count():
    """The kernel looks up "." and ".." only for NFS export, so call memfs
    directly: they count as lookups like any other name."""
    ops = MemFS()
    d = ops.mkdir(fuseshim.ROOT_INODE, b'd', 0o755, None)
    assert ops.lookup(d.st_ino, b'.').st_ino == d.st_ino
    assert ops.lookup(d.st_ino, b'..').st_ino == fuseshim.ROOT_INODE
    assert ops.lookup_counts() == {d.st_ino: 2, fuseshim.ROOT_INODE: 1}
    ops.rmdir(fuseshim.ROOT_INODE, b'd', None)
    assert d.st_ino in ops.inodes                     # the kernel still knows it
    ops.forget([(d.st_ino, 2), (fuseshim.ROOT_INODE, 1)])
    assert d.st_ino not in ops.inodes and ops.check_consistency() == []
    ops.forget([(d.st_ino, 1)])
    assert ops.check_consistency() == [f'forget({d.st_ino}, 1) of an unknown inode']


def test_async_handlers_are_coroutines():
    from fuseshim.operations import implemented_operations
    import inspect
    ops = AsyncMemFS()
    names = implemented_operations(ops) - {'readdirplus'}
    assert len(names) >= 30
    assert all(inspect.iscoroutinefunction(getattr(ops, n)) for n in names)
    assert not any(inspect.iscoroutinefunction(getattr(MemFS(), n)) for n in names)


def _wait_catching_sigterm(proc, timeout=10.0):
    """Wait until ``proc`` has a SIGTERM handler installed (SigCgt)."""
    deadline = time.monotonic() + timeout
    while True:
        with open(f'/proc/{proc.pid}/status') as f:
            caught = int(next(ln for ln in f if ln.startswith('SigCgt:')).split()[1], 16)
        if caught & (1 << (signal.SIGTERM - 1)):
            return
        assert time.monotonic() < deadline, 'no SIGTERM handler installed'
        time.sleep(0.01)


@pytest.mark.parametrize('handlers', ['sync', 'async'])
def test_command_line(tmp_path, handlers):
    """python -m fuseshim.examples.memfs MNT serves until SIGTERM (startup auto:
    sync where the kernel has SYNC_INIT, classic on the matrix's older kernels)."""
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    path = auto_startup_path()
    argv = [sys.executable, '-m', 'fuseshim.examples.memfs', str(mnt), '--workers', '2',
            '--startup', 'auto'] + (['--async'] if handlers == 'async' else [])
    proc = popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith(f'mounted {mnt} via {path} startup'), (line, proc.stderr.read())
        p = mnt / 'hello'
        p.write_bytes(b'hi')
        assert p.read_bytes() == b'hi' and os.listdir(mnt) == ['hello']
        _wait_catching_sigterm(proc)    # _cli.run prints its banner first
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        leftover = str(mnt) in mounted_paths()
        if leftover:
            subprocess.run(['umount', '-l', str(mnt)], check=False)
    assert not leftover, 'the command line left its mount behind'
