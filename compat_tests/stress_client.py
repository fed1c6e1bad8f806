"""One client of the concurrent stress test (test_reliability_stress.py).

    python stress_client.py ROOT CLIENT_ID SEED SECONDS

Runs random namespace and data operations on the shared directories
ROOT/d0..d3 (and subdirectories s0..s3 in them, created and removed as it
goes) until SECONDS have passed: create, write, read+verify, truncate,
rename, link, symlink, unlink, mkdir, rmdir, readdir+lstat, fsync, and
I/O through files held open while others rename or unlink them.

File contents are 512-byte self-checking blocks (magic, crc32, the block's
own index), written block-aligned, so whatever the interleaving with other
clients, every block of every file must be either all zeros (holes,
truncate-extension) or a valid block at its own index.

Errors the races make legitimate (ENOENT, EEXIST, ENOTEMPTY, ...) are
counted; anything else (EIO, ENOTCONN, ESTALE, EBADF, a corrupt block) is a
failure.  Prints one JSON line with the counts and failures, exits 0 when
there were no failures.
"""
from __future__ import annotations

import errno
import json
import os
import random
import struct
import sys
import time
import zlib

BLOCK = 512
MAGIC = b'FSHM'
#: errnos that concurrent namespace changes by other clients explain
EXPECTED = {errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR,
            errno.ELOOP, errno.EINVAL, errno.EMLINK}


def make_block(index, client, seq, rnd) -> bytes:
    body = struct.pack('<QIQ', index, client, seq) + rnd.randbytes(BLOCK - 28)
    return MAGIC + struct.pack('<I', zlib.crc32(body)) + body


def check_blocks(data, where='') -> str | None:
    """None when every block is zeros or valid at its own index."""
    if len(data) % BLOCK:
        return f'{where}: size {len(data)} is not a multiple of {BLOCK}'
    zero = bytes(BLOCK)
    for i in range(0, len(data), BLOCK):
        b = data[i:i + BLOCK]
        if b == zero:
            continue
        if b[:4] != MAGIC:
            return f'{where}: block {i // BLOCK}: bad magic {b[:8]!r}'
        (crc,) = struct.unpack('<I', b[4:8])
        if zlib.crc32(b[8:]) != crc:
            return f'{where}: block {i // BLOCK}: crc mismatch'
        (index,) = struct.unpack('<Q', b[8:16])
        if index != i // BLOCK:
            return f'{where}: block {i // BLOCK} holds block {index}'
    return None


class Client:
    def __init__(self, root, client, seed):
        self.root = root
        self.client = client
        self.rnd = random.Random(seed)
        self.seq = 0
        self.counts: dict[str, int] = {}
        self.expected_errors: dict[str, int] = {}
        self.failures: list[str] = []
        self.held: list[tuple[int, str]] = []     # (fd, path when opened)

    # --------------------------------------------------------- names

    def dir(self) -> str:
        d = os.path.join(self.root, f'd{self.rnd.randrange(4)}')
        if self.rnd.random() < 0.3:
            d = os.path.join(d, f's{self.rnd.randrange(4)}')
        return d

    def name(self) -> str:
        return os.path.join(self.dir(), f'n{self.rnd.randrange(12)}')

    # --------------------------------------------------------- data

    def blocks(self, first, count) -> bytes:
        self.seq += 1
        return b''.join(make_block(first + k, self.client, self.seq, self.rnd)
                        for k in range(count))

    def verify_fd(self, fd, where):
        """Read the whole file; a bad block is re-read (a read racing a
        write may see a torn page, as on any filesystem) before failing."""
        for attempt in range(4):
            size = os.fstat(fd).st_size
            data = os.pread(fd, size - size % BLOCK, 0)
            problem = check_blocks(data[:len(data) - len(data) % BLOCK], where)
            if problem is None:
                return
            time.sleep(0.01)
        self.failures.append(problem)

    # --------------------------------------------------------- operations

    def op_create(self):
        fd = os.open(self.name(), os.O_CREAT | os.O_WRONLY | (os.O_TRUNC if self.rnd.random()
                                                              < 0.3 else 0), 0o644)
        try:
            first = self.rnd.randrange(64)
            os.pwrite(fd, self.blocks(first, self.rnd.randrange(1, 64)), first * BLOCK)
        finally:
            os.close(fd)

    def op_write(self):
        fd = os.open(self.name(), os.O_WRONLY)
        try:
            first = self.rnd.randrange(96)
            os.pwrite(fd, self.blocks(first, self.rnd.randrange(1, 32)), first * BLOCK)
        finally:
            os.close(fd)

    def op_read(self):
        path = self.name()
        fd = os.open(path, os.O_RDONLY)
        try:
            self.verify_fd(fd, path)
        finally:
            os.close(fd)

    def op_truncate(self):
        os.truncate(self.name(), BLOCK * self.rnd.randrange(128))

    def subdir(self) -> str:
        return os.path.join(self.root, f'd{self.rnd.randrange(4)}', f's{self.rnd.randrange(4)}')

    def op_rename(self):
        if self.rnd.random() < 0.8:
            os.rename(self.name(), self.name())
        else:                             # move a subdirectory (with its files)
            os.rename(self.subdir(), self.subdir())

    def op_link(self):
        os.link(self.name(), self.name())

    def op_symlink(self):
        os.symlink(f'n{self.rnd.randrange(12)}', self.name())

    def op_unlink(self):
        os.unlink(self.name())

    def op_mkdir(self):
        os.mkdir(self.subdir())

    def op_rmdir(self):
        d = self.subdir()
        if self.rnd.random() < 0.5:      # empty it first, sometimes
            for n in os.listdir(d):
                try:
                    os.unlink(os.path.join(d, n))
                except OSError as e:
                    self.tolerate(e, 'rmdir-empty')
        os.rmdir(d)

    def op_readdir(self):
        d = self.dir()
        with os.scandir(d) as it:
            for e in it:
                try:
                    os.lstat(e.path)
                except OSError as ex:
                    self.tolerate(ex, 'readdir-lstat')

    def op_readlink(self):
        os.readlink(self.name())

    def op_fsync(self):
        fd = os.open(self.name(), os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def op_hold(self):
        """Open a file and keep it; later I/O goes through the held fd,
        whatever happened to its name meanwhile."""
        if len(self.held) >= 3 or self.rnd.random() < 0.5 and self.held:
            fd, path = self.held.pop(self.rnd.randrange(len(self.held)))
            try:
                if self.rnd.random() < 0.5:
                    first = self.rnd.randrange(64)
                    os.pwrite(fd, self.blocks(first, self.rnd.randrange(1, 16)), first * BLOCK)
                self.verify_fd(fd, f'{path} (held)')
            finally:
                os.close(fd)
            return
        path = self.name()
        self.held.append((os.open(path, os.O_RDWR), path))

    def op_stat(self):
        os.lstat(self.name())

    OPS = {'create': 8, 'write': 8, 'read': 8, 'truncate': 4, 'rename': 8, 'link': 3,
           'symlink': 2, 'unlink': 6, 'mkdir': 3, 'rmdir': 3, 'readdir': 6, 'readlink': 1,
           'fsync': 1, 'hold': 4, 'stat': 4}

    def tolerate(self, e: OSError, what):
        if e.errno in EXPECTED:
            key = f'{what}:{errno.errorcode.get(e.errno, e.errno)}'
            self.expected_errors[key] = self.expected_errors.get(key, 0) + 1
        else:
            self.failures.append(f'{what}: {e!r}')

    def run(self, seconds, max_ops=10**7):
        names, weights = zip(*self.OPS.items())
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline and n < max_ops and len(self.failures) < 20:
            what = self.rnd.choices(names, weights)[0]
            try:
                getattr(self, 'op_' + what)()
                self.counts[what] = self.counts.get(what, 0) + 1
            except OSError as e:
                self.tolerate(e, what)
            n += 1
        for fd, path in self.held:
            try:
                self.verify_fd(fd, f'{path} (held)')
            except OSError as e:
                self.tolerate(e, 'final-held')
            os.close(fd)
        self.held.clear()
        return n


def main():
    root, client, seed, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
        float(sys.argv[4])
    c = Client(root, client, seed)
    n = c.run(seconds)
    print(json.dumps({'client': client, 'ops': n, 'counts': c.counts,
                      'expected_errors': c.expected_errors, 'failures': c.failures}),
          flush=True)
    return 1 if c.failures else 0


if __name__ == '__main__':
    sys.exit(main())
