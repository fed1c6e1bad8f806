"""Failures at startup and in handlers end in a clear exception or errno,
never a hang, and leave nothing mounted."""
from __future__ import annotations

import errno
import gc
import logging
import os
import time

import pytest

import fuseshim

from startup_helpers import (BlockingInit, FailingHandlers, RaisingInit, RecordingHello,
                             force_unmount, fuseshim_threads, mounted_at, open_fds)
from test_startup import kernel_at_least

PATHS = ['sync', 'classic'] if kernel_at_least(6, 18) else ['classic']


@pytest.mark.parametrize('startup', PATHS)
def test_init_handler_raising_fails_the_mount(mnt, startup):
    with pytest.raises(fuseshim.InitError, match='init refuses') as info:
        fuseshim.mount(RaisingInit(), mnt, startup=startup)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert not mounted_at(mnt)
    assert fuseshim_threads() == []


@pytest.mark.expected_errors
@pytest.mark.parametrize('startup', PATHS)
def test_init_never_answered_times_out(mnt, startup):
    ops = BlockingInit()
    t0 = time.monotonic()
    try:
        with pytest.raises(fuseshim.InitTimeout, match='not answered within 0.5 s'):
            fuseshim.mount(ops, mnt, startup=startup, init_timeout=0.5)
        assert time.monotonic() - t0 < 5
        assert not mounted_at(mnt)
    finally:
        ops.release.set()
    deadline = time.monotonic() + 5  # the stuck worker exits once its handler returns
    while fuseshim_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fuseshim_threads() == []


@pytest.mark.skipif(not kernel_at_least(6, 18), reason='needs Linux >= 6.18 (SYNC_INIT)')
def test_mount_syscall_failure_after_ioctl_wakes_the_reader(mnt):
    # The kernel rejects an unknown SELinux context option inside mount(2),
    # after the fd was armed and the reader thread started.
    with pytest.raises(fuseshim.MountError, match='mount\\(2\\) failed') as info:
        fuseshim.mount(RecordingHello(), mnt, startup='sync', options=['context=bogus'])
    assert info.value.errno == errno.EINVAL
    assert fuseshim_threads() == []  # the blocked reader was woken and is gone
    assert not mounted_at(mnt)


def test_classic_libfuse_mount_failure(mnt):
    with pytest.raises(fuseshim.MountError, match='libfuse could not mount'):
        fuseshim.mount(RecordingHello(), mnt, startup='classic', options=['context=bogus'])
    assert fuseshim_threads() == [] and not mounted_at(mnt)


@pytest.mark.expected_errors
@pytest.mark.parametrize('startup', PATHS)
def test_handler_errors_become_errnos(mnt, startup, caplog):
    ops = FailingHandlers()
    with fuseshim.mount(ops, mnt, startup=startup, workers=2):
        path = os.path.join(mnt, 'hello')
        with pytest.raises(OSError) as info:
            open(path).read()
        assert info.value.errno == errno.EIO
        assert any('read handler raised' in r.getMessage() and r.exc_info
                   for r in caplog.records if r.levelno == logging.ERROR)
        ops.fail_getattr = True
        # the server kept serving after the bug
        assert os.listdir(mnt) == ['hello']
    assert not mounted_at(mnt)


def test_unknown_operations_answer_enosys(mnt):
    with fuseshim.mount(RecordingHello(), mnt):
        with pytest.raises(OSError) as info:
            os.mkdir(os.path.join(mnt, 'd'))
        assert info.value.errno == errno.ENOSYS


@pytest.mark.parametrize('startup', PATHS)
def test_200_cycles_leak_nothing(tmp_path, startup):
    mnt = tmp_path / 'm'
    mnt.mkdir()
    mnt = str(mnt)

    def cycle():
        with fuseshim.mount(RecordingHello(), mnt, startup=startup, workers=2):
            os.stat(os.path.join(mnt, 'hello'))

    cycle()  # first use installs handlers and caches
    gc.collect()  # pipes other tests left to the collector must not close mid-count
    fds, threads = open_fds(), len(fuseshim_threads())
    try:
        for _ in range(200):
            cycle()
    finally:
        force_unmount(mnt)
    assert open_fds() == fds
    assert len(fuseshim_threads()) == threads == 0
    assert not mounted_at(mnt)
