"""EntryAttributes built from stat results: from_stat (os.stat_result or any
stat-like object), lstat (lstat(2), or fstatat(2) relative to dir_fd,
straight into the attributes) and fstat (of an O_PATH fd), against os.lstat,
and through a real mount."""
from __future__ import annotations

import errno
import os
import pathlib
import stat
import types

import pytest

import fuseshim
from fuseshim import ROOT_INODE, EntryAttributes, FUSEError
from conftest import mounted

FIELDS = ('st_ino', 'st_mode', 'st_nlink', 'st_uid', 'st_gid', 'st_rdev', 'st_size',
          'st_blksize', 'st_blocks', 'st_atime_ns', 'st_mtime_ns', 'st_ctime_ns')


def _as_dict(a):
    return {f: getattr(a, f) for f in FIELDS}


def _expected(st):
    return {f: getattr(st, f) for f in FIELDS}


@pytest.fixture
def tree(tmp_path):
    (tmp_path / 'file').write_bytes(b'x' * 5000)
    (tmp_path / 'dir').mkdir()
    os.symlink('file', tmp_path / 'link')
    os.utime(tmp_path / 'file', ns=(1_234_567_891_123_456_789, -1_000_000_001))
    return tmp_path


@pytest.mark.parametrize('name', ['file', 'dir', 'link'])
def test_lstat_matches_os_lstat(tree, name):
    path = tree / name
    assert _as_dict(EntryAttributes.lstat(path)) == _expected(os.lstat(path))


def test_lstat_of_a_device_keeps_rdev():
    a = EntryAttributes.lstat('/dev/null')
    assert stat.S_ISCHR(a.st_mode) and a.st_rdev == os.lstat('/dev/null').st_rdev != 0


@pytest.mark.parametrize('kind', [bytes, str, pathlib.Path])
def test_lstat_path_types_and_timeouts(tree, kind):
    path = str(tree / 'file')
    a = EntryAttributes.lstat(kind(os.fsencode(path)) if kind is bytes else kind(path),
                              entry_timeout=0, attr_timeout=1.5)
    assert (a.entry_timeout, a.attr_timeout) == (0, 1.5)
    assert a.st_size == 5000


@pytest.mark.parametrize('name, exc', [('missing', FileNotFoundError),
                                       ('file/below', NotADirectoryError)])
def test_lstat_errors_name_the_file(tree, name, exc):
    with pytest.raises(exc) as info:
        EntryAttributes.lstat(tree / name)
    assert info.value.filename == tree / name


def test_lstat_rejects_embedded_nul(tree):
    with pytest.raises(ValueError, match='null byte'):
        EntryAttributes.lstat(os.fsencode(tree / 'file') + b'\0ignored')


@pytest.mark.parametrize('name', ['file', 'dir', 'link'])
def test_lstat_relative_to_dir_fd_matches_os_lstat(tree, name):
    dir_fd = os.open(tree, os.O_PATH | os.O_DIRECTORY)
    try:
        a = EntryAttributes.lstat(name, dir_fd=dir_fd, entry_timeout=0, attr_timeout=2)
        assert _as_dict(a) == _expected(os.lstat(name, dir_fd=dir_fd))
        assert (a.entry_timeout, a.attr_timeout) == (0, 2)
        with pytest.raises(FileNotFoundError) as info:   # as os.lstat: ENOENT, named
            EntryAttributes.lstat('missing', dir_fd=dir_fd)
        assert info.value.filename == 'missing'
        with pytest.raises(FileNotFoundError):           # no AT_EMPTY_PATH: fstat() is for that
            EntryAttributes.lstat('', dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


@pytest.mark.parametrize('name', ['file', 'dir', 'link'])
def test_fstat_of_an_o_path_fd_matches_os_lstat(tree, name):
    fd = os.open(tree / name, os.O_PATH | os.O_NOFOLLOW)
    try:
        a = EntryAttributes.fstat(fd, attr_timeout=0)
        assert _as_dict(a) == _expected(os.lstat(tree / name)) and a.attr_timeout == 0
    finally:
        os.close(fd)


def test_fd_arguments_are_checked(tree):
    with pytest.raises(ValueError, match='dir_fd must be a file descriptor'):
        EntryAttributes.lstat('file', dir_fd=-100)       # AT_FDCWD is not an fd
    with pytest.raises(ValueError, match='fd must be a file descriptor'):
        EntryAttributes.fstat(-1)
    with pytest.raises(TypeError):
        EntryAttributes.lstat('file', dir_fd='3')
    fd = os.open(tree, os.O_PATH)
    os.close(fd)
    with pytest.raises(OSError) as info:                 # closed: EBADF, no crash
        EntryAttributes.fstat(fd)
    assert info.value.errno == errno.EBADF


def test_from_stat_takes_stat_result_and_stat_like_objects(tree):
    st = os.lstat(tree / 'file')
    assert _as_dict(EntryAttributes.from_stat(st)) == _expected(st)
    like = types.SimpleNamespace(**_expected(st))
    assert _as_dict(EntryAttributes.from_stat(like)) == _expected(st)
    with pytest.raises(AttributeError):
        EntryAttributes.from_stat(types.SimpleNamespace(st_mode=0o644))


class LstatFS(fuseshim.Operations):
    """Mirrors one backing directory's top level with EntryAttributes.lstat."""

    def __init__(self, root):
        self.root = os.fsencode(root)
        self.paths = {ROOT_INODE: self.root}

    def _attr(self, path, inode=None):
        try:
            a = EntryAttributes.lstat(path, entry_timeout=0, attr_timeout=0)
        except OSError as e:
            raise FUSEError(e.errno) from None
        if inode is not None:
            a.st_ino = inode
        else:
            self.paths[a.st_ino] = path
        return a

    def lookup(self, parent_inode, name, ctx):
        return self._attr(self.paths[parent_inode] + b'/' + name)

    def getattr(self, inode, ctx):
        return self._attr(self.paths[inode], inode)

    def forget(self, inode_list):
        pass


class FdLstatFS(LstatFS):
    """The same, the way C passthrough_ll works: an O_PATH fd per inode,
    LOOKUP relative to the parent's fd, GETATTR of the inode's fd."""

    def __init__(self, root):
        super().__init__(root)
        self.fds = {ROOT_INODE: os.open(root, os.O_PATH | os.O_DIRECTORY)}

    def lookup(self, parent_inode, name, ctx):
        try:
            a = EntryAttributes.lstat(name, dir_fd=self.fds[parent_inode],
                                      entry_timeout=0, attr_timeout=0)
            if a.st_ino not in self.fds:
                self.fds[a.st_ino] = os.open(name, os.O_PATH | os.O_NOFOLLOW,
                                             dir_fd=self.fds[parent_inode])
        except OSError as e:
            raise FUSEError(e.errno) from None
        return a

    def getattr(self, inode, ctx):
        a = EntryAttributes.fstat(self.fds[inode], entry_timeout=0, attr_timeout=0)
        a.st_ino = inode
        return a

    def close(self):
        for fd in self.fds.values():
            os.close(fd)


@pytest.mark.parametrize('fs_class', [LstatFS, FdLstatFS])
def test_lstat_through_a_mount(tree, mnt, fs_class):
    fs = fs_class(tree)
    with mounted(fs, mnt):
        for name in ('file', 'dir', 'link'):
            seen, backing = os.lstat(os.path.join(mnt, name)), os.lstat(tree / name)
            for f in ('st_ino', 'st_mode', 'st_nlink', 'st_size', 'st_mtime_ns', 'st_uid'):
                assert getattr(seen, f) == getattr(backing, f), (name, f)
        with pytest.raises(FileNotFoundError):
            os.lstat(os.path.join(mnt, 'missing'))
    if hasattr(fs, 'close'):
        fs.close()
