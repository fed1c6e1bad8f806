# The C callbacks libfuse calls for each request, and the replies.
#
# Every callback follows one shape: build the handler's arguments, call the
# handler (GIL taken only here), then either reply at once (plain function)
# or run the coroutine (Session._submit: stepped in place when the event loop
# itself reads requests, else handed to the loop), replying when it finishes
# (libfuse allows replies from any thread).

# The Op enum, OP_NAMES, OP_REPLIES, _replies_none() and _fill_ops() are
# generated from operations_table.py (_optable.pxi).

cdef struct ReqState:
    # Per-request data the reply needs (copied for coroutine handlers,
    # because libfuse's fuse_file_info pointer dies with the callback).
    fuse_file_info fi
    size_t size


cdef inline Session _session(fuse_req_t req):
    return <Session>fuse_req_userdata(req)


# The request a plain handler is running for, per thread, is kept in the C
# thread-locals shim_current_req / shim_current_session (includes/shim.pxd).


# ---------------------------------------------------------------- test-only fault injection
# Tests prove that every request is answered whatever fails by making chosen
# operations fail on purpose (_test_only_inject_faults).  Bit masks of
# (1 << Op) in C globals (shim_test_fault_*, includes/shim.pxd), zero unless
# a test arms them: then each request pays one predictable branch on a
# global, nothing else.

cdef enum FaultKind:
    FAULT_ARGS, FAULT_REPLY, FAULT_COPY

_FAULT_KINDS = ('args', 'reply', 'buf_copy')
# where each kind can be injected (others would never fire)
_FAULT_OPS = (OP_NAMES,
              tuple(n for n, r in zip(OP_NAMES, OP_REPLIES) if r in ('open', 'create')),
              ('write', 'retrieve_reply'))
cdef dict _faults_fired = {}


cdef bint _fault_fires(int kind, int op) except -1:
    cdef unsigned long long mask = (shim_test_fault_args if kind == FAULT_ARGS else
                                    shim_test_fault_reply if kind == FAULT_REPLY else
                                    shim_test_fault_copy)
    if not (mask >> op) & 1:
        return False
    key = (_FAULT_KINDS[kind], OP_NAMES[op])
    _faults_fired[key] = _faults_fired.get(key, 0) + 1
    return True


cdef inline int _fault_args(int op) except -1:
    if shim_test_fault_args and _fault_fires(FAULT_ARGS, op):
        raise MemoryError('test-only fault: building the arguments of %s failed' % OP_NAMES[op])
    return 0


def _test_only_inject_faults(args=(), reply=(), buf_copy=()):
    """TEST ONLY: never call this in a filesystem.  From now on make the
    named operations (OP_NAMES) fail on purpose, replacing what was armed
    before (no arguments disarms everything):

    args      building the handler's arguments raises MemoryError
    reply     the open/opendir/create reply fails as for an interrupted
              request (the caller gets EINTR, our reply finds no request)
    buf_copy  copying the data of a write or retrieve_reply fails (EIO)

    Returns {(kind, operation): count} of the faults fired since the
    previous call."""
    global shim_test_fault_args, shim_test_fault_reply, shim_test_fault_copy
    cdef unsigned long long masks[3]
    for kind, names in enumerate((args, reply, buf_copy)):
        masks[kind] = 0
        if isinstance(names, str):
            raise TypeError('%s: a sequence of operation names, not a str' % _FAULT_KINDS[kind])
        for name in names:
            if name not in _FAULT_OPS[kind]:
                raise ValueError('%s faults can be injected into %s, not %r'
                                 % (_FAULT_KINDS[kind], ', '.join(_FAULT_OPS[kind]), name))
            masks[kind] |= 1ULL << OP_NAMES.index(name)
    fired = dict(_faults_fired)
    _faults_fired.clear()
    shim_test_fault_args = masks[0]
    shim_test_fault_reply = masks[1]
    shim_test_fault_copy = masks[2]
    return fired


def _test_only_faults_fired():
    """TEST ONLY: {(kind, operation): count} of the injected faults fired
    since _test_only_inject_faults() was last called (nothing is reset)."""
    return dict(_faults_fired)


cdef inline void _call(Session s, fuse_req_t req, int op, tuple args,
                       ReqState *st, object aux) noexcept:
    """Run handler ``op`` with ``args`` and reply (GIL held)."""
    global shim_current_req, shim_current_session
    ctx = args[len(args) - 1] if args else None
    if type(ctx) is not RequestContext:
        ctx = None
    cdef void *outer_req = shim_current_req
    cdef void *outer_session = shim_current_session
    try:
        shim_current_req = <void*>req
        shim_current_session = <void*>s
        try:
            res = (<object>PyList_GET_ITEM(s.handlers, op))(*args)
        finally:  # the reply frees req: nothing may read it after this
            shim_current_req = outer_req
            shim_current_session = outer_session
        if s.is_async[op]:
            if not s._submit(req, op, res, st, aux, ctx):
                return  # answered later: the context stays valid until then
        else:
            _reply(s, req, op, res, st, aux)
    except BaseException as exc:
        s._reply_exception(req, op, exc)
    if ctx is not None:  # the request is answered: its pointer is dead now
        (<RequestContext>ctx).req = NULL


def current_request_ids():
    """(uid, gid, pid) of the process whose request the calling thread is
    handling in a plain handler right now, or None (no request: outside a
    handler, in init/destroy, or after a coroutine handler's first await)."""
    cdef const fuse_ctx *c
    if shim_current_req is NULL:
        return None
    c = fuse_req_ctx(<fuse_req_t>shim_current_req)
    return (c.uid, c.gid, c.pid)


def current_operations():
    """The Operations object whose handler (or init/destroy) the calling
    thread is running right now, or None."""
    if shim_current_session is NULL:
        return None
    return (<Session>shim_current_session).ops


cdef object _as_bytes(object v):
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return os.fsencode(v)
    if isinstance(v, int):  # bytes(5) would silently be five NULs
        raise TypeError('expected bytes, got int %r' % v)
    return bytes(v)


cdef int _reply(Session s, fuse_req_t req, int op, object res, ReqState *st,
                object aux) except -1:
    """Turn a handler's result into the libfuse reply for ``op``."""
    cdef EntryAttributes ea
    cdef StatvfsData sv
    cdef statvfs stv
    cdef flock lk
    cdef ReaddirToken tok
    cdef const unsigned char[::1] view
    cdef bytes b
    cdef int rc = 0
    if op == OP_GETATTR or op == OP_SETATTR:
        ea = <EntryAttributes?>res
        rc = fuse_reply_attr(req, &ea.e.attr, ea.e.attr_timeout)
    elif op == OP_LOOKUP or op == OP_MKNOD or op == OP_MKDIR or op == OP_SYMLINK or op == OP_LINK:
        ea = <EntryAttributes?>res
        _hold_path_fd(s, ea)
        rc = fuse_reply_entry(req, &ea.e)
        if rc < 0:
            _unhold_path_fd(s, ea)
    elif op == OP_READ:
        if type(res) is FdRange:
            rc = _reply_fd_range(s, req, <FdRange>res, st.size)
        elif isinstance(res, bytes):
            if <size_t>PyBytes_GET_SIZE(res) > st.size:
                raise ValueError('read returned %d bytes, %d were asked for'
                                 % (PyBytes_GET_SIZE(res), st.size))
            rc = fuse_reply_buf(req, PyBytes_AS_STRING(res), PyBytes_GET_SIZE(res))
        else:
            view = res
            if <size_t>view.shape[0] > st.size:
                raise ValueError('read returned %d bytes, %d were asked for'
                                 % (view.shape[0], st.size))
            rc = fuse_reply_buf(req, <const char*>&view[0] if view.shape[0] else NULL, view.shape[0])
    elif op == OP_WRITE or op == OP_COPY_FILE_RANGE:
        if not 0 <= res <= st.size:
            raise ValueError('%s returned %r; the request carried %d bytes'
                             % (OP_NAMES[op], res, st.size))
        rc = fuse_reply_write(req, res)
    elif op == OP_READDIR:
        tok = <ReaddirToken>aux
        tok.closed = True
        rc = fuse_reply_buf(req, tok.buf, tok.pos)
    elif op == OP_OPEN or op == OP_OPENDIR or op == OP_CREATE:
        return _reply_open(s, req, op, res, st)
    elif op == OP_READLINK:
        b = _as_bytes(res)
        rc = fuse_reply_readlink(req, b)
    elif op == OP_STATFS:
        sv = <StatvfsData?>res
        memset(&stv, 0, sizeof(stv))
        stv.f_bsize = sv.f_bsize
        stv.f_frsize = sv.f_frsize
        stv.f_blocks = sv.f_blocks
        stv.f_bfree = sv.f_bfree
        stv.f_bavail = sv.f_bavail
        stv.f_files = sv.f_files
        stv.f_ffree = sv.f_ffree
        stv.f_favail = sv.f_favail
        stv.f_namemax = sv.f_namemax
        rc = fuse_reply_statfs(req, &stv)
    elif op == OP_GETXATTR or op == OP_LISTXATTR:
        if op == OP_LISTXATTR:
            b = b''.join([_as_bytes(n) + b'\0' for n in res])
        else:
            b = _as_bytes(res)
        if st.size == 0:
            rc = fuse_reply_xattr(req, len(b))
        elif <size_t>len(b) > st.size:
            rc = fuse_reply_err(req, errno.ERANGE)
        else:
            rc = fuse_reply_buf(req, b, len(b))
    elif op == OP_ACCESS:
        # pyfuse3 semantics: a false result denies.
        rc = fuse_reply_err(req, 0 if (res is None or res) else errno.EACCES)
    elif op == OP_GETLK:
        memset(&lk, 0, sizeof(lk))
        lk.l_type, lk.l_start, end, lk.l_pid = res
        lk.l_whence = 0
        lk.l_len = 0 if end < 0 else end - lk.l_start + 1
        rc = fuse_reply_lock(req, &lk)
    elif op == OP_BMAP:
        rc = fuse_reply_bmap(req, res)
    elif op == OP_IOCTL:
        if isinstance(res, tuple):
            result, b = res[0], _as_bytes(res[1])
        else:
            result, b = 0, _as_bytes(res if res is not None else b'')
        rc = fuse_reply_ioctl(req, result, <const char*>b if len(b) else NULL, len(b))
    elif op == OP_POLL:
        rc = fuse_reply_poll(req, res)
    elif op == OP_LSEEK:
        rc = fuse_reply_lseek(req, res)
    elif _replies_none(op):
        fuse_reply_none(req)
    else:  # operations whose success carries no data
        rc = fuse_reply_err(req, 0)
    if rc < 0:
        _reply_failed(op, rc)
    return 0


cdef void _reply_failed(int op, int rc) noexcept:
    # The request is answered (and freed) already: nothing here may raise,
    # or the caller would answer it a second time.
    if rc == -errno.ENOENT:  # the request was interrupted meanwhile
        return
    try:
        log.warning('fuseshim: replying to %s failed: %s', OP_NAMES[op], os.strerror(-rc))
    except BaseException:
        pass


cdef int _reply_open(Session s, fuse_req_t req, int op, object res, ReqState *st) except -1:
    """open, opendir, create: register the handle's read_fd and backing id
    (and count create's lookup for its path_fd), reply, and take them back
    when the kernel never got the handle (the reply failed, e.g. the request
    was interrupted, or something raised before it was sent): no RELEASE
    (nor FORGET) will ever come for it."""
    cdef FileInfo finfo = None
    cdef EntryAttributes ea = None
    cdef EntryAttributes held = None    # create's entry, its path_fd lookup counted
    cdef int read_fd = -1
    cdef int backing_id = 0
    cdef int rc
    if op == OP_CREATE:
        finfo, ea = res
        if finfo is None or ea is None:
            raise TypeError('create must return (FileInfo, EntryAttributes), not %r' % (res,))
    elif isinstance(res, FileInfo):
        finfo = <FileInfo>res
    else:  # pyfuse3's opendir returns the handle itself
        st.fi.fh = res
    try:
        if finfo is not None:
            finfo._apply(&st.fi)
            if finfo.backing_fd >= 0:
                backing_id = s._attach_backing(req, &st.fi, finfo.backing_fd)
            if op != OP_OPENDIR:
                read_fd = _serve_reads_from(s, &st.fi, finfo.read_fd)
        if op == OP_CREATE:
            _hold_path_fd(s, ea)
            held = ea
        if shim_test_fault_reply and _fault_fires(FAULT_REPLY, op):
            # what an interrupted open looks like: the caller got EINTR, and
            # our reply finds no request any more
            fuse_reply_err(req, errno.EINTR)
            rc = -errno.ENOENT
        elif op == OP_CREATE:
            rc = fuse_reply_create(req, &ea.e, &st.fi)
        else:
            rc = fuse_reply_open(req, &st.fi)
    except BaseException:
        _unregister_handle(s, st.fi.fh, read_fd, backing_id)
        if held is not None:
            _unhold_path_fd(s, held)
        raise
    if rc < 0:
        _unregister_handle(s, st.fi.fh, read_fd, backing_id)
        if held is not None:
            _unhold_path_fd(s, held)
        _reply_failed(op, rc)
    return 0


# ---------------------------------------------------------------- EntryAttributes.path_fd

cdef inline int _hold_path_fd(Session s, EntryAttributes ea) except -1:
    """A lookup-counting reply carries ``path_fd``: count the lookup in the
    C table before the reply is sent, so no GETATTR or FORGET it causes can
    come first (shim_pathfd.h)."""
    if ea.path_fd >= 0 and ea.e.ino != 0:
        if shim_pathfd_hold(<void*>s, ea.e.ino, ea.path_fd, ea.e.attr_timeout) != 0:
            raise MemoryError()
    return 0

cdef inline void _unhold_path_fd(Session s, EntryAttributes ea) noexcept:
    """The reply never reached the kernel (interrupted): it counts no lookup."""
    if ea.path_fd >= 0 and ea.e.ino != 0:
        shim_pathfd_forget(<void*>s, ea.e.ino, 1)

cdef bint _getattr_from_path_fd(fuse_req_t req, fuse_ino_t ino) noexcept nogil:
    """Answer GETATTR of an inode declared with EntryAttributes.path_fd:
    fstatat() of its O_PATH fd (the symlink itself, not its target), st_ino
    the inode's number (as a handler's EntryAttributes.st_ino would be), the
    timeout of its latest lookup reply.  False: not declared, or fstatat
    failed -- the handler answers then (its errno, its attributes)."""
    cdef struct_stat st
    cdef double timeout = 0
    cdef int fd = shim_pathfd_get(fuse_req_userdata(req), ino, &timeout)
    if fd < 0 or c_fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0:
        return False
    st.st_ino = ino
    fuse_reply_attr(req, &st, timeout)
    return True


def _path_fd_inodes(Session session=None):
    """How many inodes have their GETATTRs answered from a path_fd, of one
    session or (None) all of them (tests)."""
    return shim_pathfd_count(<void*>session if session is not None else NULL)


def _path_fd_lookups(Session session not None, uint64_t inode):
    """The kernel lookups counted for ``inode``'s path_fd entry; 0: no entry (tests)."""
    return shim_pathfd_lookups(<void*>session, inode)


cdef void _unregister_handle(Session s, uint64_t fh, int read_fd, int backing_id) noexcept:
    if read_fd >= 0:
        shim_readfd_del(<void*>s, fh)
    if backing_id > 0:
        s._release_backing(fh, backing_id)


cdef int _reply_fd_range(Session s, fuse_req_t req, FdRange r, size_t asked) except? -1:
    """Answer a read with a file range.  With splice_write granted:
    fuse_reply_data() on an fd buffer (libfuse splices file -> pipe ->
    /dev/fuse).  Without it libfuse would pread into a fresh page-aligned
    buffer per request, measured slower than a bytes reply, so we pread into
    a bytes object ourselves then."""
    cdef int rc, fl, err
    cdef ssize_t n
    cdef bytes data
    cdef char *p
    if r.size > asked:
        raise ValueError('read returned %r; %d bytes were asked for' % (r, asked))
    # libfuse answers a failing read of the fd with its errno, silently:
    # check the fd here so a handler bug is logged (and answered EIO)
    fl = fcntl(r.fd, F_GETFL)
    if fl == -1:
        err = c_errno
        raise OSError(err, 'read returned %r: %s' % (r, os.strerror(err)))
    if fl & O_ACCMODE == O_WRONLY:
        raise OSError(errno.EBADF, 'read returned %r: the fd is open write-only' % (r,))
    if r.size == 0:
        return fuse_reply_buf(req, NULL, 0)
    if s.granted.get('splice_write'):
        with nogil:  # up to max_read bytes moved: let other threads run meanwhile
            rc = _reply_data_from_fd(req, r.fd, r.offset, r.size)
        return rc
    data = PyBytes_FromStringAndSize(NULL, r.size)
    p = PyBytes_AS_STRING(data)
    with nogil:
        n = pread(r.fd, p, r.size, r.offset)
        if n < 0:  # an I/O error of the file itself: the caller gets it (as libfuse does)
            rc = fuse_reply_err(req, c_errno)
        else:
            rc = fuse_reply_buf(req, p, n)
    return rc


cdef int _reply_data_from_fd(fuse_req_t req, int fd, off_t offset, size_t size) noexcept nogil:
    """fuse_reply_data() on ``size`` bytes of ``fd`` at ``offset``: libfuse
    splices them (splice_write granted) or reads them into its own buffer;
    fewer at EOF make a short read, and a read error answers its errno."""
    cdef fuse_bufvec bv
    if size == 0:
        return fuse_reply_buf(req, NULL, 0)
    memset(&bv, 0, sizeof(bv))
    bv.count = 1
    bv.buf[0].size = size
    bv.buf[0].flags = <fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK)
    bv.buf[0].fd = fd
    bv.buf[0].pos = offset
    return fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE)


cdef int _serve_reads_from(Session s, fuse_file_info *fi, int fd) except -2:
    """FileInfo.read_fd: answer this handle's READs from ``fd`` in ll_read
    (registered before the open reply, so no READ can come first).  -> fd."""
    if fd < 0:
        return -1
    if shim_readfd_put(<void*>s, fi.fh, fd) != 0:
        raise MemoryError()
    return fd


def _read_fd_handles():
    """How many open handles have their READs answered from a read_fd (tests)."""
    return shim_readfd_count()


# ---------------------------------------------------------------- init/destroy

cdef void ll_init(void *userdata, fuse_conn_info *conn) noexcept with gil:
    (<Session>userdata)._on_init(conn)

# shim_finalizing_session (includes/shim.pxd): the session
# Session.__dealloc__ is freeing on this thread; then this callback must not
# touch it (nor run user code).
cdef void ll_destroy(void *userdata) noexcept with gil:
    if userdata == shim_finalizing_session:
        return
    (<Session>userdata)._on_destroy()


# ---------------------------------------------------------------- callbacks

# Each callback builds the handler's arguments inside a try: whatever fails
# there (MemoryError, a test-injected fault, ...) still answers the request
# (an errno; forget and retrieve_reply get fuse_reply_none, which frees
# them), instead of leaving the caller waiting until the connection dies.

cdef void _unbuilt(fuse_req_t req, int op, object exc) noexcept:
    _session(req)._reply_exception(req, op, exc, True)

cdef inline object _name(const char *name):
    return PyBytes_FromString(name)

cdef inline bint _kill_suidgid(Session s) noexcept:
    """The request being dispatched asks the filesystem to clear S_ISUID
    and S_ISGID (read from the raw request: libfuse does not pass it on)."""
    return s.killpriv_granted and shim_request_kill_suidgid()

cdef inline RequestContext _make_kill_ctx(fuse_req_t req, Session s):
    cdef RequestContext ctx = _make_ctx(req)
    ctx.kill_suidgid = _kill_suidgid(s)
    return ctx

cdef inline tuple _write_args(Session s, fuse_req_t req, fuse_file_info *fi, off_t off,
                              object data):
    if s.killpriv_wanted:   # Operations.enable_killpriv: write() gets the writer too
        return (fi.fh, off, data, _make_kill_ctx(req, s))
    return (fi.fh, off, data)

cdef void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_LOOKUP)
        args = (parent, _name(name), _make_ctx(req))
    except BaseException as exc:
        _unbuilt(req, OP_LOOKUP, exc)
    else:
        _call(_session(req), req, OP_LOOKUP, args, NULL, None)

cdef void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) noexcept with gil:
    cdef tuple args
    # before the handler may close the inode's path_fd
    shim_pathfd_forget(fuse_req_userdata(req), ino, nlookup)
    try:
        _fault_args(OP_FORGET)
        args = ([(ino, nlookup)],)
    except BaseException as exc:
        _unbuilt(req, OP_FORGET, exc)
    else:
        _call(_session(req), req, OP_FORGET, args, NULL, None)

cdef void ll_forget_multi(fuse_req_t req, size_t count, fuse_forget_data *forgets) noexcept with gil:
    cdef tuple args
    cdef size_t i
    if not shim_pathfd_none():   # before the handler may close path_fds
        for i in range(count):
            shim_pathfd_forget(fuse_req_userdata(req), forgets[i].ino, forgets[i].nlookup)
    try:
        _fault_args(OP_FORGET)
        args = ([(forgets[i].ino, forgets[i].nlookup) for i in range(count)],)
    except BaseException as exc:
        _unbuilt(req, OP_FORGET, exc)
    else:
        _call(_session(req), req, OP_FORGET, args, NULL, None)

cdef void ll_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi) noexcept with gil:
    cdef tuple args
    cdef bint answered
    # An inode declared with EntryAttributes.path_fd is answered here: no
    # Python call, other threads run meanwhile (one predictable branch for
    # sessions that never declare one)
    if not shim_pathfd_none():
        with nogil:
            answered = _getattr_from_path_fd(req, ino)
        if answered:
            return
    try:
        _fault_args(OP_GETATTR)
        args = (ino, _make_ctx(req))
    except BaseException as exc:
        _unbuilt(req, OP_GETATTR, exc)
    else:
        _call(_session(req), req, OP_GETATTR, args, NULL, None)

cdef tuple _setattr_args(fuse_ino_t ino, struct_stat *attr, int to_set, fuse_file_info *fi,
                         fuse_req_t req, Session s):
    cdef EntryAttributes ea = EntryAttributes.__new__(EntryAttributes)
    cdef SetattrFields f = SetattrFields.__new__(SetattrFields)
    cdef timespec now
    ea.e.attr = attr[0]
    ea.e.ino = ino
    f.update_mode = bool(to_set & FUSE_SET_ATTR_MODE)
    f.update_uid = bool(to_set & FUSE_SET_ATTR_UID)
    f.update_gid = bool(to_set & FUSE_SET_ATTR_GID)
    f.update_size = bool(to_set & FUSE_SET_ATTR_SIZE)
    f.update_atime = bool(to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW))
    f.update_mtime = bool(to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))
    f.update_ctime = bool(to_set & FUSE_SET_ATTR_CTIME)
    f.update_atime_now = bool(to_set & FUSE_SET_ATTR_ATIME_NOW)
    f.update_mtime_now = bool(to_set & FUSE_SET_ATTR_MTIME_NOW)
    f.kill_suidgid = _kill_suidgid(s)
    if to_set & (FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW):
        clock_gettime(CLOCK_REALTIME, &now)
        if to_set & FUSE_SET_ATTR_ATIME_NOW:
            ea.e.attr.st_atim = now
        if to_set & FUSE_SET_ATTR_MTIME_NOW:
            ea.e.attr.st_mtim = now
    fh = fi.fh if fi is not NULL else None
    return (ino, ea, f, fh, _make_kill_ctx(req, s))

cdef void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct_stat *attr, int to_set,
                     fuse_file_info *fi) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_SETATTR)
        args = _setattr_args(ino, attr, to_set, fi, req, _session(req))
    except BaseException as exc:
        _unbuilt(req, OP_SETATTR, exc)
    else:
        _call(_session(req), req, OP_SETATTR, args, NULL, None)

cdef void ll_readlink(fuse_req_t req, fuse_ino_t ino) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_READLINK)
        args = (ino, _make_ctx(req))
    except BaseException as exc:
        _unbuilt(req, OP_READLINK, exc)
    else:
        _call(_session(req), req, OP_READLINK, args, NULL, None)

cdef void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                   dev_t rdev) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_MKNOD)
        args = (parent, _name(name), mode, rdev, _make_ctx(req))
    except BaseException as exc:
        _unbuilt(req, OP_MKNOD, exc)
    else:
        _call(_session(req), req, OP_MKNOD, args, NULL, None)

cdef void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_MKDIR)
        args = (parent, _name(name), mode, _make_ctx(req))
    except BaseException as exc:
        _unbuilt(req, OP_MKDIR, exc)
    else:
        _call(_session(req), req, OP_MKDIR, args, NULL, None)

cdef void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_UNLINK)
        args = (parent, _name(name), _make_ctx(req))
    except BaseException as exc:
        _unbuilt(req, OP_UNLINK, exc)
    else:
        _call(_session(req), req, OP_UNLINK, args, NULL, None)

cdef void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_RMDIR)
        args = (parent, _name(name), _make_ctx(req))
    except BaseException as exc:
        _unbuilt(req, OP_RMDIR, exc)
    else:
        _call(_session(req), req, OP_RMDIR, args, NULL, None)

cdef void ll_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
                     const char *name) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_SYMLINK)
        args = (parent, _name(name), _name(link), _make_ctx(req))
    except BaseException as exc:
        _unbuilt(req, OP_SYMLINK, exc)
    else:
        _call(_session(req), req, OP_SYMLINK, args, NULL, None)

cdef void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                    const char *newname, unsigned int flags) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_RENAME)
        args = (parent, _name(name), newparent, _name(newname), flags, _make_ctx(req))
    except BaseException as exc:
        _unbuilt(req, OP_RENAME, exc)
    else:
        _call(_session(req), req, OP_RENAME, args, NULL, None)

cdef void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
                  const char *newname) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_LINK)
        args = (ino, newparent, _name(newname), _make_ctx(req))
    except BaseException as exc:
        _unbuilt(req, OP_LINK, exc)
    else:
        _call(_session(req), req, OP_LINK, args, NULL, None)

cdef void ll_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi) noexcept with gil:
    cdef ReqState st
    cdef tuple args
    st.fi = fi[0]
    try:
        _fault_args(OP_OPEN)
        args = (ino, fi.flags, _make_kill_ctx(req, _session(req)))
    except BaseException as exc:
        _unbuilt(req, OP_OPEN, exc)
    else:
        _call(_session(req), req, OP_OPEN, args, &st, None)

cdef void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                  fuse_file_info *fi) noexcept with gil:
    cdef ReqState st
    cdef tuple args
    cdef Session s = _session(req)
    # A handle opened with FileInfo.read_fd is answered here: no Python call,
    # and other threads run while libfuse moves the data
    cdef int fd = shim_readfd_get(<void*>s, fi.fh)
    if fd >= 0:
        with nogil:
            _reply_data_from_fd(req, fd, off, size)
        return
    st.size = size
    try:
        _fault_args(OP_READ)
        args = (fi.fh, off, size)
    except BaseException as exc:
        _unbuilt(req, OP_READ, exc)
    else:
        _call(s, req, OP_READ, args, &st, None)

cdef void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                   fuse_file_info *fi) noexcept with gil:
    cdef ReqState st
    cdef tuple args
    st.size = size
    try:
        _fault_args(OP_WRITE)
        args = _write_args(_session(req), req, fi, off, PyBytes_FromStringAndSize(buf, size))
    except BaseException as exc:
        _unbuilt(req, OP_WRITE, exc)
    else:
        _call(_session(req), req, OP_WRITE, args, &st, None)

cdef object _gather(fuse_bufvec *bufv, int op):
    """The request's (possibly spliced) data as one bytes object, or an
    OSError carrying the errno when fuse_buf_copy failed."""
    cdef size_t size = fuse_buf_size(bufv)
    cdef bytes data = PyBytes_FromStringAndSize(NULL, size)
    cdef fuse_bufvec dst
    cdef ssize_t n
    memset(&dst, 0, sizeof(dst))
    dst.count = 1
    dst.buf[0].size = size
    dst.buf[0].mem = PyBytes_AS_STRING(data)
    if shim_test_fault_copy and _fault_fires(FAULT_COPY, op):
        n = -errno.EIO
    else:
        with nogil:
            n = fuse_buf_copy(&dst, bufv, <fuse_buf_copy_flags>0)
    if n < 0:
        return OSError(-n, 'copying the request data failed: %s' % os.strerror(-n))
    if <size_t>n != size:
        data = data[:n]
    return data

cdef void ll_write_buf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec *bufv, off_t off,
                       fuse_file_info *fi) noexcept with gil:
    cdef ReqState st
    cdef tuple args
    try:
        _fault_args(OP_WRITE)
        data = _gather(bufv, OP_WRITE)
        if isinstance(data, OSError):  # the writer gets the copy's errno
            fuse_reply_err(req, data.errno)
            return
        st.size = PyBytes_GET_SIZE(data)
        args = _write_args(_session(req), req, fi, off, data)
    except BaseException as exc:
        _unbuilt(req, OP_WRITE, exc)
    else:
        _call(_session(req), req, OP_WRITE, args, &st, None)

cdef void ll_flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_FLUSH)
        args = (fi.fh,)
    except BaseException as exc:
        _unbuilt(req, OP_FLUSH, exc)
    else:
        _call(_session(req), req, OP_FLUSH, args, NULL, None)

cdef void ll_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi) noexcept with gil:
    cdef tuple args
    cdef Session s = _session(req)
    shim_readfd_del(<void*>s, fi.fh)   # before the handler may close the fd
    s._detach_backing(req, fi.fh)
    try:
        _fault_args(OP_RELEASE)
        args = (fi.fh,)
    except BaseException as exc:
        _unbuilt(req, OP_RELEASE, exc)
    else:
        _call(s, req, OP_RELEASE, args, NULL, None)

cdef void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info *fi) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_FSYNC)
        args = (fi.fh, bool(datasync))
    except BaseException as exc:
        _unbuilt(req, OP_FSYNC, exc)
    else:
        _call(_session(req), req, OP_FSYNC, args, NULL, None)

cdef void ll_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi) noexcept with gil:
    cdef ReqState st
    cdef tuple args
    st.fi = fi[0]
    try:
        _fault_args(OP_OPENDIR)
        args = (ino, _make_ctx(req))
    except BaseException as exc:
        _unbuilt(req, OP_OPENDIR, exc)
    else:
        _call(_session(req), req, OP_OPENDIR, args, &st, None)

cdef inline void _readdir(fuse_req_t req, size_t size, off_t off, fuse_file_info *fi,
                          bint plus) noexcept with gil:
    cdef ReaddirToken tok
    cdef tuple args
    try:
        _fault_args(OP_READDIR)
        tok = ReaddirToken.__new__(ReaddirToken)
        tok.req = req
        tok.size = size
        tok.plus = plus
        tok.buf = <char*>malloc(size if size else 1)
        if tok.buf is NULL:
            fuse_reply_err(req, errno.ENOMEM)
            return
        args = (fi.fh, off, tok)
    except BaseException as exc:
        _unbuilt(req, OP_READDIR, exc)
    else:
        _call(_session(req), req, OP_READDIR, args, NULL, tok)

cdef void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                     fuse_file_info *fi) noexcept with gil:
    _readdir(req, size, off, fi, False)

cdef void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                         fuse_file_info *fi) noexcept with gil:
    _readdir(req, size, off, fi, True)

cdef void ll_releasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_RELEASEDIR)
        args = (fi.fh,)
    except BaseException as exc:
        _unbuilt(req, OP_RELEASEDIR, exc)
    else:
        _call(_session(req), req, OP_RELEASEDIR, args, NULL, None)

cdef void ll_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info *fi) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_FSYNCDIR)
        args = (fi.fh, bool(datasync))
    except BaseException as exc:
        _unbuilt(req, OP_FSYNCDIR, exc)
    else:
        _call(_session(req), req, OP_FSYNCDIR, args, NULL, None)

cdef void ll_statfs(fuse_req_t req, fuse_ino_t ino) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_STATFS)
        args = (_make_ctx(req),)
    except BaseException as exc:
        _unbuilt(req, OP_STATFS, exc)
    else:
        _call(_session(req), req, OP_STATFS, args, NULL, None)

cdef void ll_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                      size_t size, int flags) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_SETXATTR)
        args = (ino, _name(name), PyBytes_FromStringAndSize(value, size), _make_ctx(req))
    except BaseException as exc:
        _unbuilt(req, OP_SETXATTR, exc)
    else:
        _call(_session(req), req, OP_SETXATTR, args, NULL, None)

cdef void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) noexcept with gil:
    cdef ReqState st
    cdef tuple args
    st.size = size
    try:
        _fault_args(OP_GETXATTR)
        args = (ino, _name(name), _make_ctx(req))
    except BaseException as exc:
        _unbuilt(req, OP_GETXATTR, exc)
    else:
        _call(_session(req), req, OP_GETXATTR, args, &st, None)

cdef void ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) noexcept with gil:
    cdef ReqState st
    cdef tuple args
    st.size = size
    try:
        _fault_args(OP_LISTXATTR)
        args = (ino, _make_ctx(req))
    except BaseException as exc:
        _unbuilt(req, OP_LISTXATTR, exc)
    else:
        _call(_session(req), req, OP_LISTXATTR, args, &st, None)

cdef void ll_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_REMOVEXATTR)
        args = (ino, _name(name), _make_ctx(req))
    except BaseException as exc:
        _unbuilt(req, OP_REMOVEXATTR, exc)
    else:
        _call(_session(req), req, OP_REMOVEXATTR, args, NULL, None)

cdef void ll_access(fuse_req_t req, fuse_ino_t ino, int mask) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_ACCESS)
        args = (ino, mask, _make_ctx(req))
    except BaseException as exc:
        _unbuilt(req, OP_ACCESS, exc)
    else:
        _call(_session(req), req, OP_ACCESS, args, NULL, None)

cdef void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                    fuse_file_info *fi) noexcept with gil:
    cdef ReqState st
    cdef tuple args
    st.fi = fi[0]
    try:
        _fault_args(OP_CREATE)
        args = (parent, _name(name), mode, fi.flags, _make_kill_ctx(req, _session(req)))
    except BaseException as exc:
        _unbuilt(req, OP_CREATE, exc)
    else:
        _call(_session(req), req, OP_CREATE, args, &st, None)

cdef inline tuple _lock_tuple(flock *lock):
    end = -1 if lock.l_len == 0 else lock.l_start + lock.l_len - 1
    return (lock.l_type, lock.l_start, end, lock.l_pid)

cdef void ll_getlk(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi, flock *lock) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_GETLK)
        args = (ino, fi.fh, fi.lock_owner, _lock_tuple(lock), _make_ctx(req))
    except BaseException as exc:
        _unbuilt(req, OP_GETLK, exc)
    else:
        _call(_session(req), req, OP_GETLK, args, NULL, None)

cdef void ll_setlk(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi, flock *lock, int sleep) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_SETLK)
        args = (ino, fi.fh, fi.lock_owner, _lock_tuple(lock), bool(sleep), _make_ctx(req))
    except BaseException as exc:
        _unbuilt(req, OP_SETLK, exc)
    else:
        _call(_session(req), req, OP_SETLK, args, NULL, None)

cdef void ll_flock(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi, int op) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_FLOCK)
        args = (ino, fi.fh, fi.lock_owner, op, _make_ctx(req))
    except BaseException as exc:
        _unbuilt(req, OP_FLOCK, exc)
    else:
        _call(_session(req), req, OP_FLOCK, args, NULL, None)

cdef void ll_bmap(fuse_req_t req, fuse_ino_t ino, size_t blocksize, uint64_t idx) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_BMAP)
        args = (ino, blocksize, idx)
    except BaseException as exc:
        _unbuilt(req, OP_BMAP, exc)
    else:
        _call(_session(req), req, OP_BMAP, args, NULL, None)

cdef void ll_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg, fuse_file_info *fi,
                   unsigned flags, const void *in_buf, size_t in_bufsz, size_t out_bufsz) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_IOCTL)
        in_data = PyBytes_FromStringAndSize(<const char*>in_buf, in_bufsz) if in_bufsz else b''
        args = (ino, fi.fh, cmd, <size_t>arg, in_data, out_bufsz, flags, _make_ctx(req))
    except BaseException as exc:
        _unbuilt(req, OP_IOCTL, exc)
    else:
        _call(_session(req), req, OP_IOCTL, args, NULL, None)

cdef void ll_poll(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi, fuse_pollhandle *ph) noexcept with gil:
    cdef PollHandle handle = None
    cdef tuple args
    try:
        _fault_args(OP_POLL)
        if ph is not NULL:
            handle = PollHandle.__new__(PollHandle)
            handle.ph = ph   # owned by the handle from here on
        args = (ino, fi.fh, fi.poll_events, handle)
    except BaseException as exc:
        if handle is None and ph is not NULL:
            fuse_pollhandle_destroy(ph)
        _unbuilt(req, OP_POLL, exc)
    else:
        _call(_session(req), req, OP_POLL, args, NULL, None)

cdef void ll_retrieve_reply(fuse_req_t req, void *cookie, fuse_ino_t ino, off_t offset,
                            fuse_bufvec *bufv) noexcept with gil:
    # data: the cached bytes, or the OSError of a failed copy (never a
    # buffer the copy did not fill)
    cdef tuple args
    try:
        _fault_args(OP_RETRIEVE_REPLY)
        args = (<size_t>cookie, ino, offset, _gather(bufv, OP_RETRIEVE_REPLY))
    except BaseException as exc:
        _unbuilt(req, OP_RETRIEVE_REPLY, exc)
    else:
        _call(_session(req), req, OP_RETRIEVE_REPLY, args, NULL, None)

cdef void ll_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                       fuse_file_info *fi) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_FALLOCATE)
        args = (fi.fh, mode, offset, length)
    except BaseException as exc:
        _unbuilt(req, OP_FALLOCATE, exc)
    else:
        _call(_session(req), req, OP_FALLOCATE, args, NULL, None)

cdef void ll_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info *fi_in,
                             fuse_ino_t ino_out, off_t off_out, fuse_file_info *fi_out, size_t length,
                             int flags) noexcept with gil:
    cdef ReqState st
    cdef tuple args
    st.size = length
    try:
        _fault_args(OP_COPY_FILE_RANGE)
        args = (fi_in.fh, off_in, fi_out.fh, off_out, length, flags)
    except BaseException as exc:
        _unbuilt(req, OP_COPY_FILE_RANGE, exc)
    else:
        _call(_session(req), req, OP_COPY_FILE_RANGE, args, &st, None)

cdef void ll_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info *fi) noexcept with gil:
    cdef tuple args
    try:
        _fault_args(OP_LSEEK)
        args = (fi.fh, off, whence)
    except BaseException as exc:
        _unbuilt(req, OP_LSEEK, exc)
    else:
        _call(_session(req), req, OP_LSEEK, args, NULL, None)


def _test_only_filled_ops(implemented):
    """TEST ONLY: the bytes of the fuse_lowlevel_ops _fill_ops() makes for
    the operation names ``implemented`` (which members are set is checked
    against the libfuse header and operations_table.py)."""
    cdef fuse_lowlevel_ops ops
    _fill_ops(&ops, implemented)
    return PyBytes_FromStringAndSize(<const char*>&ops, sizeof(ops))
