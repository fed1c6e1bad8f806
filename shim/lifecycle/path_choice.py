"""Step 1 of the startup: which path -- sync (SYNC_INIT) or classic -- and
the reason users see (Mount.startup_reason, the log line, the error of
startup="sync" where it is impossible)."""
from __future__ import annotations

import errno
import os

from .. import kernel
from ..errors import SyncInitUnavailable


def choose_path(mode, options):
    """-> (path, reason, armed /dev/fuse fd or None).  ``mode`` is the
    requested startup ("auto", "sync" or "classic")."""
    if mode == 'classic':
        return 'classic', 'startup="classic" was requested', None

    def unavailable(reason):
        if mode == 'sync':
            raise SyncInitUnavailable(errno.EOPNOTSUPP,
                                      f'startup="sync" is impossible here: {reason}')
        return 'classic', reason, None

    if options.needs_fusermount:
        return unavailable('auto_unmount needs fusermount3, which mounts classically')
    if not kernel.has_cap_sys_admin():
        return unavailable('no CAP_SYS_ADMIN: mounting through fusermount3')
    fd = kernel.open_fuse_device()
    try:
        kernel.arm_sync_init(fd)
    except OSError as e:
        os.close(fd)
        if e.errno == errno.ENOTTY:
            return unavailable(f'kernel {os.uname().release} has no FUSE_DEV_IOC_SYNC_INIT '
                               '(ENOTTY; needs Linux >= 6.18)')
        return unavailable(f'FUSE_DEV_IOC_SYNC_INIT failed: {e.strerror}')
    return 'sync', f'kernel {os.uname().release} accepted FUSE_DEV_IOC_SYNC_INIT', fd
