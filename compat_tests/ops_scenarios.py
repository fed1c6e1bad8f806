"""Filesystem scenarios for the ops tests, run through plain os/fcntl calls.

Each scenario works below one directory and both asserts what POSIX
promises and records every result (values, normalised stat fields, errno
names) in a Recorder.  Running the same scenario on a FUSE mount and on a
reference directory (the backing directory, or any local filesystem) and
comparing the two records checks the filesystem step by step.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import os
import random
import stat
import subprocess
import sys
import time

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
AT_FDCWD = -100

_libc = ctypes.CDLL(None, use_errno=True)
_libc.renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                            ctypes.c_uint)
_libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)


def renameat2(old, new, flags):
    """renameat2(AT_FDCWD, old, AT_FDCWD, new, flags) or OSError."""
    if _libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), old, None, new)


def fallocate(fd, mode, off, length):
    if _libc.fallocate(fd, mode, off, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def ename(num) -> str:
    return errno.errorcode.get(num, str(num))


def stat_summary(st, *, size=True) -> dict:
    """The stat fields two filesystems must agree on (no inode numbers,
    devices, block counts or times; no size for directories)."""
    d = {'type': stat.S_IFMT(st.st_mode), 'perm': oct(stat.S_IMODE(st.st_mode)),
         'nlink': st.st_nlink, 'uid': st.st_uid, 'gid': st.st_gid, 'rdev': st.st_rdev}
    if size and not stat.S_ISDIR(st.st_mode):
        d['size'] = st.st_size
    return d


def _normalize(v):
    if isinstance(v, os.stat_result):
        return stat_summary(v)
    if isinstance(v, os.statvfs_result):
        return tuple(v)
    return v


class Recorder:
    """Runs calls below ``root`` and records their outcomes."""

    def __init__(self, root):
        self.root = os.fspath(root)
        self.log: list[tuple] = []

    def p(self, *parts) -> str:
        return os.path.join(self.root, *parts)

    def note(self, label, value):
        self.log.append((label, 'value', _normalize(value)))
        return value

    def ok(self, label, fn, *args, **kwargs):
        """Call; it must succeed.  The (normalised) result is recorded."""
        try:
            res = fn(*args, **kwargs)
        except OSError as e:
            self.log.append((label, 'error', ename(e.errno)))
            raise AssertionError(f'{label}: unexpected {ename(e.errno)} ({e}) '
                                 f'below {self.root}') from e
        self.log.append((label, 'ok', _normalize(res)))
        return res

    def fails(self, label, expected, fn, *args, **kwargs):
        """Call; it must fail with one of the errnos ``expected``."""
        expected = (expected,) if isinstance(expected, int) else tuple(expected)
        try:
            fn(*args, **kwargs)
        except OSError as e:
            self.log.append((label, 'error', ename(e.errno)))
            assert e.errno in expected, (f'{label}: {ename(e.errno)}, expected '
                                         f'{"/".join(map(ename, expected))} below {self.root}')
            return e
        self.log.append((label, 'ok', None))
        raise AssertionError(f'{label}: succeeded, expected '
                             f'{"/".join(map(ename, expected))} below {self.root}')

    def open(self, label, path, flags, mode=0o644) -> int:
        """os.open that records success (not the fd number)."""
        fd = self.ok(label, os.open, path, flags, mode)
        self.log[-1] = (label, 'ok', 'fd')
        return fd

    def stat(self, label, *parts, follow=True):
        """Record and return the stat summary of a path below the root."""
        return self.note(label, stat_summary(os.stat(self.p(*parts), follow_symlinks=follow)))


def run(scenario, root, *args) -> list:
    """Create ``root``, run ``scenario`` below it, return its record."""
    os.mkdir(root)
    r = Recorder(root)
    scenario(r, *args)
    return r.log


def compare(got, ref, what='mount', ref_what='reference'):
    for i, (a, b) in enumerate(zip(got, ref)):
        assert a == b, f'step {i}: {what} gave {a}, {ref_what} gave {b}'
    assert len(got) == len(ref), f'{what}: {len(got)} steps, {ref_what}: {len(ref)}'


def read_file(path) -> bytes:
    with open(path, 'rb') as f:
        return f.read()


def tree(root, *, times=False) -> dict:
    """relative path -> (stat summary, content digest / link target, user xattrs)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            info = stat_summary(st, size=True)
            if times:
                info['mtime_ns'] = st.st_mtime_ns
            if stat.S_ISREG(st.st_mode):
                info['sha1'] = hashlib.sha1(read_file(path)).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                info['target'] = os.readlink(path)
            if not stat.S_ISLNK(st.st_mode):
                info['xattrs'] = {n: os.getxattr(path, n) for n in sorted(os.listxattr(path))
                                  if n.startswith('user.')}
            out[os.path.relpath(path, root)] = info
    return out


# ---------------------------------------------------------------- scenarios

def scenario_files(r: Recorder):
    """create, write, read, truncate, O_TRUNC, O_APPEND, big I/O, fsync, mknod."""
    f = r.p('f')
    fd = r.open('create', f, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o640)
    assert r.ok('write', os.write, fd, b'hello world') == 11
    assert r.ok('pread', os.pread, fd, 100, 0) == b'hello world'
    assert r.ok('pwrite past EOF', os.pwrite, fd, b'X', 20) == 1
    assert r.ok('pread gap', os.pread, fd, 100, 0) == b'hello world' + bytes(9) + b'X'
    assert r.ok('fstat', os.fstat, fd).st_size == 21
    r.ok('fsync', os.fsync, fd)
    r.ok('fdatasync', os.fdatasync, fd)
    r.ok('ftruncate shrink', os.ftruncate, fd, 5)
    assert r.ok('pread shrunk', os.pread, fd, 100, 0) == b'hello'
    r.ok('truncate grow', os.truncate, f, 3 * 4096 + 1)
    assert r.stat('stat grown', 'f')['size'] == 3 * 4096 + 1
    assert r.ok('pread grown', os.pread, fd, 20000, 0) == b'hello' + bytes(3 * 4096 - 4)
    r.ok('close', os.close, fd)
    assert r.stat('stat', 'f')['perm'] == oct(0o640 & ~_umask())

    r.fails('O_EXCL existing', errno.EEXIST, os.open, f, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    fd = r.open('O_TRUNC', f, os.O_WRONLY | os.O_TRUNC)
    assert r.ok('fstat truncated', os.fstat, fd).st_size == 0
    r.ok('write after trunc', os.write, fd, b'a')
    r.ok('close', os.close, fd)
    fd = r.open('O_APPEND', f, os.O_WRONLY | os.O_APPEND)
    r.ok('append', os.write, fd, b'bc')
    r.ok('close', os.close, fd)
    assert r.note('appended', read_file(f)) == b'abc'

    data = random.Random(1).randbytes(1 << 20)
    big = r.p('big')
    with open(big, 'wb') as fobj:
        for i in range(0, len(data), 100_000):
            fobj.write(data[i:i + 100_000])
    assert r.stat('big stat', 'big')['size'] == len(data)
    got = read_file(big)
    assert got == data, 'big file read back differs'
    r.note('big sha1', hashlib.sha1(got).hexdigest())
    fd = r.open('open big', big, os.O_RDONLY)
    assert r.ok('pread big middle', os.pread, fd, 1000, 500_000) == data[500_000:501_000]
    assert r.ok('pread past EOF', os.pread, fd, 1000, len(data) + 10) == b''
    r.ok('close', os.close, fd)

    r.ok('mknod regular', os.mknod, r.p('node'), stat.S_IFREG | 0o600)
    assert r.stat('mknod stat', 'node')['type'] == stat.S_IFREG
    r.ok('mkfifo', os.mkfifo, r.p('fifo'), 0o644)
    assert r.stat('fifo stat', 'fifo', follow=False)['type'] == stat.S_IFIFO
    r.fails('mknod existing', errno.EEXIST, os.mknod, r.p('node'), stat.S_IFREG | 0o600)
    r.fails('open missing', errno.ENOENT, os.open, r.p('missing'), os.O_RDONLY)
    assert r.ok('listdir', lambda: sorted(os.listdir(r.root))) == ['big', 'f', 'fifo', 'node']


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def scenario_setattr(r: Recorder):
    """chmod, chown, utime (explicit, now, symlink), truncate through setattr."""
    f = r.p('f')
    with open(f, 'wb') as fobj:
        fobj.write(b'0123456789')
    r.ok('chmod', os.chmod, f, 0o600)
    assert r.stat('after chmod', 'f')['perm'] == oct(0o600)
    r.ok('chmod setuid', os.chmod, f, 0o4755)
    assert r.stat('after chmod suid', 'f')['perm'] == oct(0o4755)
    r.ok('chown', os.chown, f, 1234, 5678)
    st = r.stat('after chown', 'f')
    assert (st['uid'], st['gid']) == (1234, 5678)
    r.ok('chown gid only', os.chown, f, -1, 42)
    st = r.stat('after chgrp', 'f')
    assert (st['uid'], st['gid']) == (1234, 42)
    times = (1_600_000_000_123_456_789, 1_500_000_000_987_654_321)
    r.ok('utime ns', os.utime, f, ns=times)
    st = os.stat(f)
    assert r.note('times', (st.st_atime_ns, st.st_mtime_ns)) == times
    fd = os.open(f, os.O_RDWR)
    r.ok('futimes', os.utime, fd, ns=(10**18, 10**18 + 5))
    st = os.stat(f)
    assert r.note('futimes times', (st.st_atime_ns, st.st_mtime_ns)) == (10**18, 10**18 + 5)
    r.ok('fchmod', os.fchmod, fd, 0o640)
    r.ok('ftruncate', os.ftruncate, fd, 4)
    os.close(fd)
    assert r.stat('after fchmod/ftruncate', 'f') == {**stat_summary(os.stat(f)), 'size': 4,
                                                      'perm': oct(0o640)}
    before = os.stat(f).st_mtime_ns
    time.sleep(0.05)   # let a coarse filesystem clock tick (jiffies under a slow VM)
    r.ok('utime now', os.utime, f)
    assert os.stat(f).st_mtime_ns > before
    r.ok('symlink', os.symlink, 'f', r.p('s'))
    r.ok('lchown', os.chown, r.p('s'), 11, 22, follow_symlinks=False)
    st = r.stat('symlink after lchown', 's', follow=False)
    assert (st['uid'], st['gid'], st['type']) == (11, 22, stat.S_IFLNK)
    assert r.stat('target unchanged', 's')['uid'] == 1234
    r.ok('lutime', os.utime, r.p('s'), ns=times, follow_symlinks=False)
    st = os.lstat(r.p('s'))
    assert r.note('symlink times', (st.st_atime_ns, st.st_mtime_ns)) == times
    r.ok('mkdir', os.mkdir, r.p('d'))
    r.ok('chmod dir', os.chmod, r.p('d'), 0o2711)
    assert r.stat('dir after chmod', 'd')['perm'] == oct(0o2711)
    r.fails('truncate dir', errno.EISDIR, os.truncate, r.p('d'), 0)


def scenario_links(r: Recorder):
    """hard links (st_nlink, shared data) and symlinks."""
    a, b = r.p('a'), r.p('b')
    with open(a, 'wb') as f:
        f.write(b'one')
    r.ok('link', os.link, a, b)
    assert r.stat('a after link', 'a')['nlink'] == 2
    assert r.stat('b after link', 'b')['nlink'] == 2
    assert r.note('same inode', os.path.samefile(a, b)) is True
    with open(b, 'ab') as f:
        f.write(b'two')
    assert r.note('shared data', read_file(a)) == b'onetwo'
    r.ok('link c', os.link, b, r.p('c'))
    assert r.stat('three links', 'a')['nlink'] == 3
    r.ok('unlink a', os.unlink, a)
    assert r.stat('b after unlink', 'b')['nlink'] == 2
    r.fails('stat unlinked', errno.ENOENT, os.stat, a)
    r.fails('link existing', errno.EEXIST, os.link, b, r.p('c'))
    r.fails('link missing', errno.ENOENT, os.link, a, r.p('x'))
    r.ok('mkdir', os.mkdir, r.p('d'))
    r.fails('link dir', errno.EPERM, os.link, r.p('d'), r.p('dlink'))
    r.ok('link into subdir', os.link, b, r.p('d', 'b2'))
    assert r.stat('linked into subdir', 'd', 'b2')['nlink'] == 3

    r.ok('symlink', os.symlink, 'b', r.p('s'))
    assert r.ok('readlink', os.readlink, r.p('s')) == 'b'
    st = r.stat('lstat symlink', 's', follow=False)
    assert st['type'] == stat.S_IFLNK and st['size'] == 1
    assert r.stat('stat through symlink', 's')['type'] == stat.S_IFREG
    assert r.note('read through symlink', read_file(r.p('s'))) == b'onetwo'
    r.ok('dangling symlink', os.symlink, 'nowhere', r.p('dangling'))
    r.fails('stat dangling', errno.ENOENT, os.stat, r.p('dangling'))
    r.stat('lstat dangling', 'dangling', follow=False)
    r.fails('symlink existing', errno.EEXIST, os.symlink, 'x', r.p('s'))
    r.fails('readlink regular', errno.EINVAL, os.readlink, b)
    r.ok('dir symlink', os.symlink, 'd', r.p('sd'))
    assert r.ok('listdir through symlink', lambda: sorted(os.listdir(r.p('sd')))) == ['b2']
    target = 'x' * 1000 + '/y'
    r.ok('long symlink', os.symlink, target, r.p('long'))
    assert r.ok('readlink long', os.readlink, r.p('long')) == target
    r.ok('hard link to symlink', os.link, r.p('s'), r.p('s2'), follow_symlinks=False)
    assert r.stat('symlink nlink', 's', follow=False)['nlink'] == 2
    assert r.ok('readlink hard-linked symlink', os.readlink, r.p('s2')) == 'b'
    r.ok('unlink symlink', os.unlink, r.p('s'))
    assert r.note('target survives', read_file(b)) == b'onetwo'
    assert r.ok('listdir', lambda: sorted(os.listdir(r.root))) == \
        ['b', 'c', 'd', 'dangling', 'long', 's2', 'sd']


def _write(path, data):
    with open(path, 'wb') as f:
        f.write(data)


def scenario_rename(r: Recorder):
    """rename: plain, replacing, across dirs, dirs, RENAME_NOREPLACE/EXCHANGE."""
    p = r.p
    _write(p('a'), b'A')
    _write(p('b'), b'B')
    r.ok('rename to new', os.rename, p('a'), p('a2'))
    r.fails('old name gone', errno.ENOENT, os.stat, p('a'))
    assert r.note('moved data', read_file(p('a2'))) == b'A'
    r.ok('rename replace', os.rename, p('a2'), p('b'))
    assert r.note('replaced data', read_file(p('b'))) == b'A'
    r.fails('rename missing', errno.ENOENT, os.rename, p('a2'), p('c'))

    _write(p('c'), b'C')
    r.fails('NOREPLACE onto existing', errno.EEXIST, renameat2, p('b'), p('c'),
            RENAME_NOREPLACE)
    assert r.note('NOREPLACE kept both', (read_file(p('b')), read_file(p('c')))) == (b'A', b'C')
    r.ok('NOREPLACE to new', renameat2, p('c'), p('c2'), RENAME_NOREPLACE)
    assert r.note('NOREPLACE moved', read_file(p('c2'))) == b'C'
    r.ok('EXCHANGE files', renameat2, p('b'), p('c2'), RENAME_EXCHANGE)
    assert r.note('exchanged', (read_file(p('b')), read_file(p('c2')))) == (b'C', b'A')
    r.fails('EXCHANGE missing target', errno.ENOENT, renameat2, p('b'), p('none'),
            RENAME_EXCHANGE)
    r.fails('NOREPLACE|EXCHANGE', errno.EINVAL, renameat2, p('b'), p('c2'),
            RENAME_NOREPLACE | RENAME_EXCHANGE)

    r.ok('mkdir d1', os.mkdir, p('d1'))
    r.ok('mkdir d2', os.mkdir, p('d2'))
    r.ok('mkdir d1/sub', os.mkdir, p('d1', 'sub'))
    _write(p('d1', 'sub', 'f'), b'F')
    assert r.stat('d1 nlink', 'd1')['nlink'] == 3
    r.ok('move dir across', os.rename, p('d1', 'sub'), p('d2', 'sub'))
    assert r.stat('d1 nlink after', 'd1')['nlink'] == 2
    assert r.stat('d2 nlink after', 'd2')['nlink'] == 3
    assert r.note('moved dir content', read_file(p('d2', 'sub', 'f'))) == b'F'
    r.ok('move file across', os.rename, p('b'), p('d1', 'b'))
    assert r.ok('listdir d1', lambda: sorted(os.listdir(p('d1')))) == ['b']
    r.fails('dir into itself', errno.EINVAL, os.rename, p('d2'), p('d2', 'sub', 'x'))
    r.ok('mkdir empty', os.mkdir, p('empty'))
    r.ok('dir over empty dir', os.rename, p('d1'), p('empty'))
    r.fails('old dir gone', errno.ENOENT, os.stat, p('d1'))
    assert r.ok('listdir renamed', lambda: sorted(os.listdir(p('empty')))) == ['b']
    r.fails('dir over non-empty dir', (errno.ENOTEMPTY, errno.EEXIST), os.rename, p('d2'),
            p('empty'))
    r.fails('file over dir', errno.EISDIR, os.rename, p('c2'), p('d2'))
    r.fails('dir over file', errno.ENOTDIR, os.rename, p('d2'), p('c2'))

    # exchange a file and a directory living in different directories
    r.ok('EXCHANGE file/dir across dirs', renameat2, p('c2'), p('d2', 'sub'), RENAME_EXCHANGE)
    assert r.stat('exchanged dir', 'c2')['type'] == stat.S_IFDIR
    assert r.stat('exchanged file', 'd2', 'sub')['type'] == stat.S_IFREG
    assert r.stat('root nlink', '.')['nlink'] == 5      # ., .., c2, d2, empty
    assert r.stat('d2 nlink', 'd2')['nlink'] == 2
    assert r.note('dir moved intact', read_file(p('c2', 'f'))) == b'F'
    # ... and back, with the directory as the source this time
    r.ok('EXCHANGE dir/file across dirs', renameat2, p('c2'), p('d2', 'sub'), RENAME_EXCHANGE)
    assert r.stat('root nlink back', '.')['nlink'] == 4
    assert r.stat('d2 nlink back', 'd2')['nlink'] == 3
    assert r.note('dir back intact', read_file(p('d2', 'sub', 'f'))) == b'F'
    r.ok('EXCHANGE file/dir again', renameat2, p('c2'), p('d2', 'sub'), RENAME_EXCHANGE)
    r.ok('EXCHANGE dirs', renameat2, p('c2'), p('empty'), RENAME_EXCHANGE)
    assert r.ok('listdir exchanged', lambda: (sorted(os.listdir(p('c2'))),
                                              sorted(os.listdir(p('empty'))))) == (['b'], ['f'])

    r.ok('link', os.link, p('d2', 'sub'), p('hard'))
    r.ok('rename onto own hard link', os.rename, p('hard'), p('d2', 'sub'))
    assert r.note('both names stay', (os.path.exists(p('hard')),
                                      os.path.exists(p('d2', 'sub')))) == (True, True)
    assert r.stat('nlink unchanged', 'hard')['nlink'] == 2
    assert r.ok('listdir', lambda: sorted(os.listdir(r.root))) == ['c2', 'd2', 'empty', 'hard']


def scenario_xattrs(r: Recorder):
    """user.* xattrs on files and directories (set/get/list/remove, ENODATA)."""
    f = r.p('f')
    _write(f, b'x')

    def listx(path):
        return sorted(n for n in os.listxattr(path) if n.startswith('user.'))
    assert r.ok('list empty', listx, f) == []
    r.ok('set', os.setxattr, f, 'user.a', b'1')
    assert r.ok('get', os.getxattr, f, 'user.a') == b'1'
    big = bytes(range(256)) * 4
    r.ok('set big', os.setxattr, f, 'user.big', big)      # > 128 bytes: ERANGE retry path
    assert r.ok('get big', os.getxattr, f, 'user.big') == big
    r.ok('set empty value', os.setxattr, f, 'user.empty', b'')
    assert r.ok('get empty value', os.getxattr, f, 'user.empty') == b''
    r.ok('XATTR_CREATE new', os.setxattr, f, 'user.new', b'n', os.XATTR_CREATE)
    r.ok('XATTR_REPLACE existing', os.setxattr, f, 'user.new', b'N', os.XATTR_REPLACE)
    assert r.ok('get replaced', os.getxattr, f, 'user.new') == b'N'
    r.ok('overwrite', os.setxattr, f, 'user.a', b'22')
    assert r.ok('get overwritten', os.getxattr, f, 'user.a') == b'22'
    assert r.ok('list', listx, f) == ['user.a', 'user.big', 'user.empty', 'user.new']
    r.fails('get missing', errno.ENODATA, os.getxattr, f, 'user.missing')
    r.ok('remove', os.removexattr, f, 'user.a')
    r.fails('get removed', errno.ENODATA, os.getxattr, f, 'user.a')
    r.fails('remove missing', errno.ENODATA, os.removexattr, f, 'user.a')
    assert r.ok('list after remove', listx, f) == ['user.big', 'user.empty', 'user.new']
    many = ['user.name%02d' % i for i in range(30)]        # > 256 bytes of names
    for n in many:
        os.setxattr(f, n, n.encode())
    assert r.ok('list many', listx, f) == sorted(['user.big', 'user.empty', 'user.new'] + many)
    r.ok('mkdir', os.mkdir, r.p('d'))
    r.ok('set on dir', os.setxattr, r.p('d'), 'user.dir', b'D')
    assert r.ok('get on dir', os.getxattr, r.p('d'), 'user.dir') == b'D'
    fd = os.open(f, os.O_RDONLY)
    try:
        assert r.ok('fgetxattr', os.getxattr, fd, 'user.new') == b'N'
    finally:
        os.close(fd)
    r.fails('getxattr missing file', errno.ENOENT, os.getxattr, r.p('nope'), 'user.a')


def scenario_errors(r: Recorder):
    """mkdir/rmdir incl. ENOTEMPTY, and ENOENT/EEXIST/ENOTDIR/EISDIR."""
    p = r.p
    r.ok('mkdir', os.mkdir, p('d'), 0o750)
    assert r.stat('mkdir stat', 'd') == {'type': stat.S_IFDIR, 'perm': oct(0o750 & ~_umask()),
                                         'nlink': 2, 'uid': os.getuid(), 'gid': os.getgid(),
                                         'rdev': 0}
    r.fails('mkdir existing', errno.EEXIST, os.mkdir, p('d'))
    r.ok('mkdir sub', os.mkdir, p('d', 'e'))
    assert r.stat('parent nlink', 'd')['nlink'] == 3
    r.fails('rmdir non-empty', (errno.ENOTEMPTY, errno.EEXIST), os.rmdir, p('d'))
    _write(p('d', 'e', 'f'), b'')
    r.fails('rmdir non-empty (file)', (errno.ENOTEMPTY, errno.EEXIST), os.rmdir, p('d', 'e'))
    r.ok('unlink', os.unlink, p('d', 'e', 'f'))
    r.ok('rmdir sub', os.rmdir, p('d', 'e'))
    assert r.stat('parent nlink after', 'd')['nlink'] == 2
    r.ok('rmdir', os.rmdir, p('d'))
    r.fails('rmdir missing', errno.ENOENT, os.rmdir, p('d'))
    r.fails('mkdir in missing', errno.ENOENT, os.mkdir, p('missing', 'x'))
    r.fails('stat missing', errno.ENOENT, os.stat, p('missing'))
    r.fails('unlink missing', errno.ENOENT, os.unlink, p('missing'))
    _write(p('file'), b'data')
    r.fails('rmdir file', errno.ENOTDIR, os.rmdir, p('file'))
    r.fails('open below file', errno.ENOTDIR, os.open, p('file', 'x'), os.O_RDONLY)
    r.fails('mkdir below file', errno.ENOTDIR, os.mkdir, p('file', 'x'))
    r.fails('listdir file', errno.ENOTDIR, os.listdir, p('file'))
    r.fails('mkdir over file', errno.EEXIST, os.mkdir, p('file'))
    r.ok('mkdir d2', os.mkdir, p('d2'))
    r.fails('open dir for writing', errno.EISDIR, os.open, p('d2'), os.O_WRONLY)
    r.fails('unlink dir', errno.EISDIR, os.unlink, p('d2'))
    r.fails('O_EXCL on dir', errno.EEXIST, os.open, p('d2'), os.O_CREAT | os.O_EXCL | os.O_RDWR)
    r.fails('O_DIRECTORY on file', errno.ENOTDIR, os.open, p('file'), os.O_RDONLY | os.O_DIRECTORY)
    r.fails('name too long', errno.ENAMETOOLONG, os.open, p('n' * 256),
            os.O_CREAT | os.O_WRONLY)
    fd = r.open('open dir', p('d2'), os.O_RDONLY | os.O_DIRECTORY)
    r.fails('read dir', errno.EISDIR, os.read, fd, 10)
    r.ok('fsync dir', os.fsync, fd)
    r.ok('close', os.close, fd)
    assert r.ok('access F_OK', os.access, p('file'), os.F_OK) is True
    assert r.ok('access R_OK|W_OK', os.access, p('file'), os.R_OK | os.W_OK) is True
    os.chmod(p('file'), 0o644)
    assert r.ok('access X_OK no x bit', os.access, p('file'), os.X_OK) is False
    os.chmod(p('file'), 0o744)
    assert r.ok('access X_OK with x bit', os.access, p('file'), os.X_OK) is True
    assert r.ok('access missing', os.access, p('missing'), os.F_OK) is False
    assert r.ok('listdir', lambda: sorted(os.listdir(r.root))) == ['d2', 'file']


def scenario_unlink_open(r: Recorder):
    """an unlinked file stays readable and writable through open descriptors."""
    f = r.p('f')
    _write(f, b'still here')
    fd = r.open('open', f, os.O_RDWR)
    fd2 = r.open('open again', f, os.O_RDONLY)
    r.ok('unlink', os.unlink, f)
    r.fails('stat after unlink', errno.ENOENT, os.stat, f)
    assert r.ok('read after unlink', os.pread, fd, 100, 0) == b'still here'
    assert r.ok('fstat after unlink', os.fstat, fd).st_nlink == 0
    r.ok('write after unlink', os.pwrite, fd, b'!', 10)
    assert r.ok('read other fd', os.pread, fd2, 100, 0) == b'still here!'
    r.ok('close', os.close, fd)
    assert r.ok('read last fd', os.pread, fd2, 100, 0) == b'still here!'
    r.ok('close last', os.close, fd2)
    _write(f, b'new')                    # the name is free again
    assert r.note('recreated', read_file(f)) == b'new'
    r.ok('mkdir', os.mkdir, r.p('d'))
    dfd = r.open('open dir', r.p('d'), os.O_RDONLY | os.O_DIRECTORY)
    r.ok('rmdir open dir', os.rmdir, r.p('d'))
    assert r.ok('listdir removed dir', os.listdir, dfd) == []
    r.ok('close dir', os.close, dfd)
    assert r.ok('listdir', os.listdir, r.root) == ['f']


def scenario_space(r: Recorder):
    """fallocate (posix_fallocate, KEEP_SIZE, PUNCH_HOLE), copy_file_range and
    lseek SEEK_DATA/SEEK_HOLE on a file without holes."""
    data = random.Random(2).randbytes(10_000)
    f = r.p('f')
    _write(f, data)
    fd = r.open('open', f, os.O_RDWR)
    r.ok('posix_fallocate extend', os.posix_fallocate, fd, 0, 20_000)
    assert r.ok('size after fallocate', os.fstat, fd).st_size == 20_000
    assert r.ok('fallocated zeros', os.pread, fd, 20_000, 0) == data + bytes(10_000)
    r.ok('fallocate KEEP_SIZE', fallocate, fd, FALLOC_FL_KEEP_SIZE, 20_000, 8192)
    assert r.ok('size kept', os.fstat, fd).st_size == 20_000
    r.ok('punch hole', fallocate, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 4096)
    assert r.ok('size after punch', os.fstat, fd).st_size == 20_000
    expect = data[:4096] + bytes(4096) + data[8192:] + bytes(10_000)
    assert r.ok('punched content', os.pread, fd, 30_000, 0) == expect
    r.fails('punch without KEEP_SIZE', errno.EOPNOTSUPP, fallocate, fd,
            FALLOC_FL_PUNCH_HOLE, 0, 10)
    g = r.p('g')
    gfd = r.open('create g', g, os.O_CREAT | os.O_RDWR)
    assert r.ok('copy_file_range', os.copy_file_range, fd, gfd, 5000, 0, 100) == 5000
    assert r.ok('copied', os.pread, gfd, 10_000, 0) == bytes(100) + expect[:5000]
    assert r.ok('copy_file_range at EOF', os.copy_file_range, fd, gfd, 100, 20_000, 0) == 0
    assert r.ok('copy tail', os.copy_file_range, fd, gfd, 1000, 19_500, 5100) == 500
    assert r.ok('g size', os.fstat, gfd).st_size == 5600
    os.lseek(fd, 0, os.SEEK_SET)
    assert r.ok('copy_file_range at file offsets', os.copy_file_range, fd, gfd, 10) == 10
    assert r.ok('offsets advanced', lambda: (os.lseek(fd, 0, os.SEEK_CUR),
                                             os.lseek(gfd, 0, os.SEEK_CUR))) == (10, 10)
    assert r.ok('copied at offsets', os.pread, gfd, 10, 0) == expect[:10]
    r.ok('close g', os.close, gfd)

    h = r.p('h')
    _write(h, data)                      # written through: no holes anywhere
    hfd = r.open('open h', h, os.O_RDONLY)
    assert r.ok('SEEK_DATA 0', os.lseek, hfd, 0, os.SEEK_DATA) == 0
    assert r.ok('SEEK_DATA mid', os.lseek, hfd, 5000, os.SEEK_DATA) == 5000
    assert r.ok('SEEK_HOLE 0', os.lseek, hfd, 0, os.SEEK_HOLE) == 10_000
    assert r.ok('SEEK_HOLE last byte', os.lseek, hfd, 9999, os.SEEK_HOLE) == 10_000
    r.fails('SEEK_DATA at EOF', errno.ENXIO, os.lseek, hfd, 10_000, os.SEEK_DATA)
    r.fails('SEEK_HOLE past EOF', errno.ENXIO, os.lseek, hfd, 20_000, os.SEEK_HOLE)
    assert r.ok('SEEK_END', os.lseek, hfd, -10, os.SEEK_END) == 9990
    assert r.ok('read after seek', os.read, hfd, 100) == data[-10:]
    r.ok('close h', os.close, hfd)
    r.ok('close', os.close, fd)


_LOCK_CHILD = r'''
import errno, fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
out = []
for spec in sys.argv[2:]:
    kind, start, length = spec.split(':')
    start, length = int(start), int(length)
    if kind == 'getlk':
        probe = struct.pack('hhqqi', fcntl.F_WRLCK, 0, start, length, 0)
        res = fcntl.fcntl(fd, fcntl.F_GETLK, probe)
        l_type, _, l_start, l_len, l_pid = struct.unpack('hhqqi', res)
        out.append('getlk:%d:%d:%d:%s' % (l_type, l_start, l_len, l_pid == os.getppid()))
        continue
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, length, start)
        out.append('locked')
        fcntl.lockf(fd, fcntl.LOCK_UN, length, start)
    except OSError as e:
        out.append(errno.errorcode[e.errno])
print(' '.join(out))
'''


def _lock_child(path, *specs) -> str:
    res = subprocess.run([sys.executable, '-c', _LOCK_CHILD, path, *specs], check=True,
                         capture_output=True, text=True, timeout=60)
    return res.stdout.strip()


def scenario_locks(r: Recorder):
    """POSIX record locks seen from another process; flock across two fds."""
    f = r.p('f')
    _write(f, bytes(100))
    fd = r.open('open', f, os.O_RDWR)
    r.ok('lockf 0-9', fcntl.lockf, fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)
    got = r.note('other process while locked',
                 _lock_child(f, 'lock:0:10', 'lock:5:10', 'lock:10:10', 'getlk:0:0'))
    assert got == f'EAGAIN EAGAIN locked getlk:{fcntl.F_WRLCK}:0:10:True', got
    r.ok('unlock', fcntl.lockf, fd, fcntl.LOCK_UN, 10, 0)
    got = r.note('other process after unlock', _lock_child(f, 'lock:0:10', 'getlk:0:0'))
    assert got == f'locked getlk:{fcntl.F_UNLCK}:0:0:False', got
    r.ok('lockf whole file', fcntl.lockf, fd, fcntl.LOCK_EX)
    assert r.note('other process, whole file', _lock_child(f, 'lock:50:1')) == 'EAGAIN'
    r.ok('close drops lock', os.close, fd)
    assert r.note('after close', _lock_child(f, 'lock:0:0')) == 'locked'

    fd1 = r.open('open fd1', f, os.O_RDWR)
    fd2 = r.open('open fd2', f, os.O_RDWR)
    r.ok('flock fd1 EX', fcntl.flock, fd1, fcntl.LOCK_EX | fcntl.LOCK_NB)
    r.fails('flock fd2 EX', errno.EWOULDBLOCK, fcntl.flock, fd2, fcntl.LOCK_EX | fcntl.LOCK_NB)
    r.fails('flock fd2 SH', errno.EWOULDBLOCK, fcntl.flock, fd2, fcntl.LOCK_SH | fcntl.LOCK_NB)
    r.ok('flock fd1 UN', fcntl.flock, fd1, fcntl.LOCK_UN)
    r.ok('flock fd2 EX now', fcntl.flock, fd2, fcntl.LOCK_EX | fcntl.LOCK_NB)
    r.ok('flock fd2 SH (convert)', fcntl.flock, fd2, fcntl.LOCK_SH | fcntl.LOCK_NB)
    r.ok('flock fd1 SH shared', fcntl.flock, fd1, fcntl.LOCK_SH | fcntl.LOCK_NB)
    r.fails('flock fd1 EX vs shared', errno.EWOULDBLOCK, fcntl.flock, fd1,
            fcntl.LOCK_EX | fcntl.LOCK_NB)
    r.ok('close fd2', os.close, fd2)
    r.ok('flock fd1 EX after close', fcntl.flock, fd1, fcntl.LOCK_EX | fcntl.LOCK_NB)
    r.ok('close fd1', os.close, fd1)


def scenario_many_entries(r: Recorder, names):
    """a directory of many entries, listed through several readdir calls."""
    d = r.p('d')
    r.ok('mkdir', os.mkdir, d)
    for n in names:
        os.mknod(os.path.join(d, n), stat.S_IFREG | 0o644)
    listed = os.listdir(d)
    assert len(listed) == len(set(listed)), 'duplicate names listed'
    assert r.note('listdir', sorted(listed)) == sorted(names)
    with os.scandir(d) as it:
        entries = {e.name: e.is_file(follow_symlinks=False) for e in it}
    assert r.note('scandir all regular', sorted(entries) == sorted(names)
                  and all(entries.values())) is True
    gone = set(names[::10])
    for n in gone:
        os.unlink(os.path.join(d, n))
    assert r.note('listdir after unlinking a tenth',
                  sorted(os.listdir(d))) == sorted(set(names) - gone)
    assert r.stat('dir', 'd')['nlink'] == 2


# The scenarios both the memfs and the passthrough test files run, with the
# minimum number of calls the filesystem itself must have served (the kernel
# would silently fall back to its own code for fallocate/copy_file_range/lseek).
COMMON_SCENARIOS = {
    'files': (scenario_files, {}),
    'setattr': (scenario_setattr, {}),
    'links': (scenario_links, {}),
    'rename': (scenario_rename, {'rename': 10}),
    'xattrs': (scenario_xattrs, {}),
    'errors_and_dirs': (scenario_errors, {}),
    'unlink_open_file': (scenario_unlink_open, {}),
    # the copy at EOF never reaches copy_file_range
    'fallocate_copy_file_range_lseek': (scenario_space,
                                        {'fallocate': 3, 'copy_file_range': 3, 'lseek': 4}),
}


def served_at_least(ops, minimum_calls):
    """Assert ``ops.calls[op] >= n`` for each entry of ``minimum_calls``."""
    for op, n in minimum_calls.items():
        assert ops.calls[op] >= n, (op, ops.calls[op], n)


def open_fds_below(path) -> set[str]:
    """Paths under ``path`` this process holds open (leak checks for passthrough)."""
    out = set()
    for fd in os.listdir('/proc/self/fd'):
        try:
            target = os.readlink(f'/proc/self/fd/{fd}')
        except OSError:
            continue
        if target == path or target.startswith(path + '/'):
            out.add(target)
    return out
