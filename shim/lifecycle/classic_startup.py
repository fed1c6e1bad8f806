"""Step 3 (classic path): libfuse's own mount -- mount(2) as root,
fusermount3 otherwise -- then the readers, then wait for FUSE_INIT (the
kernel sends it only once mount(2) returned)."""
from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import time

from .. import kernel
from ..errors import InitError, InitTimeout, MountError
from .state import SessionState


def start_classic(m):
    """Mount ``m`` (a fuseshim.Mount being started) the classic way."""
    s = m.session
    m.mount_called_ns = time.monotonic_ns()
    if kernel.has_cap_sys_admin():
        failure = s.mount_classic(m.mountpoint)
    else:
        # fusermount3 explains a refusal only on its stderr (our fd 2)
        with stderr_captured() as helper_said:
            failure = s.mount_classic(m.mountpoint)
        if failure is not None and helper_said():
            failure = f'{failure}; {helper_said()}'
    m.mount_returned_ns = time.monotonic_ns()
    if failure is not None:
        if 'open /dev/fuse' in failure and not kernel.has_cap_sys_admin():
            failure += (' (/dev/fuse must be accessible to ordinary users for fusermount3; '
                        "Debian's udev rule makes it mode 0666)")
        raise MountError(errno.EIO, f'libfuse could not mount: {failure}', m.mountpoint)
    s.lifecycle.to(SessionState.MOUNTED)
    m.conn_minor = kernel.our_connection(s.fd, m.mountpoint)
    m._serving.spawn_classic_readers()
    if not m._mount_loop.blocking(s.init_event.wait, m.init_timeout):
        if m.conn_minor is not None:
            kernel.abort_connection(m.conn_minor)
        raise InitTimeout(errno.ETIMEDOUT, f'FUSE_INIT was not answered within '
                          f'{m.init_timeout} s; the connection was aborted and the '
                          'filesystem unmounted', m.mountpoint)
    if s.init_error is not None:
        raise InitError(errno.EPROTO, f'the init handler raised {s.init_error!r}; '
                        'the filesystem was unmounted', m.mountpoint) from s.init_error


@contextlib.contextmanager
def stderr_captured():
    """Redirect fd 2 (where child processes such as fusermount3 write) to a
    temporary file for the block; yields a function returning what was
    written, which is also passed on to the real stderr afterwards."""
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        text = []
        try:
            yield lambda: ''.join(text)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            data = tmp.read().decode(errors='replace')
            text.append(' '.join(data.split()))
            if data:
                os.write(2, data.encode())
