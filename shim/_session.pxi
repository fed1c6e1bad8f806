# Session: one libfuse session, its worker loop, init/destroy, async replies.
# The startup orchestration (which path, mount(2), timeouts) lives in
# lifecycle/, the serving modes in serving/; this file only offers the
# primitives they need.  The session's state (lifecycle/state.py) is held
# here, so that every party -- Mount, the serving modes, an outside driver --
# changes it through the same Lifecycle.

cdef struct InitErrorReply:
    # struct fuse_out_header
    uint32_t len
    int32_t error
    uint64_t unique


# How coroutine handlers are run (Session.serve_mode).
cdef enum ServeMode:
    # worker threads read; coroutines are handed to the loop thread (a hop each)
    SERVE_THREADS
    # the loop thread reads (add_reader) and steps each coroutine at once;
    # only one that suspends becomes a Task
    SERVE_LOOP
    # an outside driver (the pyfuse3 layer's trio tasks) reads with pump() and
    # awaits the coroutines pump() collected in its own tasks
    SERVE_EXTERNAL

SERVE_MODES = {'threads': SERVE_THREADS, 'loop': SERVE_LOOP, 'external': SERVE_EXTERNAL}

cdef enum:
    # a worker takes over reading once the reader spent this long in a handler
    TAKEOVER_NS = 500000
    # ... checking at least this often (so a request waits at most ~10.5 ms
    # behind a handler that starts blocking)
    NAP_MAX_US = 10000


@cython.final
cdef class _Pending:
    """A request whose coroutine handler has not finished yet."""
    cdef Session session
    cdef fuse_req_t req
    cdef readonly int op          # index into OP_NAMES
    cdef bint tracked             # in session.pending
    cdef ReqState st
    cdef object aux
    cdef object ctx
    cdef object task
    cdef readonly object coro

    def start(self, coro):
        self.task = self.session.loop.create_task(coro)
        self.task.add_done_callback(self.done)

    def done(self, task):
        try:
            res = task.result()
        except BaseException as exc:
            self.finish(None, exc)
        else:
            self.finish(res, None)

    def finish(self, result, exc=None):
        """Answer the request with the handler's result, or its exception."""
        cdef Session s = self.session
        self.coro = None
        # The lock orders this reply against Session.destroy(): a request
        # outliving its session is dropped, never answered through freed memory.
        _lock(s)
        try:
            if self.tracked:
                s.pending.discard(self)
            if s.destroyed or self.req is NULL:
                return
            _reply_outcome(s, self.req, self.op, result, exc, &self.st, self.aux)
            self.req = NULL
            if self.ctx is not None:
                (<RequestContext>self.ctx).req = NULL
        finally:
            PyThread_release_lock(s.lock)


cdef inline void _reply_outcome(Session s, fuse_req_t req, int op, object result, object exc,
                                ReqState *st, object aux) noexcept:
    if exc is None:
        try:
            _reply(s, req, op, result, st, aux)
            return
        except BaseException as e:
            exc = e
    if isinstance(exc, asyncio.CancelledError):
        exc = FUSEError(errno.EINTR)
    s._reply_exception(req, op, exc)


@cython.final
cdef class _Resumed:
    """Continues, as an asyncio Task, a coroutine that suspended while it was
    stepped eagerly: the Task's first send() gets the object the coroutine
    yielded then (normally the future it waits for), later ones go through."""
    cdef object coro
    cdef object first
    cdef bint started

    def send(self, value):
        if not self.started:
            self.started = True
            return self.first
        return self.coro.send(value)

    def throw(self, *exc):
        self.started = True
        return self.coro.throw(*exc)

    def close(self):
        self.coro.close()

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        return self.send(None)


collections.abc.Coroutine.register(_Resumed)


cdef inline _Resumed _resumed(object coro, object first):
    cdef _Resumed rest = _Resumed.__new__(_Resumed)
    rest.coro = coro
    rest.first = first
    return rest


def resume_coroutine(coro, first):
    """Await-able continuation of ``coro`` whose first step was taken by
    hand (``first = coro.send(None)`` yielded instead of returning): awaiting
    it yields ``first`` to the running task, then goes on with ``coro``.
    Lets an event-loop driver run a handler inline and decide only when it
    suspends whether to hand its reading role to another task."""
    return _resumed(coro, first)


@cython.final
cdef class Session:
    cdef fuse_session *se
    cdef fuse_lowlevel_ops llops
    cdef list handlers
    cdef bint is_async[<int>OP_COUNT]
    cdef readonly object ops
    cdef public object loop
    cdef public object init_event
    cdef public object init_error
    cdef public object conn_info
    cdef public int64_t init_ns
    cdef public dict want
    cdef public dict granted
    cdef readonly bint stopping
    cdef uint64_t init_unique
    # wanted: Operations.enable_killpriv and write() takes the writer's
    # RequestContext as a fourth argument; granted: FUSE_HANDLE_KILLPRIV_V2
    # agreed, the kernel flags requests whose caller lacks CAP_FSETID
    cdef readonly bint killpriv_wanted
    cdef readonly bint killpriv_granted
    cdef bint destroyed
    cdef dict backing_ids
    # orders replies against destroy() and guards pending; a C lock because
    # finish() takes it for every coroutine-answered request
    cdef PyThread_type_lock lock
    cdef set pending
    cdef readonly int serve_mode
    cdef int reading              # a worker is in (or entering) receive: shim_claim_reader
    cdef int64_t handler_since_ns # when the reader last left read() with a request
    cdef list collected
    cdef fuse_buf pump_buf        # receive buffer of the single non-blocking reader
    # the one SessionState and its transitions (lifecycle/state.py)
    cdef readonly object lifecycle
    # a KeyboardInterrupt or SystemExit a handler raised: it ends the
    # filesystem, and Mount.wait()/close() raise it again (pyfuse3 lets them
    # escape main() the same way) instead of it being answered EIO and lost
    cdef readonly object fatal
    # runs an ``async def init``'s coroutine when the INIT thread must not
    # wait for the loop (mount() called on the loop's own thread: lifecycle/event_loop.py)
    cdef public object init_runner

    def __cinit__(self, ops, implemented, argv):
        """Create the libfuse session (nothing is opened or mounted yet)."""
        cdef fuse_args args
        cdef list argv_b = [os.fsencode(a) for a in argv]
        cdef char **cargv = <char**>calloc(len(argv_b) + 1, sizeof(char*))
        if cargv is NULL:
            raise MemoryError()
        self.ops = ops
        self.handlers = []
        for i, name in enumerate(OP_NAMES):
            h = getattr(ops, name, None) if name in implemented else None
            self.handlers.append(h)
            self.is_async[i] = h is not None and inspect.iscoroutinefunction(h)
        self.killpriv_wanted = (bool(getattr(ops, 'enable_killpriv', False))
                                and _takes_writer(self.handlers[<int>OP_WRITE]))
        self.init_event = threading.Event()
        self.want = {}
        self.granted = {}
        self.backing_ids = {}
        self.pending = set()
        self.lock = PyThread_allocate_lock()
        if self.lock is NULL:
            raise MemoryError()
        self.lifecycle = Lifecycle()
        self.collected = []
        _fill_ops(&self.llops, implemented)
        try:
            for i, a in enumerate(argv_b):
                cargv[i] = a
            args.argc = len(argv_b)
            args.argv = cargv
            args.allocated = 0
            with _LogCapture() as captured:
                self.se = fuse_session_new(&args, &self.llops, sizeof(self.llops), <void*>self)
            if self.se is NULL:
                raise ValueError('libfuse rejected the options %r: %s'
                                 % (argv[1:], captured.text() or 'no reason given'))
        finally:
            free(cargv)

    def __del__(self):
        # A finalizer may run on any thread, at any allocation: it runs no
        # user code (destroy() runs only from Mount.close() / destroy()), it
        # warns, and __dealloc__ frees.
        if self.se is not NULL and not self.destroyed:
            warnings.warn('unclosed fuseshim Session (fd %d): the destroy handler was not run; '
                          'call Mount.close()' % fuse_session_fd(self.se), ResourceWarning,
                          stacklevel=2)

    def __dealloc__(self):
        global shim_finalizing_session
        cdef void *outer
        if self.se is not NULL and not self.destroyed:
            # Only free: libfuse would call our destroy callback for a session
            # that got INIT, and this object is half gone.  Closing the
            # /dev/fuse fd (in fuse_session_destroy) makes the kernel abort the
            # connection once no other fd serves it: callers get ENOTCONN
            # instead of waiting forever.
            outer = shim_finalizing_session
            shim_finalizing_session = <void*>self
            shim_pathfd_drop_session(<void*>self)
            fuse_session_destroy(self.se)
            shim_finalizing_session = outer
            self.se = NULL
        shim_readfd_drop_session(<void*>self)
        shim_pathfd_drop_session(<void*>self)
        free(self.pump_buf.mem)
        if self.lock is not NULL:
            PyThread_free_lock(self.lock)

    @property
    def backing_handles(self):
        """How many handles hold a passthrough backing id (FileInfo.backing_fd)."""
        return len(self.backing_ids)

    @property
    def state(self):
        """The SessionState (new, mounted, serving, ended, stopping, destroyed)."""
        return self.lifecycle.state

    @property
    def served(self):
        """Set while no event-loop reader (add_reader, or an outside driver)
        runs: close() waits for it.  An outside driver clear()s it when it
        starts reading and set()s it when it stops: both change the state."""
        return self.lifecycle.served

    @property
    def uses_async(self):
        return any(self.is_async[i] for i in range(<int>OP_COUNT))

    @property
    def fd(self):
        return fuse_session_fd(self.se)

    def adopt_fd(self, int fd):
        """Make the session use an already-open /dev/fuse fd (no mounting).
        libfuse treats the mountpoint "/dev/fd/N" this way."""
        rc = fuse_session_mount(self.se, os.fsencode('/dev/fd/%d' % fd))
        if rc != 0:
            raise OSError(errno.EBADF, 'libfuse could not adopt /dev/fuse fd %d' % fd)

    def mount_classic(self, mountpoint):
        """libfuse's own mount: mount(2) as root, fusermount3 otherwise."""
        cdef bytes mp = os.fsencode(mountpoint)
        cdef const char *cmp = mp
        cdef int rc
        with _LogCapture() as captured:
            with nogil:
                rc = fuse_session_mount(self.se, cmp)
        if rc != 0:
            return captured.text() or 'libfuse gave no reason'
        return None

    def serve(self, bint until_init=False):
        """Worker loop: receive with the GIL released, dispatch, until unmounted
        (or, with ``until_init``, until FUSE_INIT was handled: the event-loop
        modes take over from there).
        process_buf keeps the GIL: nearly every request calls a Python handler,
        and re-taking the GIL in each callback costs more than libfuse's own
        few hundred instructions of decoding.
        Several workers never wait in read() together: requests would then
        alternate between threads, each fighting the previous one for the GIL
        (a convoy that made 2 workers half as fast as 1).  The worker that
        answered a request reads the next one itself; the others sleep and join
        in only while nobody reads -- when every reader is inside a handler,
        e.g. one blocked on slow I/O."""
        cdef fuse_buf buf
        cdef int res
        cdef bint is_init
        memset(&buf, 0, sizeof(buf))
        try:
            while True:
                with nogil:
                    if not self._claim_reader():
                        break
                    res = fuse_session_receive_buf(self.se, &buf)
                    self.handler_since_ns = _monotonic_ns()
                    shim_release_reader(&self.reading)
                if res == -EINTR or res == -EAGAIN:
                    if self.stopping:
                        break
                    continue
                if res <= 0:
                    break
                is_init = shim_buf_opcode(&buf) == SHIM_FUSE_INIT_OPCODE
                if is_init:
                    self.init_unique = shim_buf_unique(&buf)
                shim_note_request(&buf)   # flags libfuse does not pass on
                fuse_session_process_buf(self.se, &buf)
                if fuse_session_exited(self.se) or (is_init and until_init):
                    break
        finally:
            free(buf.mem)

    cdef bint _claim_reader(self) noexcept nogil:
        """Become the reader.  At once if nobody reads (this worker just
        answered a request); otherwise sleep, and take over only once the
        reader has been inside a handler for more than TAKEOVER_NS -- blocked,
        e.g. on slow I/O -- so quick handlers never change threads.  The naps
        double from 1 ms to NAP_MAX_US while the reader keeps up: a wake-up
        per millisecond cost 2 workers 4 % of their throughput.  False when
        the session is stopping."""
        cdef unsigned nap = 1000
        if shim_claim_reader(&self.reading):
            return True
        while True:
            usleep(nap)  # a wake signal cuts it short (EINTR) at teardown
            if self.stopping or fuse_session_exited(self.se):
                return False
            if (self.reading == 0 and _monotonic_ns() - self.handler_since_ns > TAKEOVER_NS
                    and shim_claim_reader(&self.reading)):
                return True
            if nap < NAP_MAX_US:
                nap *= 2

    # ------------------------------------------------ event-loop serving

    def use_mode(self, mode):
        """'threads' (default), 'loop' or 'external'; set before serving."""
        self.serve_mode = SERVE_MODES[mode]

    cdef int _pump(self, int limit) except -2:
        """Receive and dispatch up to ``limit`` queued requests without
        blocking (the fd is non-blocking).  -> how many, or -1 at the end."""
        cdef int res, n = 0
        if self.se is NULL or self.stopping:
            return -1
        while n < limit:
            res = fuse_session_receive_buf(self.se, &self.pump_buf)
            if res == -EAGAIN:
                break
            if res == -EINTR:
                continue
            if res <= 0:  # 0: unmounted (ENODEV), <0: the device failed
                return -1
            shim_note_request(&self.pump_buf)   # flags libfuse does not pass on
            fuse_session_process_buf(self.se, &self.pump_buf)
            n += 1
            if fuse_session_exited(self.se):
                return -1
        return n

    def attach_loop(self):
        """Serve from the event loop (call on its thread, after INIT)."""
        os.set_blocking(self.fd, False)
        self.loop.add_reader(self.fd, self._on_readable)

    def _on_readable(self):
        # A bounded batch, so other callbacks of the loop keep their turn.
        if self._pump(64) < 0:
            self.lifecycle.connection_ended()
            self.detach_loop()

    def detach_loop(self):
        """Stop serving from the event loop (call on its thread)."""
        if not self.served.is_set():
            self.loop.remove_reader(self.fd)
            self.served.set()

    def pump(self, int limit=64):
        """For an outside driver (serve_mode 'external'): receive and dispatch
        the queued requests, without blocking.  -> the _Pending requests whose
        coroutine (.coro) the driver must await and then finish(), or None
        once the filesystem is gone.  The driver waits for self.fd to be
        readable between calls; it clears served when it starts reading
        and sets it when it stops (lifecycle/state.py: both are state
        changes)."""
        cdef list out
        if self._pump(limit) < 0:
            self.lifecycle.connection_ended()
            out = self.collected
            self.collected = []
            for p in out:
                (<_Pending>p).finish(None, FUSEError(errno.ENOTCONN))
            return None
        out = self.collected
        self.collected = []
        return out

    def exit(self):
        """Ask workers to stop at their next wake-up."""
        self.stopping = True
        fuse_session_exit(self.se)

    def destroy(self):
        """Tear down the session: runs the destroy handler (if INIT was
        answered) and closes the /dev/fuse fd."""
        if self.se is NULL or self.destroyed:
            return
        self.lifecycle.begin_stopping()   # a no-op when close() began it
        _lock(self)
        self.destroyed = True
        PyThread_release_lock(self.lock)
        # before the destroy handler, which may close the inodes' path_fds
        shim_pathfd_drop_session(<void*>self)
        with nogil:
            fuse_session_destroy(self.se)
        self.se = NULL
        shim_readfd_drop_session(<void*>self)   # handles never released
        self.lifecycle.to(SessionState.DESTROYED)

    # -------------------------------------------------------------- init

    cdef void _on_init(self, fuse_conn_info *conn) noexcept:
        try:
            self.conn_info = {
                'proto_major': conn.proto_major, 'proto_minor': conn.proto_minor,
                'capable': conn.capable, 'max_write': conn.max_write,
                'max_readahead': conn.max_readahead}
            for name, on in self.want.items():
                if name == 'passthrough':
                    self.granted[name] = bool(shim_want_passthrough(conn)) if on else False
                elif name == 'handle_killpriv_v2':
                    self.killpriv_granted = on and bool(shim_want_killpriv_v2(self.se, conn))
                    self.granted[name] = self.killpriv_granted
                else:
                    self.granted[name] = bool(shim_conn_want(conn, _CAPS[name], on))
            h = getattr(self.ops, 'init', None)
            if h is not None:
                r = _run_bare(self, h)
                if inspect.iscoroutine(r):
                    if self.init_runner is not None:
                        self.init_runner(r)
                    else:
                        asyncio.run_coroutine_threadsafe(r, self.loop).result()
        except BaseException as exc:
            self.init_error = exc
            self._fail_init()
        finally:
            self.init_ns = time.monotonic_ns()
            self.init_event.set()

    cdef void _fail_init(self) noexcept:
        # libfuse's init callback cannot refuse INIT, so answer the request
        # ourselves with an error first; libfuse's later success reply then
        # finds no pending request and is dropped (ENOENT) by the kernel.
        cdef InitErrorReply r
        r.len = sizeof(r)
        r.error = -errno.EPROTO
        r.unique = self.init_unique
        with nogil:
            write(fuse_session_fd(self.se), &r, sizeof(r))
        self.stopping = True
        fuse_session_exit(self.se)

    cdef void _on_destroy(self) noexcept:
        h = getattr(self.ops, 'destroy', None)
        if h is None:
            return
        try:
            r = _run_bare(self, h)
            if inspect.iscoroutine(r):
                if self.loop is not None and _running_loop() is self.loop:
                    # close() on the loop's own thread: waiting for the loop
                    # would stall (it cannot turn while close() runs)
                    run_on_blocked_loop(r, self.loop, 'destroy')
                elif self.loop is not None and self.loop.is_running():
                    asyncio.run_coroutine_threadsafe(r, self.loop).result(30)
                else:
                    asyncio.run(r)
        except BaseException:
            log.exception('fuseshim: destroy handler raised')

    # ------------------------------------------------------- async replies

    def abandon_pending(self):
        """At teardown: cancel coroutine handlers still running and return
        their operation names (their requests die with the connection)."""
        _lock(self)
        try:
            pending = list(self.pending)
        finally:
            PyThread_release_lock(self.lock)
        for p in pending:
            task = (<_Pending>p).task
            if task is not None:
                self.loop.call_soon_threadsafe(task.cancel)
            elif (<_Pending>p).coro is not None:  # collected, never awaited
                (<_Pending>p).finish(None, FUSEError(errno.ENOTCONN))
        return sorted(OP_NAMES[(<_Pending>p).op] for p in pending)

    cdef bint _submit(self, fuse_req_t req, int op, object coro, ReqState *st, object aux,
                      object ctx) except -1:
        """Run a coroutine handler's result; True if the request is answered."""
        if type(coro) is not CoroutineType and not inspect.iscoroutine(coro):
            # an async-looking handler returned a value
            _reply(self, req, op, coro, st, aux)
            return True
        if self.serve_mode == SERVE_LOOP:
            return self._step_eagerly(req, op, coro, st, aux, ctx)
        cdef _Pending p = self._pending(req, op, st, aux, ctx)
        if self.serve_mode == SERVE_EXTERNAL:
            p.coro = coro
            self.collected.append(p)
        else:
            self.loop.call_soon_threadsafe(p.start, coro)
        return False

    cdef _Pending _pending(self, fuse_req_t req, int op, ReqState *st, object aux, object ctx):
        cdef _Pending p = _Pending.__new__(_Pending)
        p.session = self
        p.req = req
        p.op = op
        p.aux = aux
        p.ctx = ctx
        if st is not NULL:
            p.st = st[0]
        if self.serve_mode != SERVE_EXTERNAL:  # the outside driver tracks its own
            _lock(self)
            try:
                self.pending.add(p)
                p.tracked = True
            finally:
                PyThread_release_lock(self.lock)
        return p

    cdef bint _step_eagerly(self, fuse_req_t req, int op, object coro, ReqState *st, object aux,
                            object ctx) except -1:
        # On the loop thread: most handlers finish without ever suspending, and
        # then a Task (two more loop turns) would be pure overhead.  Each runs in
        # its own copy of the context, as a Task would.
        context = contextvars.copy_context()
        try:
            yielded = context.run(coro.send, None)
        except StopIteration as stop:
            _reply_outcome(self, req, op, stop.value, None, st, aux)
            return True
        except BaseException as exc:
            _reply_outcome(self, req, op, None, exc, st, aux)
            return True
        cdef _Resumed rest = _resumed(coro, yielded)
        cdef _Pending p = self._pending(req, op, st, aux, ctx)
        p.task = context.run(self.loop.create_task, rest)
        p.task.add_done_callback(p.done)
        return False

    cdef void _reply_exception(self, fuse_req_t req, int op, object exc,
                               bint building=False) noexcept:
        # building: the exception came while fuseshim built the handler's
        # arguments (the handler never ran)
        cdef int err = errno.EIO
        if isinstance(exc, FUSEError) and isinstance(exc.errno, int) and 0 < exc.errno < 4096:
            err = exc.errno
        elif isinstance(exc, (KeyboardInterrupt, SystemExit)):
            # the request is still answered (EINTR), then serving stops
            err = errno.EINTR
            if self.fatal is None:
                self.fatal = exc
                log.error('fuseshim: %s handler raised %s; the filesystem stops serving and '
                          'Mount.wait()/close() raise it', OP_NAMES[op], type(exc).__name__)
            self.exit()
        elif building:
            log.error('fuseshim: building the arguments of %s failed (the handler was not '
                      'called); answering EIO', OP_NAMES[op], exc_info=exc)
        else:
            log.error('fuseshim: %s handler raised; answering EIO', OP_NAMES[op], exc_info=exc)
        if _replies_none(op):
            fuse_reply_none(req)
        else:
            fuse_reply_err(req, err)

    # ------------------------------------------------------- passthrough

    cdef int _attach_backing(self, fuse_req_t req, fuse_file_info *fi, int fd) except -1:
        """Register ``fd`` as the handle's passthrough backing file. -> the id."""
        if not self.granted.get('passthrough'):
            raise OSError(errno.ENOSYS, 'FUSE passthrough is not available (needs libfuse >= 3.17, '
                          'Linux >= 6.9, CAP_SYS_ADMIN and passthrough=True)')
        cdef int bid = shim_passthrough_open(req, fd)
        if bid <= 0:
            raise OSError(-bid if bid < 0 else errno.EIO, 'fuse_passthrough_open failed')
        shim_fi_set_backing_id(fi, bid)
        # The kernel refuses passthrough opens carrying other flags than
        # FOPEN_PASSTHROUGH_MASK (direct_io, parallel writes, noflush).
        fi.keep_cache = 0
        fi.nonseekable = 0
        # One dict operation under the GIL needs no lock -- and must not take
        # the session lock: a coroutine's open is answered under it (finish())
        self.backing_ids[fi.fh] = bid
        return bid

    cdef void _detach_backing(self, fuse_req_t req, uint64_t fh) noexcept:
        if not self.backing_ids:
            return
        bid = self.backing_ids.pop(fh, None)   # atomic under the GIL, as above
        if bid is not None:
            shim_passthrough_close(req, bid)

    cdef void _release_backing(self, uint64_t fh, int backing_id) noexcept:
        """Undo _attach_backing for a handle the kernel never got (its open
        reply failed).  By the session's fd: the request is gone already."""
        if self.backing_ids.get(fh) == backing_id:
            del self.backing_ids[fh]
        shim_backing_close(fuse_session_fd(self.se), backing_id)

    # ------------------------------------------------------- notifications

    def invalidate_inode(self, fuse_ino_t inode, attr_only=False):
        """Drop the kernel's cached attributes (and data unless attr_only)."""
        cdef int rc
        cdef off_t off = -1 if attr_only else 0
        with nogil:
            rc = fuse_lowlevel_notify_inval_inode(self.se, inode, off, 0)
        _check_notify(rc, 'invalidate_inode')

    def invalidate_entry(self, fuse_ino_t parent, name, fuse_ino_t deleted=0):
        """Drop a cached directory entry; with ``deleted`` also tell inotify."""
        cdef bytes n = os.fsencode(name)
        cdef const char *cn = n
        cdef size_t ln = len(n)
        cdef int rc
        with nogil:
            if deleted:
                rc = fuse_lowlevel_notify_delete(self.se, parent, deleted, cn, ln)
            else:
                rc = fuse_lowlevel_notify_inval_entry(self.se, parent, cn, ln)
        _check_notify(rc, 'invalidate_entry')

    def notify_store(self, fuse_ino_t inode, off_t offset, data):
        """Push data into the kernel's page cache for ``inode``."""
        cdef const unsigned char[::1] view = bytes(data)
        cdef fuse_bufvec bv
        cdef int rc
        memset(&bv, 0, sizeof(bv))
        bv.count = 1
        bv.buf[0].size = view.shape[0]
        bv.buf[0].mem = <void*>&view[0] if view.shape[0] else NULL
        with nogil:
            rc = fuse_lowlevel_notify_store(self.se, inode, offset, &bv, <fuse_buf_copy_flags>0)
        _check_notify(rc, 'notify_store')

    def notify_retrieve(self, fuse_ino_t inode, off_t offset, size_t size, size_t cookie):
        """Ask the kernel for cached data; it arrives in retrieve_reply()."""
        cdef int rc
        with nogil:
            rc = fuse_lowlevel_notify_retrieve(self.se, inode, size, offset, <void*>cookie)
        _check_notify(rc, 'notify_retrieve')


def run_on_blocked_loop(coro, loop, what):
    """Run the coroutine of an ``async def`` init or destroy on the thread of
    ``loop`` while that loop cannot turn (mount() or close() was called from
    one of its callbacks and blocks it): step it in place, as the loop would,
    until it finishes -> its result.  Bare yields (``asyncio.sleep(0)``) are
    resumed at once.  One that waits for a future only the loop can complete:
    an init fails with RuntimeError naming it (the mount cannot wait); a
    destroy goes on as a Task of the loop, which finishes it once close()
    has returned."""
    context = contextvars.copy_context()   # as a Task would
    while True:
        try:
            yielded = context.run(coro.send, None)
        except StopIteration as stop:
            return stop.value
        if yielded is not None:
            break
    if what == 'init':
        coro.close()
        raise RuntimeError(
            'async def init awaited %r, which needs the event loop, but mount() was called on '
            "that loop's own thread and blocks it: await only what completes at once, or call "
            'mount() from another thread (e.g. await loop.run_in_executor(None, ...))' % (yielded,))
    cdef _Resumed rest = _Resumed.__new__(_Resumed)
    rest.coro = coro
    rest.first = yielded
    task = context.run(loop.create_task, rest)
    log.warning('fuseshim: the async %s handler awaits %r, which needs the event loop, but '
                "close() was called on that loop's own thread: it finishes on the loop after "
                'close() returns', what, yielded)
    return task


cdef object _running_loop():
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


cdef object _run_bare(Session s, handler):
    """init/destroy: handlers without a request, but current_operations()
    tells them their Operations object."""
    global shim_current_session
    cdef void *outer = shim_current_session
    shim_current_session = <void*>s
    try:
        return handler()
    finally:
        shim_current_session = outer


cdef inline void _lock(Session s) noexcept:
    """Take the session lock (GIL held).  Blocking waits drop the GIL: the
    holder may need it to finish its critical section."""
    if not PyThread_acquire_lock(s.lock, NOWAIT_LOCK):
        with nogil:
            PyThread_acquire_lock(s.lock, WAIT_LOCK)


cdef inline int64_t _monotonic_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


def _takes_writer(write):
    """Whether a write handler accepts the writer's RequestContext as a
    fourth argument (or there is none).  A subclass overriding write() with
    pyfuse3's three arguments does not: it gets no enable_killpriv, and the
    kernel drops suid/sgid with its own chmod as before."""
    if write is None:
        return True
    try:
        inspect.signature(write).bind(0, 0, b'', None)
    except (TypeError, ValueError):
        return False
    return True


cdef _check_notify(int rc, what):
    if rc < 0:
        raise OSError(-rc, '%s: %s' % (what, os.strerror(-rc)))


_CAPS = {
    'writeback_cache': FUSE_CAP_WRITEBACK_CACHE,
    'posix_acl': FUSE_CAP_POSIX_ACL,
    'splice_read': FUSE_CAP_SPLICE_READ,
    'splice_write': FUSE_CAP_SPLICE_WRITE,
    'splice_move': FUSE_CAP_SPLICE_MOVE,
    'cache_symlinks': FUSE_CAP_CACHE_SYMLINKS,
    'export_support': FUSE_CAP_EXPORT_SUPPORT,
    'handle_killpriv': FUSE_CAP_HANDLE_KILLPRIV,
    'no_open_support': FUSE_CAP_NO_OPEN_SUPPORT,
    'no_opendir_support': FUSE_CAP_NO_OPENDIR_SUPPORT,
    'parallel_dirops': FUSE_CAP_PARALLEL_DIROPS,
    'async_read': FUSE_CAP_ASYNC_READ,
}
