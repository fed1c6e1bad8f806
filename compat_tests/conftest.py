"""Shared helpers and fixtures for the compatibility tests (real FUSE mounts).

These tests mount real filesystems and must run as root on Linux with
/dev/fuse; the sync startup path needs Linux >= 6.18.
"""
from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
from typing import NamedTuple

import pytest

import fuseshim


# ---------------------------------------------------------------- mounting

def mounted_paths() -> set[str]:
    """Mountpoints listed in /proc/self/mounts (octal escapes decoded)."""
    with open('/proc/self/mounts') as f:
        return {line.split()[1].encode().decode('unicode_escape') for line in f}


class _RecordCollector(logging.Handler):
    def __init__(self, level):
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@contextlib.contextmanager
def mounted(ops, mountpoint, *, startup='auto', workers=1, options=(), allow_errors=False,
            **mount_kwargs):
    """Mount ``ops`` at ``mountpoint`` for the ``with`` block and yield the Mount.

    Teardown: Mount.close(), then ``umount -l`` as a last resort; fails the
    test if the mount is still listed in /proc/self/mounts, or (unless
    ``allow_errors``) if fuseshim logged an ERROR meanwhile (a handler
    raising something other than FUSEError is answered EIO and logged)."""
    path = os.path.realpath(mountpoint)
    collector = _RecordCollector(logging.ERROR)
    logger = logging.getLogger('fuseshim')
    logger.addHandler(collector)
    try:
        m = fuseshim.mount(ops, path, startup=startup, workers=workers, options=options,
                           **mount_kwargs)
    except BaseException:
        logger.removeHandler(collector)
        raise
    try:
        yield m
    finally:
        problems = []
        try:
            m.close()
        finally:
            logger.removeHandler(collector)
            if path in mounted_paths():
                problems.append(f'{path} was still mounted after Mount.close()')
                subprocess.run(['umount', '-l', path], check=False, capture_output=True)
                deadline = time.monotonic() + 5
                while path in mounted_paths() and time.monotonic() < deadline:
                    time.sleep(0.05)
    # reached only when the with block itself succeeded
    assert path not in mounted_paths(), f'{path} is still mounted, even after umount -l'
    assert not problems, problems
    if not allow_errors:
        errors = [r.getMessage() + ('\n' + logging.Formatter().formatException(r.exc_info)
                                    if r.exc_info else '')
                  for r in collector.records]
        assert not errors, 'fuseshim logged errors:\n' + '\n'.join(errors)


class MountMode(NamedTuple):
    """How a test filesystem is served: startup path, handler kind, workers."""
    startup: str      # "sync" or "classic"
    handlers: str     # "sync" (plain functions) or "async" (async def)
    workers: int

    def __str__(self):
        return f'{self.startup}-{self.handlers}-w{self.workers}'


MOUNT_MODES = [MountMode(s, h, w) for s in ('sync', 'classic') for h in ('sync', 'async')
               for w in (1, 3)]


def auto_startup_path() -> str:
    """The path startup="auto" takes on this kernel."""
    return 'sync' if fuseshim.probe_sync_init().supported else 'classic'


def skip_sync_path_where_unavailable(startup: str):
    """The sync startup path exists only on kernels with SYNC_INIT (>= 6.18,
    as root); the matrix runs these suites on older kernels too (in VMs),
    where only the classic variants can run."""
    if startup == 'sync':
        probe = fuseshim.probe_sync_init()
        if not probe.supported:
            pytest.skip(f'the sync startup path needs FUSE_DEV_IOC_SYNC_INIT: {probe.reason}')


@pytest.fixture(params=MOUNT_MODES, ids=str)
def mount_mode(request) -> MountMode:
    """Every combination of startup path x handler kind x worker count."""
    skip_sync_path_where_unavailable(request.param.startup)
    return request.param


@pytest.fixture(params=['sync', 'classic'])
def mount_startup(request) -> str:
    """Only the startup path (for expensive tests)."""
    skip_sync_path_where_unavailable(request.param)
    return request.param


@pytest.fixture
def mnt(tmp_path):
    """An empty mountpoint; the test fails if it is left mounted."""
    path = tmp_path / 'mnt'
    path.mkdir()
    yield str(path)
    leftover = str(path) in mounted_paths()
    if leftover:
        subprocess.run(['umount', '-l', str(path)], check=False, capture_output=True)
    assert not leftover, f'a test left {path} mounted'


# Every test fails on an unexpected ERROR log line (see log_guard.py).
from log_guard import fail_on_unexpected_log_errors  # noqa: E402,F401  (autouse fixture)


# ---------------------------------------------------------------- resources

# The passthrough example keeps one O_PATH descriptor per inode the kernel
# knows (as libfuse's passthrough_ll does), and the tests list directories
# of 10,000 entries through it.  A login shell here allows 20,000 open files,
# a VM's init only 1,024, so set the limit the tests need instead of
# inheriting whatever the runner had.
OPEN_FILES_NEEDED = 65_536


@pytest.fixture(scope='session', autouse=True)
def enough_open_files():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < OPEN_FILES_NEEDED:
        try:       # root with CAP_SYS_RESOURCE may raise the hard limit too
            resource.setrlimit(resource.RLIMIT_NOFILE,
                               (OPEN_FILES_NEEDED, max(hard, OPEN_FILES_NEEDED)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, OPEN_FILES_NEEDED), hard))
    yield
