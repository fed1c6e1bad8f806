"""fuseshim.examples.passthrough through real mounts, compared with its backing dir.

Each scenario runs twice: below the mount (so on SRC/work through FUSE) and
directly on SRC/native; every step's result must agree.  Afterwards the
tree seen through the mount must equal the backing tree, and both must equal
the natively built one.  Parametrized over startup path x handler kind x
worker count.
"""
from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import textwrap
import time

import pytest

from child_signals import default_signals
from example_cli import serving
from ops_scenarios import open_fds_below

import ops_scenarios as sc
from conftest import MountMode, auto_startup_path, mounted, skip_sync_path_where_unavailable
from fuseshim._core import _path_fd_inodes
from fuseshim.examples.passthrough import AsyncPassthroughFS, PassthroughFS


@contextlib.contextmanager
def passthrough_mounted(tmp_path, mode: MountMode, fast_getattr=False):
    """Yield (ops, src, mnt); after unmount no backing fd may be left open.
    ``fast_getattr``: GETATTRs answered in C from the O_PATH fds."""
    src, mnt = tmp_path / 'src', tmp_path / 'mnt'
    src.mkdir()
    mnt.mkdir()
    src, mnt = str(src), str(mnt)
    cls = AsyncPassthroughFS if mode.handlers == 'async' else PassthroughFS
    ops = cls(src, fast_getattr=fast_getattr)
    with mounted(ops, mnt, startup=mode.startup, workers=mode.workers) as m:
        assert m.startup_path == mode.startup
        yield ops, src, mnt
        if fast_getattr:   # the fast path served: the kernel holds declared inodes
            assert _path_fd_inodes(m.session) > 0
    assert _path_fd_inodes(m.session) == 0
    assert ops.check_consistency() == []
    assert ops.lookup_counts() == {}
    assert open_fds_below(src) == {src}, 'backing fds leaked'   # only the root's


def _compare_with_backing(tmp_path, mode, scenario, *args, fast_getattr=False):
    with passthrough_mounted(tmp_path, mode, fast_getattr) as (ops, src, mnt):
        got = sc.run(scenario, os.path.join(mnt, 'work'), *args)
        ref = sc.run(scenario, os.path.join(src, 'native'), *args)
        sc.compare(got, ref, 'passthrough', 'backing directory')
        through_mount = sc.tree(os.path.join(mnt, 'work'), times=True)
        backing = sc.tree(os.path.join(src, 'work'), times=True)
        assert through_mount == backing
        strip = lambda t: {k: {f: v for f, v in i.items() if f != 'mtime_ns'}  # noqa: E731
                           for k, i in t.items()}
        assert strip(backing) == strip(sc.tree(os.path.join(src, 'native')))
        assert ops.check_consistency() == []
    return ops


@pytest.mark.parametrize('name', sorted(sc.COMMON_SCENARIOS))
def test_scenario(tmp_path, mount_mode, name):
    scenario, minimum_calls = sc.COMMON_SCENARIOS[name]
    ops = _compare_with_backing(tmp_path, mount_mode, scenario)
    sc.served_at_least(ops, minimum_calls)


# the C fast path (EntryAttributes.path_fd): sync and async handlers, 1 and 3
# workers, both startup paths
FAST_GETATTR_MODES = [MountMode('sync', 'sync', 1), MountMode('classic', 'sync', 3),
                      MountMode('sync', 'async', 1), MountMode('classic', 'async', 3)]


@pytest.mark.parametrize('mode', FAST_GETATTR_MODES, ids=str)
@pytest.mark.parametrize('name', sorted(sc.COMMON_SCENARIOS))
def test_scenario_fast_getattr(tmp_path, mode, name):
    """The same scenarios, the same results, with GETATTR answered in C."""
    skip_sync_path_where_unavailable(mode.startup)
    scenario, minimum_calls = sc.COMMON_SCENARIOS[name]
    ops = _compare_with_backing(tmp_path, mode, scenario, fast_getattr=True)
    sc.served_at_least(ops, minimum_calls)


@pytest.mark.parametrize('fast_getattr', [False, True], ids=['handler', 'fast'])
def test_fast_getattr_answers_without_the_handler(tmp_path, fast_getattr):
    """With --fast-getattr the example's getattr() is not called for a file
    the kernel looked up; without it (the default) every GETATTR reaches it."""
    mode = MountMode(auto_startup_path(), 'sync', 1)
    with passthrough_mounted(tmp_path, mode, fast_getattr) as (ops, src, mnt):
        path = os.path.join(mnt, 'f')
        with open(path, 'wb') as f:
            f.write(b'data')
        fd = os.open(path, os.O_RDONLY)     # fstat: GETATTR alone (no LOOKUP)
        try:
            before = ops.calls['getattr']
            for i in range(3):
                os.truncate(os.path.join(src, 'f'), i)     # behind the mount's back
                time.sleep(1.05)                           # past the example's 1 s attr timeout
                assert os.fstat(fd).st_size == i
        finally:
            os.close(fd)
        assert ops.calls['getattr'] - before == (0 if fast_getattr else 3)


def test_sparse_file_holes(tmp_path, mount_mode):
    """SEEK_DATA/SEEK_HOLE report the backing file's real holes."""
    with passthrough_mounted(tmp_path, mount_mode) as (ops, src, mnt):
        blk = os.statvfs(src).f_bsize
        results = {}
        for where in (mnt, src):
            path = os.path.join(where, 'sparse-' + ('m' if where == mnt else 's'))
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                os.pwrite(fd, b'd' * blk, 0)
                os.pwrite(fd, b'd' * blk, 16 * blk)
                os.ftruncate(fd, 32 * blk)
                os.fsync(fd)
                sc.fallocate(fd, sc.FALLOC_FL_PUNCH_HOLE | sc.FALLOC_FL_KEEP_SIZE, 0, blk)
                res = []
                for off in (0, blk, 8 * blk, 16 * blk, 17 * blk, 31 * blk, 32 * blk):
                    for whence in (os.SEEK_DATA, os.SEEK_HOLE):
                        try:
                            res.append(os.lseek(fd, off, whence))
                        except OSError as e:
                            res.append(sc.ename(e.errno))
                results[where] = res
            finally:
                os.close(fd)
        assert results[mnt] == results[src]
        # the data block at 16 blocks is found from the start (punched head)
        assert results[src][0] == 16 * blk and results[src][1] == 0
        assert ops.calls['lseek'] >= 14


def test_locks(tmp_path, mount_mode):
    _compare_with_backing(tmp_path, mount_mode, sc.scenario_locks)


def test_statfs(tmp_path, mount_mode):
    with passthrough_mounted(tmp_path, mount_mode) as (ops, src, mnt):
        via, direct = os.statvfs(mnt), os.statvfs(src)
        for field in ('f_bsize', 'f_frsize', 'f_blocks', 'f_files', 'f_namemax'):
            assert getattr(via, field) == getattr(direct, field), field
        for field in ('f_bfree', 'f_bavail', 'f_ffree', 'f_favail'):   # others write too
            assert abs(getattr(via, field) - getattr(direct, field)) <= \
                max(1000, getattr(direct, field) // 1000), field
        assert ops.calls['statfs'] >= 1


def test_backing_changes_are_seen(tmp_path, mount_mode):
    """Files created in SRC directly appear through the mount (lookups are live)."""
    with passthrough_mounted(tmp_path, mount_mode) as (ops, src, mnt):
        os.mkdir(os.path.join(src, 'd'))
        with open(os.path.join(src, 'd', 'f'), 'wb') as f:
            f.write(b'from the backing side')
        os.symlink('f', os.path.join(src, 'd', 'l'))
        assert sorted(os.listdir(os.path.join(mnt, 'd'))) == ['f', 'l']
        assert sc.read_file(os.path.join(mnt, 'd', 'l')) == b'from the backing side'
        assert sc.tree(os.path.join(mnt, 'd')) == sc.tree(os.path.join(src, 'd'))


@pytest.mark.parametrize('fast_getattr', [False, True], ids=['handler', 'fast'])
def test_forget_closes_backing_fds(tmp_path, mount_mode, fast_getattr):
    """When the kernel evicts its inodes every O_PATH fd is forgotten and closed
    (with the C fast path: after its entry went, see passthrough_mounted)."""
    with passthrough_mounted(tmp_path, mount_mode, fast_getattr) as (ops, src, mnt):
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
        for dirpath, dirnames, filenames in os.walk(root):
            for n in filenames:
                os.lstat(os.path.join(dirpath, n))
        keep = open(os.path.join(root, 'd0', 'f3'), 'rb')
        for i in range(10):
            os.unlink(os.path.join(root, f'd{i}', 'f4'))
        os.unlink(os.path.join(root, 'd0', 'f3'))
        assert len(ops.lookup_counts()) > 100
        assert keep.read() == b'xxx'
        keep.close()
        deadline = time.monotonic() + 10
        while ops.lookup_counts():
            assert time.monotonic() < deadline, 'the kernel did not forget the inodes'
            with open('/proc/sys/vm/drop_caches', 'w') as f:
                f.write('2')
            time.sleep(0.05)
        assert ops.calls['forget'] > 0
        assert open_fds_below(src) == {src}
        assert ops.check_consistency() == []
        assert os.stat(os.path.join(root, 'd5', 'hard')).st_nlink == 2
        assert sorted(os.listdir(os.path.join(root, 'd0'))) == ['f0', 'f1', 'f2', 'hard', 'sym']


def test_readdir_10000(tmp_path, mount_startup):
    mode = MountMode(mount_startup, 'sync', 3)
    names = [f'entry-{i:05d}-{"x" * (i % 40)}' for i in range(10_000)]
    with passthrough_mounted(tmp_path, mode) as (ops, src, mnt):
        got = sc.run(sc.scenario_many_entries, os.path.join(mnt, 'work'), names)
        ref = sc.run(sc.scenario_many_entries, os.path.join(src, 'native'), names)
        sc.compare(got, ref, 'passthrough', 'backing directory')
        assert ops.calls['readdir'] >= 4
        # a big directory filled behind the mount's back lists the same
        big = os.path.join(src, 'big')
        os.mkdir(big)
        for n in names:
            os.close(os.open(os.path.join(big, n), os.O_CREAT | os.O_WRONLY, 0o600))
        assert sorted(os.listdir(os.path.join(mnt, 'big'))) == sorted(names)
        ls = subprocess.run(['ls', '-1', '-f', os.path.join(mnt, 'big')], check=True,
                            capture_output=True, text=True).stdout.split()
        assert sorted(n for n in ls if n not in ('.', '..')) == sorted(names)


def test_async_handlers_are_coroutines(tmp_path):
    from fuseshim.operations import implemented_operations
    import inspect
    ops = AsyncPassthroughFS(str(tmp_path))
    names = implemented_operations(ops) - {'readdirplus'}
    assert len(names) >= 30 and not names & {'getlk', 'setlk', 'flock'}
    assert all(inspect.iscoroutinefunction(getattr(ops, n)) for n in names)


@pytest.mark.parametrize('handlers', ['sync', 'async'])
def test_command_line(tmp_path, handlers):
    """python -m fuseshim.examples.passthrough SRC MNT mirrors SRC until SIGTERM."""
    src, mnt = tmp_path / 'src', tmp_path / 'mnt'
    src.mkdir()
    mnt.mkdir()
    (src / 'existing').write_bytes(b'old')
    argv = [sys.executable, '-m', 'fuseshim.examples.passthrough', str(src), str(mnt),
            '--startup', 'classic', '--workers', '2'] + (['--async'] if handlers == 'async' else [])
    with serving(argv, mnt, startup_path='classic'):
        assert (mnt / 'existing').read_bytes() == b'old'
        (mnt / 'new').write_bytes(b'new')
        assert (src / 'new').read_bytes() == b'new'


def test_command_line_raises_its_open_file_limit(tmp_path):
    """Started with the usual soft limit of 1,024 descriptors (here 256), the
    example still serves a tree with more inodes than that: it raises its
    soft limit to the hard one, as passthrough_hp does."""
    import resource
    src, mnt = tmp_path / 'src', tmp_path / 'mnt'
    src.mkdir()
    mnt.mkdir()
    names = [f'f{i:04d}' for i in range(600)]
    for n in names:
        (src / n).write_bytes(n.encode())
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]

    def low_soft_limit():
        default_signals()
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    argv = [sys.executable, '-m', 'fuseshim.examples.passthrough', str(src), str(mnt),
            '--startup', auto_startup_path()]
    with serving(argv, mnt, preexec_fn=low_soft_limit):
        # every lookup makes the daemon keep one O_PATH descriptor
        assert [(mnt / n).read_bytes() for n in names] == [n.encode() for n in names]


def test_command_line_usage():
    res = subprocess.run([sys.executable, '-m', 'fuseshim.examples.passthrough', '--help'],
                         capture_output=True, text=True, check=True)
    usage = ' '.join(res.stdout.split())
    assert 'SRC mountpoint' in usage and '--startup' in usage and '--workers' in usage


# fsx's case: an O_DIRECT file, truncated to a size that is no multiple of
# the page size, written through a shared mapping and msync'ed.  The kernel's
# writeback of the last page arrives cut at end of file (unaligned), which an
# O_DIRECT backing descriptor refuses.  Run in a client process: a page fault
# on the mount holds this process's GIL, which the daemon's workers need.
ODIRECT_MMAP_CLIENT = textwrap.dedent('''
    import mmap, os, sys
    path, size = sys.argv[1], int(sys.argv[2], 0)
    data = bytes((i * 7 + 3) % 251 for i in range(size))
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    try:
        os.ftruncate(fd, size)
        with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as m:
            m[:] = data
            m.flush()                       # msync(MS_SYNC)
        os.fsync(fd)
    finally:
        os.close(fd)
    print('ok')
''')


def test_odirect_file_written_through_a_shared_mapping_keeps_its_data(tmp_path, mount_mode):
    """No silent loss: the data lands in the backing file, msync/fsync/close
    succeed, exactly as on the backing filesystem itself."""
    size = 0x1e7a
    data = bytes((i * 7 + 3) % 251 for i in range(size))
    with passthrough_mounted(tmp_path, mount_mode) as (ops, src, mnt):
        for path in (os.path.join(src, 'native'), os.path.join(mnt, 'f')):   # reference first
            r = subprocess.run([sys.executable, '-c', ODIRECT_MMAP_CLIENT, path, hex(size)],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0 and r.stdout.strip() == 'ok', (path, r.stderr)
        with open(os.path.join(src, 'native'), 'rb') as f:
            assert f.read() == data
        with open(os.path.join(src, 'f'), 'rb') as f:
            assert f.read() == data, 'the backing file lost the mapped writes'


def test_a_failed_write_is_reported_by_fsync_and_close(tmp_path):
    """A write error nobody saw (writeback) reaches the next fsync or close
    of the handle, once."""
    with passthrough_mounted(tmp_path, MountMode(auto_startup_path(), 'sync', 1)) as (ops, src,
                                                                                   mnt):
        fd = os.open(os.path.join(mnt, 'f'), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            [fh] = [h for h in ops._files]
            ops._write_errors[fh] = errno.EIO            # as if writeback had failed
            with pytest.raises(OSError) as info:
                os.fsync(fd)
            assert info.value.errno == errno.EIO
            os.fsync(fd)                                 # reported once
            ops._write_errors[fh] = errno.ENOSPC
        finally:
            with pytest.raises(OSError) as info:
                os.close(fd)
        assert info.value.errno == errno.ENOSPC
