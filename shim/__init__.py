"""fuseshim: a fast Python binding over libfuse3 that mounts with
synchronous FUSE_INIT (Linux >= 6.18) where it can, classically where not."""
from __future__ import annotations

from ._core import (DirListing, EntryAttributes, FdRange, FileInfo, FUSEError, PollHandle, ReaddirToken,
                    RequestContext, SetattrFields, StatvfsData, build_features,
                    current_operations, current_request_ids, libfuse_version, readdir_reply)
from .errors import FuseshimError, InitError, InitTimeout, MountError, SyncInitUnavailable
from .kernel import SyncInitProbe, probe_sync_init
from .mount import Mount, mount
from .operations import Operations, mode_after_kill_suidgid

__version__ = '0.1.0'
ROOT_INODE = 1

__all__ = [
    'DirListing', 'EntryAttributes', 'FdRange', 'FileInfo', 'FUSEError', 'FuseshimError', 'InitError', 'InitTimeout',
    'Mount', 'MountError', 'Operations', 'PollHandle', 'ROOT_INODE', 'ReaddirToken',
    'RequestContext', 'SetattrFields', 'StatvfsData', 'SyncInitProbe', 'SyncInitUnavailable',
    'current_operations', 'current_request_ids', 'features', 'libfuse_io_uring', 'libfuse_version',
    'mode_after_kill_suidgid', 'mount', 'probe_sync_init', 'readdir_reply',
]


def libfuse_io_uring() -> bool | None:
    """Is the FUSE-over-io_uring transport compiled into the libfuse in use?

    libfuse (>= 3.18) links liburing only when it builds that transport, so
    its NEEDED entries tell; None when the library file cannot be found."""
    from ._core import libfuse_path
    from .elf import needed
    path = libfuse_path()
    if not path:
        return None
    return any(name.startswith('liburing.so') for name in needed(path))


def features() -> dict:
    """What this build and the running kernel support."""
    from .kernel import fuse_io_uring_enabled, has_cap_sys_admin
    probe = probe_sync_init()
    feats = build_features()
    feats.update({
        'libfuse_runtime_version': libfuse_version(),
        'sync_init': probe.supported,
        'sync_init_reason': probe.reason,
        'cap_sys_admin': has_cap_sys_admin(),
        'io_uring_transport': libfuse_io_uring(),
        'io_uring_kernel': fuse_io_uring_enabled(),
    })
    return feats
