"""Zero-line migration: $FUSESHIM_PROVIDES and ``python -m fuseshim.run``.

Each case runs a fresh interpreter, so the start-up hook
(``fuseshim-provide.pth``) runs as it does for a user's program.  Where the
fuseshim under test is not in a site directory (a matrix cell's build on
PYTHONPATH), the child adds that directory as a site directory, which is
what processes the ``.pth`` file.
"""
from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import textwrap

import pytest

import _fuseshim_provide as provide

HOOK_DIR = os.path.dirname(os.path.abspath(provide.__file__))
PTH = os.path.join(HOOK_DIR, 'fuseshim-provide.pth')


def _python(code: str, provides: str | None, *, argv=None):
    env = {k: v for k, v in os.environ.items() if k != provide.ENV}
    if provides is not None:
        env[provide.ENV] = provides
    prelude = ''
    if HOOK_DIR not in site.getsitepackages() + [site.getusersitepackages()]:
        prelude = f'import site; site.addsitedir({HOOK_DIR!r})\n'
    cmd = argv or [sys.executable, '-c', prelude + textwrap.dedent(code)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def test_the_wheel_ships_the_startup_hook():
    assert open(PTH).read().strip() == 'import _fuseshim_provide'


IMPORTS = '''
    import json, sys, importlib
    import pyfuse3, pyfuse3.asyncio, fuse, mfusepy
    from pyfuse3 import asyncio as pa
    import fuseshim.compat.pyfuse3 as c3, fuseshim.compat.pyfuse3_asyncio as ca
    import fuseshim.compat.fusepy as cf, fuseshim.compat.mfusepy as cm
    print(json.dumps({
        'same': [pyfuse3 is c3, pyfuse3.asyncio is ca, pa is ca, fuse is cf, mfusepy is cm,
                 sys.modules['pyfuse3.asyncio'] is ca,
                 importlib.import_module('pyfuse3_asyncio') is ca],
        'names': [m.__name__ for m in (pyfuse3, fuse, mfusepy)],
        'roundtrip': [sys.modules[m.__name__] is m for m in (pyfuse3, fuse, mfusepy)],
        'version': pyfuse3.__version__,
    }))
'''


def test_every_peer_name_resolves_to_its_layer():
    r = _python(IMPORTS, 'pyfuse3,fusepy,mfusepy')
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert all(got['same']), got
    assert got['names'] == ['fuseshim.compat.pyfuse3', 'fuseshim.compat.fusepy',
                            'fuseshim.compat.mfusepy']
    assert all(got['roundtrip']) and got['version'] == '3.5.0'


def test_all_and_aliases():
    assert provide.parse('all') == provide.parse('pyfuse3,mfusepy,fusepy')
    assert provide.parse(' fuse , ') == provide.parse('fusepy')
    with pytest.raises(ValueError, match="unknown entry 'llfuse'"):
        provide.parse('pyfuse3,llfuse')


def test_only_the_named_peers_are_provided():
    code = '''
        import fuseshim, sys
        import mfusepy
        print(mfusepy.__name__)
        try:
            import pyfuse3
            print(pyfuse3.__name__)
        except ImportError as e:
            print('ImportError')
    '''
    r = _python(code, 'mfusepy')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert lines[0] == 'fuseshim.compat.mfusepy'
    assert lines[1] in ('pyfuse3', 'ImportError')     # the real one, or none


def test_without_the_variable_nothing_changes_and_fuseshim_is_not_imported():
    code = '''
        import sys
        print('fuseshim' in sys.modules, any(type(f).__name__ == 'ProvideFinder'
                                             for f in sys.meta_path))
    '''
    r = _python(code, None)
    assert r.returncode == 0 and r.stdout.split() == ['False', 'False'], (r.stdout, r.stderr)
    # with it, fuseshim still loads only once a provided name is imported
    r = _python(code, 'pyfuse3')
    assert r.returncode == 0 and r.stdout.split() == ['False', 'True'], (r.stdout, r.stderr)


def test_unknown_entry_is_reported_once_and_nothing_provided():
    r = _python('import sys; print(any(type(f).__name__ == "ProvideFinder" '
                'for f in sys.meta_path))', 'pyfuse3,bogus')
    assert r.returncode == 0 and r.stdout.strip() == 'False'
    assert "unknown entry 'bogus'" in r.stderr and r.stderr.count('fuseshim:') == 1


def test_replacement_is_logged_once():
    code = '''
        import logging
        logging.basicConfig(level=logging.INFO, format='%(message)s')
        import mfusepy
        import mfusepy
    '''
    r = _python(code, 'mfusepy')
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("'mfusepy' provided by fuseshim.compat.mfusepy") == 1, r.stderr


def test_run_sets_the_variable_for_a_command_and_its_children():
    prelude = ''
    if HOOK_DIR not in site.getsitepackages() + [site.getusersitepackages()]:
        prelude = f'import site; site.addsitedir({HOOK_DIR!r}); '
    grandchild = prelude + 'import mfusepy; print(mfusepy.__name__)'
    child = ('import subprocess, sys; print(subprocess.run([sys.executable, "-c", '
             f'{grandchild!r}], capture_output=True, text=True).stdout.strip())')
    r = _python('', None, argv=[sys.executable, '-m', 'fuseshim.run', '--provide', 'mfusepy',
                                '--', sys.executable, '-c', child])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == 'fuseshim.compat.mfusepy'


def test_run_refuses_bad_arguments():
    for args, msg in ((['--provide', 'nope', '--', 'true'], "unknown entry 'nope'"),
                      (['--provide', 'pyfuse3'], 'no command given'),
                      (['--provide', 'pyfuse3', '--', 'no-such-command-xyz'],
                       'command not found')):
        r = _python('', None, argv=[sys.executable, '-m', 'fuseshim.run', *args])
        assert r.returncode == 2 and msg in r.stderr, (args, r.stderr)
