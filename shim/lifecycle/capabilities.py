"""Step 2 of the startup: the capabilities fuseshim asks the kernel for in
FUSE_INIT (Session.want), from the filesystem's enable_* attributes."""
from __future__ import annotations

import logging

log = logging.getLogger('fuseshim')


def wanted_capabilities(ops, session) -> dict:
    want = {'writeback_cache': bool(getattr(ops, 'enable_writeback_cache', False)),
            'posix_acl': bool(getattr(ops, 'enable_acl', False)),
            # libfuse turns splice on whenever write_buf exists; for the
            # small requests that dominate, it costs two extra syscalls each
            'splice_read': bool(getattr(ops, 'enable_splice_read', False)),
            # only FdRange replies (fuse_reply_data) use it, and libfuse copies
            # those under two pages anyway: large reads gain, nothing loses
            'splice_write': bool(getattr(ops, 'enable_splice_write', True)),
            'splice_move': bool(getattr(ops, 'enable_splice_write', True)),
            # pyfuse3's meaning: the fs answers "." and "..", so NFS export works
            'export_support': bool(getattr(ops, 'supports_dot_lookup', False))}
    if getattr(ops, 'enable_passthrough', False):
        want['passthrough'] = True
    if session.killpriv_wanted:
        # the flags are read from the raw request, which splice_read
        # leaves in a pipe: the two do not go together
        want['handle_killpriv_v2'] = not want['splice_read']
    elif getattr(ops, 'enable_killpriv', False):
        log.info('fuseshim: enable_killpriv ignored: %s.write() does not take the '
                 "writer's RequestContext as a fourth argument", type(ops).__name__)
    return want
