"""Shards: a selection of cells split for a CI system's job matrix.

fuseshim does not schedule across machines; CI systems already do (GitHub
Actions' ``strategy.matrix``, GitLab's ``parallel: matrix``).  ``--list
--format json|github`` prints one entry per shard for them to fan out, each
runner runs ``fuseshim-matrix <args>`` (``--shard K/N``) and uploads its report
directory, and ``fuseshim-matrix merge`` joins the reports into one
(shim/matrix/merge.py).

The split is a pure function of the selection, so every runner computes the
same one: cells are dealt round-robin in the order ``--list`` prints them,
and each libfuse version's packaging stage goes to the shard that holds the
first cell of that version (its libfuse build is there already).
"""
from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field

from .schema import MatrixError


@dataclass
class Shard:
    index: int                 # 1-based, as on the command line
    total: int
    cells: list = field(default_factory=list)
    packaging: list = field(default_factory=list)   # libfuse versions

    @property
    def spec(self) -> str:
        return f'{self.index}/{self.total}'

    @property
    def cell_ids(self) -> list[str]:
        return [c.id for c in self.cells]


def parse_spec(text: str) -> tuple[int, int]:
    """'2/3' -> (2, 3)."""
    m = re.fullmatch(r'\s*(\d+)\s*/\s*(\d+)\s*', text or '')
    if not m:
        raise MatrixError([f'--shard {text!r}: give K/N, e.g. 2/3'], 'command line')
    k, n = int(m.group(1)), int(m.group(2))
    if not 1 <= k <= n:
        raise MatrixError([f'--shard {text!r}: K must be between 1 and N'], 'command line')
    return k, n


def split(cells: list, packaging_versions, n: int) -> list[Shard]:
    """Deal ``cells`` into ``n`` shards; every cell and every packaging
    version lands in exactly one."""
    if n < 1:
        raise MatrixError(['--shards: the number of shards must be at least 1'], 'command line')
    shards = [Shard(i + 1, n) for i in range(n)]
    for i, cell in enumerate(cells):
        shards[i % n].cells.append(cell)
    for j, version in enumerate(packaging_versions):
        owner = next((s for s in shards
                      if any(c.libfuse.version == version for c in s.cells)),
                     shards[j % n])
        owner.packaging.append(version)
    return shards


def entries(shards: list[Shard], preset: str | None, matrix_arg: str | None = None) -> list:
    """One JSON-ready entry per non-empty shard: what a CI job runs."""
    out = []
    for s in shards:
        if not s.cells and not s.packaging:
            continue
        args = ([f'--matrix={matrix_arg}'] if matrix_arg else []) + \
            ([f'--preset={preset}'] if preset else []) + [f'--shard={s.spec}']
        out.append({'name': f'shard-{s.index}-of-{s.total}', 'shard': s.spec,
                    'cells': ','.join(s.cell_ids), 'packaging': list(s.packaging),
                    'args': shlex.join(args)})
    return out


def github_output(items: list) -> str:
    """A line for ``$GITHUB_OUTPUT``: ``matrix=<json>`` for
    ``strategy.matrix: ${{ fromJSON(needs.<job>.outputs.matrix) }}``."""
    return 'matrix=' + json.dumps({'include': items}, separators=(',', ':'))
