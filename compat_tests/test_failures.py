"""Failures at startup and in handlers end in a clear exception or errno,
never a hang, and leave nothing mounted."""
from __future__ import annotations

import errno
import gc
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import fuseshim
from child_signals import popen
from fuseshim.examples.hello import HelloFS
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


# ------------------------------------------------ only our own connection aborted

FOREIGN_FS = textwrap.dedent('''
    import os, sys, time
    import fuseshim
    from fuseshim.examples.hello import HelloFS

    class SlowInitHello(HelloFS):
        def init(self):
            time.sleep(float(sys.argv[2]))

    mnt = sys.argv[1]
    try:
        m = fuseshim.mount(SlowInitHello(), mnt, init_timeout=30)
    except Exception as e:
        print('mount failed:', e, flush=True)
        sys.exit(1)
    with m:
        print('mounted', flush=True)
        sys.stdin.readline()                    # the test says when to look
        try:
            print(open(os.path.join(mnt, 'hello')).read().strip(), flush=True)
        except OSError as e:
            print('failed:', os.strerror(e.errno), flush=True)
''')


@pytest.mark.expected_errors
@pytest.mark.skipif(not kernel_at_least(6, 18), reason='the INIT watchdog runs on the sync '
                    'path, which needs Linux >= 6.18')
@pytest.mark.parametrize('where, init_delay', [
    # a finished mount in another mount namespace, made after ours started:
    # not in our mountinfo, new in /sys/fs/fuse/connections
    ('other-namespace', 0.0),
    # a mount of this namespace still waiting for its own INIT when ours times out
    ('same-namespace-concurrent', 2.5),
])
def test_init_timeout_aborts_only_our_connection(tmp_path, where, init_delay):
    """/sys/fs/fuse/connections lists every connection of the machine; the
    watchdog must abort only the one our /dev/fuse fd serves (fdinfo)."""
    ours, theirs = tmp_path / 'ours', tmp_path / 'theirs'
    ours.mkdir()
    theirs.mkdir()
    ops = BlockingInit()
    outcome = {}

    def mount_ours():
        try:
            fuseshim.mount(ops, str(ours), startup='sync', init_timeout=1.5)
            outcome['ours'] = 'mounted'
        except fuseshim.InitTimeout as e:
            outcome['ours'] = e
    t = threading.Thread(target=mount_ours)
    t.start()
    time.sleep(0.3)                                  # ours is inside mount(2) now
    argv = [sys.executable, '-c', FOREIGN_FS, str(theirs), str(init_delay)]
    if where == 'other-namespace':
        argv = ['unshare', '--mount', '--propagation', 'private'] + argv
    foreign = popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True)
    try:
        t.join(20)
        assert isinstance(outcome.get('ours'), fuseshim.InitTimeout), outcome
        assert not mounted_at(str(ours))
        # the foreign filesystem was not touched: it mounted and serves
        assert foreign.stdout.readline().strip() == 'mounted', foreign.stderr.read()
        foreign.stdin.write('look\n')
        foreign.stdin.flush()
        assert foreign.stdout.readline().strip() == 'Hello, world!'
        foreign.stdin.close()
        assert foreign.wait(20) == 0, foreign.stderr.read()
    finally:
        ops.release.set()
        t.join(10)
        if foreign.poll() is None:
            foreign.kill()
            foreign.wait()
        force_unmount(str(theirs))
    assert not mounted_at(str(theirs))


# ------------------------------------- KeyboardInterrupt / SystemExit in handlers

def _exiting_hello(exc_type, use_async):
    class Exiting(HelloFS):
        def lookup(self, parent_inode, name, ctx=None):
            if name == b'stop':
                raise exc_type('from a handler')
            return super().lookup(parent_inode, name, ctx)

    class AsyncExiting(Exiting):
        async def lookup(self, parent_inode, name, ctx=None):
            return Exiting.lookup(self, parent_inode, name, ctx)
    return AsyncExiting() if use_async else Exiting()


@pytest.mark.expected_errors
@pytest.mark.parametrize('use_async', [False, True], ids=['sync', 'async'])
@pytest.mark.parametrize('exc_type', [KeyboardInterrupt, SystemExit])
def test_handler_raising_keyboardinterrupt_or_systemexit_ends_the_filesystem(
        mnt, exc_type, use_async):
    """Not answered EIO and swallowed: the request gets EINTR, serving stops,
    and the exception comes out of Mount.wait() once (close() then cleans up
    without raising it again); nothing stays mounted."""
    m = fuseshim.mount(_exiting_hello(exc_type, use_async), mnt)
    try:
        assert os.path.exists(os.path.join(mnt, 'hello'))
        with pytest.raises(OSError) as info:
            os.stat(os.path.join(mnt, 'stop'))
        assert info.value.errno == errno.EINTR
        with pytest.raises(exc_type, match='from a handler'):
            m.wait(10)
        assert m.wait(0)                      # raised once
    finally:
        m.close()
    assert not mounted_at(mnt)
    assert fuseshim_threads() == []


@pytest.mark.expected_errors
def test_handler_systemexit_raised_by_close_when_nobody_waited(mnt):
    m = fuseshim.mount(_exiting_hello(SystemExit, False), mnt)
    with pytest.raises(OSError):
        os.stat(os.path.join(mnt, 'stop'))
    with pytest.raises(SystemExit):
        m.close()
    m.close()                                 # closed, and raised only once
    assert not mounted_at(mnt)


CLOSE_FROM_SIGNAL_HANDLER = textwrap.dedent("""
    import os, signal, sys
    import fuseshim
    from fuseshim.examples.hello import HelloFS

    class Fs(HelloFS):
        def destroy(self):
            # runs on the closing thread, inside close(): the handler below
            # runs there too, at the next bytecode
            os.kill(os.getpid(), signal.SIGUSR1)

    m = fuseshim.mount(Fs(), sys.argv[1])
    calls = []
    signal.signal(signal.SIGUSR1, lambda *_: calls.append(m.close()))
    m.close()
    print('closed', m.closed, 'nested calls', len(calls))
""")


def test_close_from_a_signal_handler_inside_close_returns(mnt):
    """A SIGTERM handler calling close() is the usual daemon pattern; when
    the signal arrives while the main thread is already in close(), the
    nested call must return, not wait on the lock its own thread holds (it
    did: the benchmark daemon hung after an unmount now and then)."""
    p = subprocess.run([sys.executable, '-c', CLOSE_FROM_SIGNAL_HANDLER, mnt],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ['closed', 'True', 'nested', 'calls', '1']
    assert not mounted_at(mnt)
