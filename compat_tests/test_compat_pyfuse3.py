"""Differential tests: fuseshim.compat.pyfuse3 against the real pyfuse3.

Each test filesystem is written once (a factory taking the API module) and
served in a subprocess by the real pyfuse3 and by the compat layer on both
startup paths; the same test body runs against each mount and the results
must be equal.  Then pyfuse3's own examples (from its sdist on PyPI) run
unchanged but for the import lines.

Needs: pip install pyfuse3 trio; apt-get install libfuse3-dev pkg-config (to
build pyfuse3).
"""
from __future__ import annotations

import errno
import json
import os
import signal
import stat
import time

import pytest

from compat_helpers import (PYFUSE3_RULES, PYFUSE3_VERSION, STARTUPS, InoNames,
                            check_compat_startup, drop_kernel_caches, normalized, oserr,
                            peer_sdist, rewrite_imports, run_example, run_fs, stat_view)

pytest.importorskip('trio')
pytest.importorskip('pyfuse3', reason='the real pyfuse3 is the reference (pip install pyfuse3)')

THIS = 'test_compat_pyfuse3'


# ======================================================================
# The test filesystem (written once, against whichever API it is given)
# ======================================================================

def make_memfs(pyfuse3, bigdir=0):
    import collections

    FUSEError = pyfuse3.FUSEError
    ROOT = pyfuse3.ROOT_INODE

    class Node:
        def __init__(self, ino, mode, parent):
            self.ino = ino
            self.mode = mode
            self.parent = parent
            self.entries = {} if stat.S_ISDIR(mode) else None
            self.data = b''
            self.target = b''
            self.xattrs = {}
            self.nlink = 2 if stat.S_ISDIR(mode) else 1
            self.uid = os.getuid()
            self.gid = os.getgid()
            self.rdev = 0
            t = 1_600_000_000_123_456_789
            self.atime = self.mtime = self.ctime = t

    class MemFS(pyfuse3.Operations):
        enable_writeback_cache = False

        def __init__(self):
            super().__init__()
            self.nodes = {ROOT: Node(ROOT, stat.S_IFDIR | 0o755, ROOT)}
            self.next_ino = ROOT + 1
            self.lookups = collections.Counter()
            self.next_fh = 100
            self.open_fh = {}
            self.entry_ids = {}
            self.next_entry_id = 1
            if bigdir:
                d = self._make(ROOT, b'big', stat.S_IFDIR | 0o755)
                for i in range(bigdir):
                    self._make(d.ino, b'f%04d' % i, stat.S_IFREG | 0o644)

        # -- helpers
        def _make(self, parent, name, mode, rdev=0):
            node = Node(self.next_ino, mode, parent)
            node.rdev = rdev
            self.next_ino += 1
            self.nodes[node.ino] = node
            self._link(parent, name, node)
            if stat.S_ISDIR(mode):
                self.nodes[parent].nlink += 1
            return node

        def _link(self, parent, name, node):
            self.nodes[parent].entries[name] = node.ino
            self.entry_ids[(parent, name)] = self.next_entry_id
            self.next_entry_id += 1

        def _unlink(self, parent, name):
            ino = self.nodes[parent].entries.pop(name)
            self.entry_ids.pop((parent, name), None)
            return ino

        def _child(self, parent, name):
            d = self.nodes.get(parent)
            if d is None or d.entries is None:
                raise FUSEError(errno.ENOTDIR)
            ino = d.entries.get(name)
            if ino is None:
                raise FUSEError(errno.ENOENT)
            return self.nodes[ino]

        def _attr(self, node):
            e = pyfuse3.EntryAttributes()
            e.st_ino = node.ino
            e.st_mode = node.mode
            e.st_nlink = node.nlink
            e.st_uid = node.uid
            e.st_gid = node.gid
            e.st_rdev = node.rdev
            e.st_size = len(node.data) if stat.S_ISREG(node.mode) else len(node.target)
            e.st_blksize = 512
            e.st_blocks = (e.st_size + 511) // 512
            e.st_atime_ns = node.atime
            e.st_mtime_ns = node.mtime
            e.st_ctime_ns = node.ctime
            e.entry_timeout = 0
            e.attr_timeout = 0
            return e

        def _maybe_free(self, ino):
            node = self.nodes.get(ino)
            if node is not None and node.nlink == 0 and not self.lookups[ino] \
                    and ino not in self.open_fh.values():
                del self.nodes[ino]

        # -- handlers
        async def lookup(self, parent_inode, name, ctx):
            if name == b'.':
                node = self.nodes[parent_inode]
            elif name == b'..':
                node = self.nodes[self.nodes[parent_inode].parent]
            else:
                node = self._child(parent_inode, name)
            self.lookups[node.ino] += 1
            return self._attr(node)

        async def forget(self, inode_list):
            for ino, n in inode_list:
                self.lookups[ino] -= n
                if self.lookups[ino] <= 0:
                    del self.lookups[ino]
                    self._maybe_free(ino)

        async def getattr(self, inode, ctx):
            if getattr(self, 'bad_getattr', False):
                return 'not EntryAttributes'
            node = self.nodes.get(inode)
            if node is None:
                raise FUSEError(errno.ENOENT)
            return self._attr(node)

        async def setattr(self, inode, attr, fields, fh, ctx):
            node = self.nodes[inode]
            if fields.update_size:
                node.data = node.data[:attr.st_size].ljust(attr.st_size, b'\0')
                if fh is not None:
                    node.xattrs[b'user.trunc_fh'] = b'yes'
            if fields.update_mode:
                node.mode = stat.S_IFMT(node.mode) | stat.S_IMODE(attr.st_mode)
            if fields.update_uid:
                node.uid = attr.st_uid
            if fields.update_gid:
                node.gid = attr.st_gid
            if fields.update_atime:
                node.atime = attr.st_atime_ns
            if fields.update_mtime:
                node.mtime = attr.st_mtime_ns
            return self._attr(node)

        async def readlink(self, inode, ctx):
            return self.nodes[inode].target

        async def mknod(self, parent_inode, name, mode, rdev, ctx):
            if name in self.nodes[parent_inode].entries:
                raise FUSEError(errno.EEXIST)
            node = self._make(parent_inode, name, mode, rdev)
            self.lookups[node.ino] += 1
            return self._attr(node)

        async def mkdir(self, parent_inode, name, mode, ctx):
            if name in self.nodes[parent_inode].entries:
                raise FUSEError(errno.EEXIST)
            node = self._make(parent_inode, name, mode)
            self.lookups[node.ino] += 1
            return self._attr(node)

        async def unlink(self, parent_inode, name, ctx):
            node = self._child(parent_inode, name)
            if stat.S_ISDIR(node.mode):
                raise FUSEError(errno.EISDIR)
            self._unlink(parent_inode, name)
            node.nlink -= 1
            self._maybe_free(node.ino)

        async def rmdir(self, parent_inode, name, ctx):
            node = self._child(parent_inode, name)
            if not stat.S_ISDIR(node.mode):
                raise FUSEError(errno.ENOTDIR)
            if node.entries:
                raise FUSEError(errno.ENOTEMPTY)
            self._unlink(parent_inode, name)
            node.nlink = 0
            self.nodes[parent_inode].nlink -= 1
            self._maybe_free(node.ino)

        async def symlink(self, parent_inode, name, target, ctx):
            node = self._make(parent_inode, name, stat.S_IFLNK | 0o777)
            node.target = target
            self.lookups[node.ino] += 1
            return self._attr(node)

        async def rename(self, p_old, n_old, p_new, n_new, flags, ctx):
            node = self._child(p_old, n_old)
            existing = self.nodes[p_new].entries.get(n_new)
            if flags & pyfuse3.RENAME_NOREPLACE and existing is not None:
                raise FUSEError(errno.EEXIST)
            if flags & pyfuse3.RENAME_EXCHANGE:
                if existing is None:
                    raise FUSEError(errno.ENOENT)
                self.nodes[p_old].entries[n_old] = existing
                self.nodes[p_new].entries[n_new] = node.ino
                return
            if existing is not None:
                old = self.nodes[existing]
                if stat.S_ISDIR(old.mode) and old.entries:
                    raise FUSEError(errno.ENOTEMPTY)
                self._unlink(p_new, n_new)
                old.nlink -= 1
                self._maybe_free(existing)
            self._unlink(p_old, n_old)
            self._link(p_new, n_new, node)
            node.parent = p_new

        async def link(self, inode, new_parent_inode, new_name, ctx):
            node = self.nodes[inode]
            if new_name in self.nodes[new_parent_inode].entries:
                raise FUSEError(errno.EEXIST)
            self._link(new_parent_inode, new_name, node)
            node.nlink += 1
            self.lookups[inode] += 1
            return self._attr(node)

        async def open(self, inode, flags, ctx):
            self.next_fh += 1
            self.open_fh[self.next_fh] = inode
            return pyfuse3.FileInfo(fh=self.next_fh)

        async def create(self, parent_inode, name, mode, flags, ctx):
            if name in self.nodes[parent_inode].entries:
                raise FUSEError(errno.EEXIST)
            node = self._make(parent_inode, name, mode)
            self.lookups[node.ino] += 1
            self.next_fh += 1
            self.open_fh[self.next_fh] = node.ino
            return pyfuse3.FileInfo(fh=self.next_fh), self._attr(node)

        async def read(self, fh, off, size):
            return self.nodes[self.open_fh[fh]].data[off:off + size]

        async def write(self, fh, off, buf):
            node = self.nodes[self.open_fh[fh]]
            node.data = node.data[:off].ljust(off, b'\0') + buf + node.data[off + len(buf):]
            return len(buf)

        async def flush(self, fh):
            pass

        async def fsync(self, fh, datasync):
            pass

        async def release(self, fh):
            ino = self.open_fh.pop(fh)
            self._maybe_free(ino)

        async def opendir(self, inode, ctx):
            if self.nodes[inode].entries is None:
                raise FUSEError(errno.ENOTDIR)
            return inode

        async def readdir(self, fh, start_id, token):
            d = self.nodes[fh]
            entries = sorted((self.entry_ids[(fh, n)], n, ino) for n, ino in d.entries.items())
            for eid, name, ino in entries:
                if eid <= start_id:
                    continue
                if not pyfuse3.readdir_reply(token, name, self._attr(self.nodes[ino]), eid):
                    break
                self.lookups[ino] += 1

        async def releasedir(self, fh):
            pass

        async def statfs(self, ctx):
            s = pyfuse3.StatvfsData()
            s.f_bsize = 512
            s.f_frsize = 512
            s.f_blocks = 1000
            s.f_bfree = 600
            s.f_bavail = 500
            s.f_files = 100
            s.f_ffree = 90
            s.f_favail = 80
            s.f_namemax = 200
            return s

        async def setxattr(self, inode, name, value, ctx):
            if inode == ROOT and name == b'user.ctl':
                return await self._control(value)
            self.nodes[inode].xattrs[name] = value

        async def getxattr(self, inode, name, ctx):
            if inode == ROOT and name == b'user.lookups':
                names = {}
                for ino, n in self.lookups.items():
                    if n:
                        names[str(ino)] = n
                return json.dumps(names, sort_keys=True).encode()
            try:
                return self.nodes[inode].xattrs[name]
            except KeyError:
                raise FUSEError(pyfuse3.ENOATTR)

        async def listxattr(self, inode, ctx):
            return sorted(self.nodes[inode].xattrs)

        async def removexattr(self, inode, name, ctx):
            try:
                del self.nodes[inode].xattrs[name]
            except KeyError:
                raise FUSEError(pyfuse3.ENOATTR)

        async def _control(self, value):
            cmd, _, arg = value.partition(b':')
            if cmd == b'terminate':
                pyfuse3.terminate()
            elif cmd == b'boom':
                raise RuntimeError('boom from a handler')
            elif cmd == b'badtype':      # the next getattr returns no EntryAttributes
                self.bad_getattr = True
            elif cmd == b'rewrite':      # change a file behind the kernel's back
                node = self._child(ROOT, arg)
                node.data = b'rewritten contents'
                pyfuse3.invalidate_inode(node.ino)
            elif cmd == b'hide':         # drop an entry behind the kernel's back
                node = self._child(ROOT, arg)
                self._unlink(ROOT, arg)
                node.nlink -= 1
                pyfuse3.invalidate_entry_async(ROOT, arg)
            elif cmd == b'store':
                node = self._child(ROOT, arg)
                pyfuse3.notify_store(node.ino, 0, node.data)
            else:
                raise FUSEError(errno.EINVAL)

    return MemFS()


# ======================================================================
# Test bodies
# ======================================================================

def _renameat2(old, new, flags):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    AT_FDCWD = -100
    if libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return 0


def body_basic(mnt):
    ino = InoNames()
    r = {}
    p = lambda *a: os.path.join(mnt, *a)
    with open(p('file'), 'wb') as f:
        f.write(b'hello world')
    r['read'] = open(p('file'), 'rb').read()
    with open(p('file'), 'r+b') as f:
        f.seek(6)
        f.write(b'WORLD!')
        f.truncate(9)
        f.flush()
        os.fsync(f.fileno())
    r['after_write'] = open(p('file'), 'rb').read()
    r['trunc_fh'] = os.getxattr(p('file'), 'user.trunc_fh')
    os.truncate(p('file'), 4)
    r['truncated'] = open(p('file'), 'rb').read()
    st = os.stat(p('file'))
    r['stat'] = stat_view(st, ('mode', 'nlink', 'uid', 'gid', 'size', 'blocks', 'blksize'))
    r['ino_file'] = ino(st.st_ino)
    r['times'] = [st.st_atime_ns, st.st_mtime_ns]
    os.utime(p('file'), ns=(1_234_567_890_123_456_789, 1_111_111_111_222_222_222))
    st = os.stat(p('file'))
    r['utime'] = [st.st_atime_ns, st.st_mtime_ns]
    os.chmod(p('file'), 0o600)
    os.chown(p('file'), 1234, 5678)
    r['chmod_chown'] = stat_view(os.stat(p('file')))
    os.mkdir(p('dir'), 0o750)
    r['mkdir'] = stat_view(os.stat(p('dir')))
    r['mkdir_again'] = oserr(os.mkdir, p('dir'))
    os.symlink('file', p('link'))
    r['readlink'] = os.readlink(p('link'))
    r['lstat_link'] = stat_view(os.lstat(p('link')))
    os.link(p('file'), p('dir', 'hard'))
    r['hardlink'] = [os.stat(p('file')).st_nlink, ino(os.stat(p('dir', 'hard')).st_ino)]
    os.mknod(p('fifo'), stat.S_IFIFO | 0o644)
    r['fifo'] = stat_view(os.stat(p('fifo')))
    os.rename(p('fifo'), p('dir', 'fifo2'))
    r['rename'] = [os.path.exists(p('fifo')), os.path.exists(p('dir', 'fifo2'))]
    r['noreplace'] = oserr(_renameat2, p('file'), p('link'), 1)
    with open(p('other'), 'wb') as f:
        f.write(b'other')
    r['exchange'] = oserr(_renameat2, p('file'), p('other'), 2)
    r['exchanged'] = [open(p('file'), 'rb').read(), open(p('other'), 'rb').read()]
    r['rmdir_notempty'] = oserr(os.rmdir, p('dir'))
    r['unlink_missing'] = oserr(os.unlink, p('nothing'))
    r['stat_missing'] = oserr(os.stat, p('nothing'))
    r['unlink_dir'] = oserr(os.unlink, p('dir'))
    os.setxattr(p('file'), 'user.a', b'1')
    os.setxattr(p('file'), 'user.b', b'22')
    r['xattrs'] = [sorted(os.listxattr(p('file'))), os.getxattr(p('file'), 'user.b')]
    r['xattr_missing'] = oserr(os.getxattr, p('file'), 'user.none')
    os.removexattr(p('file'), 'user.a')
    r['xattr_removed'] = [sorted(os.listxattr(p('file'))),
                          oserr(os.removexattr, p('file'), 'user.a')]
    r['listdir'] = sorted(os.listdir(mnt))
    r['scandir'] = sorted([e.name, e.is_dir(follow_symlinks=False),
                           e.is_symlink(), ino(e.inode())] for e in os.scandir(mnt))
    sv = os.statvfs(mnt)
    r['statvfs'] = [sv.f_bsize, sv.f_frsize, sv.f_blocks, sv.f_bfree, sv.f_bavail, sv.f_files,
                    sv.f_ffree, sv.f_favail, sv.f_namemax]
    fd = os.open(p('dir', 'hard'), os.O_RDONLY)
    os.unlink(p('dir', 'hard'))
    r['read_unlinked_open'] = os.read(fd, 100)
    os.close(fd)
    os.unlink(p('dir', 'fifo2'))
    os.rmdir(p('dir'))
    r['final'] = sorted(os.listdir(mnt))
    r['ino_names'] = len(ino.names)
    return normalized(r)


def body_bigdir(mnt):
    r = {}
    big = os.path.join(mnt, 'big')
    names = os.listdir(big)
    r['count'] = len(names)
    r['order'] = names[:5] + names[-5:]
    r['sorted'] = names == sorted(names)
    r['stat_some'] = [os.stat(os.path.join(big, n)).st_size for n in names[:20]]
    with os.scandir(big) as it:
        r['types'] = sorted({e.is_file() for e in it})
    # The kernel forgets everything it looked up (READDIRPLUS entries too):
    # afterwards the filesystem's lookup counts must all be back at zero.
    deadline = time.monotonic() + 5
    while True:
        drop_kernel_caches()
        counts = json.loads(os.getxattr(mnt, 'user.lookups'))
        if not counts or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    r['lookups_after_forget'] = counts
    return normalized(r)


def body_notify(mnt):
    r = {}
    p = lambda *a: os.path.join(mnt, *a)
    with open(p('n'), 'wb') as f:
        f.write(b'original')
    r['first'] = open(p('n'), 'rb').read()
    os.setxattr(mnt, 'user.ctl', b'rewrite:n')
    r['after_invalidate'] = open(p('n'), 'rb').read()
    os.setxattr(mnt, 'user.ctl', b'store:n')
    r['after_store'] = open(p('n'), 'rb').read()
    with open(p('gone'), 'wb') as f:
        f.write(b'x')
    r['before_hide'] = os.path.exists(p('gone'))
    os.setxattr(mnt, 'user.ctl', b'hide:gone')
    deadline = time.monotonic() + 5
    while os.path.exists(p('gone')) and time.monotonic() < deadline:
        time.sleep(0.05)
    r['after_hide'] = os.path.exists(p('gone'))
    r['bad_ctl'] = oserr(os.setxattr, mnt, 'user.ctl', b'nonsense')
    return normalized(r)


def body_terminate(mnt):
    with open(os.path.join(mnt, 't'), 'wb') as f:
        f.write(b'x')
    os.setxattr(mnt, 'user.ctl', b'terminate')
    return ['terminated']


def body_boom(mnt):
    r = oserr(os.setxattr, mnt, 'user.ctl', b'boom')
    # the error code differs: pyfuse3 never answers (its main() raised), the
    # compat layer answers EIO; both make the call fail.
    return [r[0]]


def body_badtype(mnt):
    os.setxattr(mnt, 'user.ctl', b'badtype')
    return [oserr(os.stat, os.path.join(mnt, 't'))[0]]


LOADERS = 4


def body_terminate_under_load(mnt):
    """terminate() from a handler while processes on the daemon's CPU keep
    it busy (requests are queued nearly always): main() still returns.
    test_compat_driver checks the underlying rule deterministically."""
    path = os.path.join(mnt, 't')
    with open(path, 'wb') as f:
        f.write(b'x')
    pids = []
    for _ in range(LOADERS):
        pid = os.fork()
        if pid == 0:   # stat until the file is gone (unmounted), at most 20 s
            try:
                os.sched_setaffinity(0, {0})
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    os.stat(path)
            except OSError:
                pass
            os._exit(0)
        pids.append(pid)
    codes = []
    try:
        time.sleep(0.5)
        os.setxattr(mnt, 'user.ctl', b'terminate')
    finally:
        for pid in pids:
            codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    return ['terminated', codes]


# ======================================================================
# Differential runs
# ======================================================================

_REFERENCE: dict = {}


def _reference(key, fn):
    if key not in _REFERENCE:
        _REFERENCE[key] = fn()
    return _REFERENCE[key]


def _serve(api, fs, tmp_path, body, startup=None, **kw):
    mnt = str(tmp_path / f'mnt-{api}-{startup or "peer"}')
    return run_fs(api, f'{THIS}:{fs}', mnt, body, startup=startup, **kw)


SCENARIOS = {
    'basic': ('make_memfs', body_basic, []),
    'basic-asyncio': ('make_memfs', body_basic, ['--asyncio']),
    'bigdir': ('make_memfs', body_bigdir, ['--params', json.dumps({'bigdir': 300})]),
    'notify': ('make_memfs', body_notify, []),
}


@pytest.mark.parametrize('startup', STARTUPS)
@pytest.mark.parametrize('scenario', sorted(SCENARIOS))
def test_same_results(scenario, startup, tmp_path):
    fs, body, args = SCENARIOS[scenario]
    ref, rp = _reference(scenario, lambda: _serve('pyfuse3', fs, tmp_path, body, args=args))
    assert rp.returncode == 0, rp.err
    got, p = _serve('pyfuse3-compat', fs, tmp_path, body, startup=startup, args=args)
    assert p.returncode == 0, p.err
    check_compat_startup(p, startup)
    assert 'main returned' in p.out
    assert got == ref


@pytest.mark.parametrize('startup', STARTUPS)
def test_terminate_from_handler(startup, tmp_path):
    ref, rp = _reference('terminate', lambda: _serve('pyfuse3', 'make_memfs', tmp_path,
                                                     body_terminate, stop=None))
    rp.wait()
    got, p = _serve('pyfuse3-compat', 'make_memfs', tmp_path, body_terminate, startup=startup,
                    stop=None)
    assert p.wait() == 0 == rp.returncode, p.err
    assert got == ref
    assert 'main returned' in p.out and 'main returned' in rp.out
    assert p.mnt not in open('/proc/self/mounts').read()


@pytest.mark.parametrize('startup', STARTUPS)
def test_terminate_under_load(startup, tmp_path):
    ref, rp = _reference('terminate-load', lambda: _serve(
        'pyfuse3', 'make_memfs', tmp_path, body_terminate_under_load, stop=None,
        args=['--cpu', '0']))
    assert rp.wait(timeout=10) == 0, rp.err
    got, p = _serve('pyfuse3-compat', 'make_memfs', tmp_path, body_terminate_under_load,
                    startup=startup, stop=None, args=['--cpu', '0'])
    assert p.wait(timeout=10) == 0, f'main() did not return under load:\n{p.err}'
    assert got == ref == ['terminated', [0] * LOADERS]
    assert 'main returned' in p.out


# A handler raising something else than FUSEError, or returning the wrong
# type (checked after the filesystem's own coroutine, which fuseshim awaits
# without a wrapper): pyfuse3's main() re-raises it.
@pytest.mark.parametrize('startup', STARTUPS)
@pytest.mark.parametrize('body, message', [(body_boom, 'RuntimeError: boom from a handler'),
                                           (body_badtype, 'TypeError')],
                         ids=['raises', 'wrong-type'])
def test_handler_exception_escapes_main(body, message, startup, tmp_path):
    ref, rp = _reference(body.__name__, lambda: _serve('pyfuse3', 'make_memfs', tmp_path, body,
                                                       stop=None))
    rp.wait()
    got, p = _serve('pyfuse3-compat', 'make_memfs', tmp_path, body, startup=startup,
                    stop=None)
    p.wait()
    assert got == ref == ['err']
    for proc in (rp, p):
        assert proc.returncode != 0
        assert message in proc.err
    # pyfuse3's close(unmount=False) leaves a dead mount (the fixture removes
    # it); fuseshim unmounts
    assert p.mnt not in open('/proc/self/mounts').read()


# libfuse reports the bad option through its log; in this process fuseshim's
# libfuse log sink (the same libfuse3.so serves both) turns it into an ERROR.
@pytest.mark.expected_errors
@pytest.mark.parametrize('startup', STARTUPS)
def test_bad_option_raises_like_pyfuse3(startup, tmp_path):
    import pyfuse3 as real
    import fuseshim.compat.pyfuse3 as compat
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    for lib in (real, compat):
        with pytest.raises(RuntimeError):
            if lib is compat:
                lib.init(lib.Operations(), str(mnt), ['no_such_option'], startup=startup)
            else:
                lib.init(lib.Operations(), str(mnt), ['no_such_option'])
        if lib is real:
            # pyfuse3 keeps a half-made session around; close() frees it
            pass
    with pytest.raises(TypeError):
        compat.init(compat.Operations(), mnt, [])
    with pytest.raises(RuntimeError, match='init'):
        import trio
        trio.run(compat.main)


def test_api_surface():
    """Names, constants, defaults and helper functions equal pyfuse3's."""
    import pyfuse3 as real
    import fuseshim.compat.pyfuse3 as compat
    public = [n for n in dir(real) if not n.startswith(('_', 'fuse_')) and n not in (
        'async_wrapper', 'log', 'fse', 'g', 'os', 'sys', 'trio', 'threading', 'typing',
        'logging', 'Queue', 'PicklingError', 'PLATFORM_LINUX', 'PLATFORM_BSD',
        'PLATFORM_DARWIN', 'PLATFORM', 'errno', 'ReaddirToken')]
    missing = [n for n in public if not hasattr(compat, n)]
    assert not missing, missing
    for const in ('ENOATTR', 'RENAME_EXCHANGE', 'RENAME_NOREPLACE', 'ROOT_INODE',
                  'default_options', 'FileHandleT', 'FileNameT', 'FlagT', 'InodeT', 'ModeT',
                  'XAttrNameT'):
        assert getattr(compat, const) == getattr(real, const), const
    ra, ca = real.EntryAttributes(), compat.EntryAttributes()
    for k in ('st_mode', 'st_nlink', 'st_blksize', 'entry_timeout', 'attr_timeout',
              'generation', 'st_size', 'st_ino'):
        assert getattr(ca, k) == getattr(ra, k), k
    assert isinstance(ca, compat.EntryAttributes)
    rs, cs = real.StatvfsData(), compat.StatvfsData()
    for k in ('f_bsize', 'f_frsize', 'f_blocks', 'f_namemax'):
        assert getattr(cs, k) == getattr(rs, k), k
    rf, cf = real.FileInfo(fh=5), compat.FileInfo(fh=5)
    for k in ('fh', 'direct_io', 'keep_cache', 'nonseekable'):
        assert bool(getattr(cf, k)) == bool(getattr(rf, k)), k
    re_, ce = real.FUSEError(errno.ENOENT), compat.FUSEError(errno.ENOENT)
    assert (ce.errno, ce.errno_, str(ce)) == (re_.errno, re_.errno_, str(re_))
    assert isinstance(ce, Exception)
    assert real.trio_token is None and compat.trio_token is None
    # Operations defaults raise ENOSYS; forget/init do nothing
    import trio

    async def check():
        for lib in (real, compat):
            ops = lib.Operations()
            with pytest.raises(lib.FUSEError) as ei:
                await ops.getattr(1, None)
            assert ei.value.errno == errno.ENOSYS
            assert await ops.forget([(1, 1)]) is None
    trio.run(check)
    assert compat.get_sup_groups(os.getpid()) == real.get_sup_groups(os.getpid())


# Differences of the data types' behaviour that docs/migration-pyfuse3.md lists
# with their reason: (type, what) -> (pyfuse3's outcome, fuseshim's outcome).
TYPE_DIFFERENCES = {
    ('FileInfo', 'copy'): (('raises', 'TypeError'), ('ok', 'FileInfo')),
}


def _outcome(fn):
    try:
        return ('ok', fn())
    except Exception as e:              # the exception type is the observation
        return ('raises', type(e).__name__)


@pytest.mark.parametrize('name', ['EntryAttributes', 'StatvfsData', 'FileInfo',
                                  'SetattrFields', 'RequestContext'])
def test_data_types_behave_like_pyfuse3(name):
    """Every public attribute of the real type: set it, read it back (or
    the exception), and copy() of a fresh instance -- the same outcomes.
    borg sets EntryAttributes.st_birthtime_ns (real pyfuse3 on Linux: accepted,
    reads 0); pyfuse3's own test_api.py copies each type."""
    import copy

    import pyfuse3 as real
    import fuseshim.compat.pyfuse3 as compat
    rtype, ctype = getattr(real, name), getattr(compat, name)
    attrs = sorted(a for a in dir(rtype()) if not a.startswith('_')
                   and not callable(getattr(rtype(), a, None)))
    assert attrs, name
    diffs = {}
    for attr in attrs:
        assert hasattr(ctype(), attr), (name, attr)
        for value in (7, 2**40 + 3):
            def set_get(obj, attr=attr, value=value):
                setattr(obj, attr, value)
                return getattr(obj, attr)
            got = (_outcome(lambda: set_get(rtype())), _outcome(lambda: set_get(ctype())))
            if got[0] != got[1]:
                diffs[(name, attr, value)] = got
    got = (_outcome(lambda: type(copy.copy(rtype())).__name__),
           _outcome(lambda: type(copy.copy(ctype())).__name__))
    if got[0] != got[1]:
        diffs[(name, 'copy')] = got
    unlisted = {k: v for k, v in diffs.items() if TYPE_DIFFERENCES.get(k) != v}
    assert not unlisted, unlisted
    # a listed difference that no longer exists must be struck from the list
    stale = [k for k in TYPE_DIFFERENCES if k[0] == name and k not in diffs]
    assert not stale, stale


def test_path_helpers(tmp_path):
    import pyfuse3 as real
    import fuseshim.compat.pyfuse3 as compat
    f = tmp_path / 'x'
    f.write_bytes(b'')
    (tmp_path / 'y').mkdir()
    for lib in (real, compat):
        lib.setxattr(str(f), 'user.k', b'v' * 300)
        assert lib.getxattr(str(f), 'user.k') == b'v' * 300
        assert lib.getxattr(str(f), 'user.k', size_guess=1) == b'v' * 300
        with pytest.raises(OSError) as ei:
            lib.getxattr(str(f), 'user.none')
        assert ei.value.errno == errno.ENODATA
        with pytest.raises(TypeError):
            lib.getxattr(str(f).encode(), 'user.k')
        with pytest.raises(ValueError):
            lib.setxattr(str(f), 'user.k', b'v', namespace='bogus')
        assert sorted(lib.listdir(str(tmp_path))) == ['x', 'y']
        assert lib.syncfs(str(tmp_path)) is None


def test_module_aliases():
    import fuseshim.compat.pyfuse3 as pyfuse3
    import fuseshim.compat.pyfuse3_asyncio as pa
    import importlib
    assert pyfuse3.asyncio is pa
    assert importlib.import_module('fuseshim.compat.pyfuse3.asyncio') is pa
    try:
        pa.enable()
        assert pyfuse3.trio is pa and pa.current_trio_token() == 'asyncio'
    finally:
        pa.disable()
    assert pyfuse3.trio is pyfuse3._real_trio


# ======================================================================
# pyfuse3's own examples, unchanged but for the import lines
# ======================================================================

def _examples_dir():
    return peer_sdist('pyfuse3', PYFUSE3_VERSION) / 'examples'


def _example(name, tmp_path, compat):
    src = _examples_dir() / name
    if not compat:
        return src
    return rewrite_imports(src, tmp_path / f'compat_{name}', PYFUSE3_RULES)


def body_hello(mnt):
    st = os.stat(os.path.join(mnt, 'message'))
    return normalized({
        'ls': sorted(os.listdir(mnt)),
        'read': open(os.path.join(mnt, 'message'), 'rb').read(),
        'stat': stat_view(st) | {'mtime': st.st_mtime_ns, 'ino': st.st_ino},
        'write': oserr(open, os.path.join(mnt, 'message'), 'r+b'),
        'missing': oserr(os.stat, os.path.join(mnt, 'nope')),
        'root': stat_view(os.stat(mnt)),
    })


def body_hello_asyncio(mnt):
    r = body_hello(mnt)
    r['bad_command'] = oserr(os.setxattr, mnt, 'command', b'nonsense')
    os.setxattr(mnt, 'command', b'terminate')
    return r


def body_tmpfs(mnt):
    ino = InoNames()
    p = lambda *a: os.path.join(mnt, *a)
    r = {}
    os.mkdir(p('d'))
    with open(p('d', 'f'), 'wb') as f:
        f.write(b'x' * 5000)
    r['read'] = len(open(p('d', 'f'), 'rb').read())
    os.link(p('d', 'f'), p('h'))
    os.symlink('d/f', p('s'))
    r['nlink'] = os.stat(p('h')).st_nlink
    r['same_ino'] = ino(os.stat(p('h')).st_ino) == ino(os.stat(p('d', 'f')).st_ino)
    r['readlink'] = os.readlink(p('s'))
    os.rename(p('h'), p('d', 'h2'))
    r['ls_d'] = sorted(os.listdir(p('d')))
    r['ls'] = sorted(os.listdir(mnt))
    os.chmod(p('d', 'f'), 0o640)
    os.utime(p('d', 'f'), ns=(10**18, 2 * 10**18))
    st = os.stat(p('d', 'f'))
    r['stat'] = stat_view(st) | {'mtime': st.st_mtime_ns}
    r['rmdir'] = oserr(os.rmdir, p('d'))
    fd = os.open(p('d', 'f'), os.O_RDWR)
    os.unlink(p('d', 'f'))
    os.unlink(p('d', 'h2'))
    os.write(fd, b'y')
    r['unlinked_read'] = os.pread(fd, 3, 0)
    os.close(fd)
    os.rmdir(p('d'))
    r['final'] = sorted(os.listdir(mnt))
    many = [f'n{i:03d}' for i in range(150)]
    for n in many:
        open(p(n), 'w').close()
    r['many'] = sorted(os.listdir(mnt)) == sorted(many + r['final'])
    sv = os.statvfs(mnt)
    r['statvfs'] = [sv.f_bsize, sv.f_frsize, sv.f_namemax]
    return normalized(r)


def body_passthrough(src):
    def body(mnt):
        p = lambda *a: os.path.join(mnt, *a)
        r = {}
        r['ls'] = sorted(os.listdir(mnt))
        r['read'] = open(p('existing'), 'rb').read()
        with open(p('new'), 'wb') as f:
            f.write(b'through')
        r['in_source'] = open(os.path.join(src, 'new'), 'rb').read()
        os.mkdir(p('sub'))
        os.rename(p('new'), p('sub', 'moved'))
        os.link(p('sub', 'moved'), p('hl'))
        os.symlink('existing', p('sl'))
        r['source_ls'] = sorted(os.listdir(src))
        r['sub'] = sorted(os.listdir(p('sub')))
        r['same_ino'] = os.stat(p('hl')).st_ino == os.stat(os.path.join(src, 'hl')).st_ino
        r['readlink'] = os.readlink(p('sl'))
        r['setxattr'] = oserr(os.setxattr, p('existing'), 'user.k', b'v')
        r['statvfs_namemax'] = os.statvfs(mnt).f_namemax
        os.truncate(p('existing'), 3)
        r['truncated'] = open(os.path.join(src, 'existing'), 'rb').read()
        r['missing'] = oserr(os.stat, p('missing'))
        os.unlink(p('hl'))
        os.unlink(p('sl'))
        os.unlink(p('sub', 'moved'))
        os.rmdir(p('sub'))
        r['final'] = sorted(os.listdir(mnt))
        return normalized(r)
    return body


def _run_pyfuse3_example(name, body, tmp_path, startup, args=(), stop='umount', setup=None):
    runs = {}
    for compat in (False, True):
        if compat and startup is None:
            continue
        script = _example(name, tmp_path, compat)
        mnt = str(tmp_path / f'mnt-{"compat" if compat else "peer"}')
        extra = setup() if setup else None
        env_api = 'pyfuse3-compat' if compat else 'pyfuse3'
        b = body(extra) if setup else body
        res, p = run_example(script, [*(extra and [extra] or []), mnt, *args], mnt, b,
                             env_api=env_api, startup=startup if compat else None, stop=stop,
                             cwd=str(script.parent))
        if stop is None:
            p.wait()
        runs[compat] = (res, p)
    return runs


@pytest.mark.parametrize('startup', STARTUPS)
@pytest.mark.parametrize('example', ['hello.py', 'hello_asyncio.py', 'tmpfs.py',
                                     'passthroughfs.py'])
def test_pyfuse3_examples(example, startup, tmp_path):
    setup = None
    stop = 'umount'
    if example == 'hello.py':
        body = body_hello
    elif example == 'hello_asyncio.py':
        body, stop = body_hello_asyncio, None
    elif example == 'tmpfs.py':
        body = body_tmpfs
    else:
        counter = iter(range(100))

        def setup():
            src = tmp_path / f'src{next(counter)}'
            src.mkdir()
            (src / 'existing').write_bytes(b'existing data')
            return str(src)
        body = body_passthrough
    runs = _run_pyfuse3_example(example, body, tmp_path, startup, stop=stop, setup=setup)
    (ref, rp), (got, p) = runs[False], runs[True]
    assert rp.returncode == 0, rp.err
    assert p.returncode == 0, p.err
    check_compat_startup(p, startup)
    assert got == ref


@pytest.mark.parametrize('startup', STARTUPS)
def test_example_ctrl_c_leaves_no_mount(startup, tmp_path):
    """SIGINT: trio raises KeyboardInterrupt out of main(), the example calls
    close(unmount=False) and re-raises.  pyfuse3 would leave a dead mount;
    the compat layer unmounts."""
    script = _example('hello.py', tmp_path, True)
    mnt = str(tmp_path / 'mnt')
    res, p = run_example(script, [mnt], mnt, lambda m: os.listdir(m), env_api='pyfuse3-compat',
                         startup=startup, stop=signal.SIGINT, cwd=str(script.parent))
    assert res == ['message']
    assert p.returncode != 0 and 'KeyboardInterrupt' in p.err
    assert mnt not in open('/proc/self/mounts').read()
