"""A model-based random-operation tester (fsx-like) for FUSE filesystems.

The same sequence of file operations runs, op by op, on a *target* directory
(a FUSE mount) and on a *reference* directory (a plain directory of a local
filesystem that accepts O_DIRECT, ext4 here; tmpfs refuses O_DIRECT
altogether), and every result is compared: each operation's success value
(bytes read, counts, offsets, sizes) or errno, and every ``check_every``
operations the whole tree -- names, types, sizes, link counts and every
file's bytes, read both through the page cache and with O_DIRECT (which makes
the kernel write dirty pages back and then asks the daemon itself), and, when
given, the target's backing directory read directly.

Operations: open (O_RDONLY/O_WRONLY/O_RDWR with O_CREAT, O_EXCL, O_TRUNC,
O_APPEND, O_DIRECT), close, read, write, pread, pwrite, lseek, truncate,
ftruncate, fallocate (0, KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE, ZERO_RANGE[,
KEEP_SIZE]), copy_file_range, mmap (MAP_SHARED) with reads, writes, msync and
munmap, fsync, fdatasync, fstat, stat, rename (files and directories), link,
unlink, mkdir, rmdir -- on six names in three directories through up to six
handles and three mappings, so several handles (and mappings) share one file
and handles outlive their names.

A sequence is a JSON list of operations; slots name handles and mappings,
never file descriptors, so *any* subsequence of a sequence is a valid
sequence (an operation on an empty slot is answered "nohandle" on both
sides).  That is what lets a failing sequence be shrunk (delta debugging) and
replayed:

    python compat_tests/random_ops.py run --target MNT --reference DIR --seed 7 --ops 1000
    python compat_tests/random_ops.py replay FAILURE.json --target MNT --reference DIR

Differences that are *legitimate* are avoided, never compared away, and each
one is decided on the reference's state before the operation runs (on both
sides alike, so the sequence stays deterministic):

* O_DIRECT I/O (read, write, pread, pwrite, copy_file_range touching an
  O_DIRECT handle) whose file offset or length is not a multiple of 4096 is
  skipped: ext4 refuses it (EINVAL) while FUSE does not require alignment.
  For an append the offset is the file size; for copy_file_range the length
  is what the source has left from its offset (ext4 refuses a copy whose
  source ends unaligned).
  The generator produces aligned O_DIRECT I/O; only shrunk or hand-written
  sequences can reach the skip.
* lseek(SEEK_END) on a directory handle is skipped: directory offsets are
  each filesystem's own cookies (ext4's hashed directories end at 2^63-1, so
  SEEK_END plus anything is EINVAL; FUSE uses i_size).
* mmap reads/writes beyond the mapping or beyond end of file are not made
  (SIGBUS otherwise); the sizes each side saw are the result, so a size
  difference is still reported.
* Not compared: st_blocks, times, inode numbers (allocation and clocks) and a
  directory's st_size (ext4: its blocks; memfs: one block).  Files' sizes,
  link counts and types are.  SEEK_DATA/SEEK_HOLE are not generated (where
  holes are is the filesystem's choice; memfs keeps none).
"""
from __future__ import annotations

import argparse
import errno
import json
import mmap
import os
import random
import shutil
import stat
import sys
import time

ALIGN = 4096                      # O_DIRECT alignment used for offsets and lengths
MAX_LEN = 256 * 1024              # files stay about this small (fsx's default)
MAX_OP_LEN = 64 * 1024            # longest single read/write/copy
HANDLE_SLOTS = 6
MAP_SLOTS = 3
DIRS = ('d',)                     # created in every run root before the first op
DIR_NAMES = ('d', 'e')            # for mkdir, rmdir and (with NAMES) rename
NAMES = ('a', 'b', 'c', 'd/a', 'd/b', 'e/a')

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
FALLOC_MODES = (0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                FALLOC_FL_ZERO_RANGE, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE)

OPEN_FLAGS = {n: getattr(os, n) for n in ('O_RDONLY', 'O_WRONLY', 'O_RDWR', 'O_CREAT',
                                          'O_EXCL', 'O_TRUNC', 'O_APPEND', 'O_DIRECT')}


def _fallocate():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.fallocate
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]

    def fallocate(fd, mode, off, length):
        if fn(fd, mode, off, length) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
    return fallocate


fallocate = _fallocate()


def data_for(dseed: int, n: int) -> bytes:
    """The bytes a write carries: reproducible from (dseed, n), never all
    zeros (so lost data cannot look like a hole)."""
    return bytes(b | 1 for b in random.Random(dseed).randbytes(n)) if n else b''


def _aligned(n: int) -> mmap.mmap:
    """A page-aligned buffer (O_DIRECT on ext4 needs an aligned address)."""
    return mmap.mmap(-1, max(n, 1))


def _err(e: OSError):
    return ('err', errno.errorcode.get(e.errno, str(e.errno)))


def _on_handle(method):
    """``op_x(self, slot, ...)`` -> ``method(self, fd, ...)``; an empty slot
    answers ("nohandle",) on both sides (shrunk sequences have those)."""
    def op(self, slot, *args):
        h = self.handles.get(slot)
        return ('nohandle',) if h is None else method(self, h[0], *args)
    op.__name__ = method.__name__
    return op


def _size_unless_dir(st):
    """A directory's st_size is the filesystem's own business (ext4: its
    blocks; memfs: one block): compared for files only."""
    return None if stat.S_ISDIR(st.st_mode) else st.st_size


# ------------------------------------------------------------ one side

class Side:
    """One directory the sequence runs in, with its handles and mappings."""

    def __init__(self, root: str):
        self.root = root
        self.handles: dict[int, tuple[int, int, str]] = {}     # slot -> (fd, flags, name)
        self.maps: dict[int, tuple[mmap.mmap, bool]] = {}       # slot -> (mapping, writable)

    def path(self, name):
        return os.path.join(self.root, name)

    def setup(self):
        os.mkdir(self.root)
        for d in DIRS:
            os.mkdir(self.path(d))

    def close_all(self):
        for slot in list(self.maps):
            self.maps.pop(slot)[0].close()
        for slot in list(self.handles):
            fd = self.handles.pop(slot)[0]
            try:
                os.close(fd)
            except OSError:
                pass

    def teardown(self):
        self.close_all()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- the operations; each returns a comparable, JSON-able tuple

    def run(self, op):
        kind = op[0]
        try:
            return getattr(self, 'op_' + kind)(*op[1:])
        except OSError as e:
            return _err(e)

    def _fd(self, slot):
        h = self.handles.get(slot)
        return None if h is None else h[0]

    def op_open(self, slot, name, flag_names):
        if slot in self.handles:
            self.op_close(slot)
        flags = 0
        for n in flag_names:
            flags |= OPEN_FLAGS[n]
        fd = os.open(self.path(name), flags | os.O_CLOEXEC, 0o644)
        self.handles[slot] = (fd, flags, name)
        return ('ok',)

    def op_close(self, slot):
        h = self.handles.pop(slot, None)
        if h is None:
            return ('nohandle',)
        os.close(h[0])      # a close error (a failed writeback) is a result too
        return ('ok',)

    @_on_handle
    def op_read(self, fd, n):
        with _aligned(n) as buf, memoryview(buf) as whole, whole[:n] as view:
            got = os.readv(fd, [view])
            return ('ok', buf[:got].hex())

    @_on_handle
    def op_pread(self, fd, off, n):
        with _aligned(n) as buf, memoryview(buf) as whole, whole[:n] as view:
            got = os.preadv(fd, [view], off)
            return ('ok', buf[:got].hex())

    @staticmethod
    def _write(fd, off, n, dseed):
        with _aligned(n) as buf, memoryview(buf) as whole, whole[:n] as view:
            buf.write(data_for(dseed, n))
            done = os.writev(fd, [view]) if off is None else os.pwritev(fd, [view], off)
        return ('ok', done)

    @_on_handle
    def op_write(self, fd, n, dseed):
        return self._write(fd, None, n, dseed)

    @_on_handle
    def op_pwrite(self, fd, off, n, dseed):
        return self._write(fd, off, n, dseed)

    @_on_handle
    def op_lseek(self, fd, off, whence):
        return ('ok', os.lseek(fd, off, whence))

    def op_truncate(self, name, size):
        os.truncate(self.path(name), size)
        return ('ok',)

    @_on_handle
    def op_ftruncate(self, fd, size):
        os.ftruncate(fd, size)
        return ('ok',)

    @_on_handle
    def op_fallocate(self, fd, mode, off, n):
        fallocate(fd, mode, off, n)
        return ('ok',)

    def op_copy(self, slot_in, off_in, slot_out, off_out, n):
        fd_in, fd_out = self._fd(slot_in), self._fd(slot_out)
        if fd_in is None or fd_out is None:
            return ('nohandle',)
        return ('ok', os.copy_file_range(fd_in, fd_out, n, off_in, off_out))

    @_on_handle
    def op_fsync(self, fd):
        os.fsync(fd)
        return ('ok',)

    @_on_handle
    def op_fdatasync(self, fd):
        os.fdatasync(fd)
        return ('ok',)

    @_on_handle
    def op_fstat(self, fd):
        st = os.fstat(fd)
        return ('ok', stat.S_IFMT(st.st_mode), _size_unless_dir(st), st.st_nlink)

    def op_stat(self, name):
        st = os.stat(self.path(name))
        return ('ok', stat.S_IFMT(st.st_mode), _size_unless_dir(st), st.st_nlink)

    def op_mmap(self, mslot, slot, length):
        if mslot in self.maps:
            self.op_munmap(mslot)
        h = self.handles.get(slot)
        if h is None:
            return ('nohandle',)
        fd, flags, _ = h
        size = min(length, os.fstat(fd).st_size)
        if size == 0:
            return ('empty',)       # mmap(2) of length 0 is EINVAL; nothing to map
        writable = flags & os.O_ACCMODE != os.O_RDONLY
        access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ   # MAP_SHARED both
        try:
            m = mmap.mmap(fd, size, access=access)
        except PermissionError as e:      # O_WRONLY: EACCES
            return _err(e)
        self.maps[mslot] = (m, writable)
        return ('ok', size)

    def op_munmap(self, mslot):
        m = self.maps.pop(mslot, None)
        if m is None:
            return ('nomap',)
        m[0].close()
        return ('ok',)

    def _mapped(self, mslot, off, n):
        """The mapping, or why the access is skipped: beyond the mapping, or
        beyond end of file (a whole page past EOF would be SIGBUS)."""
        entry = self.maps.get(mslot)
        if entry is None:
            return None, ('nomap',)
        m = entry[0]
        size = m.size()                 # fstat of the mapped file: its size now
        if off + n > min(len(m), size):
            return None, ('beyond', len(m), size)
        return entry, None

    def op_mapread(self, mslot, off, n):
        entry, skip = self._mapped(mslot, off, n)
        if skip:
            return skip
        return ('ok', entry[0][off:off + n].hex())

    def op_mapwrite(self, mslot, off, n, dseed):
        entry, skip = self._mapped(mslot, off, n)
        if skip:
            return skip
        m, writable = entry
        if not writable:
            return ('readonly',)
        m[off:off + n] = data_for(dseed, n)
        return ('ok',)

    def op_msync(self, mslot):
        entry = self.maps.get(mslot)
        if entry is None:
            return ('nomap',)
        entry[0].flush()                # msync(MS_SYNC) of the whole mapping
        return ('ok',)

    def op_rename(self, a, b):
        os.rename(self.path(a), self.path(b))
        return ('ok',)

    def op_link(self, a, b):
        os.link(self.path(a), self.path(b))
        return ('ok',)

    def op_unlink(self, a):
        os.unlink(self.path(a))
        return ('ok',)

    def op_mkdir(self, a):
        os.mkdir(self.path(a), 0o755)
        return ('ok',)

    def op_rmdir(self, a):
        os.rmdir(self.path(a))
        return ('ok',)


# ------------------------------------------------------------ legitimate skips

def _is_direct(side: Side, slot) -> bool:
    h = side.handles.get(slot)
    return h is not None and bool(h[1] & os.O_DIRECT)


def skip_reason(ref: Side, op):
    """Why ``op`` is skipped on both sides (decided on the reference's state
    before it runs), or None: the legitimate differences listed in the
    module's docstring, nothing else."""
    kind = op[0]
    if kind == 'lseek' and op[3] == os.SEEK_END and op[1] in ref.handles and \
            stat.S_ISDIR(os.fstat(ref.handles[op[1]][0]).st_mode):
        # a directory's offsets are the filesystem's cookies: ext4's end of a
        # hashed directory is 2^63-1 (SEEK_END + n: EINVAL), FUSE's is i_size
        return ('skip', 'SEEK_END on a directory')
    if kind in ('read', 'write', 'pread', 'pwrite'):
        slot = op[1]
        if not _is_direct(ref, slot):
            return None
        fd, flags, _ = ref.handles[slot]
        if kind in ('read', 'write'):
            n = op[2]
            off = os.lseek(fd, 0, os.SEEK_CUR)
        else:
            off, n = op[2], op[3]
        if kind in ('write', 'pwrite') and flags & os.O_APPEND:
            off = os.fstat(fd).st_size      # Linux appends even for pwrite(2)
        if off % ALIGN or n % ALIGN:
            return ('skip', 'unaligned O_DIRECT I/O')
    elif kind == 'copy':
        _, slot_in, off_in, slot_out, off_out, n = op
        if not (_is_direct(ref, slot_in) or _is_direct(ref, slot_out)):
            return None
        # what is copied is cut at the source's end of file: that length
        # must be aligned too (ext4 refuses the whole call otherwise)
        if ref.handles.get(slot_in) and ref.handles.get(slot_out):
            n = max(0, min(n, os.fstat(ref.handles[slot_in][0]).st_size - off_in))
        if off_in % ALIGN or off_out % ALIGN or n % ALIGN:
            return ('skip', 'unaligned O_DIRECT I/O')
    return None


# ------------------------------------------------------------ generator

class Generator:
    """Produces the next operation from a seeded RNG and the reference's
    state (which handles are open, with which flags, file sizes, offsets), so
    that most operations are meaningful and O_DIRECT I/O is aligned."""

    WEIGHTS = {'open': 7, 'close': 5, 'read': 8, 'write': 9, 'pread': 8, 'pwrite': 11,
               'lseek': 3, 'truncate': 3, 'ftruncate': 4, 'fallocate': 6, 'copy': 5,
               'fsync': 2, 'fdatasync': 1, 'fstat': 2, 'stat': 2, 'mmap': 4, 'munmap': 2,
               'mapread': 6, 'mapwrite': 7, 'msync': 4, 'rename': 3, 'link': 2, 'unlink': 2,
               'mkdir': 1, 'rmdir': 1}
    WRITES = {'write', 'pwrite', 'ftruncate', 'fallocate', 'mmap'}

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.kinds = list(self.WEIGHTS)
        self.weights = [self.WEIGHTS[k] for k in self.kinds]
        self.dseed = rng.randrange(1 << 30)

    def _next_dseed(self):
        self.dseed += 1
        return self.dseed

    def _length(self, direct, cap=MAX_OP_LEN):
        r = self.rng
        if r.random() < .01:
            return 0
        if direct:
            return ALIGN * r.randint(1, max(1, cap // ALIGN))
        return r.choice((r.randint(1, 64), r.randint(1, 4096), r.randint(1, cap)))

    def _offset(self, direct, size, n=0):
        """Mostly within the file, sometimes just past its end."""
        r = self.rng
        hi = max(0, min(MAX_LEN - n, size + ALIGN))
        off = r.randint(0, hi)
        return off - off % ALIGN if direct else off

    def _size(self):
        r = self.rng
        return r.choice((0, r.randint(0, MAX_LEN), r.randint(0, 16) * ALIGN,
                         r.randint(0, 3 * ALIGN)))

    def next(self, ref: Side):
        r = self.rng
        for _ in range(100):
            op = self._make(r.choices(self.kinds, self.weights)[0], ref)
            if op is not None:
                return op
        return ['open', r.randrange(HANDLE_SLOTS), r.choice(NAMES), ['O_RDWR', 'O_CREAT']]

    def _file_size(self, ref, slot):
        return os.fstat(ref.handles[slot][0]).st_size

    def _make(self, kind, ref: Side):
        r = self.rng
        open_slots = sorted(ref.handles)
        if kind == 'open':
            flags = [r.choices(('O_RDONLY', 'O_WRONLY', 'O_RDWR'), (2, 1, 5))[0]]
            for name, p in (('O_CREAT', .7), ('O_EXCL', .04), ('O_TRUNC', .08),
                            ('O_APPEND', .12), ('O_DIRECT', .3)):
                if r.random() < p:
                    flags.append(name)
            free = [s for s in range(HANDLE_SLOTS) if s not in ref.handles]
            slot = r.choice(free) if free else r.randrange(HANDLE_SLOTS)
            return ['open', slot, r.choice(NAMES), flags]
        if kind in ('truncate', 'stat', 'unlink'):
            # now and then a directory's name: removes a file renamed there
            name = r.choice(NAMES if r.random() < .9 else DIR_NAMES)
            if kind == 'truncate':
                return ['truncate', name, self._size()]
            if kind == 'unlink' and r.random() < .5:
                return None       # keep files around longer than fsx would
            return [kind, name]
        if kind in ('rename', 'link'):
            x = r.random()
            if kind == 'rename' and x < .15:        # directories (handles inside move too)
                return [kind, r.choice(DIR_NAMES), r.choice(DIR_NAMES)]
            if x > .96:                             # a file name against a directory
                return [kind, *r.sample((r.choice(NAMES), r.choice(DIR_NAMES)), 2)]
            return [kind, r.choice(NAMES), r.choice(NAMES)]
        if kind == 'mkdir':
            return [kind, r.choice(DIR_NAMES)]
        if kind == 'rmdir':
            # now and then a file name: removes a directory renamed there
            return [kind, r.choice(DIR_NAMES if r.random() < .8 else NAMES)]
        if kind == 'msync' or kind == 'munmap':
            if not ref.maps:
                return None
            return [kind, r.choice(sorted(ref.maps))]
        if kind in ('mapread', 'mapwrite'):
            if not ref.maps:
                return None
            mslot = r.choice(sorted(ref.maps))
            m = ref.maps[mslot][0]
            limit = min(len(m), m.size())
            if limit == 0:
                return None
            off = r.randrange(limit)
            n = r.randint(1, min(limit - off, r.choice((16, 512, 8192, MAX_OP_LEN))))
            if kind == 'mapread':
                return ['mapread', mslot, off, n]
            return ['mapwrite', mslot, off, n, self._next_dseed()]
        if not open_slots:
            return None
        writable = [s for s in open_slots
                    if ref.handles[s][1] & os.O_ACCMODE != os.O_RDONLY]
        if kind in self.WRITES and writable and r.random() < .85:
            open_slots = writable     # mostly meaningful writes; EBADF now and then
        slot = r.choice(open_slots)
        fd, flags, _ = ref.handles[slot]
        direct = bool(flags & os.O_DIRECT)
        size = self._file_size(ref, slot)
        if kind == 'mmap':
            if size == 0:
                return None
            mslot = r.randrange(MAP_SLOTS)
            return ['mmap', mslot, slot, r.choice((size, r.randint(1, size)))]
        if kind in ('read', 'write'):
            pos = os.lseek(fd, 0, os.SEEK_CUR)
            if kind == 'write' and flags & os.O_APPEND:
                pos = size
            if direct and pos % ALIGN:
                return ['lseek', slot, pos - pos % ALIGN, os.SEEK_SET]
            n = self._length(direct)
            if kind == 'read':
                return ['read', slot, n]
            if pos + n > MAX_LEN:
                return ['lseek', slot, 0, os.SEEK_SET] if not flags & os.O_APPEND else \
                    ['ftruncate', slot, r.randint(0, 8) * ALIGN]
            return ['write', slot, n, self._next_dseed()]
        if kind in ('pread', 'pwrite'):
            n = self._length(direct)
            off = self._offset(direct, size, n)
            if kind == 'pread':
                return ['pread', slot, off, n]
            if flags & os.O_APPEND and (size + n > MAX_LEN or direct and size % ALIGN):
                return ['ftruncate', slot, r.randint(0, 8) * ALIGN]
            return ['pwrite', slot, off, n, self._next_dseed()]
        if kind == 'lseek':
            whence = r.choice((os.SEEK_SET, os.SEEK_CUR, os.SEEK_END))
            off = self._offset(direct, size)
            if whence != os.SEEK_SET:
                off = r.randint(-ALIGN, ALIGN)
                off -= off % ALIGN if direct else 0
            return ['lseek', slot, off, whence]
        if kind == 'ftruncate':
            return ['ftruncate', slot, self._size()]
        if kind == 'fallocate':
            mode = r.choice(FALLOC_MODES)
            n = self._length(False, MAX_OP_LEN)
            off = self._offset(False, size, n)
            return ['fallocate', slot, mode, off, n]
        if kind == 'copy':
            other = r.choice(open_slots)
            direct = direct or bool(ref.handles[other][1] & os.O_DIRECT)
            n = self._length(direct)
            off_in = self._offset(direct, size, 0)
            off_out = self._offset(direct, self._file_size(ref, other), n)
            return ['copy', slot, off_in, other, off_out, n]
        return [kind, slot]     # fsync, fdatasync, fstat, close


# ------------------------------------------------------------ whole-tree snapshots

def _read_all(path, direct):
    flags = os.O_RDONLY | os.O_CLOEXEC | (os.O_DIRECT if direct else 0)
    fd = os.open(path, flags)
    try:
        chunks = []
        with _aligned(1 << 20) as buf:
            while True:
                n = os.readv(fd, [buf])
                if n == 0:
                    break
                chunks.append(buf[:n])
        return b''.join(chunks)
    finally:
        os.close(fd)


def snapshot(root, *, direct=False):
    """{relative path: (type, size, nlink, content digest-or-bytes)} of the tree."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            entry = {'type': stat.S_IFMT(st.st_mode), 'size': _size_unless_dir(st)}
            if stat.S_ISREG(st.st_mode):
                entry['nlink'] = st.st_nlink
                try:
                    entry['data'] = _read_all(p, direct)
                except OSError as e:
                    entry['data'] = _err(e)
            out[rel] = entry
    return out


def describe_tree_difference(a, b, a_name, b_name):
    lines = []
    for rel in sorted(set(a) | set(b)):
        x, y = a.get(rel), b.get(rel)
        if x == y:
            continue
        if x is None or y is None:
            lines.append(f'{rel}: only in {a_name if y is None else b_name}')
            continue
        for key in ('type', 'size', 'nlink'):
            if x.get(key) != y.get(key):
                lines.append(f'{rel}: {key} {a_name}={x.get(key)} {b_name}={y.get(key)}')
        dx, dy = x.get('data'), y.get('data')
        if dx != dy:
            if isinstance(dx, bytes) and isinstance(dy, bytes):
                first = next((i for i in range(min(len(dx), len(dy))) if dx[i] != dy[i]),
                             min(len(dx), len(dy)))
                lines.append(f'{rel}: bytes differ from offset {first:#x} '
                             f'({a_name}: {dx[first:first + 16].hex() or "EOF"}, '
                             f'{b_name}: {dy[first:first + 16].hex() or "EOF"}; '
                             f'lengths {len(dx)}/{len(dy)})')
            else:
                lines.append(f'{rel}: read {a_name}={dx!r:.80} {b_name}={dy!r:.80}')
    return lines


# ------------------------------------------------------------ running a sequence

class Difference(Exception):
    def __init__(self, index, op, detail):
        super().__init__(f'after op #{index} {json.dumps(op)}: {detail}')
        self.index, self.op, self.detail = index, op, detail


class Pair:
    """The target and the reference side of one run (plus, optionally, the
    target's backing directory, checked at every tree comparison)."""

    def __init__(self, target_dir, reference_dir, backing_dir=None, tag='run'):
        self.target = Side(os.path.join(target_dir, tag))
        self.ref = Side(os.path.join(reference_dir, tag))
        self.backing = os.path.join(backing_dir, tag) if backing_dir else None
        self.skipped = 0

    def __enter__(self):
        self.ref.setup()
        self.target.setup()
        return self

    def __exit__(self, *exc):
        self.target.teardown()
        self.ref.teardown()

    def step(self, index, op):
        skip = skip_reason(self.ref, op)
        if skip:
            self.skipped += 1
            return skip
        want = self.ref.run(op)
        got = self.target.run(op)
        if want != got:
            raise Difference(index, op, f'reference {_short(want)}, target {_short(got)}')
        return want

    def check_trees(self, index, op):
        ref = snapshot(self.ref.root)
        views = [('target', snapshot(self.target.root)),
                 ('target O_DIRECT', snapshot(self.target.root, direct=True))]
        if self.backing:
            views.append(('backing', snapshot(self.backing)))
        for name, tree in views:
            if tree != ref:
                lines = describe_tree_difference(ref, tree, 'reference', name)
                raise Difference(index, op, f'tree differs ({name}):\n    ' +
                                 '\n    '.join(lines))


def _short(result):
    text = json.dumps(result)
    return text if len(text) < 200 else text[:200] + f'... ({len(text)} chars)'


def run_sequence(ops, target_dir, reference_dir, backing_dir=None, tag='replay',
                 check_every=0):
    """Run a fixed sequence; raise Difference at the first one (trees are
    compared every ``check_every`` ops, if non-zero, and at the end)."""
    with Pair(target_dir, reference_dir, backing_dir, tag) as pair:
        for i, op in enumerate(ops):
            pair.step(i, op)
            if check_every and (i + 1) % check_every == 0:
                pair.check_trees(i, op)
        pair.check_trees(len(ops) - 1, ops[-1] if ops else None)
    return pair.skipped


def generate_and_run(seed, count, target_dir, reference_dir, backing_dir=None,
                     check_every=100, tag='run'):
    """Generate ``count`` ops from ``seed`` and run them.
    -> (ops, stats); on a difference raises Difference with .ops set."""
    rng = random.Random(seed)
    gen = Generator(rng)
    ops = []
    kinds: dict[str, int] = {}
    with Pair(target_dir, reference_dir, backing_dir, tag) as pair:
        try:
            for i in range(count):
                op = gen.next(pair.ref)
                ops.append(op)
                result = pair.step(i, op)
                key = op[0] if result[0] == 'ok' else f'{op[0]}:{result[0]}'
                if result[0] == 'err':
                    key += ':' + result[1]
                kinds[key] = kinds.get(key, 0) + 1
                if (i + 1) % check_every == 0:
                    pair.check_trees(i, op)
            pair.check_trees(count - 1, ops[-1] if ops else None)
        except Difference as d:
            d.ops = ops[:d.index + 1]
            raise
    return ops, {'ops': count, 'skipped': pair.skipped, 'results': kinds}


def shrink(ops, fails, budget_s=120.0):
    """Delta debugging (ddmin): a shorter sequence for which ``fails(seq)``
    still holds, within about ``budget_s`` seconds."""
    deadline = time.monotonic() + budget_s
    # first the cheap guess: a failure often needs only the last few ops
    for k in (8, 64, 512, 4096):
        if k >= len(ops) or time.monotonic() > deadline:
            break
        if fails(ops[-k:]):
            ops = ops[-k:]
            break
    n = 2
    while len(ops) >= 2 and time.monotonic() < deadline:
        chunk = max(1, len(ops) // n)
        reduced = False
        for start in range(0, len(ops), chunk):
            if time.monotonic() > deadline:
                break
            candidate = ops[:start] + ops[start + chunk:]
            if candidate and fails(candidate):
                ops = candidate
                n = max(n - 1, 2)
                reduced = True
                break
        if not reduced:
            if chunk == 1:
                break
            n = min(n * 2, len(ops))
    return ops


def find_minimal(ops, target_dir, reference_dir, backing_dir=None, budget_s=120.0):
    """Shrink a failing sequence; every attempt runs in fresh directories."""
    attempt = [0]

    def fails(seq):
        attempt[0] += 1
        try:
            run_sequence(seq, target_dir, reference_dir, backing_dir,
                         tag=f'shrink-{attempt[0]}')
        except Difference:
            return True
        return False

    return shrink(ops, fails, budget_s)


def failure_report(seq, difference, *, seed=None, label=''):
    lines = [f'random-ops DIFFERENCE{" on " + label if label else ""}'
             f'{f" (seed {seed})" if seed is not None else ""}: {difference}',
             f'minimal sequence ({len(seq)} ops):']
    lines += ['  ' + json.dumps(op) for op in seq]
    return '\n'.join(lines)


# ------------------------------------------------------------ command line

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = p.add_subparsers(dest='cmd', required=True)
    for name in ('run', 'replay'):
        s = sub.add_parser(name)
        if name == 'replay':
            s.add_argument('file', help='JSON written by a failing run ({"ops": [...]})')
        s.add_argument('--target', required=True, help='directory on the filesystem tested')
        s.add_argument('--reference', required=True, help='directory on ext4 (O_DIRECT)')
        s.add_argument('--backing', help="the target's backing directory (passthrough)")
        s.add_argument('--check-every', type=int, default=100)
        s.add_argument('--failure-file', help='write the (shrunk) failing sequence here')
        s.add_argument('--shrink-seconds', type=float, default=120.0)
        s.add_argument('--label', default='')
        if name == 'run':
            s.add_argument('--seed', type=int, required=True)
            s.add_argument('--ops', type=int, default=1000)
            s.add_argument('--tag', default='run')
    a = p.parse_args(argv)
    t0 = time.monotonic()
    seed = getattr(a, 'seed', None)
    try:
        if a.cmd == 'run':
            _, stats = generate_and_run(a.seed, a.ops, a.target, a.reference, a.backing,
                                        a.check_every, a.tag)
        else:
            with open(a.file) as f:
                saved = json.load(f)
            seed = saved.get('seed')
            # trees after every op pin the first difference down; long
            # (unshrunk) sequences would take minutes that way
            skipped = run_sequence(saved['ops'], a.target, a.reference, a.backing,
                                   check_every=1 if len(saved['ops']) <= 500 else 100)
            stats = {'ops': len(saved['ops']), 'skipped': skipped}
    except Difference as d:
        seq = getattr(d, 'ops', None)
        if seq is None:      # replay: shrink the sequence given
            with open(a.file) as f:
                seq = json.load(f)['ops'][:d.index + 1]
        first = str(d)
        print(f'random-ops: {first}\nshrinking {len(seq)} ops ...', file=sys.stderr, flush=True)
        seq = find_minimal(seq, a.target, a.reference, a.backing, a.shrink_seconds)
        try:
            run_sequence(seq, a.target, a.reference, a.backing, tag='final', check_every=1)
            final = first        # the shrunk sequence passed after all (flaky)
        except Difference as d2:
            final = str(d2)
        report = {'seed': seed, 'label': a.label, 'first_difference': first,
                  'difference': final, 'ops': seq}
        if a.failure_file:
            with open(a.failure_file, 'w') as f:
                json.dump(report, f, indent=1)
        print(failure_report(seq, final, seed=seed, label=a.label), file=sys.stderr)
        print(json.dumps({'ok': False, 'seed': seed, 'first_difference': first,
                          'difference': final, 'ops': seq,
                          'seconds': round(time.monotonic() - t0, 1)}))
        return 1
    stats.update(ok=True, seed=seed, seconds=round(time.monotonic() - t0, 1))
    print(json.dumps(stats))
    return 0


if __name__ == '__main__':
    sys.exit(main())
