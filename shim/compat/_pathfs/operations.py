"""The path layer's operations: fuseshim's (inode based) Operations running a
path-based filesystem the way libfuse's high-level library (lib/fuse.c) does.

Every request's inode is turned into a path through the node table
(nodes.py), the filesystem's operation is called with it through the front
end (frontend.FUSE: how it is called is the flavour's), and the result goes
back as fuseshim's reply types; open files and directories are handles.py's.
Also libfuse's: the setattr sequence chmod/chown/truncate/utimens/getattr,
open files hidden as ``.fuse_hiddenXXXXXXXXYYYYYYYY`` when unlinked or
renamed over, buffered or offset-driven readdir, and the defaults for
operations a filesystem leaves out.
"""
import ctypes
import errno
import logging
import operator
import os
import stat
import threading

import fuseshim as _fs
from fuseshim._core import _entry_from_stat_dict
from fuseshim.operations import Operations as _CoreOperations

from .handles import HandleTable, OpenDir, OpenFile
from .nodes import FUSE_ROOT_ID, FUSE_UNKNOWN_INO, NodeTable, Stale

log = logging.getLogger('fuse')

UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
FUSE_IOCTL_UNRESTRICTED = 1 << 1
FUSE_IOCTL_DIR = 1 << 4
PATH_MAX = 4096
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


def as_index(value):
    # ctypes integer fields reject floats: fusepy fails such a stat with EINVAL
    if isinstance(value, bool):
        return int(value)
    return operator.index(value)


# Stat dict keys other than the st_* fields fusepy knows (st_dev, st_atime_ns, ...)
# are accepted and ignored, as by fusepy (see _entry_from_stat_dict).


def _seconds_to_ns(val):
    """fusepy's conversion of a time in seconds (tv_sec = int(val), tv_nsec =
    int((val - tv_sec) * 1E9)), as one ns count: for the types (Decimal, ...)
    and sizes _entry_from_stat_dict does not convert in C itself."""
    sec = int(val)
    return sec * 1000000000 + int((val - sec) * 1E9)


_STATVFS_FIELDS = ('f_bsize', 'f_frsize', 'f_blocks', 'f_bfree', 'f_bavail', 'f_files',
                   'f_ffree', 'f_favail', 'f_namemax')


class PathOperations(_CoreOperations):
    """fuseshim (inode based) Operations running a path-based filesystem the
    way libfuse's high-level library does."""

    enable_readdirplus = False   # libfuse's fill_dir answers READDIRPLUS without attributes

    def __init__(self, fuse, threaded):
        self.f = fuse
        # Per-request shortcuts: these are fixed before the layer is made, and
        # every attribute hop saved counts on the LOOKUP/GETATTR path.
        self.conf = fuse.conf
        self.encoding = fuse.encoding
        self.errors = fuse.errors
        self.use_ns = fuse.use_ns
        self._op = fuse._dispatcher()     # _op(name, *args): what the operation returned
        # the operations object when _op(name, ...) is getattr(it, name)(...):
        # LOOKUP and GETATTR then call the filesystem's getattr directly
        self._ops_by_name = fuse._by_name()
        self._registered = fuse._registered
        self.nodes = NodeTable(threaded)
        # single-threaded (nothreads): INIT is answered by fuseshim's reader
        # (during mount(2) on the sync path), but the filesystem's init runs
        # later on the thread that called FUSE(), before any other request
        self.threaded = threaded
        self.init_deferred = False
        self.handles = HandleTable()
        self._file = self.handles.file
        self._dir = self.handles.dir
        # libfuse locks the paths an operation works on (its "treelock"), so a
        # release and an unlink/rename of the same file never interleave.
        # One lock for the operations that move names (and release) does the same.
        self.treelock = threading.RLock()
        self._note_owner_mode()

    # -- plumbing
    def _run(self, fn, *args):
        """Call fn; map its failure to an errno the way fusepy's _wrapper
        does.  (fuse_get_context() asks fuseshim for the request the calling
        thread is handling: nothing to set up per call.)"""
        try:
            return fn(*args)
        except _fs.FUSEError:
            raise
        except BaseException as e:
            raise self._failure(e, fn) from None

    def _failure(self, e, fn):
        """The FUSEError answering an operation ``fn`` (a function or its name)
        that raised ``e``."""
        if isinstance(e, Stale):
            return _fs.FUSEError(errno.ESTALE)
        name = getattr(fn, '__name__', fn)
        if isinstance(e, OSError):
            if isinstance(e.errno, int) and e.errno > 0:
                log.debug('FUSE operation %s raised a %s, returning errno %s.',
                          name, type(e), e.errno, exc_info=e)
                return _fs.FUSEError(e.errno)
            log.error('FUSE operation %s raised an OSError with negative errno %s, returning '
                      'errno.EINVAL.', name, e.errno, exc_info=e)
            return _fs.FUSEError(errno.EINVAL)
        if isinstance(e, Exception):
            log.error('Uncaught exception from FUSE operation %s, returning errno.EINVAL.',
                      name, exc_info=e)
            return _fs.FUSEError(errno.EINVAL)
        self.f._critical(e)
        return _fs.FUSEError(errno.EFAULT)

    def _status(self, name, *args):
        """Invoke an operation whose int result is 0 or -errno."""
        r = self._op(name, *args)
        if isinstance(r, int) and not isinstance(r, bool) and r < 0:
            raise _fs.FUSEError(-r)
        return r

    def _has(self, name):
        return name in self._registered

    def _decode(self, b):
        return None if b is None else b.decode(self.encoding, self.errors)

    def _path(self, nid, name=None):
        return self.nodes.path(nid, name).decode(self.encoding, self.errors)

    def _path_nullok(self, nid):
        if self.conf.nullpath_ok:
            return None
        try:
            return self._path(nid)
        except Stale:
            return None

    def _user_fh(self, h):
        return h.fi if self.f.raw_fi else h.fh

    # -- attributes
    def _fill(self, attrs):
        """A stat dict (fusepy's getattr result) -> EntryAttributes, the way
        fusepy's set_st_attrs fills a zeroed struct stat.  This runs for every
        LOOKUP and GETATTR, hence the loop in C (the rules: _entry_from_stat_dict)."""
        return _entry_from_stat_dict(attrs, self.use_ns, _seconds_to_ns)

    def _fs_getattr(self, path, fh=None):
        """The filesystem's getattr(path, fh) -> EntryAttributes, with a call
        less than _op where the filesystem is called by name."""
        ops = self._ops_by_name
        if ops is not None:
            try:
                fn = ops.getattr
            except AttributeError:
                fn = None
            if fn is not None:
                return _entry_from_stat_dict(fn(path, fh), self.use_ns, _seconds_to_ns)
        return _entry_from_stat_dict(self._op('getattr', path, fh), self.use_ns, _seconds_to_ns)

    def _note_owner_mode(self):
        """Whether _apply_owner_mode has anything to do: the options are set
        at mount and may change in init(); every LOOKUP and GETATTR asks."""
        conf = self.conf
        self.owner_mode_set = bool(conf.set_mode or conf.set_uid or conf.set_gid)

    def _apply_owner_mode(self, e):
        """The umask=, uid= and gid= options."""
        conf = self.conf
        if conf.set_mode:
            e.st_mode = stat.S_IFMT(e.st_mode) | (0o777 & ~conf.umask)
        if conf.set_uid:
            e.st_uid = conf.uid
        if conf.set_gid:
            e.st_gid = conf.gid

    def _lookup_path(self, parent, name, path, fh=None):
        """libfuse's lookup_path: getattr, then find (or make) the node."""
        conf = self.conf
        if 'getattr' not in self._registered:
            raise _fs.FUSEError(errno.ENOSYS)
        e = self._fs_getattr(path, fh)
        want = None
        if conf.use_ino and name is not None:
            ino = e.st_ino
            if 1 < ino < (1 << 64) and ino != FUSE_UNKNOWN_INO:
                want = ino
        node = self.nodes.find(parent, name, want)
        e.st_ino = node.id            # the kernel's inode number for this node
        e.generation = node.generation
        e.entry_timeout = conf.entry_timeout
        e.attr_timeout = conf.attr_timeout
        if self.owner_mode_set:
            self._apply_owner_mode(e)
        return e, node

    # -- init / destroy
    def init(self):
        if not self.threaded:
            self.init_deferred = True
            return
        try:
            self._run(self.f._init_fs)
        finally:
            self._note_owner_mode()

    def run_deferred_init(self) -> bool:
        """nothreads: the filesystem's init, on the serving thread.  False
        if it raised (recorded as the critical exception; FUSE() re-raises)."""
        if not self.init_deferred:
            return True
        self.init_deferred = False
        try:
            self.f._init_fs()
        except BaseException:
            return False
        finally:
            self._note_owner_mode()
        return True

    def destroy(self):
        if self._has('destroy'):
            try:
                self._run(self._op, 'destroy', '/')
            except _fs.FUSEError:
                pass

    # -- names
    def lookup(self, parent, name, ctx):
        nid, nm = parent, name
        if name == b'.':
            nm = None
        elif name == b'..':
            with self.nodes.lock:
                p = self.nodes.get(parent)
                nid = p.parent.id if p.parent is not None else FUSE_ROOT_ID
            nm = None
        try:
            # _run and the body in line: LOOKUP and GETATTR are the hottest
            # requests, and every call saved counts
            try:
                path = self.nodes.path(nid, nm).decode(self.encoding, self.errors)
                return self._lookup_path(nid, nm, path)[0]
            except _fs.FUSEError:
                raise
            except BaseException as e:
                # the filesystem's getattr raised: the peers log that name
                raise self._failure(e, 'getattr') from None
        except _fs.FUSEError as e:
            neg = self.conf.negative_timeout
            if e.errno == errno.ENOENT and neg:
                ea = _fs.EntryAttributes()
                ea.st_ino = 0
                ea.entry_timeout = neg
                return ea
            raise

    def forget(self, inode_list):
        for nid, n in inode_list:
            self.nodes.forget(nid, n)

    def getattr(self, inode, ctx):
        try:        # in line, as in lookup()
            if 'getattr' not in self._registered:
                raise _fs.FUSEError(errno.ENOSYS)
            e = self._fs_getattr(self.nodes.path(inode).decode(self.encoding, self.errors), None)
            self._finish_attr(e, inode)
            return e
        except _fs.FUSEError:
            raise
        except BaseException as e:
            raise self._failure(e, 'getattr') from None

    def _finish_attr(self, e, inode):
        # One dict read and one flag: no lock needed to look (a hidden node's
        # state may change right after either way).
        node = self.nodes.by_id.get(inode)
        if node is not None and node.is_hidden and e.st_nlink > 0:
            e.st_nlink -= 1
        conf = self.conf
        if not conf.use_ino:          # use_ino: st_ino is the filesystem's
            e.st_ino = inode
        if self.owner_mode_set:
            self._apply_owner_mode(e)
        e.attr_timeout = conf.attr_timeout

    def setattr(self, inode, attr, fields, fh, ctx):
        return self._run(self._do_setattr, inode, attr, fields, fh)

    def _do_setattr(self, inode, attr, fields, fh):
        h = self._file(fh) if fh is not None and fh in self.handles.files else None
        ufh = self._user_fh(h) if h is not None else None
        path = self._path_nullok(inode) if h is not None else self._path(inode)
        if fields.update_mode:
            self._need('chmod')
            self._status('chmod', path, attr.st_mode)
        if fields.update_uid or fields.update_gid:
            self._need('chown')
            uid = attr.st_uid if fields.update_uid else -1
            gid = attr.st_gid if fields.update_gid else -1
            self._status('chown', path, uid, gid)
        if fields.update_size:
            self._need('truncate')
            self.f._truncate(path, attr.st_size, h is not None, ufh)
        if fields.update_atime or fields.update_mtime:
            self._need('utimens')
            times = (self._time(attr.st_atime_ns, fields.update_atime),
                     self._time(attr.st_mtime_ns, fields.update_mtime))
            self._status('utimens', path, times)
        if not self._has('getattr'):
            raise _fs.FUSEError(errno.ENOSYS)
        e = self._fs_getattr(path, ufh)
        self._finish_attr(e, inode)
        return e

    def _time(self, ns, given):
        sec, nsec = divmod(ns, 1000000000) if given else (0, UTIME_OMIT)
        if self.use_ns:
            return sec * 10 ** 9 + nsec
        return sec + nsec / 1E9

    def _need(self, name):
        if not self._has(name):
            raise _fs.FUSEError(errno.ENOSYS)

    def readlink(self, inode, ctx):
        def do():
            self._need('readlink')
            ret = self._op('readlink', self._path(inode))
            return ret.encode(self.encoding, self.errors)[:PATH_MAX]
        return self._run(do)

    def mknod(self, parent, name, mode, rdev, ctx):
        def do():
            path = self._path(parent, name)
            if stat.S_ISREG(mode) and self._has('create'):
                # libfuse makes regular files with create() + release()
                fi = self.f._flavour.file_info_type(os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                try:
                    ufh = self.f._create(path, mode, fi)
                except (_fs.FUSEError, OSError) as e:
                    if e.errno != errno.ENOSYS:
                        raise
                else:
                    try:
                        return self._lookup_path(parent, name, path, ufh)[0]
                    finally:
                        self._release_quietly(path, ufh)
            self._need('mknod')
            self._status('mknod', path, mode, rdev)
            return self._lookup_path(parent, name, path)[0]
        return self._run(do)

    def mkdir(self, parent, name, mode, ctx):
        def do():
            path = self._path(parent, name)
            self._need('mkdir')
            self._status('mkdir', path, mode)
            return self._lookup_path(parent, name, path)[0]
        return self._run(do)

    def _is_open(self, parent, name):
        with self.nodes.lock:
            node = self.nodes.lookup(parent, name)
            return node is not None and node.open_count > 0

    def _hide(self, oldpath, parent, name):
        """libfuse's hide_node: rename an open file to an unused
        .fuse_hidden name instead of removing it; release() unlinks it."""
        newpath = newname = None
        for _ in range(10):
            with self.nodes.lock:
                node = self.nodes.lookup(parent, name)
                if node is None:
                    break
                while True:
                    self.nodes.hidectr += 1
                    newname = b'.fuse_hidden%08x%08x' % (node.id & 0xffffffff,
                                                         self.nodes.hidectr & 0xffffffff)
                    if self.nodes.lookup(parent, newname) is None:
                        break
                try:
                    candidate = self._path(parent, newname)
                except Stale:
                    break
            try:
                self._fs_getattr(candidate, None)
            except (_fs.FUSEError, OSError) as e:
                if e.errno == errno.ENOENT:
                    newpath = candidate
                break
            # the name exists in the filesystem: try another
        if newpath is None:
            raise _fs.FUSEError(errno.EBUSY)
        self.f._rename(oldpath, newpath, 0)
        self.nodes.rename(parent, name, parent, newname, hide=True)

    def unlink(self, parent, name, ctx):
        def do():
            with self.treelock:
                return undo()

        def undo():
            path = self._path(parent, name)
            if not self.conf.hard_remove and self._is_open(parent, name):
                self._need('rename')
                self._hide(path, parent, name)
            else:
                self._need('unlink')
                self._status('unlink', path)
                self.nodes.remove(parent, name)
        self._run(do)

    def rmdir(self, parent, name, ctx):
        def do():
            with self.treelock:
                return undo()

        def undo():
            path = self._path(parent, name)
            self._need('rmdir')
            self._status('rmdir', path)
            self.nodes.remove(parent, name)
        self._run(do)

    def symlink(self, parent, name, target, ctx):
        def do():
            path = self._path(parent, name)
            self._need('symlink')
            self._status('symlink', path, self._decode(target))
            return self._lookup_path(parent, name, path)[0]
        return self._run(do)

    def rename(self, p_old, n_old, p_new, n_new, flags, ctx):
        def do():
            with self.treelock:
                return undo()

        def undo():
            if flags and not self.f._flavour.rename_flags:
                # libfuse 2 has no RENAME2: the kernel turns its ENOSYS into EINVAL
                raise _fs.FUSEError(errno.EINVAL)
            oldpath = self._path(p_old, n_old)
            newpath = self._path(p_new, n_new)
            self._need('rename')
            if (not self.conf.hard_remove and not flags & RENAME_EXCHANGE
                    and self._is_open(p_new, n_new)):
                self._hide(newpath, p_new, n_new)
            self.f._rename(oldpath, newpath, flags)
            if flags & RENAME_EXCHANGE:
                self.nodes.exchange(p_old, n_old, p_new, n_new)
            else:
                self.nodes.rename(p_old, n_old, p_new, n_new)
        self._run(do)

    def link(self, inode, new_parent, new_name, ctx):
        def do():
            oldpath = self._path(inode)
            newpath = self._path(new_parent, new_name)
            self._need('link')
            self._status('link', newpath, oldpath)
            return self._lookup_path(new_parent, new_name, newpath)[0]
        return self._run(do)

    # -- files
    def _file_info(self, fi, h_id):
        conf = self.conf
        return _fs.FileInfo(fh=h_id, direct_io=bool(fi.direct_io or conf.direct_io),
                            keep_cache=bool(fi.keep_cache or conf.kernel_cache),
                            nonseekable=bool(fi.nonseekable))

    def open(self, inode, flags, ctx):
        def do():
            path = self._path(inode)
            fi = self.f._flavour.file_info_type(flags)
            if self._has('open'):
                self.f._open(path, fi)
            with self.nodes.lock:
                self.nodes.get(inode).open_count += 1
            hid = self.handles.add_file(OpenFile(inode, fi.fh, fi))
            return self._file_info(fi, hid)
        return self._run(do)

    def create(self, parent, name, mode, flags, ctx):
        def do():
            path = self._path(parent, name)
            self._need('create')
            fi = self.f._flavour.file_info_type(flags)
            ufh = self.f._create(path, mode, fi)
            try:
                e, node = self._lookup_path(parent, name, path, ufh)
            except BaseException:
                self._release_quietly(path, ufh)
                raise
            if not stat.S_ISREG(e.st_mode):
                self._release_quietly(path, ufh)
                self.nodes.forget(node.id, 1)
                raise _fs.FUSEError(errno.EIO)
            with self.nodes.lock:
                node.open_count += 1
            hid = self.handles.add_file(OpenFile(node.id, fi.fh, fi))
            return self._file_info(fi, hid), e
        return self._run(do)

    def _release_quietly(self, path, ufh):
        if self._has('release'):
            try:
                self._op('release', path, ufh)
            except Exception:
                pass

    def read(self, fh, off, size):
        h = self._file(fh)

        def do():
            self._need('read')
            ret = self._op('read', self._path_nullok(h.ino), size, off, self._user_fh(h))
            if not ret:
                return b''
            assert len(ret) <= size, \
                'actual amount read %d greater than expected %d' % (len(ret), size)
            return bytes(ret)
        return self._run(do)

    def write(self, fh, off, buf):
        h = self._file(fh)

        def do():
            self._need('write')
            r = self._op('write', self._path_nullok(h.ino), buf, off, self._user_fh(h)) or 0
            if r < 0:
                raise _fs.FUSEError(-r)
            return r
        return self._run(do)

    def flush(self, fh):
        h = self._file(fh)

        def do():
            self._need('flush')
            self._status('flush', self._path_nullok(h.ino), self._user_fh(h))
        self._run(do)

    def release(self, fh):
        h = self.handles.pop_file(fh)
        if h is None:
            return

        def do():
            with self.treelock:
                return undo()

        def undo():
            path = self._path_nullok(h.ino)
            if self._has('release'):
                try:
                    self._op('release', path, self._user_fh(h))
                except _fs.FUSEError:
                    pass
            unlink_hidden = False
            with self.nodes.lock:
                node = self.nodes.by_id.get(h.ino)
                if node is not None:
                    node.open_count -= 1
                    if node.is_hidden and not node.open_count:
                        unlink_hidden = True
                        node.is_hidden = False
            if unlink_hidden and self._has('unlink'):
                if path is None and self.conf.nullpath_ok:
                    try:
                        path = self._path(h.ino)
                    except Stale:
                        path = None
                if path is not None:
                    try:
                        self._op('unlink', path)
                    except Exception:
                        pass
        try:
            self._run(do)
        except _fs.FUSEError:
            pass

    def fsync(self, fh, datasync):
        h = self._file(fh)
        self._sync('fsync', h.ino, datasync, self._user_fh(h))

    def _sync(self, name, ino, datasync, user_fh):
        """fsync / fsyncdir: the filesystem's method of that name with the
        path (or None: nullpath_ok), fusepy's int datasync and its handle."""
        def do():
            self._need(name)
            self._status(name, self._path_nullok(ino), int(datasync), user_fh)
        self._run(do)

    def fallocate(self, fh, mode, off, length):
        h = self._file(fh)

        def do():
            self._need('fallocate')
            self._status('fallocate', self._path_nullok(h.ino), mode, off, length,
                         self._user_fh(h))
        self._run(do)

    def flock(self, inode, fh, owner, op, ctx):
        h = self._file(fh)

        def do():
            self._status('flock', self._path_nullok(h.ino), self._user_fh(h), op)
        self._run(do)

    def ioctl(self, inode, fh, cmd, arg, in_data, out_size, flags, ctx):
        def do():
            if flags & FUSE_IOCTL_UNRESTRICTED:
                raise _fs.FUSEError(errno.EPERM)
            if flags & FUSE_IOCTL_DIR:
                h = self._dir(fh)
                ufh = h.fh
            else:
                h = self._file(fh)
                ufh = self._user_fh(h)
            self._need('ioctl')
            size = max(len(in_data), out_size)
            buf = ctypes.create_string_buffer(bytes(in_data), size) if size else None
            data = ctypes.addressof(buf) if buf is not None else None
            ret = self._op('ioctl', self._path_nullok(inode), cmd, arg or None, ufh, flags,
                           data) or 0
            if ret < 0:
                raise _fs.FUSEError(-ret)
            return ret, (buf.raw[:out_size] if buf is not None and out_size else b'')
        return self._run(do)

    # -- directories
    def opendir(self, inode, ctx):
        def do():
            path = self._path(inode)
            fh = self._op('opendir', path) if self._has('opendir') else 0
            return self.handles.add_dir(OpenDir(inode, fh))
        return self._run(do)

    def readdir(self, fh, off, token):
        dh = self._dir(fh)
        with dh.lock:
            if not off:
                dh.filled = False
            if not dh.filled:
                self._run(self._readdir_fill, dh, off, token)
            if dh.filled:
                for pos in range(off, len(dh.entries)):
                    name, mode, ino = dh.entries[pos]
                    if not _fs.readdir_reply(token, name, self._dirent(mode, ino), pos + 1):
                        break

    @staticmethod
    def _dirent(mode, ino):
        e = _fs.EntryAttributes()
        e.st_ino = ino
        e.st_mode = mode
        return e

    def _readdir_fill(self, dh, off, token):
        self._need('readdir')
        f = self.f
        path = self._path_nullok(dh.ino)
        dh.entries = []
        items = f._readdir(path, off, dh.fh)
        stats = f._dirent_stats()
        offsets_honoured = f._offsets_honoured
        direct = False
        warned = False
        try:
            for item in items:
                if isinstance(item, str):
                    name, st, ioff = item, stats.for_name(), 0
                else:
                    name, attrs, ioff = item
                    st = stats.for_attrs(attrs)
                    if ioff and not offsets_honoured:
                        if not warned:
                            warned = True
                        ioff = 0
                mode = st.get('st_mode', 0) if st is not None else 0
                ino = self._dirent_ino(dh.ino, name, st)
                bname = name.encode(f.encoding, f.errors)
                if ioff:
                    if dh.filled:
                        raise _fs.FUSEError(errno.EIO)
                    direct = True
                    if not _fs.readdir_reply(token, bname, self._dirent(as_index(mode), ino), ioff):
                        break
                else:
                    dh.filled = True
                    dh.entries.append((bname, as_index(mode), ino))
        except BaseException:
            dh.filled = False
            raise
        finally:
            close = getattr(items, 'close', None)
            if close is not None:
                close()
        if warned:
            log.warning('When returning non-zero offsets from readdir, you should use '
                        'readdir_with_offset instead.')
        if direct and dh.filled:
            raise _fs.FUSEError(errno.EIO)

    def _dirent_ino(self, dir_ino, name, st):
        conf = self.conf
        if conf.use_ino:
            if st is None:
                return FUSE_UNKNOWN_INO
            return as_index(st.get('st_ino', 0))
        if conf.readdir_ino:
            with self.nodes.lock:
                node = self.nodes.lookup(dir_ino, name.encode(self.encoding, self.errors))
                return node.id if node is not None else FUSE_UNKNOWN_INO
        return FUSE_UNKNOWN_INO

    def releasedir(self, fh):
        dh = self.handles.pop_dir(fh)
        if dh is None:
            return

        def do():
            if self._has('releasedir'):
                self._op('releasedir', self._path_nullok(dh.ino), dh.fh)
        try:
            self._run(do)
        except _fs.FUSEError:
            pass

    def fsyncdir(self, fh, datasync):
        dh = self._dir(fh)
        self._sync('fsyncdir', dh.ino, datasync, dh.fh)

    # -- misc
    def statfs(self, ctx):
        def do():
            sv = _fs.StatvfsData()
            for k in _STATVFS_FIELDS:
                setattr(sv, k, 0)
            if not self._has('statfs'):
                sv.f_namemax = 255
                sv.f_bsize = 512
                return sv
            attrs = self._op('statfs', '/')
            for key, val in attrs.items():
                if key in _STATVFS_FIELDS:
                    setattr(sv, key, as_index(val))
            return sv
        return self._run(do)

    def setxattr(self, inode, name, value, ctx):
        def do():
            self._need('setxattr')
            self._status('setxattr', self._path(inode), self._decode(name), value, 0)
        self._run(do)

    def getxattr(self, inode, name, ctx):
        def do():
            self._need('getxattr')
            ret = self._op('getxattr', self._path(inode), self._decode(name))
            if not isinstance(ret, (bytes, bytearray)):
                raise TypeError(f'getxattr must return bytes, not {type(ret).__name__}')
            return bytes(ret)
        return self._run(do)

    def listxattr(self, inode, ctx):
        def do():
            self._need('listxattr')
            attrs = list(self._op('listxattr', self._path(inode)) or '')
            '\x00'.join(attrs)     # as fusepy: the names must be str
            return [n.encode(self.encoding, self.errors) for n in attrs]
        return self._run(do)

    def removexattr(self, inode, name, ctx):
        def do():
            self._need('removexattr')
            self._status('removexattr', self._path(inode), self._decode(name))
        self._run(do)

    def access(self, inode, mode, ctx):
        def do():
            self._need('access')
            self._status('access', self._path(inode), mode)
            return True
        return self._run(do)
