# Data types handed to and returned by Operations handlers.  Names and
# attributes mirror pyfuse3 so code written for it reads the same.

cdef inline int64_t _ts_ns(timespec t) noexcept:
    return <int64_t>t.tv_sec * 1000000000 + t.tv_nsec

cdef inline void _set_ts(timespec *t, int64_t ns) noexcept:
    t.tv_sec = ns // 1000000000
    t.tv_nsec = ns % 1000000000


class FUSEError(Exception):
    """Raise from a handler to answer the request with ``errno``."""

    def __init__(self, errno_):
        self.errno = errno_
        super().__init__(errno_)

    def __str__(self):
        return os.strerror(self.errno)

    def __reduce__(self):
        return (FUSEError, (self.errno,))


_StatResult = os.stat_result


cdef Py_ssize_t _stat_slot(str name) except -1:
    """Where os.stat_result keeps a named-only field: a probe whose slot i holds i."""
    return getattr(_StatResult(tuple(range(_StatResult.n_fields))), name)


cdef Py_ssize_t SLOT_RDEV = _stat_slot('st_rdev'), SLOT_BLKSIZE = _stat_slot('st_blksize')
cdef Py_ssize_t SLOT_BLOCKS = _stat_slot('st_blocks'), SLOT_ATIME = _stat_slot('st_atime_ns')
cdef Py_ssize_t SLOT_MTIME = _stat_slot('st_mtime_ns'), SLOT_CTIME = _stat_slot('st_ctime_ns')


cdef inline object _stat_field(object st, bint exact, Py_ssize_t slot, str name):
    # os.stat_result is a tuple underneath, named-only fields included: reading
    # the slot beats an attribute lookup (other stat-like objects: getattr)
    return <object>PyTuple_GET_ITEM(st, slot) if exact else getattr(st, name)


cdef int _fd_arg(object value, str name) except -1:
    """An fd argument: an int >= 0 (a negative one would be AT_FDCWD or
    garbage to fstatat, not an error)."""
    cdef int fd = operator.index(value)
    if fd < 0:
        raise ValueError(f'{name} must be a file descriptor (>= 0), not {fd}')
    return fd


@cython.final
cdef class EntryAttributes:
    """Attributes of an inode plus the kernel cache timeouts (pyfuse3 names).

    ``path_fd`` (fuseshim only; -1: none): an O_PATH fd of the backing file,
    declared in a lookup-counting reply (lookup, mknod, mkdir, symlink, link,
    create): fuseshim answers the inode's GETATTRs in C with fstatat() until
    FORGET brings the lookups it saw to 0 (before forget() is called) or the
    session ends.  The filesystem keeps the fd open until then and closes it
    (docs/api.md)."""
    cdef fuse_entry_param e
    # an O_PATH fd of the backing file: GETATTRs answered in C (shim_pathfd.h)
    cdef public int path_fd

    def __cinit__(self):
        memset(&self.e, 0, sizeof(self.e))
        self.path_fd = -1
        self.e.attr_timeout = 300
        self.e.entry_timeout = 300
        self.e.attr.st_blksize = 4096
        self.e.attr.st_nlink = 1

    property st_ino:
        def __get__(self): return self.e.ino
        def __set__(self, v): self.e.ino = v; self.e.attr.st_ino = v
    property generation:
        def __get__(self): return self.e.generation
        def __set__(self, v): self.e.generation = v
    property entry_timeout:
        def __get__(self): return self.e.entry_timeout
        def __set__(self, v): self.e.entry_timeout = v
    property attr_timeout:
        def __get__(self): return self.e.attr_timeout
        def __set__(self, v): self.e.attr_timeout = v
    property st_mode:
        def __get__(self): return self.e.attr.st_mode
        def __set__(self, v): self.e.attr.st_mode = v
    property st_nlink:
        def __get__(self): return self.e.attr.st_nlink
        def __set__(self, v): self.e.attr.st_nlink = v
    property st_uid:
        def __get__(self): return self.e.attr.st_uid
        def __set__(self, v): self.e.attr.st_uid = v
    property st_gid:
        def __get__(self): return self.e.attr.st_gid
        def __set__(self, v): self.e.attr.st_gid = v
    property st_rdev:
        def __get__(self): return self.e.attr.st_rdev
        def __set__(self, v): self.e.attr.st_rdev = v
    property st_size:
        def __get__(self): return self.e.attr.st_size
        def __set__(self, v): self.e.attr.st_size = v
    property st_blksize:
        def __get__(self): return self.e.attr.st_blksize
        def __set__(self, v): self.e.attr.st_blksize = v
    property st_blocks:
        def __get__(self): return self.e.attr.st_blocks
        def __set__(self, v): self.e.attr.st_blocks = v
    property st_atime_ns:
        def __get__(self): return _ts_ns(self.e.attr.st_atim)
        def __set__(self, v): _set_ts(&self.e.attr.st_atim, v)
    property st_mtime_ns:
        def __get__(self): return _ts_ns(self.e.attr.st_mtim)
        def __set__(self, v): _set_ts(&self.e.attr.st_mtim, v)
    property st_ctime_ns:
        def __get__(self): return _ts_ns(self.e.attr.st_ctim)
        def __set__(self, v): _set_ts(&self.e.attr.st_ctim, v)
    property st_birthtime_ns:
        # Linux's struct stat (what FUSE replies carry) has no birth time:
        # accepted and dropped, reads 0 -- what pyfuse3 does on Linux, and
        # what programs written for BSD/macOS too (borg) rely on
        def __get__(self): return 0
        def __set__(self, v): operator.index(v)

    @staticmethod
    def from_stat(st, *, entry_timeout=None, attr_timeout=None):
        """Build from an ``os.stat_result`` (st_ino is copied too)."""
        cdef EntryAttributes a = EntryAttributes.__new__(EntryAttributes)
        cdef bint exact = type(st) is _StatResult
        a.e.ino = _stat_field(st, exact, 1, 'st_ino')
        a.e.attr.st_ino = a.e.ino
        a.e.attr.st_mode = _stat_field(st, exact, 0, 'st_mode')
        a.e.attr.st_nlink = _stat_field(st, exact, 3, 'st_nlink')
        a.e.attr.st_uid = _stat_field(st, exact, 4, 'st_uid')
        a.e.attr.st_gid = _stat_field(st, exact, 5, 'st_gid')
        a.e.attr.st_size = _stat_field(st, exact, 6, 'st_size')
        a.e.attr.st_rdev = _stat_field(st, exact, SLOT_RDEV, 'st_rdev')
        a.e.attr.st_blksize = _stat_field(st, exact, SLOT_BLKSIZE, 'st_blksize')
        a.e.attr.st_blocks = _stat_field(st, exact, SLOT_BLOCKS, 'st_blocks')
        _set_ts(&a.e.attr.st_atim, _stat_field(st, exact, SLOT_ATIME, 'st_atime_ns'))
        _set_ts(&a.e.attr.st_mtim, _stat_field(st, exact, SLOT_MTIME, 'st_mtime_ns'))
        _set_ts(&a.e.attr.st_ctim, _stat_field(st, exact, SLOT_CTIME, 'st_ctime_ns'))
        if entry_timeout is not None:
            a.e.entry_timeout = entry_timeout
        if attr_timeout is not None:
            a.e.attr_timeout = attr_timeout
        return a

    @staticmethod
    def lstat(path, *, dir_fd=None, entry_timeout=None, attr_timeout=None):
        """``from_stat(os.lstat(path, dir_fd=dir_fd))`` without the
        ``os.stat_result``: lstat(2) -- fstatat(2) relative to ``dir_fd``
        when given, as C passthrough filesystems look names up in their
        parent's O_PATH fd -- fills the attributes directly, skipping the 19
        Python objects and the nanosecond big-int arithmetic os.lstat spends
        per call (about half of a passthrough GETATTR's CPU).  ``path``:
        bytes, str or path-like.  Errors raise OSError with the errno and
        filename, as os.lstat does."""
        cdef bytes p = path if type(path) is bytes else os.fsencode(path)
        if memchr(<const char*>p, 0, PyBytes_GET_SIZE(p)) is not NULL:
            raise ValueError('lstat: embedded null byte')  # C would stop at it
        cdef const char *cp = p
        cdef int fd = -1
        if dir_fd is not None:
            fd = _fd_arg(dir_fd, 'dir_fd')
        cdef EntryAttributes a = EntryAttributes.__new__(EntryAttributes)
        cdef int rc
        with nogil:  # slow backing stores must not hold up other workers
            if fd < 0:
                rc = c_lstat(cp, &a.e.attr)
            else:
                rc = c_fstatat(fd, cp, &a.e.attr, AT_SYMLINK_NOFOLLOW)
        if rc != 0:
            err = c_errno
            raise OSError(err, os.strerror(err), path)
        return a._stated(entry_timeout, attr_timeout)

    @staticmethod
    def fstat(fd, *, entry_timeout=None, attr_timeout=None):
        """``from_stat(os.fstat(fd))`` the way lstat() is: the attributes of
        what ``fd`` refers to, also for an O_PATH fd (fstatat(2) with
        AT_EMPTY_PATH: what C passthrough_ll's GETATTR does)."""
        cdef int cfd = _fd_arg(fd, 'fd')
        cdef EntryAttributes a = EntryAttributes.__new__(EntryAttributes)
        cdef int rc
        with nogil:
            rc = c_fstatat(cfd, "", &a.e.attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)
        if rc != 0:
            err = c_errno
            raise OSError(err, os.strerror(err))
        return a._stated(entry_timeout, attr_timeout)

    cdef EntryAttributes _stated(self, entry_timeout, attr_timeout):
        """The rest of lstat()/fstat(): the entry's inode is the file's."""
        self.e.ino = self.e.attr.st_ino
        if entry_timeout is not None:
            self.e.entry_timeout = entry_timeout
        if attr_timeout is not None:
            self.e.attr_timeout = attr_timeout
        return self

    def copy(self):
        cdef EntryAttributes a = EntryAttributes.__new__(EntryAttributes)
        a.e = self.e
        a.path_fd = self.path_fd
        return a

    def __getstate__(self):
        return {k: getattr(self, k) for k in _ENTRY_FIELDS}

    def __setstate__(self, state):
        for k, v in state.items():
            setattr(self, k, v)

    def __repr__(self):
        return 'EntryAttributes(%s)' % ', '.join(
            '%s=%r' % (k, getattr(self, k)) for k in ('st_ino', 'st_mode', 'st_size', 'st_nlink'))


_ENTRY_FIELDS = ('st_ino', 'generation', 'entry_timeout', 'attr_timeout', 'st_mode', 'st_nlink',
                 'st_uid', 'st_gid', 'st_rdev', 'st_size', 'st_blksize', 'st_blocks',
                 'st_atime_ns', 'st_mtime_ns', 'st_ctime_ns')


# fusepy-style stat dict keys -> which field _entry_from_stat_dict sets
cdef dict _STAT_DICT_SLOTS = {
    'st_ino': 0, 'st_nlink': 1, 'st_mode': 2, 'st_uid': 3, 'st_gid': 4, 'st_rdev': 5,
    'st_size': 6, 'st_blksize': 7, 'st_blocks': 8, 'st_atime': 9, 'st_mtime': 10, 'st_ctime': 11}


cdef inline bint _seconds_ns_in_c(object val, int64_t *ns) noexcept:
    """fusepy's tv_sec = int(val), tv_nsec = int((val - tv_sec) * 1E9) as one
    ns count, in C for floats and ints whose ns fit an int64 (the same
    truncations and the same double arithmetic as Python's).  False: leave
    it to Python (other types, NaN, infinities, huge values)."""
    cdef double d
    cdef int64_t sec
    if type(val) is float:
        d = <double>val
        if not (-9.2e9 < d < 9.2e9):
            return False
        sec = <int64_t>d                  # toward zero, as int()
        ns[0] = sec * 1000000000 + <int64_t>((d - <double>sec) * 1e9)
        return True
    if type(val) is int and -9200000000 < val < 9200000000:
        ns[0] = <int64_t>val * 1000000000
        return True
    return False


def _entry_from_stat_dict(attrs, bint times_in_ns, seconds_to_ns):
    """EntryAttributes from a path API's stat dict, the way fusepy's
    set_st_attrs fills a zeroed struct stat (the fusepy layer's hot path: one
    C call instead of a setattr per key).  Integer fields take ints or
    anything with __index__ (floats raise TypeError, as fusepy's ctypes
    fields do); st_atime/st_mtime/st_ctime are ns with ``times_in_ns``
    (int()), else seconds, converted in C (floats, ints) or by
    ``seconds_to_ns``; other keys are ignored.  ``None`` (a getattr that
    returned nothing) raises TypeError."""
    if attrs is None:
        raise TypeError('getattr returned None')
    cdef EntryAttributes e = EntryAttributes.__new__(EntryAttributes)
    # zeroed: __cinit__'s defaults (nlink 1, blksize 4096) are not fusepy's
    e.e.attr.st_nlink = 0
    e.e.attr.st_blksize = 0
    cdef object slot, val
    cdef int k
    cdef int64_t c_ns
    for key, val in attrs.items():
        slot = _STAT_DICT_SLOTS.get(key)
        if slot is None:
            continue
        k = slot
        if k >= 9:
            # straight to C: no Python int in between for the usual types
            if times_in_ns:
                c_ns = val if type(val) is int else int(val)
            elif not _seconds_ns_in_c(val, &c_ns):
                c_ns = seconds_to_ns(val)
            _set_ts(&e.e.attr.st_atim if k == 9 else
                    &e.e.attr.st_mtim if k == 10 else &e.e.attr.st_ctim, c_ns)
            continue
        if type(val) is not int:
            val = operator.index(val)
        if k == 0:
            e.e.ino = val
            e.e.attr.st_ino = val
        elif k == 1:
            e.e.attr.st_nlink = val
        elif k == 2:
            e.e.attr.st_mode = val
        elif k == 3:
            e.e.attr.st_uid = val
        elif k == 4:
            e.e.attr.st_gid = val
        elif k == 5:
            e.e.attr.st_rdev = val
        elif k == 6:
            e.e.attr.st_size = val
        elif k == 7:
            e.e.attr.st_blksize = val
        else:
            e.e.attr.st_blocks = val
    return e


@cython.final
cdef class FileInfo:
    """What open/create return: the file handle and caching flags.

    ``backing_fd`` (libfuse >= 3.17, Linux >= 6.9, as root): an open file
    descriptor whose reads and writes the kernel serves directly (FUSE
    passthrough); fuseshim registers it and releases the backing id on
    release.  keep_cache and nonseekable are dropped then: the kernel
    refuses them on passthrough opens.

    ``read_fd`` (any libfuse, any kernel): an open, readable file descriptor
    fuseshim answers this handle's READ requests from in C, the GIL released
    (fuse_reply_data at the request's offset: spliced with splice_write, else
    read into a buffer by libfuse) -- read() is not called for them.
    Keep it open until release(); an fd closed earlier answers EBADF."""
    cdef public uint64_t fh
    cdef public bint direct_io
    cdef public bint keep_cache
    cdef public bint nonseekable
    cdef public int backing_fd
    cdef public int read_fd

    def __init__(self, fh=0, direct_io=False, keep_cache=True, nonseekable=False,
                 backing_fd=-1, read_fd=-1):
        self.fh = fh
        self.direct_io = direct_io
        self.keep_cache = keep_cache
        self.nonseekable = nonseekable
        self.backing_fd = backing_fd
        self.read_fd = read_fd

    cdef void _apply(self, fuse_file_info *fi) noexcept:
        fi.fh = self.fh
        fi.direct_io = self.direct_io
        fi.keep_cache = self.keep_cache
        fi.nonseekable = self.nonseekable

    def __repr__(self):
        return 'FileInfo(fh=%d, direct_io=%r, keep_cache=%r, nonseekable=%r)' % (
            self.fh, self.direct_io, self.keep_cache, self.nonseekable)


@cython.final
cdef class FdRange:
    """What read() may return instead of bytes: up to ``size`` bytes of the
    open file descriptor ``fd``, starting at ``offset``.

    fuseshim answers with fuse_reply_data() on an fd buffer, so the data goes
    from the file to /dev/fuse without passing through Python: spliced (file
    -> pipe -> /dev/fuse, no copy through user space) when the connection has
    the splice_write capability and the range is at least two pages, otherwise
    read by libfuse into a C buffer and written from there.  Fewer bytes at end
    of file make a short read, as with pread(); an offset at or past the end
    an empty one.  The fd must be readable and seekable (pread works on it)
    and is only borrowed: keep it open until the handler has returned (for an
    ``async def`` handler: until its coroutine has finished)."""
    cdef readonly int fd
    cdef readonly int64_t offset
    cdef readonly size_t size

    def __init__(self, fd, offset, size):
        for name, v in (('fd', fd), ('offset', offset), ('size', size)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError('FdRange %s must be an int, not %s' % (name, type(v).__name__))
        if fd < 0:
            raise ValueError('FdRange fd must be an open file descriptor (>= 0), not %d' % fd)
        if not 0 <= offset < (1 << 63):
            raise ValueError('FdRange offset must be >= 0, not %d' % offset)
        if not 0 <= size < (1 << 31):
            raise ValueError('FdRange size must be >= 0 and < 2 GiB, not %d' % size)
        self.fd = fd
        self.offset = offset
        self.size = size

    def __repr__(self):
        return 'FdRange(fd=%d, offset=%d, size=%d)' % (self.fd, self.offset, self.size)


@cython.final
cdef class SetattrFields:
    """Which attributes a setattr request changes (pyfuse3 names)."""
    cdef readonly bint update_atime
    cdef readonly bint update_mtime
    cdef readonly bint update_ctime
    cdef readonly bint update_mode
    cdef readonly bint update_uid
    cdef readonly bint update_gid
    cdef readonly bint update_size
    # "set to now" (utimensat UTIME_NOW): needs only write permission,
    # explicit times need ownership, so a permission-checking fs must know
    cdef readonly bint update_atime_now
    cdef readonly bint update_mtime_now
    # Operations.enable_killpriv granted: this truncate or chown is to clear
    # S_ISUID and S_ISGID as well (FATTR_KILL_SUIDGID), done by the
    # filesystem itself -- the caller may not own the file
    cdef readonly bint kill_suidgid

    def __reduce__(self):
        # bound to one request: a copy would outlive it (pyfuse3 refuses too)
        raise PicklingError("SetattrFields instances can't be pickled")

    def __repr__(self):
        return 'SetattrFields(%s)' % ', '.join(
            n for n in ('update_atime', 'update_mtime', 'update_ctime', 'update_mode',
                        'update_uid', 'update_gid', 'update_size', 'kill_suidgid')
            if getattr(self, n))


@cython.final
cdef class RequestContext:
    """Who asked: uid, gid, pid and umask of the calling process."""
    cdef readonly uid_t uid
    cdef readonly gid_t gid
    cdef readonly pid_t pid
    cdef readonly mode_t umask
    # Operations.enable_killpriv granted: the request (an O_TRUNC open or
    # create, a truncate or chown) is to clear S_ISUID/S_ISGID as well
    cdef readonly bint kill_suidgid
    cdef fuse_req_t req

    @property
    def interrupted(self):
        """True once the kernel sent an INTERRUPT for this request."""
        if self.req is NULL:
            return False
        return bool(fuse_req_interrupted(self.req))

    def groups(self):
        """Supplementary groups of the caller (read from /proc; may be empty)."""
        cdef gid_t buf[256]
        if self.req is NULL:
            return []
        n = fuse_req_getgroups(self.req, 256, buf)
        if n < 0:
            return []
        return [buf[i] for i in range(min(n, 256))]

    def __reduce__(self):
        # bound to one request: a copy would outlive it (pyfuse3 refuses too)
        raise PicklingError("RequestContext instances can't be pickled")

    def __repr__(self):
        return 'RequestContext(uid=%d, gid=%d, pid=%d, umask=%o)' % (
            self.uid, self.gid, self.pid, self.umask)


cdef inline RequestContext _make_ctx(fuse_req_t req):
    cdef const fuse_ctx *c = fuse_req_ctx(req)
    cdef RequestContext ctx = RequestContext.__new__(RequestContext)
    ctx.uid = c.uid
    ctx.gid = c.gid
    ctx.pid = c.pid
    ctx.umask = c.umask
    ctx.req = req
    return ctx


@cython.final
cdef class StatvfsData:
    """statfs() result (pyfuse3 names)."""
    cdef public unsigned long f_bsize, f_frsize, f_blocks, f_bfree, f_bavail
    cdef public unsigned long f_files, f_ffree, f_favail, f_namemax

    def __init__(self):
        self.f_bsize = 4096
        self.f_frsize = 4096
        self.f_namemax = 255

    @staticmethod
    def from_statvfs(s):
        cdef StatvfsData d = StatvfsData()
        for name in ('f_bsize', 'f_frsize', 'f_blocks', 'f_bfree', 'f_bavail', 'f_files',
                     'f_ffree', 'f_favail', 'f_namemax'):
            setattr(d, name, getattr(s, name))
        return d


@cython.final
cdef class ReaddirToken:
    """Pass it to readdir_reply() while handling readdir.  ``plus`` tells
    whether the kernel asked for READDIRPLUS (then each entry other than
    "." and ".." counts as a lookup) or plain READDIR (it does not)."""
    cdef fuse_req_t req
    cdef char *buf
    cdef size_t size
    cdef size_t pos
    cdef readonly bint plus
    cdef bint closed

    def __dealloc__(self):
        free(self.buf)


def readdir_reply(ReaddirToken token not None, name, EntryAttributes attr not None, next_id):
    """Add one entry to a readdir reply; False means the reply is full (stop).

    When the kernel asked for READDIRPLUS the entry counts as a lookup, as in
    pyfuse3: the filesystem must expect a later forget() for it."""
    cdef size_t n
    cdef const char *cname
    if token.closed:
        raise RuntimeError('readdir_reply() called after readdir() returned')
    if isinstance(name, str):
        name = os.fsencode(name)
    cname = name
    if token.plus:
        n = fuse_add_direntry_plus(token.req, token.buf + token.pos, token.size - token.pos,
                                   cname, &attr.e, next_id)
    else:
        n = fuse_add_direntry(token.req, token.buf + token.pos, token.size - token.pos,
                              cname, &attr.e.attr, next_id)
    if n > token.size - token.pos:
        return False
    token.pos += n
    return True


# ---------------------------------------------------------------- DirListing

cdef struct _DirEnt:
    uint64_t ino
    size_t name_off     # into DirListing.names (NUL-terminated)
    uint32_t mode       # S_IFMT bits only


@cython.final
cdef class DirListing:
    """A directory's entries kept in C: names encoded once, inode and file
    type per entry.  Build one per opendir (a snapshot the offsets index)
    and answer each readdir with ``listing.fill(token, start_id)``: the
    whole fill loop runs in C.

    ``DirListing(entries)`` takes an iterable of ``(name, inode, mode)``:
    ``name`` bytes or str (no "/" or NUL, at most 1024 bytes), ``inode`` the
    entry's d_ino, ``mode`` a st_mode or just its type bits (``stat.S_IFDIR``
    ...).  Entry ``i`` is sent with offset ``i + 1``, so the ``start_id`` a
    readdir receives is the index of the next entry to send.  Immutable, so
    several workers may fill from one listing at once."""
    cdef _DirEnt *ents
    cdef char *names
    cdef Py_ssize_t n
    cdef size_t cap, names_len, names_cap

    def __cinit__(self, entries=()):
        cdef Py_ssize_t blen
        cdef const char *bp
        for item in entries:
            if type(item) is not tuple or len(<tuple>item) != 3:
                raise TypeError('DirListing entries are (name, inode, mode) tuples, got %r'
                                % (item,))
            name, ino, mode = <tuple>item
            if isinstance(name, str):
                name = PyUnicode_EncodeFSDefault(name)
            elif not isinstance(name, bytes):
                raise TypeError('entry name must be bytes or str, got %s' % type(name).__name__)
            blen = PyBytes_GET_SIZE(name)
            bp = PyBytes_AS_STRING(name)
            if blen == 0 or blen > 1024:
                raise ValueError('entry name must be 1..1024 bytes long, got %d' % blen)
            if memchr(bp, b'/', blen) is not NULL or memchr(bp, 0, blen) is not NULL:
                raise ValueError('entry name %r contains "/" or NUL' % (name,))
            if not isinstance(ino, int) or not isinstance(mode, int):
                raise TypeError('entry inode and mode must be int, got %r' % (item,))
            if not 0 <= ino <= 0xFFFFFFFFFFFFFFFF:
                raise ValueError('entry inode out of range: %r' % (ino,))
            if not 0 <= mode <= 0xFFFFFFFF:
                raise ValueError('entry mode out of range: %r' % (mode,))
            if self._append(bp, blen, ino, mode) < 0:
                raise MemoryError()

    cdef int _append(self, const char *name, size_t namelen, uint64_t ino,
                     uint32_t mode) noexcept nogil:
        """Add one entry; -1 when out of memory."""
        cdef size_t ncap, want
        cdef void *p
        if <size_t>self.n == self.cap:
            ncap = self.cap * 2 if self.cap else 64
            p = realloc(self.ents, ncap * sizeof(_DirEnt))
            if p is NULL:
                return -1
            self.ents = <_DirEnt*>p
            self.cap = ncap
        want = self.names_len + namelen + 1
        if want > self.names_cap:
            ncap = self.names_cap * 2 if self.names_cap > want else want * 2
            if ncap < 4096:
                ncap = 4096
            p = realloc(self.names, ncap)
            if p is NULL:
                return -1
            self.names = <char*>p
            self.names_cap = ncap
        memcpy(self.names + self.names_len, name, namelen)
        self.names[self.names_len + namelen] = 0
        self.ents[self.n].ino = ino
        self.ents[self.n].mode = mode & 0o170000
        self.ents[self.n].name_off = self.names_len
        self.names_len = want
        self.n += 1
        return 0

    @staticmethod
    def scan(path):
        """List the directory ``path`` (str, bytes, path-like, or an open
        directory file descriptor, which is reopened through /proc so its
        own offset is left alone) in C, without the GIL: names, d_ino and
        d_type as readdir(3) returns them ("." and ".." left out; an entry
        whose d_type is unknown is lstat'ed, and skipped if it vanished).
        Raises OSError when the directory cannot be read."""
        global c_errno
        cdef DirListing self = DirListing.__new__(DirListing)
        cdef bytes bpath
        cdef const char *cpath
        cdef DIR *d
        cdef dirent *de
        cdef struct_stat st
        cdef int err = 0
        cdef uint32_t mode
        cdef size_t nl
        if isinstance(path, int) and not isinstance(path, bool):
            bpath = ('/proc/self/fd/%d' % path).encode()
        else:
            bpath = os.fsencode(path)
        cpath = bpath
        with nogil:
            d = opendir(cpath)
            if d is NULL:
                err = c_errno
            else:
                while True:
                    c_errno = 0
                    de = readdir(d)
                    if de is NULL:
                        err = c_errno
                        break
                    nl = strlen(de.d_name)
                    if de.d_name[0] == b'.' and (nl == 1 or (nl == 2 and de.d_name[1] == b'.')):
                        continue
                    if de.d_type == DT_UNKNOWN:
                        if c_fstatat(dirfd(d), de.d_name, &st, AT_SYMLINK_NOFOLLOW) != 0:
                            continue
                        mode = st.st_mode
                    else:
                        mode = (<uint32_t>de.d_type) << 12
                    if self._append(de.d_name, nl, de.d_ino, mode) < 0:
                        err = -1
                        break
                closedir(d)
        if err == -1:
            raise MemoryError()
        if err:
            raise OSError(err, os.strerror(err), path)
        return self

    def __dealloc__(self):
        free(self.ents)
        free(self.names)

    def __len__(self):
        return self.n

    def __getitem__(self, Py_ssize_t i):
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError('DirListing index out of range')
        return (PyBytes_FromString(self.names + self.ents[i].name_off),
                self.ents[i].ino, self.ents[i].mode)

    def __repr__(self):
        return 'DirListing(<%d entries>)' % self.n

    def fill(self, ReaddirToken token not None, start_id):
        """Add entries ``start_id``, ``start_id + 1``, ... to the reply until
        it is full; return the index of the first entry not added (``len``
        when the listing is exhausted).  For READDIRPLUS requests the entries
        go out without attributes (entry nodeid 0): the kernel treats them as
        plain dirents, caches nothing and counts no lookup, so no forget()
        follows.  May be mixed with readdir_reply() on the same token."""
        cdef Py_ssize_t i
        cdef size_t n, room
        cdef fuse_entry_param e
        cdef _DirEnt *d
        if token.closed:
            raise RuntimeError('DirListing.fill() called after readdir() returned')
        if not isinstance(start_id, int):
            raise TypeError('start_id must be int, got %s' % type(start_id).__name__)
        if start_id < 0:
            raise ValueError('start_id must be >= 0, got %d' % start_id)
        if start_id >= self.n:
            return self.n
        i = start_id
        memset(&e, 0, sizeof(e))   # ino (nodeid) 0: no attributes, no lookup
        while i < self.n:
            d = &self.ents[i]
            e.attr.st_ino = d.ino
            e.attr.st_mode = d.mode
            room = token.size - token.pos
            if token.plus:
                n = fuse_add_direntry_plus(token.req, token.buf + token.pos, room,
                                           self.names + d.name_off, &e, i + 1)
            else:
                n = fuse_add_direntry(token.req, token.buf + token.pos, room,
                                      self.names + d.name_off, &e.attr, i + 1)
            if n > room:
                break
            token.pos += n
            i += 1
        return i


@cython.final
cdef class PollHandle:
    """Kept by a poll() handler; call notify() when the file becomes ready."""
    cdef fuse_pollhandle *ph

    def __reduce__(self):
        # bound to one request: a copy would outlive it (pyfuse3 refuses too)
        raise PicklingError("PollHandle instances can't be pickled")

    def notify(self):
        if self.ph is NULL:
            raise RuntimeError('poll handle already used')
        rc = fuse_lowlevel_notify_poll(self.ph)
        fuse_pollhandle_destroy(self.ph)
        self.ph = NULL
        if rc < 0 and rc != -errno.ENOENT:
            raise OSError(-rc, os.strerror(-rc))

    def __dealloc__(self):
        if self.ph is not NULL:
            fuse_pollhandle_destroy(self.ph)
