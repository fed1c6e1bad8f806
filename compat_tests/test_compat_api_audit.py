"""The public API of the real pyfuse3, fusepy and mfusepy, audited against
fuseshim's layers -- every name, not a chosen few.

For each peer, api_surface.py describes the real module and fuseshim's layer
(each in a fresh interpreter) by the same rules: every public module-level
name and what it is (constants by value, modules by name, ctypes types by
shape), signatures where Python can introspect them, classes' bases and
public members, ctypes structures' layouts, exceptions' hierarchy and
message, what a star import binds, and for each class: whether it can be made
without arguments, setting every public attribute of an instance and reading
it back, copy() and pickle.  Any difference fails the test unless the peer's
migration guide (docs/migration-pyfuse3.md, docs/migration-fusepy.md) lists
it with its reason in the table between the ``api-audit`` markers; a listed
difference that no longer occurs fails it too, so the list stays true.

mfusepy's layouts depend on the libfuse it loads: the real mfusepy is made to
load the very library fuseshim is linked with (FUSE_LIBRARY_PATH), so both
describe the same libfuse version.

Also here: mfusepy's own test suite (its sdist's tests/, with its C layout
check) run against the real mfusepy and, through FUSESHIM_PROVIDES, against
the layer; the layer must pass what the real one passes.
"""
from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from compat_helpers import MFUSEPY_VERSION, peer_sdist

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / 'docs'
SURFACE = HERE / 'api_surface.py'

# peer -> (real module, fuseshim's layer, the guide that lists the differences)
PEERS = {
    'pyfuse3': ('pyfuse3', 'fuseshim.compat.pyfuse3', 'migration-pyfuse3.md'),
    'pyfuse3.asyncio': ('pyfuse3.asyncio', 'fuseshim.compat.pyfuse3_asyncio',
                        'migration-pyfuse3.md'),
    'fusepy': ('fuse', 'fuseshim.compat.fusepy', 'migration-fusepy.md'),
    'mfusepy': ('mfusepy', 'fuseshim.compat.mfusepy', 'migration-fusepy.md'),
}
# aspects where a name only the layer has is reported ("extra")
EXTRA_ASPECTS = ('name', 'member')
TABLE = re.compile(r'<!-- api-audit-begin.*?-->(.*?)<!-- api-audit-end -->', re.S)


def fuseshim_libfuse() -> str:
    from fuseshim._core import libfuse_path
    return os.path.realpath(libfuse_path())


def describe(module: str) -> dict:
    env = dict(os.environ)
    env.pop('FUSESHIM_PROVIDES', None)
    # mfusepy loads libfuse 2 unless told otherwise: make it load fuseshim's
    env['FUSE_LIBRARY_PATH'] = fuseshim_libfuse()
    r = subprocess.run([sys.executable, str(SURFACE), module], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, f'describing {module} failed:\n{r.stderr}'
    return json.loads(r.stdout)


def differences(real: dict, layer: dict) -> dict[tuple[str, str], str]:
    """(difference, name) -> what each side showed."""
    owners = {k.split(' ', 1)[1] for k in real if k.startswith('name ')}
    out = {}
    for key in sorted(set(real) | set(layer)):
        aspect, name = key.split(' ', 1)
        if key not in layer:
            out[(f'missing {aspect}', name)] = f'peer: {real[key]!r}'
        elif key not in real:
            owner = name.split('.', 1)[0]
            if aspect in EXTRA_ASPECTS and (aspect == 'name' or owner in owners):
                out[(f'extra {aspect}', name)] = f'layer: {layer[key]!r}'
        elif real[key] != layer[key]:
            if aspect == 'signature' and real[key] is None:
                continue        # the peer's (Cython) callable has no signature to compare
            out[(f'different {aspect}', name)] = f'peer: {real[key]!r}; layer: {layer[key]!r}'
    return out


def accepted(doc: Path) -> list[tuple[str, tuple[str, ...], tuple[str, ...], str]]:
    """The guide's table of accepted differences: (peer, differences, name
    patterns, reason) per row.  A row's differences are comma-separated; its
    names are backquoted fnmatch patterns."""
    m = TABLE.search(doc.read_text())
    assert m, f'{doc.name} has no api-audit table'
    rows = []
    for line in m.group(1).strip().splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) != 4 or cells[0] == 'peer' or set(cells[0]) <= set('- '):
            continue
        peer, diffs, names, why = cells
        patterns = tuple(re.findall(r'`([^`]+)`', names))
        assert why and patterns, f'{doc.name}: a row without names or reason: {line}'
        rows.append((peer, tuple(d.strip() for d in diffs.split(',')), patterns, why))
    return rows


def listed(diff: str, name: str, row) -> bool:
    return diff in row[1] and any(fnmatch.fnmatchcase(name, p) for p in row[2])


def check(peer: str, diffs: dict, rows: list) -> list[str]:
    """What is wrong: differences no row lists, and row patterns that match
    no difference (stale)."""
    rows = [r for r in rows if r[0] == peer]
    msg = [f'  {d} {n}: {v}' for (d, n), v in diffs.items()
           if not any(listed(d, n, r) for r in rows)]
    if msg:
        msg.insert(0, f'differences from the real {peer} that the guide does not list:')
    stale = [f'  {", ".join(r[1])} `{p}`' for r in rows for p in r[2]
             if not any(d in r[1] and fnmatch.fnmatchcase(n, p) for d, n in diffs)]
    if stale:
        msg += ['rows of the guide that match no difference (strike them):'] + stale
    return msg


@pytest.mark.parametrize('peer', sorted(PEERS))
def test_api_matches_peer(peer):
    real_mod, layer_mod, guide = PEERS[peer]
    if importlib.util.find_spec(real_mod.split('.')[0]) is None:
        # the test extra installs the peers (make setup); the matrix's
        # packaging stage runs the suite on the bare wheel, without them
        pytest.skip(f'the real {peer} is the reference: pip install fuseshim[test]')
    diffs = differences(describe(real_mod), describe(layer_mod))
    msg = check(peer, diffs, accepted(DOCS / guide))
    assert not msg, f'docs/{guide}:\n' + '\n'.join(msg)


def test_audit_catches_new_and_stale(tmp_path):
    """The audit's own logic: an unlisted difference and a stale row are found."""
    real = {'name A': 'class', 'member A.x': 'data', 'signature f': [['a', 'P', None]],
            'signature g': None, 'member Z.q': 'data'}
    layer = {'name A': 'class', 'name B': 'routine', 'signature f': [['b', 'P', None]],
             'signature g': [], 'member Y.q': 'data'}
    diffs = differences(real, layer)
    assert diffs == {
        ('missing member', 'A.x'): "peer: 'data'",
        ('missing member', 'Z.q'): "peer: 'data'",
        ('extra name', 'B'): "layer: 'routine'",
        ('different signature', 'f'): "peer: [['a', 'P', None]]; layer: [['b', 'P', None]]"}
    doc = tmp_path / 'g.md'
    doc.write_text('<!-- api-audit-begin -->\n| peer | difference | names | why |\n'
                   '| --- | --- | --- | --- |\n'
                   '| p | extra name, missing member | `B`, `A.*`, `C*` | because |\n'
                   '<!-- api-audit-end -->\n')
    rows = accepted(doc)
    assert rows == [('p', ('extra name', 'missing member'), ('B', 'A.*', 'C*'), 'because')]
    msg = '\n'.join(check('p', diffs, rows))
    assert 'Z.q' in msg and 'different signature f' in msg      # not listed
    assert '`C*`' in msg and '`B`' not in msg and '`A.*`' not in msg   # stale: C* only


# ---------------------------------------------------------------- mfusepy's own tests

def headers_of(lib: str) -> Path:
    """The include/fuse3 directory installed with a libfuse3 library (a
    prefix's include/ next to its lib/, or /usr/include for the system's;
    the matrix's libfuse unpacked from Debian binaries keeps usr/include/
    next to lib/)."""
    for parent in Path(lib).parents:
        for inc in (parent / 'include' / 'fuse3', parent / 'usr' / 'include' / 'fuse3'):
            if (inc / 'fuse.h').is_file():
                return inc
    raise AssertionError(f'no libfuse3 headers (include/fuse3/fuse.h) installed with {lib}')


def compiler_for(headers: Path, tmp: Path) -> str:
    """A $CC that puts ``headers`` first.  mfusepy's layout check adds
    -I/usr/include/fuse3 itself, which would hide a matrix cell's own
    libfuse (3.17, say) behind the system's 3.14 headers."""
    cc = tmp / 'cc-libfuse'
    cc.write_text(f'#!/bin/sh\nexec {shutil.which("cc") or "cc"} -I{headers} "$@"\n')
    cc.chmod(0o755)
    return str(cc)


# how mfusepy's suite is run: (module name resolves to fuseshim's layer,
# mfusepy loads the libfuse fuseshim is linked with and its headers)
RUNS = {'real': (False, False), 'real-same-libfuse': (False, True), 'layer': (True, True)}


def _run_suite(top: Path, run: str, tmp: Path) -> dict[str, str]:
    """Outcome per test of mfusepy's tests/ (JUnit XML): passed, failure,
    error or skipped."""
    provide, same_libfuse = RUNS[run]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE='1')
    for var in ('FUSE_LIBRARY_PATH', 'FUSE_LIBRARY_NAME', 'FUSESHIM_PROVIDES', 'CC'):
        env.pop(var, None)
    if same_libfuse:
        lib = fuseshim_libfuse()
        env['CC'] = compiler_for(headers_of(lib), tmp)
        if not provide:
            env['FUSE_LIBRARY_PATH'] = lib
    if provide:
        env['FUSESHIM_PROVIDES'] = 'mfusepy'
    xml = tmp / f'{run}.xml'
    # the sdist ships tests/test_examples.py but not the examples/ it imports
    # (nor its ioctl_opt dependency): a collection error on every side, which
    # must not stop the other tests
    subprocess.run([sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-q',
                    '--continue-on-collection-errors', f'--junitxml={xml}', 'tests'],
                   cwd=top, env=env, capture_output=True, text=True, timeout=600)
    outcomes = {}
    for case in ET.parse(xml).iter('testcase'):
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = [c.tag for c in case if c.tag in ('failure', 'error', 'skipped')]
        outcomes[name] = kinds[0] if kinds else 'passed'
    return outcomes


def test_mfusepy_own_suite(tmp_path):
    """mfusepy 3.1.1's tests/, three times in one run: the real mfusepy as
    its users run it (it loads libfuse 2; its C layout check compiles against
    libfuse 2's headers, Debian's libfuse-dev), the real mfusepy made to load
    the libfuse 3 fuseshim is linked with, and fuseshim's layer (module name
    ``mfusepy`` resolving to it through FUSESHIM_PROVIDES), which shows that
    libfuse 3.  The last two compile against that library's own headers.

    The layer must pass exactly what the real mfusepy passes on the same
    libfuse, and on this machine's libfuse everything the default run passes.
    (mfusepy 3.1.1's layouts predate libfuse 3.18, which grew fuse_file_info
    and fuse_operations: on 3.18 its layout check fails for the real mfusepy
    and the layer alike.)"""
    src = peer_sdist('mfusepy', MFUSEPY_VERSION)
    top = tmp_path / 'mfusepy'
    shutil.copytree(src, top)
    got = {run: _run_suite(top, run, tmp_path) for run in RUNS}
    layout = 'tests.test_struct_layout::test_struct_layout'
    assert got['real'].get(layout) == 'passed', (
        f'the real mfusepy must pass its layout check for the comparison to mean '
        f'anything (needs a C compiler and libfuse-dev): {got["real"]}')
    assert got['layer'] == got['real-same-libfuse'], got
    if fuseshim_libfuse_is_systems():
        assert got['layer'] == got['real'], got


def fuseshim_libfuse_is_systems() -> bool:
    """fuseshim runs the libfuse3 whose headers are /usr/include/fuse3."""
    return headers_of(fuseshim_libfuse()) == Path('/usr/include/fuse3')
