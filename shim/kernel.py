"""What the running kernel and this process can do, read without mounting."""
from __future__ import annotations

import errno
import fcntl
import os
from dataclasses import dataclass

from ._core import SYNC_INIT_IOCTL

FUSE_DEVICE = '/dev/fuse'
CONNECTIONS_DIR = '/sys/fs/fuse/connections'
URING_PARAMETER = '/sys/module/fuse/parameters/enable_uring'
_CAP_SYS_ADMIN = 21


@dataclass(frozen=True)
class SyncInitProbe:
    """Answer of probe_sync_init(): ``supported`` and a reason for it."""
    supported: bool
    reason: str
    errno: int = 0

    def __bool__(self) -> bool:
        return self.supported


def fuse_io_uring_enabled(parameter: str = URING_PARAMETER) -> bool | None:
    """Does the kernel offer FUSE over io_uring to servers that ask for it?

    None: the kernel has no such transport (before 6.14, or built without
    CONFIG_FUSE_IO_URING: the module parameter does not exist); otherwise
    the parameter's value (off by default; root may write Y to it)."""
    try:
        with open(parameter) as f:
            return f.read().strip() in ('Y', '1')
    except FileNotFoundError:
        return None


def has_cap_sys_admin() -> bool:
    """True if this process may call mount(2) itself."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('CapEff:'):
                return bool(int(line.split()[1], 16) >> _CAP_SYS_ADMIN & 1)
    return False


def open_fuse_device() -> int:
    """Open /dev/fuse, turning the usual failures into messages a user can act on."""
    try:
        fd = os.open(FUSE_DEVICE, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f'{FUSE_DEVICE} does not exist: load the fuse '
                                'kernel module (modprobe fuse) or, in a container, pass the '
                                'device in (--device /dev/fuse)', FUSE_DEVICE) from None
    except PermissionError:
        raise PermissionError(errno.EACCES, f'no permission to open {FUSE_DEVICE}: run as root, '
                              'or mount through fusermount3 (startup="classic" as an ordinary '
                              'user)', FUSE_DEVICE) from None
    st = os.fstat(fd)
    if not (os.major(st.st_rdev) == 10 and os.minor(st.st_rdev) == 229):
        os.close(fd)
        raise OSError(errno.ENODEV, f'{FUSE_DEVICE} is not the FUSE device (char 10:229)',
                      FUSE_DEVICE)
    return fd


def arm_sync_init(fd: int) -> None:
    """ioctl(FUSE_DEV_IOC_SYNC_INIT): INIT will then be exchanged inside mount(2)."""
    fcntl.ioctl(fd, SYNC_INIT_IOCTL)


def probe_sync_init() -> SyncInitProbe:
    """Ask the running kernel whether it supports FUSE_DEV_IOC_SYNC_INIT,
    on a throw-away /dev/fuse fd (nothing is mounted)."""
    try:
        fd = open_fuse_device()
    except OSError as e:
        return SyncInitProbe(False, str(e.strerror), e.errno or 0)
    try:
        arm_sync_init(fd)
    except OSError as e:
        if e.errno == errno.ENOTTY:
            return SyncInitProbe(False, f'kernel {os.uname().release} does not know '
                                 'FUSE_DEV_IOC_SYNC_INIT (ENOTTY; needs Linux >= 6.18)', e.errno)
        return SyncInitProbe(False, f'FUSE_DEV_IOC_SYNC_INIT failed: {e.strerror}', e.errno)
    finally:
        os.close(fd)
    return SyncInitProbe(True, f'kernel {os.uname().release} accepts FUSE_DEV_IOC_SYNC_INIT')


def mountinfo_entry(mountpoint: str):
    """(device minor, fstype) of the topmost mount at ``mountpoint``, or None.
    Read from /proc/self/mountinfo so no FUSE request is needed."""
    found = None
    with open('/proc/self/mountinfo') as f:
        for line in f:
            fields = line.split()
            if _unescape(fields[4]) != mountpoint:
                continue
            sep = fields.index('-')
            minor = int(fields[2].split(':')[1])
            found = (minor, fields[sep + 1])
    return found


def is_mountpoint(path: str) -> bool:
    return mountinfo_entry(path) is not None


def _unescape(s: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    if '\\' not in s:
        return s
    return bytes(s, 'utf-8').decode('unicode_escape').encode('latin-1').decode('utf-8', 'replace')


def fd_connection(fd: int) -> int | None:
    """The FUSE connection (its number in /sys/fs/fuse/connections) that
    /dev/fuse descriptor ``fd`` of this process serves, from the kernel's
    ``fuse_connection:`` line in /proc/self/fdinfo.  The kernel prints it as
    soon as the device is attached to a connection -- on the sync path
    already while mount(2) waits for INIT.  None where the kernel does not
    print it (before Linux 6.18) or the fd serves no connection yet.

    This is the only way to name *our* connection while mount(2) is still
    running: /sys/fs/fuse/connections is global (every mount namespace, every
    user), /proc/self/mountinfo shows only this namespace's finished mounts."""
    try:
        with open(f'/proc/self/fdinfo/{fd}') as f:
            for line in f:
                key, _, value = line.partition(':')
                if key == 'fuse_connection':
                    return int(value.strip())
    except (OSError, ValueError):
        pass
    return None


def ensure_fusectl() -> None:
    """Mount the fusectl filesystem if it is missing (root only)."""
    if os.path.exists(os.path.join(CONNECTIONS_DIR, '.')) and os.listdir(CONNECTIONS_DIR) != []:
        return
    if is_mountpoint(CONNECTIONS_DIR):
        return
    try:
        from ._core import sys_mount
        sys_mount('fusectl', CONNECTIONS_DIR, 'fusectl', 0, '')
    except OSError:
        pass


def abort_connection(minor: int) -> bool:
    """Abort FUSE connection ``minor``: every request fails, mount(2) or
    blocked readers return.  False if it was gone already."""
    ensure_fusectl()
    try:
        with open(os.path.join(CONNECTIONS_DIR, str(minor), 'abort'), 'w') as f:
            f.write('1')
        return True
    except (FileNotFoundError, ProcessLookupError, OSError):
        return False


def our_connection(fd: int, mountpoint: str) -> int | None:
    """The connection we just mounted: the one our fd serves (fdinfo, Linux
    >= 6.18), else the FUSE mount at our mountpoint (classic path on older
    kernels; mountinfo shows only our namespace)."""
    minor = fd_connection(fd)
    if minor is not None:
        return minor
    entry = mountinfo_entry(mountpoint)
    return entry[0] if entry is not None and entry[1].startswith('fuse') else None
