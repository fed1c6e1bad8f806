"""Real programs on the fusepy and mfusepy APIs, unchanged, on the fuseshim
under test: the clients stage of the matrix (fuseshim.matrix.clients,
docs/matrix.md) for fsspec's ``fsspec.fuse`` (module ``fuse``: a scenario,
fsspec's sdist has no tests of it) and mfusepy's own ``tests/``.  Each runs
with the real peer, then with ``FUSESHIM_PROVIDES`` making the peer's module
fuseshim's layer; fuseshim must pass every test id the real peer passes.

These replace the comparisons of fusepy's and mfusepy's examples, which
skipped on every fresh machine (their sdists ship no examples).  The
clients' venvs are made once in $FUSESHIM_CACHE/clients (PyPI and apt, like
the other peers the suite installs); the matrix runs all of matrix.yaml's
clients against every libfuse build.
"""
from __future__ import annotations

import os

import pytest

import matrix_extra

matrix_extra.require()
if os.environ.get('FUSESHIM_MATRIX_CELL'):
    # these runs use the system's libfuse and its known failures; in a matrix
    # cell (another libfuse) the matrix's clients stage runs each client with
    # the cell's libfuse and the known failures matrix.yaml lists for it
    pytest.skip('in a matrix cell the clients stage runs the clients (matrix.yaml clients:)',
                allow_module_level=True)
import fuseshim  # noqa: E402
from fuseshim.matrix import clients, schema  # noqa: E402
from fuseshim.matrix.sdists import IndexUnreachable  # noqa: E402
from fuseshim.matrix.util import Log, cache_dir  # noqa: E402

MATRIX = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      'matrix.yaml')


@pytest.fixture(scope='module')
def entries():
    return {e.name: e for e in schema.load(MATRIX).clients}


@pytest.mark.parametrize('name', ['fsspec', 'mfusepy'])
def test_real_client_passes_what_the_real_peer_passes(entries, name, tmp_path):
    entry = entries[name]
    log = Log(str(tmp_path / 'client.log'))
    try:
        prep = clients.ensure_client(entry, cache_dir(), log)
    except IndexUnreachable as e:
        pytest.skip(f'no package index reachable to install {entry.project}: {e}')
    shims = clients.write_sitecustomize(str(tmp_path / 'shims'))
    real = clients.run_suite(entry, prep, str(tmp_path / 'real'), log)
    shim = clients.run_suite(entry, prep, str(tmp_path / 'fuseshim'), log, fuseshim={
        'site': clients.sites_of_this_fuseshim(str(tmp_path)), 'shims': shims,
        'startup': 'auto', 'libfuse_env': {}})
    known = clients.known_in(entry.known_failures, fuseshim.libfuse_version())
    verdict = clients.compare(real, shim, known)
    assert verdict['status'] in ('pass', 'xfail'), (verdict['problems'],
                                                    open(log.path).read()[-6000:])
    assert shim['module']['name'].startswith('fuseshim.compat.')
    assert not real['module']['name'].startswith('fuseshim')
