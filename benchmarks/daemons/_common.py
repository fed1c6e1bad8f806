"""Shared bits of the daemon scripts (kept free of any FUSE import)."""
from __future__ import annotations

import argparse
import os
import stat
import sys

ATTR_FIELDS = ('st_mode', 'st_nlink', 'st_uid', 'st_gid', 'st_rdev', 'st_size',
               'st_blksize', 'st_blocks', 'st_atime_ns', 'st_mtime_ns', 'st_ctime_ns')
OPEN_FLAG_MASK = ~(os.O_CREAT | os.O_EXCL | os.O_NOCTTY | os.O_TRUNC | os.O_NOFOLLOW)


def parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc)
    p.add_argument('source')
    p.add_argument('mountpoint')
    p.add_argument('--fsname', default='bench')
    return p


def fill_attr(a, st, ino, root_ino):
    """Copy an os.stat_result into a pyfuse3/llfuse-style EntryAttributes."""
    for f in ATTR_FIELDS:
        setattr(a, f, getattr(st, f))
    a.st_ino = 1 if ino == root_ino else ino
    a.generation = 0
    a.entry_timeout = 0
    a.attr_timeout = 0
    return a


def dtype_mode(entry) -> int:
    """File type of a DirEntry without a stat (d_type)."""
    if entry.is_dir(follow_symlinks=False):
        return stat.S_IFDIR
    if entry.is_symlink():
        return stat.S_IFLNK
    if entry.is_file(follow_symlinks=False):
        return stat.S_IFREG
    return stat.S_IFMT(entry.stat(follow_symlinks=False).st_mode)


def ready(msg: str):
    print(msg, file=sys.stderr, flush=True)
