"""fuseshim.DirListing: directory listings filled in C, through the kernel.

Plain READDIR and READDIRPLUS, offsets across several requests, seekdir /
telldir / rewinddir, entries sent without attributes (nodeid 0) counting no
lookup, mixing with readdir_reply(), and the input checks."""
from __future__ import annotations

import ctypes
import errno
import os
import stat
import threading

import pytest

import fuseshim
from fuseshim import DirListing, EntryAttributes, FUSEError, ROOT_INODE

from conftest import mounted

FIRST_INO = 1000
TYPES = (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK, stat.S_IFIFO)


def make_entries(n):
    """n entries with names of varied length (up to 200 bytes), inode
    FIRST_INO + i and a rotating file type."""
    return [(f'e{i:05d}-' + 'x' * (i % 194), FIRST_INO + i, TYPES[i % len(TYPES)] | 0o644)
            for i in range(n)]


class ListFS(fuseshim.Operations):
    """A root directory whose listing is a DirListing of ``entries``.

    The first ``head`` entries are sent one by one with readdir_reply() (full
    attributes, counted as lookups on READDIRPLUS), the rest with
    DirListing.fill() (same offsets: entry i goes out with offset i + 1).  Every lookup and readdir call is recorded."""

    def __init__(self, entries, *, plus=True, head=0):
        self.enable_readdirplus = plus
        self.entries = entries
        self.by_name = {os.fsencode(n): (ino, mode) for n, ino, mode in entries}
        self.by_ino = {ino: mode for n, ino, mode in entries}
        self.head = head
        self.listing = DirListing(entries)
        self.lock = threading.Lock()
        self.lookups = []               # names
        self.calls = []                 # (start_id, plus, next index)
        self.tokens = []

    def _attr(self, ino, mode):
        a = EntryAttributes()
        a.st_ino = ino
        a.st_mode = mode
        a.entry_timeout = a.attr_timeout = 300
        return a

    def lookup(self, parent_inode, name, ctx):
        with self.lock:
            self.lookups.append(name)
        if parent_inode != ROOT_INODE or name not in self.by_name:
            raise FUSEError(errno.ENOENT)
        return self._attr(*self.by_name[name])

    def getattr(self, inode, ctx):
        if inode == ROOT_INODE:
            return self._attr(ROOT_INODE, stat.S_IFDIR | 0o755)
        if inode not in self.by_ino:
            raise FUSEError(errno.ENOENT)
        return self._attr(inode, self.by_ino[inode])

    def opendir(self, inode, ctx):
        return inode

    def readdir(self, fh, start_id, token):
        i = start_id
        while i < self.head:
            name, ino, mode = self.entries[i]
            if not fuseshim.readdir_reply(token, name, self._attr(ino, mode), i + 1):
                break
            i += 1
        else:   # the rest from the listing of the whole directory
            i = self.listing.fill(token, i)
        with self.lock:
            self.calls.append((start_id, token.plus, i))
            self.tokens.append(token)

    def releasedir(self, fh):
        pass


def names_of(entries):
    return [n for n, _, _ in entries]


@pytest.mark.parametrize('plus', [True, False], ids=['readdirplus', 'plain'])
def test_big_listing_through_the_kernel(mnt, plus):
    entries = make_entries(3000)
    ops = ListFS(entries, plus=plus)
    with mounted(ops, mnt, startup='sync'):
        with os.scandir(mnt) as it:
            got = [(e.name, e.inode(), e.is_dir(follow_symlinks=False),
                    e.is_symlink()) for e in it]
    assert [g[0] for g in got] == names_of(entries)
    assert [g[1] for g in got] == [ino for _, ino, _ in entries]
    # d_type reached the client: no stat was needed to tell the types
    assert [g[2] for g in got] == [stat.S_ISDIR(m) for _, _, m in entries]
    assert [g[3] for g in got] == [stat.S_ISLNK(m) for _, _, m in entries]
    # several requests, each starting where the previous one stopped
    assert len(ops.calls) >= 3, ops.calls
    assert ops.calls[0][0] == 0
    for (_, _, nxt), (start, _, _) in zip(ops.calls, ops.calls[1:]):
        assert start == nxt
    assert ops.calls[-1][2] == len(entries)
    kinds = {p for _, p, _ in ops.calls}
    if plus:
        # readdirplus_auto: READDIRPLUS for offset 0, then plain READDIR as no
        # LOOKUP in the directory advised the kernel to ask for attributes
        assert ops.calls[0][1] is True
        assert {p for _, p, _ in ops.calls[1:]} == {False}
    else:
        assert kinds == {False}
    # entries sent by fill() carry no nodeid: listing looked nothing up
    assert ops.lookups == []


def test_readdirplus_entries_without_attributes_count_no_lookup(mnt):
    """nodeid-0 entries (DirListing.fill) are not linked into the dcache, so
    a later stat sends a LOOKUP; entries sent with attributes through
    readdir_reply() are cached (entry timeout 300 s) and counted."""
    entries = make_entries(40)
    ops = ListFS(entries, plus=True, head=5)
    with mounted(ops, mnt, startup='sync'):
        assert sorted(os.listdir(mnt)) == sorted(names_of(entries))
        assert ops.calls[0][1], 'the first request of a listing should be READDIRPLUS'
        assert ops.calls[0][2] > 5                 # the head and some fill()ed entries
        assert ops.lookups == []
        for name, ino, mode in entries:
            st = os.lstat(os.path.join(mnt, name))
            assert (st.st_ino, stat.S_IFMT(st.st_mode)) == (ino, stat.S_IFMT(mode))
        looked_up = {n.decode() for n in ops.lookups}
    # the first five came with attributes (a counted lookup, cached dentry)
    assert looked_up == set(names_of(entries[5:]))


class Dirent64(ctypes.Structure):
    _fields_ = [('d_ino', ctypes.c_uint64), ('d_off', ctypes.c_int64),
                ('d_reclen', ctypes.c_ushort), ('d_type', ctypes.c_ubyte),
                ('d_name', ctypes.c_char * 256)]


class LibcDir:
    """opendir/readdir/telldir/seekdir/rewinddir through ctypes (Python has
    no seekdir)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.opendir.restype = ctypes.c_void_p
    libc.opendir.argtypes = [ctypes.c_char_p]
    libc.readdir64.restype = ctypes.POINTER(Dirent64)
    libc.readdir64.argtypes = [ctypes.c_void_p]
    libc.telldir.restype = ctypes.c_long
    libc.telldir.argtypes = [ctypes.c_void_p]
    libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
    libc.rewinddir.argtypes = [ctypes.c_void_p]
    libc.closedir.argtypes = [ctypes.c_void_p]

    def __init__(self, path):
        self.d = self.libc.opendir(os.fsencode(path))
        if not self.d:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e), path)

    def next(self):
        p = self.libc.readdir64(self.d)
        return p.contents.d_name.decode() if p else None

    def read(self, n=None):
        out = []
        while n is None or len(out) < n:
            name = self.next()
            if name is None:
                break
            out.append(name)
        return out

    def tell(self):
        return self.libc.telldir(self.d)

    def seek(self, pos):
        self.libc.seekdir(self.d, pos)

    def rewind(self):
        self.libc.rewinddir(self.d)

    def close(self):
        self.libc.closedir(self.d)


@pytest.mark.parametrize('plus', [True, False], ids=['readdirplus', 'plain'])
def test_seekdir_telldir_rewinddir(mnt, plus):
    entries = make_entries(2500)
    names = names_of(entries)
    ops = ListFS(entries, plus=plus)
    with mounted(ops, mnt, startup='sync'):
        d = LibcDir(mnt)
        try:
            assert d.read(10) == names[:10]
            pos10 = d.tell()
            rest = d.read()
            assert rest == names[10:]
            d.seek(pos10)                       # back into the first request's range
            assert d.read(3) == names[10:13]
            d.rewind()
            assert d.read(1700) == names[:1700]  # across several requests
            pos1700 = d.tell()
            d.rewind()
            assert d.read(1) == names[:1]
            d.seek(pos1700)                     # forward into a later request
            assert d.read() == names[1700:]
        finally:
            d.close()
    starts = {s for s, _, _ in ops.calls}
    assert 0 in starts and len(ops.calls) >= 4
    assert ops.lookups == []


class AsyncListFS(ListFS):
    async def readdir(self, fh, start_id, token):
        ListFS.readdir(self, fh, start_id, token)


@pytest.mark.parametrize('handlers', ['sync', 'async'])
def test_mixed_with_readdir_reply_and_workers(mnt, handlers):
    """readdir_reply() and fill() on one token, 3 workers, sync or async
    handlers, two listings at once."""
    entries = make_entries(1200)
    ops = (AsyncListFS if handlers == 'async' else ListFS)(entries, plus=False, head=7)
    results = []
    with mounted(ops, mnt, startup='sync', workers=3):
        def lister():
            for _ in range(3):
                results.append(os.listdir(mnt))
        threads = [threading.Thread(target=lister) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert len(results) == 6
    assert all(r == names_of(entries) for r in results)


def test_fill_after_the_reply_raises(mnt):
    entries = make_entries(5)
    ops = ListFS(entries, plus=False)
    with mounted(ops, mnt, startup='sync'):
        os.listdir(mnt)
    token = ops.tokens[0]
    with pytest.raises(RuntimeError):
        ops.listing.fill(token, 0)


# ---------------------------------------------------------------- no mount

def test_construction_and_indexing():
    L = DirListing([(b'a', 5, stat.S_IFREG | 0o644), ('dir', 6, stat.S_IFDIR), ('ü', 7, 0)])
    assert len(L) == 3
    assert L[0] == (b'a', 5, stat.S_IFREG)          # only the type bits are kept
    assert L[1] == (b'dir', 6, stat.S_IFDIR)
    assert L[-1] == ('ü'.encode(), 7, 0)
    assert list(L) == [L[0], L[1], L[2]]
    with pytest.raises(IndexError):
        L[3]
    assert len(DirListing()) == 0
    assert len(DirListing(iter([(b'x', 1, 0)] * 5000))) == 5000
    assert 'DirListing' in repr(L)


@pytest.mark.parametrize('entries, exc', [
    ([b'abc'], TypeError),                      # not a tuple
    ([(b'a', 1)], TypeError),                   # wrong length
    ([(1, 1, 0)], TypeError),                   # name not bytes/str
    ([(b'a', '1', 0)], TypeError),              # inode not int
    ([(b'a', 1, 1.0)], TypeError),              # mode not int
    ([(b'', 1, 0)], ValueError),                # empty name
    ([(b'a/b', 1, 0)], ValueError),             # slash
    ([(b'a\0b', 1, 0)], ValueError),            # NUL
    ([(b'x' * 1025, 1, 0)], ValueError),        # too long for the kernel
    ([(b'a', -1, 0)], ValueError),
    ([(b'a', 2 ** 64, 0)], ValueError),
    ([(b'a', 1, -1)], ValueError),
    (5, TypeError),                             # not iterable
])
def test_bad_entries(entries, exc):
    with pytest.raises(exc):
        DirListing(entries)


def test_bad_fill_arguments():
    L = DirListing([(b'a', 1, 0)])
    token = fuseshim.ReaddirToken()             # not from a request: holds no room
    with pytest.raises(TypeError):
        L.fill(None, 0)
    with pytest.raises(TypeError):
        L.fill(object(), 0)
    with pytest.raises(TypeError):
        L.fill(token, '0')
    with pytest.raises(TypeError):
        L.fill(token, 0.0)
    with pytest.raises(ValueError):
        L.fill(token, -1)
    assert L.fill(token, 0) == 0                # nothing fits
    assert L.fill(token, 7) == 1                # past the end: listing exhausted


def test_scan(tmp_path):
    d = tmp_path / 'd'
    d.mkdir()
    (d / 'file').write_bytes(b'')
    (d / 'sub').mkdir()
    os.symlink('file', d / 'link')
    os.mkfifo(d / 'fifo')
    want = {e.name.encode(): (e.inode(), stat.S_IFMT(e.stat(follow_symlinks=False).st_mode))
            for e in os.scandir(d)}
    for arg in (str(d), os.fsencode(d), d):
        L = DirListing.scan(arg)
        assert {n: (i, m) for n, i, m in L} == want
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.lseek(fd, 2, os.SEEK_SET)
        assert {n for n, _, _ in DirListing.scan(fd)} == set(want)
        assert os.lseek(fd, 0, os.SEEK_CUR) == 2          # the fd's own offset left alone
    finally:
        os.close(fd)
    assert len(DirListing.scan(tmp_path / 'd' / 'sub')) == 0   # "." and ".." left out
    with pytest.raises(FileNotFoundError):
        DirListing.scan(tmp_path / 'missing')
    with pytest.raises(NotADirectoryError):
        DirListing.scan(d / 'file')
    with pytest.raises(TypeError):
        DirListing.scan(1.5)
