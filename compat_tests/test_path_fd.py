"""EntryAttributes.path_fd: fuseshim answers GETATTR of an inode declared
with an O_PATH fd in C (fstatat), without calling getattr(), through real
mounts.  The C table counts the kernel's lookups and drops an inode's entry
when FORGET brings them to 0 -- before the filesystem's forget() closes the
fd -- and at session end; an inode it does not know (or whose fstatat fails)
is answered by the handler.

Each runs with plain and ``async def`` handlers (the replies that declare a
path_fd then come from a coroutine)."""
from __future__ import annotations

import errno
import os
import stat
import threading
import time

import pytest

import fuseshim
from fuseshim import ROOT_INODE, EntryAttributes, FileInfo, FUSEError
from fuseshim._core import _path_fd_inodes, _path_fd_lookups, _test_only_inject_faults

from conftest import auto_startup_path, mounted

ATTRS = ('st_mode', 'st_nlink', 'st_uid', 'st_gid', 'st_size', 'st_blocks', 'st_mtime_ns',
         'st_ctime_ns')


class PathFdFS(fuseshim.Operations):
    """The files of the flat backing directory ``src``, with inode numbers
    the test chooses (``inos``: name -> inode); lookup keeps one O_PATH fd
    per inode with its lookup count and declares it as path_fd while
    ``declare``; forget() closes it when the count reaches 0."""

    def __init__(self, src, entry_timeout=60.0):
        self.src = src
        self.entry_timeout = entry_timeout
        self.declare = True
        self.inos: dict[bytes, int] = {}
        self.next_ino = 100
        self.nodes: dict[int, list] = {}      # inode -> [fd, lookups]
        self.lock = threading.Lock()
        self.getattr_calls = 0
        self.files: set[int] = set()
        self.forgets: list[tuple[int, int]] = []

    def _entry(self, ino, st, fd):
        a = EntryAttributes.from_stat(st, entry_timeout=self.entry_timeout, attr_timeout=0)
        a.st_ino = ino
        if self.declare:
            a.path_fd = fd
        return a

    def _lookup(self, name):
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW, dir_fd=self.src_fd)
        st = os.fstat(fd)
        with self.lock:
            ino = self.inos.get(name)
            if ino is None:
                ino = self.inos[name] = self.next_ino
                self.next_ino += 1
            node = self.nodes.get(ino)
            if node is None:
                node = self.nodes[ino] = [fd, 0]
                fd = -1
            node[1] += 1
        if fd >= 0:
            os.close(fd)
        return self._entry(ino, st, node[0])

    def lookup(self, parent_inode, name, ctx):
        if parent_inode != ROOT_INODE:
            raise FUSEError(errno.ENOENT)
        try:
            return self._lookup(name)
        except FileNotFoundError:
            raise FUSEError(errno.ENOENT) from None

    def forget(self, inode_list):
        with self.lock:
            for ino, n in inode_list:
                self.forgets.append((ino, n))
                node = self.nodes[ino]
                node[1] -= n
                if node[1] <= 0:
                    del self.nodes[ino]
                    os.close(node[0])

    def getattr(self, inode, ctx):
        self.getattr_calls += 1
        if inode == ROOT_INODE:
            a = EntryAttributes.from_stat(os.fstat(self.src_fd), attr_timeout=0)
            a.st_ino = ROOT_INODE
            return a
        with self.lock:
            node = self.nodes.get(inode)
        if node is None:
            raise FUSEError(errno.ESTALE)
        a = EntryAttributes.from_stat(os.fstat(node[0]), attr_timeout=0)
        a.st_ino = inode
        return a

    def create(self, parent_inode, name, mode, flags, ctx):
        fd = os.open(name, flags | os.O_CREAT, mode, dir_fd=self.src_fd)
        with self.lock:
            self.files.add(fd)
        return FileInfo(fh=fd), self._lookup(name)

    def release(self, fh):
        with self.lock:
            if fh not in self.files:   # fh 0: an OPEN this filesystem left to libfuse (ENOSYS)
                return
            self.files.discard(fh)
        os.close(fh)

    def lookup_counts(self):
        with self.lock:
            return {ino: node[1] for ino, node in self.nodes.items()}

    def close_all(self):
        with self.lock:
            for fd, _ in self.nodes.values():
                os.close(fd)
            self.nodes.clear()
            for fd in self.files:         # handles the kernel never got
                os.close(fd)
            self.files.clear()

    def __enter__(self):
        self.src_fd = os.open(self.src, os.O_PATH | os.O_DIRECTORY)
        return self

    def __exit__(self, *exc):
        self.close_all()
        os.close(self.src_fd)


def _async(cls):
    async def lookup(self, *a):
        return cls.lookup(self, *a)

    async def create(self, *a):
        return cls.create(self, *a)

    async def getattr(self, *a):
        return cls.getattr(self, *a)
    return type('Async' + cls.__name__, (cls,),
                {'lookup': lookup, 'create': create, 'getattr': getattr})


CLASSES = {'sync': PathFdFS, 'async': _async(PathFdFS)}


@pytest.fixture(params=sorted(CLASSES))
def handlers(request):
    return request.param


@pytest.fixture
def tree(tmp_path):
    src, mnt = tmp_path / 'src', tmp_path / 'mnt'
    src.mkdir()
    mnt.mkdir()
    (src / 'a').write_bytes(b'a' * 1000)
    (src / 'b').write_bytes(b'b' * 3)
    os.symlink('a', src / 'l')
    os.mkdir(src / 'd', 0o750)
    return str(src), str(mnt)


def _mount(ops, mnt):
    return mounted(ops, mnt, startup=auto_startup_path(), workers=2)


def _evict(ops, inode, timeout=10.0):
    """Make the kernel forget ``inode`` (drop the dentry and inode caches)."""
    deadline = time.monotonic() + timeout
    while inode in ops.lookup_counts():
        assert time.monotonic() < deadline, f'the kernel did not forget inode {inode}'
        with open('/proc/sys/vm/drop_caches', 'w') as f:
            f.write('2')
        time.sleep(0.02)


def test_getattr_is_answered_in_c(tree, handlers):
    """100 stats of declared inodes (attr timeout 0: one GETATTR each) call
    getattr() not once, and report the backing file's attributes (a symlink's
    own) with the filesystem's inode number; the same without path_fd calls
    it every time."""
    src, mnt = tree
    with CLASSES[handlers](src) as ops, _mount(ops, mnt) as m:
        for name in ('a', 'l', 'd'):
            os.lstat(os.path.join(mnt, name))           # LOOKUP: declared
        assert _path_fd_inodes(m.session) == 3
        before = ops.getattr_calls
        for _ in range(100):
            for name in ('a', 'l', 'd'):
                got, want = os.lstat(os.path.join(mnt, name)), os.lstat(os.path.join(src, name))
                assert [getattr(got, f) for f in ATTRS] == [getattr(want, f) for f in ATTRS]
                assert got.st_ino == ops.inos[name.encode()]
        assert ops.getattr_calls == before
        with open(os.path.join(src, 'a'), 'ab') as f:       # changed behind the mount
            f.write(b'more')
        assert os.stat(os.path.join(mnt, 'a')).st_size == 1004
        assert stat.S_ISLNK(os.lstat(os.path.join(mnt, 'l')).st_mode)
        assert ops.getattr_calls == before

        ops.declare = False                                 # control: the handler answers
        for name in ('b',):
            os.lstat(os.path.join(mnt, name))
        before = ops.getattr_calls
        for _ in range(20):
            assert os.lstat(os.path.join(mnt, 'b')).st_size == 3
        assert ops.getattr_calls >= before + 20
        os.stat(mnt)                                        # the root: never declared
        assert ops.getattr_calls >= before + 21


def test_forget_drops_the_entry_at_lookup_count_zero(tree, handlers):
    """The C table counts lookups as the kernel does: a FORGET of part of
    them keeps the entry (here the kernel's own forget of 1 when a
    revalidated name comes back with another inode), the one that brings
    them to 0 drops it, and the filesystem's forget() is still called."""
    src, mnt = tree
    with CLASSES[handlers](src, entry_timeout=0) as ops, _mount(ops, mnt) as m:
        shared = ops.inos[b'b'] = 7
        for _ in range(3):
            os.lstat(os.path.join(mnt, 'b'))              # each revalidation counts
        os.lstat(os.path.join(mnt, 'a'))
        counts = ops.lookup_counts()
        assert counts[shared] >= 3
        assert _path_fd_lookups(m.session, shared) == counts[shared]
        ops.inos[b'a'] = shared       # 'a' now names inode 7: the kernel forgets 1 of it
        os.lstat(os.path.join(mnt, 'a'))
        deadline = time.monotonic() + 10
        while (shared, 1) not in ops.forgets:
            assert time.monotonic() < deadline, ops.forgets
            time.sleep(0.01)
        counts = ops.lookup_counts()
        assert counts[shared] >= 3
        assert _path_fd_lookups(m.session, shared) == counts[shared]   # kept, recounted
        calls = ops.getattr_calls
        os.stat(os.path.join(mnt, 'b'))
        assert ops.getattr_calls == calls                  # still answered in C
        _evict(ops, shared)
        assert _path_fd_lookups(m.session, shared) == 0
        assert any(ino == shared and n > 1 for ino, n in ops.forgets)
        deadline = time.monotonic() + 10
        while ops.lookup_counts():
            assert time.monotonic() < deadline
            _evict(ops, next(iter(ops.lookup_counts())))
        assert _path_fd_inodes(m.session) == 0


def test_a_closed_and_reused_fd_is_never_used_after_forget(tree, handlers):
    """forget() closes the fd and the number is reused for another file;
    the inode number comes back, looked up without path_fd: its GETATTR is
    the handler's, not fstatat of whatever the old number is now."""
    src, mnt = tree
    with CLASSES[handlers](src) as ops, _mount(ops, mnt) as m:
        os.lstat(os.path.join(mnt, 'a'))
        ino = ops.inos[b'a']
        old_fd = ops.nodes[ino][0]
        _evict(ops, ino)                                   # forget() closed old_fd
        assert _path_fd_lookups(m.session, ino) == 0
        other = os.open(os.path.join(src, 'b'), os.O_PATH)
        if other != old_fd:
            os.dup2(other, old_fd)                         # the number is 'b' now
            os.close(other)
        try:
            ops.declare = False
            calls = ops.getattr_calls
            assert os.stat(os.path.join(mnt, 'a')).st_size == 1000
            assert os.stat(os.path.join(mnt, 'a')).st_size == 1000
            assert ops.getattr_calls >= calls + 1
        finally:
            os.close(old_fd)


def test_session_end_drops_every_entry(tree, handlers):
    """A filesystem without forget() never hears of FORGETs: its inodes stay
    declared until the session ends, and then go."""
    src, mnt = tree
    cls = type('NoForget', (CLASSES[handlers],), {'forget': fuseshim.Operations.forget})
    with cls(src) as ops:
        with _mount(ops, mnt) as m:
            for name in ('a', 'b', 'l', 'd'):
                os.lstat(os.path.join(mnt, name))
            assert _path_fd_inodes(m.session) == 4
        assert _path_fd_inodes(m.session) == 0
        assert _path_fd_inodes() == 0


def test_failing_fstatat_falls_back_to_the_handler(tree, handlers):
    """A path_fd that is no open fd (the filesystem broke the contract):
    GETATTR goes to getattr(), which answers."""
    src, mnt = tree
    ops = CLASSES[handlers](src)

    def bad_fd(ino, st, fd, entry=ops._entry):
        a = entry(ino, st, fd)
        a.path_fd = 1 << 20                                # beyond any fd limit: EBADF
        return a
    ops._entry = bad_fd
    with ops, _mount(ops, mnt) as m:
        os.lstat(os.path.join(mnt, 'a'))
        assert _path_fd_inodes(m.session) == 1
        calls = ops.getattr_calls
        assert os.stat(os.path.join(mnt, 'a')).st_size == 1000
        assert ops.getattr_calls == calls + 1


def test_a_reply_that_never_reached_the_kernel_counts_no_lookup(tree, handlers):
    """create()'s reply fails as for an interrupted request: the kernel got
    no entry from it, so its lookup is not counted (the caller then sees
    EINTR, or the kernel retries with LOOKUP + OPEN, which count as usual)."""
    src, mnt = tree
    with CLASSES[handlers](src) as ops, _mount(ops, mnt) as m:
        _test_only_inject_faults(reply=['create'])
        try:
            try:
                os.close(os.open(os.path.join(mnt, 'new'), os.O_CREAT | os.O_WRONLY, 0o644))
            except OSError as e:
                assert e.errno == errno.EINTR
        finally:
            fired = _test_only_inject_faults()
        assert fired == {('reply', 'create'): 1}
        ino = ops.inos[b'new']
        # the filesystem counted the failed create's lookup too; the kernel did not
        assert _path_fd_lookups(m.session, ino) == ops.lookup_counts()[ino] - 1
        with ops.lock:
            ops.nodes[ino][1] -= 1
        os.stat(os.path.join(mnt, 'new'))
        _evict(ops, ino)                                   # the counts agree: both reach 0
        assert _path_fd_lookups(m.session, ino) == 0
