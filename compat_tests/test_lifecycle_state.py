"""The session's one state (fuseshim.lifecycle.state): every real mount goes
NEW -> MOUNTED -> SERVING -> STOPPING -> DESTROYED (or a documented detour),
each change through Lifecycle.to() and its table, and an illegal change is
refused.  The tests mount for real and read the recorded sequence."""
from __future__ import annotations

import errno
import os
import stat
import subprocess
import threading
import time

import fuseshim
import pytest
from conftest import mounted
from fuseshim.examples.hello import HelloFS
from fuseshim.lifecycle.state import ALLOWED, IllegalTransition, Lifecycle, SessionState
from startup_helpers import (
    BlockingInit,
    RaisingInit,
    force_unmount,
    fuseshim_threads,
    mounted_at,
)
from test_failures import _exiting_hello  # lookup("stop") raises

S = SessionState
UP = [S.NEW, S.MOUNTED, S.SERVING]
DOWN = [S.STOPPING, S.DESTROYED]


def history(m):
    return list(m.session.lifecycle.history)


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class AsyncHello(HelloFS):
    async def getattr(self, inode, ctx=None):
        return HelloFS.getattr(self, inode, ctx)


# ---------------------------------------------------------------- startup paths x modes

@pytest.mark.parametrize('serve', ['threads', 'loop'])
def test_each_path_and_mode_goes_up_and_down(mnt, mount_startup, serve):
    with mounted(HelloFS(), mnt, startup=mount_startup, serve=serve) as m:
        assert m.startup_path == mount_startup
        assert os.listdir(mnt) == ['hello']
        assert m.state is S.SERVING and m.session.state is S.SERVING
        assert history(m) == UP
        assert not m.closed
        if mount_startup == 'sync':
            assert m.init_before_mount_returned
    assert m.state is S.DESTROYED and m.closed
    assert history(m) == UP + DOWN


def test_the_state_is_read_only(mnt):
    with mounted(HelloFS(), mnt) as m:
        with pytest.raises(AttributeError):
            m.state = S.NEW
        with pytest.raises(AttributeError):
            m.session.state = S.NEW
        with pytest.raises(AttributeError):
            m.session.lifecycle = Lifecycle()
        assert m.state is S.SERVING


@pytest.mark.parametrize('serve', ['threads', 'loop'])
def test_unmounted_from_outside_the_readers_end(mnt, serve):
    """The kernel ends the connection: SERVING -> ENDED, then close()."""
    fs = AsyncHello() if serve == 'loop' else HelloFS()
    with mounted(fs, mnt, serve=serve, workers=1) as m:
        subprocess.run(['umount', '-l', mnt], check=True)
        assert m.wait(10)
        assert wait_for(lambda: m.state is S.ENDED), m.session.lifecycle
        assert not m.closed
    assert history(m) == UP + [S.ENDED] + DOWN


@pytest.mark.expected_errors   # fuseshim logs the handler's SystemExit
@pytest.mark.parametrize('serve', ['threads', 'loop'])
def test_a_fatal_handler_exception_ends_serving(mnt, serve):
    m = fuseshim.mount(_exiting_hello(SystemExit, serve == 'loop'), mnt, serve=serve)
    try:
        with pytest.raises(OSError):
            os.stat(os.path.join(mnt, 'stop'))
        with pytest.raises(SystemExit):
            m.wait(10)
        assert wait_for(lambda: m.state is S.ENDED), m.session.lifecycle
    finally:
        m.close()
    assert history(m) == UP + [S.ENDED] + DOWN
    assert not mounted_at(mnt)


# ---------------------------------------------------------------- serve="external"

def _pyfuse3_hello(pyfuse3):
    class Hello(pyfuse3.Operations):
        async def getattr(self, inode, ctx=None):
            if inode != pyfuse3.ROOT_INODE:
                raise pyfuse3.FUSEError(errno.ENOENT)
            e = pyfuse3.EntryAttributes()
            e.st_ino = inode
            e.st_mode = stat.S_IFDIR | 0o755
            e.st_nlink = 2
            return e
    return Hello()


def test_external_driver_via_the_pyfuse3_layer(mnt, mount_startup):
    """pyfuse3.init() mounts (MOUNTED: nobody reads until main() runs);
    main()'s driver makes it SERVING; terminate() ends main() with the
    filesystem still mounted (MOUNTED again); close() tears it down."""
    trio = pytest.importorskip('trio', reason='the pyfuse3 layer serves from trio tasks')
    from fuseshim.compat import pyfuse3
    pyfuse3.init(_pyfuse3_hello(pyfuse3), mnt, startup=mount_startup)
    try:
        m = pyfuse3._state.mount
        assert m.serve == 'external' and m.state is S.MOUNTED
        seen = {}

        async def serve_then_stop():
            with trio.fail_after(30):
                await serve_and_look()

        async def serve_and_look():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pyfuse3.main)
                st = await trio.to_thread.run_sync(os.stat, mnt)
                seen['mode'] = st.st_mode
                seen['state'] = m.state
                pyfuse3.terminate()
        trio.run(serve_then_stop)
        assert stat.S_ISDIR(seen['mode'])
        assert seen['state'] is S.SERVING
        assert m.state is S.MOUNTED
        assert mounted_at(mnt)
    finally:
        pyfuse3.close()
    assert not mounted_at(mnt)
    assert history(m) == [S.NEW, S.MOUNTED, S.SERVING, S.MOUNTED] + DOWN


def test_external_driver_sees_the_end(mnt):
    """Unmounted from outside while main() runs: the driver's pump() sees
    the end, main() returns, the state is ENDED until close()."""
    trio = pytest.importorskip('trio', reason='the pyfuse3 layer serves from trio tasks')
    from fuseshim.compat import pyfuse3
    pyfuse3.init(_pyfuse3_hello(pyfuse3), mnt)
    try:
        m = pyfuse3._state.mount

        async def serve_until_unmounted():
            with trio.fail_after(30):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(pyfuse3.main)
                    await trio.to_thread.run_sync(os.stat, mnt)
                    await trio.to_thread.run_sync(
                        lambda: subprocess.run(['umount', '-l', mnt], check=True))
        trio.run(serve_until_unmounted)
        assert m.state is S.ENDED
    finally:
        pyfuse3.close()
        force_unmount(mnt)
    assert history(m) == UP + [S.ENDED] + DOWN


# ---------------------------------------------------------------- failures

@pytest.mark.expected_errors   # libfuse/fuseshim log the refused INIT
def test_init_failure_ends_destroyed_with_nothing_mounted(mnt, mount_startup):
    m = fuseshim.Mount(RaisingInit(), mnt, startup=mount_startup)
    try:
        with pytest.raises(fuseshim.InitError):
            m._start()     # what fuseshim.mount() does, keeping the Mount to look at
    finally:
        force_unmount(mnt)
    assert m.state is S.DESTROYED
    if mount_startup == 'sync':   # mount(2) itself failed: never mounted
        assert history(m) == [S.NEW] + DOWN
    else:                         # mounted first, INIT refused after
        assert history(m) == [S.NEW, S.MOUNTED] + DOWN
    assert not mounted_at(mnt)
    assert wait_for(lambda: fuseshim_threads() == []), fuseshim_threads()


@pytest.mark.expected_errors   # the watchdog logs the abort
def test_init_timeout_ends_destroyed(mnt, mount_startup):
    fs = BlockingInit()
    m = fuseshim.Mount(fs, mnt, startup=mount_startup, init_timeout=0.5)
    try:
        with pytest.raises(fuseshim.InitTimeout):
            m._start()
    finally:
        fs.release.set()
        force_unmount(mnt)
    assert not mounted_at(mnt)
    assert wait_for(lambda: m.state is S.DESTROYED), m.session.lifecycle
    assert history(m)[-2:] == DOWN and S.SERVING not in history(m)


# ---------------------------------------------------------------- close from elsewhere

def test_close_from_another_thread(mnt):
    with mounted(HelloFS(), mnt, workers=2) as m:
        assert os.listdir(mnt) == ['hello']
        closer = threading.Thread(target=m.close)
        closer.start()
        assert m.wait(10), 'close() on another thread did not end serving'
        closer.join(10)
        assert not closer.is_alive()
        assert m.state is S.DESTROYED
        assert not mounted_at(mnt)
    assert history(m) == UP + DOWN


class StuckRead(HelloFS):
    def __init__(self):
        self.entered = threading.Event()
        self.release = threading.Event()

    def read(self, fh, off, size):
        self.entered.set()
        self.release.wait(30)
        return b''


def test_a_busy_handler_keeps_the_session_stopping_until_it_returns(mnt):
    """close() cannot destroy under a running handler: STOPPING until the
    handler returns, then the reaper makes it DESTROYED."""
    fs = StuckRead()
    m = fuseshim.mount(fs, mnt, close_timeout=0.2)
    reader = threading.Thread(target=_read_quietly, args=(os.path.join(mnt, 'hello'),),
                              daemon=True)
    try:
        reader.start()
        assert fs.entered.wait(10)
        m.close()
        assert m.state is S.STOPPING and m.closed
        assert not mounted_at(mnt)
        fs.release.set()
        assert wait_for(lambda: m.state is S.DESTROYED), m.session.lifecycle
    finally:
        fs.release.set()
        m.close()
        force_unmount(mnt)
        reader.join(10)
    assert history(m) == UP + DOWN


def _read_quietly(path):
    try:
        with open(path, 'rb') as f:
            f.read()
    except OSError:
        pass   # the connection is aborted under it


# ---------------------------------------------------------------- the table

def _lifecycle_in(state):
    """A fresh Lifecycle brought to ``state`` by legal steps."""
    path = {S.NEW: [], S.MOUNTED: [S.MOUNTED], S.SERVING: [S.MOUNTED, S.SERVING],
            S.ENDED: [S.MOUNTED, S.SERVING, S.ENDED], S.STOPPING: [S.STOPPING],
            S.DESTROYED: [S.STOPPING, S.DESTROYED]}[state]
    lc = Lifecycle()
    for step in path:
        lc.to(step)
    return lc


@pytest.mark.expected_errors   # an illegal transition is logged as a bug
def test_every_transition_outside_the_table_is_refused():
    refused = 0
    for old in S:
        for new in S:
            lc = _lifecycle_in(old)
            before = list(lc.history)
            if new in ALLOWED[old]:
                assert lc.to(new) is old
                assert lc.state is new
            else:
                with pytest.raises(IllegalTransition):
                    lc.to(new)
                assert lc.state is old and lc.history == before
                refused += 1
    assert refused == len(S) ** 2 - sum(len(v) for v in ALLOWED.values())
    assert ALLOWED[S.DESTROYED] == set()


@pytest.mark.expected_errors   # an illegal transition is logged as a bug
def test_a_closed_session_refuses_to_serve_again(mnt):
    with mounted(HelloFS(), mnt, serve='external') as m:
        assert m.state is S.MOUNTED
    assert m.state is S.DESTROYED
    with pytest.raises(IllegalTransition):
        m.session.served.clear()     # an outside driver starting to read
    with pytest.raises(IllegalTransition):
        m.session.lifecycle.to(S.SERVING)
    assert m.state is S.DESTROYED


def test_served_follows_the_state():
    """``served`` (what close() waits on in the event-loop modes) is set
    except while SERVING; an outside driver's clear()/set() of it (the
    protocol of docs/api.md) are state changes."""
    lc = Lifecycle()
    assert lc.served.is_set()
    lc.to(S.MOUNTED)
    assert lc.served.is_set()
    lc.served.clear()                   # a driver starts
    assert lc.state is S.SERVING and not lc.served.is_set()
    lc.served.set()                     # ... and was stopped: still mounted
    assert lc.state is S.MOUNTED and lc.served.is_set()
    lc.served.clear()
    lc.connection_ended()               # pump() saw the kernel end the connection
    assert lc.state is S.ENDED and not lc.served.is_set()
    lc.served.set()                     # ... and the driver returned
    assert lc.state is S.ENDED and lc.served.is_set()
    lc.served.clear()                   # a driver may start again (it sees the end)
    lc.begin_stopping()
    assert not lc.served.is_set()       # readers still run while STOPPING
    lc.served.set()
    assert lc.state is S.STOPPING and lc.served.is_set()
    assert lc.begin_stopping() is S.STOPPING   # close() twice: no change
    assert lc.history == [S.NEW, S.MOUNTED, S.SERVING, S.MOUNTED, S.SERVING, S.ENDED,
                          S.SERVING, S.STOPPING]
