"""Bad input and security, end to end through real mounts.

- allow_other: as root always allowed; an unprivileged mounter only with
  user_allow_other in /etc/fuse.conf (fusermount3's rule); without it
  other users get EACCES.
- default_permissions: with it the kernel checks mode bits; without it
  the filesystem decides alone (memfs does not check open permissions).
- Names: 255 bytes work, 256 (up to the kernel's own 1024 limit, which
  the daemon sees) get ENAMETOOLONG; names with every byte but NUL and '/'.
- Sizes and offsets: zero-length and huge (256 MiB in one call) reads and
  writes, offsets near 2**63, xattr names and values at the kernel's
  limits (255-byte names, 64 KiB values, 64 KiB name lists).

(Unknown, malformed and contradictory mount options: test_bad_input.py.)
"""
from __future__ import annotations

import errno
import hashlib
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

import pytest

from conftest import mounted
from fuseshim import fusermount
from fuseshim.examples.memfs import MemFS
from fuseshim.examples.passthrough import PassthroughFS
from reliability_helpers import as_user, public_dir  # noqa: F401  (fixture)

OTHER = 4242             # a user id nobody else uses
XATTR_SIZE_MAX = 65536
XATTR_LIST_MAX = 65536


def _perm_denied(res) -> bool:
    return res.returncode != 0 and 'Permission denied' in res.stderr


# ------------------------------------------------------------ allow_other

@pytest.mark.parametrize('options', [(), ('allow_other',)], ids=['private', 'allow_other'])
def test_other_users_need_allow_other(public_dir, options):
    mnt = os.path.join(public_dir, 'mnt')
    os.mkdir(mnt)
    ops = MemFS(root_mode=0o777)
    with mounted(ops, mnt, options=list(options)):
        with open(os.path.join(mnt, 'f'), 'w') as f:
            f.write('shared\n')
        os.chmod(os.path.join(mnt, 'f'), 0o644)
        res = as_user(OTHER, f'cat {mnt}/f && stat -c %a {mnt} && touch {mnt}/mine && '
                             f'stat -c %u {mnt}/mine')
        if options:
            assert res.returncode == 0, res.stderr
            assert res.stdout.split() == ['shared', '777', str(OTHER)]
        else:
            assert _perm_denied(res), res
            assert 'mine' not in os.listdir(mnt)
        # root (the mounting user here) is always let in
        assert open(os.path.join(mnt, 'f')).read() == 'shared\n'


@pytest.mark.parametrize('default_permissions', [False, True])
def test_default_permissions(public_dir, default_permissions):
    """memfs does not check permissions on open; with default_permissions
    the kernel refuses by mode bits before memfs is asked."""
    mnt = os.path.join(public_dir, 'mnt')
    os.mkdir(mnt)
    ops = MemFS(root_mode=0o755)
    options = ['allow_other'] + (['default_permissions'] if default_permissions else [])
    with mounted(ops, mnt, options=options):
        with open(os.path.join(mnt, 'secret'), 'w') as f:
            f.write('root only\n')
        os.chmod(os.path.join(mnt, 'secret'), 0o600)
        opens = ops.calls['open']
        read = as_user(OTHER, f'cat {mnt}/secret')
        write = as_user(OTHER, f'touch {mnt}/new')
        if default_permissions:
            assert _perm_denied(read) and _perm_denied(write), (read, write)
            assert ops.calls['open'] == opens          # memfs never asked
        else:
            assert read.returncode == 0 and read.stdout == 'root only\n', read
            assert write.returncode == 0, write        # memfs lets anyone create
            assert ops.calls['open'] > opens


# The unprivileged mounter: `nobody` in a private mount namespace (see
# test_unprivileged.py), with /etc/fuse.conf replaced inside it.
NOBODY_CHILD = textwrap.dedent('''
    import os, sys, fuseshim
    from fuseshim.examples.hello import HelloFS
    mnt = sys.argv[1]
    try:
        with fuseshim.mount(HelloFS(), mnt, options=['allow_other']) as m:
            opts = [l.split()[3] for l in open('/proc/self/mounts') if l.split()[1] == mnt]
            print('mounted', m.startup_path, opts)
    except fuseshim.MountError as e:
        print('refused', e)
    print('after', [l.split()[1] for l in open('/proc/self/mounts') if l.split()[1] == mnt])
''')


@pytest.mark.skipif(shutil.which('fusermount3') is None, reason='needs fusermount3')
@pytest.mark.parametrize('user_allow_other', [False, True])
def test_unprivileged_allow_other_needs_user_allow_other(user_allow_other):
    _run_nobody_allow_other(user_allow_other)


@pytest.mark.skipif(shutil.which('fusermount3') is None, reason='needs fusermount3')
def test_unprivileged_allow_other_refusal_names_the_reason():
    out = _run_nobody_allow_other(False)
    refused = next(line for line in out.stdout.splitlines() if line.startswith('refused'))
    assert 'user_allow_other' in refused, refused


def _run_nobody_allow_other(user_allow_other):
    import test_unprivileged as tu
    mnt = tempfile.mkdtemp(prefix='fuseshim-nobody-')
    os.chmod(mnt, 0o755)
    os.chown(mnt, 65534, 65534)
    scratch = tempfile.mkdtemp(prefix='fuseshim-ns-')
    try:
        conf = os.path.join(scratch, 'fuse.conf')
        with open(conf, 'w') as f:
            f.write('user_allow_other\n' if user_allow_other else '# nothing allowed\n')
        os.chmod(conf, 0o644)
        pyroot, build = tu._python_root(), tu._editable_build_dir()
        # the fuse.conf of the fusermount3 libfuse runs (a matrix cell's own
        # helper reads its prefix's etc/fuse.conf, Debian's /etc/fuse.conf)
        rebind = f'mount --bind {conf} {fusermount.helper().conf or "/etc/fuse.conf"} && '
        if pyroot:
            rebind += (f'mkdir -p {scratch}/py && mount --bind {pyroot} {scratch}/py && '
                       f'mount -t tmpfs -o mode=755 tmpfs /root && mkdir -p {pyroot} && '
                       f'mount --bind {scratch}/py {pyroot} && ')
        if build:
            rebind += (f'mkdir -p {scratch}/ov && mount -t tmpfs -o mode=777 tmpfs {scratch}/ov '
                       f'&& mkdir -m 777 {scratch}/ov/u {scratch}/ov/w && mount -t overlay '
                       f'overlay -o lowerdir={build},upperdir={scratch}/ov/u,workdir='
                       f'{scratch}/ov/w {build} && chmod -f a+rw {build} {build}/meson-logs '
                       f'{build}/meson-logs/* {build}/.ninja_log {build}/.ninja_deps; ')
        rebind += (f'mknod -m 666 {scratch}/dev-fuse c 10 229 && '
                   f'mount --bind {scratch}/dev-fuse /dev/fuse && ')
        script = (rebind + 'exec setpriv --reuid=65534 --regid=65534 --clear-groups '
                  '--inh-caps=-all "$0" -c "$1" "$2"')
        out = subprocess.run(['unshare', '-m', '--propagation', 'private', 'sh', '-c', script,
                              sys.executable, NOBODY_CHILD, mnt],
                             capture_output=True, text=True, timeout=120, cwd='/')
        assert out.returncode == 0, out.stdout + out.stderr
        if user_allow_other:
            assert 'mounted classic' in out.stdout and 'allow_other' in out.stdout, out.stdout
        else:
            assert 'refused' in out.stdout, out.stdout + out.stderr
            # fusermount3 says why on stderr
            assert "allow_other only allowed if 'user_allow_other' is set" in out.stderr
        assert 'after []' in out.stdout
        return out
    finally:
        os.rmdir(mnt)
        shutil.rmtree(scratch)


def test_root_may_always_allow_other(mnt):
    """As root no fuse.conf setting is needed, on either startup path."""
    for startup in ('sync', 'classic'):
        with mounted(MemFS(), mnt, startup=startup, options=['allow_other']) as m:
            opts = [line.split()[3] for line in open('/proc/self/mounts')
                    if line.split()[1] == m.mountpoint]
            assert opts and 'allow_other' in opts[0].split(',')


# ------------------------------------------------------------ names

@pytest.fixture
def memfs_mnt(tmp_path):
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    ops = MemFS()
    with mounted(ops, mnt, workers=2):
        yield ops, str(mnt)
    assert ops.check_consistency() == []


def _errno(fn, *args):
    try:
        fn(*args)
    except OSError as e:
        return e.errno
    return 0


def test_name_lengths(memfs_mnt):
    ops, mnt = memfs_mnt
    ok = 'n' * 255
    p = os.path.join(mnt, ok)
    with open(p, 'w') as f:
        f.write('x')
    os.mkdir(os.path.join(mnt, 'd' * 255))
    os.symlink(ok, os.path.join(mnt, 's' * 255))
    os.link(p, os.path.join(mnt, 'h' * 255))
    os.rename(p, os.path.join(mnt, 'r' * 255))
    assert sorted(os.listdir(mnt)) == sorted(c * 255 for c in 'dhrs')
    assert os.stat(os.path.join(mnt, 'h' * 255)).st_nlink == 2
    target = os.path.join(mnt, 'r' * 255)
    seen_by_daemon = ops.calls['lookup']
    for length in (256, 300, 1024, 1025, 4000):
        long = os.path.join(mnt, 'L' * length)
        for what, call in [('create', lambda: os.open(long, os.O_CREAT | os.O_WRONLY)),
                           ('mkdir', lambda: os.mkdir(long)),
                           ('stat', lambda: os.stat(long)),
                           ('mknod', lambda: os.mknod(long)),
                           ('symlink', lambda: os.symlink('x', long)),
                           ('link', lambda: os.link(target, long)),
                           ('rename', lambda: os.rename(target, long)),
                           ('unlink', lambda: os.unlink(long)),
                           ('setxattr on it', lambda: os.setxattr(long, 'user.a', b''))]:
            assert _errno(call) == errno.ENAMETOOLONG, (length, what)
    # 256..1024 bytes reach the daemon (the kernel's own limit is 1024)
    assert ops.calls['lookup'] > seen_by_daemon
    assert sorted(os.listdir(mnt)) == sorted(c * 255 for c in 'dhrs')


ALL_BYTES = bytes(b for b in range(1, 256) if b != ord('/'))


@pytest.mark.parametrize('fs', ['memfs', 'passthrough'])
def test_names_with_every_byte(tmp_path, fs):
    """Every byte but NUL and '/' in names: create, list, stat, read, rename,
    readlink, xattr, unlink."""
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    if fs == 'memfs':
        ops = MemFS()
    else:
        (tmp_path / 'src').mkdir()
        ops = PassthroughFS(str(tmp_path / 'src'))
    names = [b'n' + bytes([b]) + b'n' for b in ALL_BYTES]
    names += [bytes([b]) for b in ALL_BYTES if b != ord('.')] + [b'..x', b'x..', b'...']
    names.append(ALL_BYTES)                                    # 254 bytes, all of them
    names.append(bytes(reversed(ALL_BYTES)))
    assert len(set(names)) == len(names)
    with mounted(ops, mnt, workers=2):
        root = os.fsencode(mnt)
        for n in names:
            with open(os.path.join(root, n), 'wb') as f:
                f.write(n)
        assert sorted(os.listdir(root)) == sorted(names)
        with os.scandir(root) as it:
            assert sorted(e.name for e in it) == sorted(names)
        for n in names:
            p = os.path.join(root, n)
            assert os.stat(p).st_size == len(n)
            assert open(p, 'rb').read() == n
            os.rename(p, p + b'~')
        assert sorted(os.listdir(root)) == sorted(n + b'~' for n in names)
        d = os.path.join(root, b'dir\x01\xff\n\t ')
        os.mkdir(d)
        os.symlink(ALL_BYTES, os.path.join(d, ALL_BYTES))
        assert os.readlink(os.path.join(d, ALL_BYTES)) == ALL_BYTES
        os.setxattr(os.path.join(root, names[0] + b'~'), b'user.\x01\xff\n', b'\x00\xff')
        assert os.getxattr(os.path.join(root, names[0] + b'~'), b'user.\x01\xff\n') == b'\x00\xff'
        for n in names:
            os.unlink(os.path.join(root, n + b'~'))
        os.unlink(os.path.join(d, ALL_BYTES))
        os.rmdir(d)
        assert os.listdir(root) == []
    assert ops.check_consistency() == []
    if fs == 'passthrough':
        assert os.listdir(tmp_path / 'src') == []


# ------------------------------------------------------------ sizes and offsets

def test_zero_length_io(memfs_mnt):
    ops, mnt = memfs_mnt
    p = os.path.join(mnt, 'f')
    for flags in (0, os.O_DIRECT):
        fd = os.open(p, os.O_CREAT | os.O_RDWR | flags, 0o644)
        try:
            assert os.write(fd, b'') == 0
            assert os.pwrite(fd, b'', 1 << 40) == 0
            assert os.pread(fd, 0, 0) == b''
            assert os.read(fd, 0) == b''
            assert os.fstat(fd).st_size == 0
            assert os.pread(fd, 4096, 0) == b''            # empty file
            assert os.pread(fd, 4096, 1 << 40) == b''      # far past EOF
        finally:
            os.close(fd)
    assert os.stat(p).st_size == 0


@pytest.mark.parametrize('direct', [False, True], ids=['cached', 'direct'])
def test_huge_single_read_and_write(memfs_mnt, direct):
    """256 MiB in one write(2) and one readv(2) with a 2 GiB buffer: the
    kernel splits them into max_write/max_read requests; the bytes arrive
    whole and in order."""
    ops, mnt = memfs_mnt
    size = 256 << 20
    src = mmap.mmap(-1, size)
    chunk = os.urandom(1 << 20)
    for off in range(0, size, 1 << 20):
        src[off:off + (1 << 20)] = chunk[off >> 20:] + chunk[:off >> 20]   # each MiB differs
    want = hashlib.sha256(src).hexdigest()
    flags = os.O_DIRECT if direct else 0
    p = os.path.join(mnt, 'big')
    fd = os.open(p, os.O_CREAT | os.O_RDWR | flags, 0o644)
    try:
        written = 0
        while written < size:                 # a write may be short only by the kernel cap
            written += os.pwrite(fd, memoryview(src)[written:], written)
        assert written == size and os.fstat(fd).st_size == size
        big = mmap.mmap(-1, 0x7ffff000)       # the most read(2) ever returns
        try:
            got = os.preadv(fd, [big], 0)
            assert got == size
            assert hashlib.sha256(memoryview(big)[:size]).hexdigest() == want
        finally:
            big.close()
    finally:
        os.close(fd)
        src.close()
    assert ops.calls['write'] >= size // (1 << 20)          # it was split
    os.unlink(p)


class OffsetRecorder(MemFS):
    max_file_size = 1 << 20          # the boundary without allocating 4 GiB

    def __init__(self):
        super().__init__()
        self.offsets = []

    def write(self, fh, off, buf):
        self.offsets.append(('write', off, len(buf)))
        return MemFS.write(self, fh, off, buf)

    def read(self, fh, off, size):
        self.offsets.append(('read', off, size))
        return MemFS.read(self, fh, off, size)

    def fallocate(self, fh, mode, off, length):
        self.offsets.append(('fallocate', off, length))
        return MemFS.fallocate(self, fh, mode, off, length)


def test_offsets_near_2_63(tmp_path):
    """Offsets reach the handler exactly; memfs refuses sizes beyond its
    capacity with EFBIG (nothing allocated, nothing logged); the kernel
    refuses what would pass 2**63 - 1 itself."""
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    ops = OffsetRecorder()
    top = 2 ** 63 - 1
    with mounted(ops, mnt, workers=2):
        p = os.path.join(mnt, 'f')
        fd = os.open(p, os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o644)
        try:
            for off in (2 ** 40, 2 ** 62, top - 4096, top - 1):
                assert _errno(os.pwrite, fd, b'x' * 4096 if off % 4096 == 0 else b'x',
                              off) == errno.EFBIG, off
            assert ('write', 2 ** 40, 4096) in ops.offsets and ('write', 2 ** 62, 4096) \
                in ops.offsets
            assert _errno(os.pwrite, fd, b'xy', top) == errno.EINVAL       # pos + len > 2**63-1
            assert _errno(os.ftruncate, fd, top) == errno.EFBIG
            assert _errno(os.truncate, p, 2 ** 62) == errno.EFBIG
            assert _errno(os.posix_fallocate, fd, 2 ** 62, 4096) == errno.EFBIG
            assert ('fallocate', 2 ** 62, 4096) in ops.offsets
            assert _errno(os.posix_fallocate, fd, top - 10, 100) == errno.EFBIG  # the kernel's
            assert os.pread(fd, 4095, top - 4095) == b''
            assert _errno(os.pread, fd, 4096, top - 4095) == errno.EINVAL   # would pass 2**63
            assert os.lseek(fd, top, os.SEEK_SET) == top
            assert _errno(os.lseek, fd, top, os.SEEK_DATA) == errno.ENXIO
            big = ops.max_file_size                      # exactly the largest file
            assert os.pwrite(fd, b'x' * 4096, big - 4096) == 4096
            assert os.fstat(fd).st_size == big
            assert _errno(os.pwrite, fd, b'x' * 4096, big) == errno.EFBIG
            assert _errno(os.ftruncate, fd, big + 1) == errno.EFBIG
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)
        assert os.stat(p).st_size == 0
    assert ops.check_consistency() == []


def test_offsets_near_2_63_passthrough_match_backing(tmp_path):
    """Through the passthrough each call ends as on the backing fs itself."""
    src, mnt = tmp_path / 'src', tmp_path / 'mnt'
    src.mkdir()
    mnt.mkdir()
    top = 2 ** 63 - 1
    calls = [('pwrite 2**40', lambda fd, p: os.pwrite(fd, b'x', 2 ** 40)),
             ('pwrite 2**62', lambda fd, p: os.pwrite(fd, b'x', 2 ** 62)),
             ('pwrite top-1', lambda fd, p: os.pwrite(fd, b'x', top - 1)),
             ('pwrite top', lambda fd, p: os.pwrite(fd, b'xy', top)),
             ('ftruncate 2**62', lambda fd, p: os.ftruncate(fd, 2 ** 62)),
             ('truncate top', lambda fd, p: os.truncate(p, top)),
             ('fallocate 2**62', lambda fd, p: os.posix_fallocate(fd, 2 ** 62, 4096)),
             ('pread top-1', lambda fd, p: os.pread(fd, 10, top - 1)),
             ('lseek data top', lambda fd, p: os.lseek(fd, top, os.SEEK_DATA)),
             ('size', lambda fd, p: os.fstat(fd).st_size)]

    def run(path):
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        out = []
        try:
            for label, call in calls:
                try:
                    out.append((label, call(fd, path)))
                except OSError as e:
                    out.append((label, errno.errorcode[e.errno]))
        finally:
            os.close(fd)
        return out

    with mounted(PassthroughFS(str(src)), mnt, workers=2):
        got = run(str(mnt / 'f'))
    assert got == run(str(src / 'native'))


# ------------------------------------------------------------ xattrs at the limits

def test_xattr_limits(memfs_mnt):
    ops, mnt = memfs_mnt
    p = os.path.join(mnt, 'f')
    open(p, 'w').close()
    value = os.urandom(XATTR_SIZE_MAX)
    os.setxattr(p, 'user.big', value)
    assert os.getxattr(p, 'user.big') == value                # size probe, then the value
    assert _errno(os.setxattr, p, 'user.bigger', value + b'x') == errno.E2BIG  # kernel limit
    os.setxattr(p, 'user.empty', b'')
    assert os.getxattr(p, 'user.empty') == b''
    longest = 'user.' + 'n' * 250                             # 255 bytes
    os.setxattr(p, longest, b'v')
    assert os.getxattr(p, longest) == b'v'
    assert _errno(os.setxattr, p, longest + 'n', b'v') == errno.ERANGE
    assert _errno(os.getxattr, p, longest + 'n') == errno.ERANGE
    assert _errno(os.setxattr, p, '', b'v') in (errno.ERANGE, errno.EINVAL)
    assert sorted(os.listxattr(p)) == sorted(['user.big', 'user.empty', longest])
    assert _errno(os.getxattr, p, 'user.missing') == errno.ENODATA
    # the name list at its limit: 255 names of 256 bytes with their NULs = 65280
    for i in range(254):
        os.setxattr(p, f'user.{i:03d}' + 'x' * 247, b'')
    os.removexattr(p, 'user.big')
    os.removexattr(p, 'user.empty')
    names = os.listxattr(p)
    assert len(names) == 255 and sum(len(n) + 1 for n in names) == 65280
    for i in range(3):                                        # past 64 KiB: E2BIG
        os.setxattr(p, f'user.more{i}' + 'y' * 240, b'')
    assert _errno(os.listxattr, p) == errno.E2BIG
    assert ops.check_consistency() == []
