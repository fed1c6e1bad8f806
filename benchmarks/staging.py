"""Run fuseshim as a regular (wheel) install would, even from an editable one.

meson-python's editable install runs ``ninja`` in the build directory on the
first ``import fuseshim`` of every process (to rebuild changed sources).  That
costs tens of milliseconds per process start, which a user's installed
fuseshim never pays, and it would rebuild in the middle of a benchmark when
someone edits shim/.  So the runner rebuilds once, copies the package as
meson would install it (Python files + the built extension) into a staging
directory, and starts every fuseshim process with that directory first on
PYTHONPATH and the editable finder switched off (MESONPY_EDITABLE_SKIP).
With a regular install nothing is staged.
"""
from __future__ import annotations

import os
import shutil
import sys


def _editable_finder():
    for f in sys.meta_path:
        if type(f).__name__ == 'MesonpyMetaFinder' and getattr(f, '_name', None) == 'fuseshim':
            return f
    return None


def stage(dest: str) -> dict:
    """-> {'mode': 'staged'|'installed', 'env': {...}, 'build_path': ...}"""
    finder = _editable_finder()
    if finder is None:
        return {'mode': 'installed', 'env': {}, 'build_path': None,
                'note': 'fuseshim is a regular install: used as it is'}
    tree = finder._rebuild()          # runs ninja once (rebuilds if shim/ changed)
    node = tree.get(('fuseshim',))
    if not isinstance(node, dict):
        raise RuntimeError('the editable install plan has no fuseshim package')
    shutil.rmtree(dest, ignore_errors=True)

    def copy(n, where):
        os.makedirs(where, exist_ok=True)
        for name, sub in n.items():
            target = os.path.join(where, name)
            if isinstance(sub, dict):
                copy(sub, target)
            elif not name.endswith(('.pyx', '.pxi', '.pxd', '.h', '.c')):
                shutil.copy2(sub, target)
    copy(node, os.path.join(dest, 'fuseshim'))
    env = {'PYTHONPATH': dest,
           'MESONPY_EDITABLE_SKIP': os.pathsep.join(
               p for p in (os.environ.get('MESONPY_EDITABLE_SKIP'), finder._build_path) if p)}
    return {'mode': 'staged', 'env': env, 'build_path': finder._build_path,
            'note': f'editable install staged into {dest} (no per-process rebuild check)'}
