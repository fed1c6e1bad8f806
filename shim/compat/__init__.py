"""Drop-in compatibility layers over fuseshim.

=====================================  ==========================================
``fuseshim.compat.pyfuse3``            the pyfuse3 3.x API (trio by default)
``fuseshim.compat.pyfuse3_asyncio``    ``pyfuse3.asyncio`` (``enable()``/``disable()``)
``fuseshim.compat.fusepy``             fusepy 3.0's ``fuse`` module (path based)
``fuseshim.compat.mfusepy``            mfusepy 3.x (path based, mfusepy semantics)
=====================================  ==========================================

Switching a filesystem over is one changed import line, e.g.
``import fuseshim.compat.pyfuse3 as pyfuse3`` or
``from fuseshim.compat.fusepy import FUSE, Operations, ...``.

All layers mount through :func:`fuseshim.mount` and so use its two-path
startup.  The path is ``auto`` unless chosen with the ``startup=`` keyword
(``pyfuse3.init(..., startup=...)``, ``FUSE(..., startup=...)``) or the
environment variable ``FUSESHIM_STARTUP`` (``auto``, ``sync`` or ``classic``);
the keyword wins over the variable.
"""
from __future__ import annotations

import os

STARTUP_ENV = 'FUSESHIM_STARTUP'
WORKERS_ENV = 'FUSESHIM_WORKERS'
_MODES = ('auto', 'sync', 'classic')

__all__ = ['STARTUP_ENV', 'WORKERS_ENV', 'startup_mode', 'worker_count']


def startup_mode(explicit: str | None = None) -> str:
    """The startup path to use: ``explicit`` if given, else $FUSESHIM_STARTUP,
    else ``auto``."""
    mode = explicit if explicit is not None else (os.environ.get(STARTUP_ENV) or 'auto')
    mode = mode.strip().lower()
    if mode not in _MODES:
        source = 'startup=' if explicit is not None else f'${STARTUP_ENV}'
        raise ValueError(f'{source} must be one of {", ".join(_MODES)}, not {mode!r}')
    return mode


def worker_count(default: int) -> int:
    """Worker threads: $FUSESHIM_WORKERS if set, else ``default``."""
    value = os.environ.get(WORKERS_ENV)
    if not value:
        return default
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f'${WORKERS_ENV} must be a whole number >= 1, not {value!r}')
    return n
