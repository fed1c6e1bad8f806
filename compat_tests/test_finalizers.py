"""Finalizers run no user code (uvloop's discipline).

A Mount or Session the program drops without close() may be collected on
any thread, at any allocation.  Its finalizer must not run the filesystem's
``destroy()`` (user code, maybe through an event loop): it emits a
ResourceWarning and only detaches and frees -- as root the mount is lazily
unmounted (nothing stays mounted, no caller waits), the /dev/fuse fd closed.
``destroy()`` runs only from close().
"""
from __future__ import annotations

import gc
import os
import threading
import time
import warnings

import pytest

import fuseshim
from conftest import mounted, mounted_paths
from fuseshim.examples.memfs import MemFS


class DestroyRecorder(MemFS):
    def __init__(self):
        super().__init__()
        self.destroy_threads = []

    def destroy(self):
        self.destroy_threads.append(threading.current_thread().name)
        super().destroy()


def fuse_fds():
    """This process's open /dev/fuse descriptors."""
    fds = set()
    for name in os.listdir('/proc/self/fd'):
        try:
            if os.readlink(f'/proc/self/fd/{name}') == '/dev/fuse':
                fds.add(int(name))
        except OSError:
            pass
    return fds


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.02)
    return predicate()


@pytest.mark.parametrize('serve', ['threads', 'external'])
@pytest.mark.parametrize('startup', ['sync', 'classic'])
def test_unclosed_mount_warns_detaches_and_never_runs_destroy(mnt, startup, serve):
    fs = DestroyRecorder()
    before = fuse_fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        m = fuseshim.mount(fs, mnt, startup=startup, workers=2 if serve == 'threads' else 1,
                           serve=serve)
        if serve == 'threads':   # (with 'external' nobody serves until a driver runs)
            with open(os.path.join(mnt, 'file'), 'w') as f:
                f.write('data')
            del f
        ours = fuse_fds() - before
        assert len(ours) == 1
        del m
        gc.collect()
        messages = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        caught.clear()      # the warning keeps the Mount (its source) alive
        gc.collect()
        # the workers end once the kernel lets go, then the session is freed
        assert wait_until(lambda: not ours & fuse_fds()), 'the /dev/fuse fd was never closed'
        messages += [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert any(m.startswith('unclosed <fuseshim.Mount') for m in messages), messages
    assert any(m.startswith('unclosed fuseshim Session') for m in messages), messages
    assert mnt not in mounted_paths(), 'the unclosed mount was not detached'
    assert fs.destroy_threads == [], 'a finalizer ran the destroy handler'


def test_close_still_runs_destroy_once(mnt):
    fs = DestroyRecorder()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        with mounted(fs, mnt):
            pass
        gc.collect()
    assert fs.destroy_threads == [threading.current_thread().name]
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_failed_mount_leaves_nothing_to_warn_about(mnt):
    class RaisingInit(MemFS):
        def init(self):
            raise RuntimeError('no')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        with pytest.raises(fuseshim.InitError):
            fuseshim.mount(RaisingInit(), mnt)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
