"""fuseshim.matrix: the migration test matrix (libfuse versions x kernels x
startup modes), see matrix.yaml and docs/matrix.md.

Run it with ``python -m fuseshim.matrix`` or ``fuseshim-matrix``.  The
submodules ``schema`` (loading and checking matrix.yaml) and ``model``
(cells, expectations, judging) have no side effects and need only PyYAML.
"""
from __future__ import annotations

from .model import Cell, Expectation, all_cells, expectation, judge, select
from .schema import MatrixError, check, load

__all__ = ['Cell', 'Expectation', 'MatrixError', 'all_cells', 'check', 'expectation', 'judge',
           'load', 'select']
