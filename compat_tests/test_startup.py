"""The two-path startup: which path runs, why, and in which order."""
from __future__ import annotations

import errno
import fcntl
import logging
import os

import pytest

import fuseshim
from fuseshim.kernel import SYNC_INIT_IOCTL

from startup_helpers import AsyncHello, RecordingHello, fuseshim_threads, mounted_at


def kernel_at_least(major, minor):
    release = os.uname().release.split('-')[0].split('.')
    return (int(release[0]), int(release[1])) >= (major, minor)


def ioctl_answer():
    fd = os.open('/dev/fuse', os.O_RDWR)
    try:
        fcntl.ioctl(fd, SYNC_INIT_IOCTL)
        return 0
    except OSError as e:
        return e.errno
    finally:
        os.close(fd)


def test_probe_matches_the_kernel():
    probe = fuseshim.probe_sync_init()
    assert probe.supported == (ioctl_answer() == 0)
    assert bool(probe) == probe.supported
    assert probe.reason


def test_probe_answer_matches_kernel_version():
    # Linux 6.18 introduced FUSE_DEV_IOC_SYNC_INIT: older kernels say ENOTTY.
    expected = 0 if kernel_at_least(6, 18) else errno.ENOTTY
    assert ioctl_answer() == expected


def test_auto_follows_the_probe(mnt, caplog):
    caplog.set_level(logging.INFO, logger='fuseshim')
    with fuseshim.mount(RecordingHello(), mnt) as m:
        expected = 'sync' if fuseshim.probe_sync_init() else 'classic'
        assert m.startup_path == expected
        assert m.startup_reason
        assert open(os.path.join(mnt, 'hello')).read() == 'Hello, world!\n'
    lines = [r.getMessage() for r in caplog.records if 'mounted' in r.getMessage()]
    assert lines and f'via {expected} startup' in lines[0] and m.startup_reason in lines[0]


@pytest.mark.skipif(not kernel_at_least(6, 18), reason='needs Linux >= 6.18 (SYNC_INIT)')
def test_auto_chooses_sync_on_this_kernel(mnt):
    with fuseshim.mount(RecordingHello(), mnt) as m:
        assert m.startup_path == 'sync'
        assert 'FUSE_DEV_IOC_SYNC_INIT' in m.startup_reason


@pytest.mark.skipif(not kernel_at_least(6, 18), reason='needs Linux >= 6.18 (SYNC_INIT)')
def test_sync_path_answers_init_before_mount_returns(mnt):
    ops = RecordingHello()
    with fuseshim.mount(ops, mnt, startup='sync') as m:
        assert ops.init_calls == 1
        assert m.init_ns and m.init_ns <= m.mount_returned_ns
        assert m.init_before_mount_returned
        assert m.connection['proto_major'] == 7


def test_classic_path_answers_init_after_mount_returns(mnt):
    ops = RecordingHello()
    with fuseshim.mount(ops, mnt, startup='classic') as m:
        assert m.startup_path == 'classic'
        assert m.startup_reason == 'startup="classic" was requested'
        assert ops.init_calls == 1  # mount() waits for INIT on this path too
        assert m.init_ns > m.mount_returned_ns
        assert not m.init_before_mount_returned
        assert os.listdir(mnt) == ['hello']


@pytest.mark.skipif(kernel_at_least(6, 18), reason='tests the ENOTTY fallback of older kernels')
def test_sync_is_refused_on_old_kernels(mnt):
    with pytest.raises(fuseshim.SyncInitUnavailable, match='ENOTTY'):
        fuseshim.mount(RecordingHello(), mnt, startup='sync')
    with fuseshim.mount(RecordingHello(), mnt) as m:
        assert m.startup_path == 'classic' and 'ENOTTY' in m.startup_reason


def test_auto_unmount_needs_the_classic_path(mnt):
    with pytest.raises(fuseshim.SyncInitUnavailable, match='auto_unmount'):
        fuseshim.mount(RecordingHello(), mnt, startup='sync', options=['auto_unmount'])
    assert not mounted_at(mnt)
    with fuseshim.mount(RecordingHello(), mnt, options=['auto_unmount']) as m:
        assert m.startup_path == 'classic'
        assert 'auto_unmount' in m.startup_reason
        assert os.listdir(mnt) == ['hello']


@pytest.mark.parametrize('startup', ['sync', 'classic'])
def test_async_handlers_on_own_loop(mnt, startup):
    if startup == 'sync' and not kernel_at_least(6, 18):
        pytest.skip('needs Linux >= 6.18 (SYNC_INIT)')
    with fuseshim.mount(AsyncHello(), mnt, startup=startup):
        assert open(os.path.join(mnt, 'hello')).read() == 'Hello, world!\n'
        assert 'fuseshim-asyncio' in fuseshim_threads()
    assert 'fuseshim-asyncio' not in fuseshim_threads()


def test_async_handlers_on_callers_loop(mnt):
    import asyncio

    async def main():
        loop = asyncio.get_running_loop()
        m = fuseshim.mount(AsyncHello(), mnt, loop=loop)
        try:
            data = await loop.run_in_executor(None, lambda: open(os.path.join(mnt, 'hello')).read())
        finally:
            await loop.run_in_executor(None, m.close)
        return data

    assert asyncio.run(main()) == 'Hello, world!\n'
    assert 'fuseshim-asyncio' not in fuseshim_threads()


def test_options_reach_the_mount(mnt):
    with fuseshim.mount(RecordingHello(), mnt, options=['ro', 'fsname=myfs', 'subtype=hello',
                                                         'allow_other', 'default_permissions']):
        line = next(l for l in open('/proc/self/mounts') if l.split()[1] == mnt)
        source, _, fstype, opts = line.split()[:4]
        assert (source, fstype) == ('myfs', 'fuse.hello')
        assert 'ro' in opts.split(',') and 'allow_other' in opts and 'default_permissions' in opts


def test_wait_returns_when_unmounted_from_outside(mnt):
    import subprocess
    m = fuseshim.mount(RecordingHello(), mnt, workers=2)
    try:
        assert not m.wait(0.2)
        subprocess.run(['umount', mnt], check=True)
        assert m.wait(10)
    finally:
        m.close()
    assert not mounted_at(mnt)
