"""fuseshim.matrix: the migration test matrix (libfuse versions x kernels x
startup modes), see matrix.yaml and docs/matrix.md.

Run it with ``python -m fuseshim.matrix`` or ``fuseshim-matrix``.  The
submodules ``schema`` (loading and checking matrix.yaml) and ``model``
(cells, expectations, judging) have no side effects; they need the
``matrix`` extra (PyYAML, pydantic).  The names below are imported when first
used, so that the stdlib-only submodules (``sdists``, ``util``) work in an
environment without that extra: the test suite on a bare wheel uses
``sdists`` to fetch the real peers.
"""
from __future__ import annotations

import importlib

_EXPORTS = {'Cell': 'model', 'Expectation': 'model', 'all_cells': 'model',
            'expectation': 'model', 'judge': 'model', 'select': 'model',
            'MatrixError': 'schema', 'check': 'schema', 'load': 'schema'}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(f'.{_EXPORTS[name]}', __name__), name)
    globals()[name] = value
    return value
