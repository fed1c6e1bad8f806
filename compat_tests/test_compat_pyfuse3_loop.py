"""The pyfuse3 layer's choice of event loop: explicit state that
pyfuse3.asyncio.enable()/disable() set (pyfuse3._event_loop), shown to users
the way pyfuse3 shows it (the module attribute ``pyfuse3.trio``), and the
asyncio stand-ins for trio.lowlevel's fd waiting, which are the driver's own
(_driver.FdWaiters) rather than a second implementation."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap

import pytest

from child_signals import popen
from conftest import mounted_paths
from fuseshim.compat import _driver

pytest.importorskip('trio', reason='the pyfuse3 layer serves in trio by default')

TIMEOUT = 60


def test_enable_disable_switch_and_show_it():
    import fuseshim.compat.pyfuse3 as pyfuse3
    import fuseshim.compat.pyfuse3_asyncio as pa
    real_trio = pyfuse3._real_trio
    try:
        for _ in range(2):          # enable -> disable -> enable -> disable
            pa.enable()
            assert pyfuse3.trio is pa and pa.lowlevel is pa and pa.from_thread is pa
            assert pyfuse3._event_loop.main is pyfuse3._main_asyncio
            pa.disable()
            assert pyfuse3.trio is real_trio
            assert pyfuse3._event_loop.main is pyfuse3._main_trio
    finally:
        pa.disable()


def test_stand_ins_are_the_drivers_fd_waiting():
    import fuseshim.compat.pyfuse3_asyncio as pa
    assert isinstance(pa._waiters, _driver.FdWaiters)


def test_fd_waiters_wait_wake_and_close():
    """wait_readable returns once the fd is readable, or when woken;
    notify_closing makes the waiter raise ClosedResourceError."""
    import fuseshim.compat.pyfuse3_asyncio as pa
    r, w = os.pipe()

    async def scenario():
        waiters = _driver.FdWaiters()
        t = asyncio.ensure_future(waiters.wait_readable(r))
        await asyncio.sleep(0.05)
        assert not t.done()
        os.write(w, b'x')
        await asyncio.wait_for(t, 5)             # readable
        os.read(r, 1)
        t = asyncio.ensure_future(waiters.wait_readable(r))
        await asyncio.sleep(0.05)
        waiters.wake(r)
        await asyncio.wait_for(t, 5)             # woken: returns
        assert waiters._waiting == {}
        t = asyncio.ensure_future(pa.wait_readable(r))
        await asyncio.sleep(0.05)
        pa.notify_closing(r)
        with pytest.raises(pa.ClosedResourceError):
            await asyncio.wait_for(t, 5)
        assert pa._waiters._waiting == {}

    try:
        asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))
    finally:
        os.close(r)
        os.close(w)


# One process: enable -> disable -> enable, serve a mount in asyncio; disable,
# serve a second mount in trio.  Each handler records the loop it ran in.
CHILD = textwrap.dedent('''
    import asyncio, json, os, sys, threading
    import trio
    import fuseshim.compat.pyfuse3 as pyfuse3
    import fuseshim.compat.pyfuse3_asyncio as pa

    seen = []

    class Ops(pyfuse3.Operations):
        async def getattr(self, inode, ctx=None):
            try:
                asyncio.get_running_loop()
                seen.append('asyncio')
            except RuntimeError:
                trio.lowlevel.current_trio_token()
                seen.append('trio')
            e = pyfuse3.EntryAttributes()
            e.st_mode = 0o40755
            e.st_nlink = 2
            e.st_ino = inode
            return e

    def client(mnt):
        try:
            os.stat(mnt)
        finally:
            pyfuse3.terminate()

    def serve(mnt, run):
        pyfuse3.init(Ops(), mnt, set(pyfuse3.default_options))
        t = threading.Thread(target=client, args=(mnt,))
        t.start()
        try:
            run()
        finally:
            t.join()
            pyfuse3.close()

    mnt1, mnt2 = sys.argv[1:3]
    pa.enable(); pa.disable(); pa.enable()
    shown = [pyfuse3.trio is pa]
    serve(mnt1, lambda: asyncio.run(pyfuse3.main()))
    first = sorted(set(seen))
    seen.clear()
    pa.disable()
    shown.append(pyfuse3.trio is pyfuse3._real_trio)
    serve(mnt2, lambda: trio.run(pyfuse3.main))
    print(json.dumps({'shown': shown, 'first': first, 'second': sorted(set(seen))}))
''')


def test_served_in_the_loop_chosen_last(tmp_path):
    mnts = [tmp_path / 'a', tmp_path / 'b']
    for m in mnts:
        m.mkdir()
    p = popen([sys.executable, '-c', CHILD, *map(str, mnts)], stdout=subprocess.PIPE,
              stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for m in mnts:
            if os.path.realpath(m) in mounted_paths():
                subprocess.run(['umount', '-l', str(m)], check=False)
    assert p.returncode == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    assert got['shown'] == [True, True]
    # every handler of the first mount ran in asyncio; once disabled, the second's in trio
    assert (got['first'], got['second']) == (['asyncio'], ['trio']), got
    assert not {os.path.realpath(m) for m in mnts} & mounted_paths()
