"""Shared by the clients stage's scenarios: made-up source trees, mounting a
client's real command line, and comparing a mounted tree with its source.

The scenarios run under a client's own interpreter, once with the real peer
and once with fuseshim providing the peer's module, so nothing here imports
fuseshim or a peer.  Comparisons are exact: the listing, every file's sha256,
the stat fields the archive format keeps, and reads at random offsets (also
across and past the end).
"""
from __future__ import annotations

import hashlib
import os
import random
import stat
import subprocess
import time

MOUNT_TIMEOUT = 90.0


# ---------------------------------------------------------------- source trees

def make_tree(root: str, files: int, seed: int, big: int = 2, flat=False) -> dict:
    """A directory tree under ``root`` with ``files`` regular files spread over
    nested directories, or all in ``root`` when ``flat`` (sizes from 0 bytes
    to ~1 MiB, ``big`` of them large), deterministic for a seed.  Returns
    {relative path: 'dir' | 'file'}."""
    rng = random.Random(seed)
    os.makedirs(root, exist_ok=True)
    dirs = ['']
    for i in range(0 if flat else max(2, files // 60)):
        parent = rng.choice(dirs)
        d = os.path.join(parent, f'dir{i:03d}')
        os.makedirs(os.path.join(root, d))
        dirs.append(d)
    sizes = [0, 1, 511, 4096, 4097, 65536, 131073]
    for i in range(files):
        d = rng.choice(dirs)
        if i < big:
            size = (1 << 20) + rng.randrange(1 << 16)
        elif i < len(sizes) + big:
            size = sizes[i - big]
        else:
            size = rng.randrange(0, 3000)
        path = os.path.join(root, d, f'file{i:05d}.bin')
        with open(path, 'wb') as f:
            f.write(rng.randbytes(size))
        os.chmod(path, rng.choice((0o644, 0o600, 0o755, 0o444)))
        os.utime(path, (1_600_000_000 + i, 1_600_000_000 + 7 * i))
    for d in dirs[1:]:
        os.utime(os.path.join(root, d), (1_650_000_000, 1_650_000_000))
    return listing(root)


def listing(root: str) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for n in dirnames:
            out[os.path.normpath(os.path.join(rel, n))] = 'dir'
        for n in filenames:
            p = os.path.join(dirpath, n)
            out[os.path.normpath(os.path.join(rel, n))] = \
                'file' if stat.S_ISREG(os.lstat(p).st_mode) else 'other'
    return out


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- comparing

def compare_trees(src: str, mnt: str, *, modes=False, mtimes=False, reads_per_file=6,
                  max_read_files=80, seed=1) -> None:
    """Assert that ``mnt`` shows exactly ``src``: listing, sha256 of every
    file, type and size (and permission bits / integer mtimes when the
    format keeps them), and random-offset reads."""
    want, got = listing(src), listing(mnt)
    assert sorted(got.items()) == sorted(want.items()), _diff(want, got)
    problems = []
    files = sorted(p for p, k in want.items() if k == 'file')
    for rel in files:
        s, m = os.stat(os.path.join(src, rel)), os.stat(os.path.join(mnt, rel))
        if not stat.S_ISREG(m.st_mode) or m.st_size != s.st_size:
            problems.append(f'{rel}: mode {oct(m.st_mode)} size {m.st_size}, source '
                            f'{oct(s.st_mode)} size {s.st_size}')
            continue
        if modes and stat.S_IMODE(m.st_mode) != stat.S_IMODE(s.st_mode):
            problems.append(f'{rel}: permissions {oct(m.st_mode)}, source {oct(s.st_mode)}')
        if mtimes and int(m.st_mtime) != int(s.st_mtime):
            problems.append(f'{rel}: mtime {m.st_mtime}, source {s.st_mtime}')
        if sha256(os.path.join(mnt, rel)) != sha256(os.path.join(src, rel)):
            problems.append(f'{rel}: contents differ (sha256)')
    for rel in (p for p, k in want.items() if k == 'dir'):
        if not stat.S_ISDIR(os.stat(os.path.join(mnt, rel)).st_mode):
            problems.append(f'{rel}: not a directory in the mount')
    rng = random.Random(seed)
    sized = sorted(files, key=lambda r: -os.path.getsize(os.path.join(src, r)))
    chosen = sized[:max_read_files // 2] + rng.sample(sized, min(len(sized),
                                                                 max_read_files // 2))
    for rel in dict.fromkeys(chosen):
        size = os.path.getsize(os.path.join(src, rel))
        with open(os.path.join(src, rel), 'rb') as fs, open(os.path.join(mnt, rel), 'rb') as fm:
            for _ in range(reads_per_file):
                off = rng.randrange(0, size + 10)
                n = rng.choice((1, 17, 4096, 65536, 200_000))
                a, b = os.pread(fs.fileno(), n, off), os.pread(fm.fileno(), n, off)
                if a != b:
                    problems.append(f'{rel}: pread({n}, {off}) gave {len(b)} bytes that '
                                    f'differ from the source\'s {len(a)}')
                    break
    assert not problems, f'{len(problems)} differences:\n  ' + '\n  '.join(problems[:30])


def _diff(want, got) -> str:
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    kinds = sorted(p for p in set(want) & set(got) if want[p] != got[p])
    return (f'listing differs: {len(missing)} missing {missing[:10]}, {len(extra)} extra '
            f'{extra[:10]}, {len(kinds)} of another type {kinds[:10]}')


# ---------------------------------------------------------------- mounts

def mounted(path: str) -> bool:
    path = os.path.realpath(path)
    with open('/proc/self/mountinfo') as f:
        return any(line.split()[4].encode().decode('unicode_escape') == path for line in f)


def wait_mounted(path: str, proc: subprocess.Popen | None, log: str,
                 timeout=MOUNT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if mounted(path):
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f'the command exited {proc.returncode} without mounting '
                                 f'{path}:\n{tail(log)}')
        time.sleep(0.05)
    raise AssertionError(f'{path} not mounted after {timeout} s:\n{tail(log)}')


def unmount(path: str, timeout=30.0) -> None:
    """Unmount a mount this scenario made (lazily as a last resort)."""
    if not mounted(path):
        return
    subprocess.run(['umount', path], capture_output=True)
    deadline = time.monotonic() + timeout
    while mounted(path) and time.monotonic() < deadline:
        time.sleep(0.1)
        subprocess.run(['umount', path], capture_output=True)
    if mounted(path):
        subprocess.run(['umount', '-l', path], capture_output=True)


def stop(proc: subprocess.Popen, timeout=30.0) -> int:
    """Wait for a server we started to exit after its unmount; kill it (by
    its pid) if it does not, and say so."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f'pid {proc.pid} did not exit within {timeout} s of its '
                             f'unmount; killed') from None


def processes_with_arg(arg: str) -> list[int]:
    """Pids whose command line has ``arg`` (a path unique to this scenario: a
    daemon it started, which detached from its parent)."""
    out = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                if arg.encode() in f.read().split(b'\0'):
                    out.append(int(pid))
        except OSError:
            pass
    return out


def tail(path: str, n=40) -> str:
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-n:])
    except OSError:
        return '(no log)'
