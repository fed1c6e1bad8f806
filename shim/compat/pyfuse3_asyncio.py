"""fuseshim.compat.pyfuse3_asyncio: the ``pyfuse3.asyncio`` module.

``enable()`` switches fuseshim.compat.pyfuse3 to asyncio: ``pyfuse3.main()``
is then awaited inside an asyncio loop (``asyncio.run(pyfuse3.main())``) and
the handlers run as tasks of that loop.  ``disable()`` switches back to trio.

As in pyfuse3, this module also stands in for the ``trio`` names pyfuse3
uses (``current_trio_token``, ``open_nursery``, ``Lock``, ...), and after
``enable()`` it is what ``pyfuse3.trio`` refers to.  The module is reachable
as ``fuseshim.compat.pyfuse3.asyncio`` as well.
"""
import asyncio
import collections  # noqa: F401  (a name of pyfuse3.asyncio's module, as the ones below)
import sys
# pyfuse3.asyncio's module has these names
from typing import Any, Callable, Iterable, Optional, Set, Type  # noqa: F401

from . import _driver
from . import pyfuse3  # noqa: F401  (pyfuse3.asyncio has it as a name; a cycle Python resolves)
from .pyfuse3 import FileHandleT  # noqa: F401

Lock = asyncio.Lock


def _pyfuse3():
    from . import pyfuse3
    return pyfuse3


def enable() -> None:
    """Switch pyfuse3 to asyncio mode."""
    me = sys.modules[__name__]
    me.lowlevel = me        # as in pyfuse3: this module stands in for trio.lowlevel
    me.from_thread = me
    _pyfuse3()._event_loop.use_asyncio(me)


def disable() -> None:
    """Switch pyfuse3 back to the default (trio) mode."""
    _pyfuse3()._event_loop.use_trio()


def current_trio_token() -> str:
    return 'asyncio'


class ClosedResourceError(Exception):
    pass


# the trio.lowlevel stand-ins: the driver's own asyncio fd waiting
_waiters = _driver.FdWaiters()


async def wait_readable(fd) -> None:
    """Wait until ``fd`` is readable (the trio.lowlevel.wait_readable stand-in)."""
    await _waiters.wait_readable(fd)


def notify_closing(fd) -> None:
    """Make the tasks waiting for ``fd`` raise ClosedResourceError."""
    _waiters.wake(fd, ClosedResourceError())


def current_task() -> Optional[asyncio.Task]:
    return asyncio.current_task()


class _Nursery:
    """The part of trio's nursery pyfuse3 code uses: start_soon, and an
    ``async with`` exit that waits for every started task."""

    async def __aenter__(self) -> '_Nursery':
        self.tasks: set = set()
        return self

    def start_soon(self, func: Callable[..., Any], *args: Any, name: Optional[str] = None) -> None:
        task = asyncio.get_running_loop().create_task(func(*args))
        if name is not None:
            task.set_name(str(name))
        self.tasks.add(task)

    async def __aexit__(self, exc_type, exc_value, traceback) -> None:
        while self.tasks:
            done, _ = await asyncio.wait(tuple(self.tasks))
            self.tasks.difference_update(done)


def open_nursery() -> _Nursery:
    return _Nursery()
