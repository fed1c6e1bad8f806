"""Zero-line migration: the peers' module names resolve to fuseshim's layers.

With ``FUSESHIM_PROVIDES=pyfuse3,mfusepy,fusepy`` (any of them, comma
separated; ``all`` for every one) an unchanged program's ``import pyfuse3``,
``import pyfuse3.asyncio``, ``import mfusepy`` or ``import fuse`` gives it
fuseshim's layer instead of the real peer.  ``fuseshim-provide.pth``, which
the fuseshim wheel installs next to this module, imports it at interpreter
start-up; it then only reads the variable (it imports nothing of fuseshim
until a provided name is imported, so other programs pay nothing).
``python -m fuseshim.run --provide pyfuse3 -- borg mount ...`` sets the
variable for a command and its children.

The provided module *is* the layer (``sys.modules['pyfuse3'] is
fuseshim.compat.pyfuse3``): one module object, whatever name imported it.
The replacement is logged once per name on the ``fuseshim`` logger.

This module lives outside the ``fuseshim`` package so that the start-up
hook does not import fuseshim's extension into every Python process.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import logging
import os
import sys

ENV = 'FUSESHIM_PROVIDES'

# what each name in $FUSESHIM_PROVIDES provides: module name -> fuseshim's layer
PROVIDES = {
    'pyfuse3': {'pyfuse3': 'fuseshim.compat.pyfuse3',
                'pyfuse3.asyncio': 'fuseshim.compat.pyfuse3_asyncio',
                # pyfuse3 < 3.2 kept its asyncio support in a module of its own
                'pyfuse3_asyncio': 'fuseshim.compat.pyfuse3_asyncio'},
    'mfusepy': {'mfusepy': 'fuseshim.compat.mfusepy'},
    'fusepy': {'fuse': 'fuseshim.compat.fusepy'},
}
ALIASES = {'fuse': 'fusepy'}       # fusepy's module is called fuse


def parse(value: str) -> dict[str, str]:
    """``"pyfuse3,mfusepy"`` -> {module name: layer}; ValueError names an unknown entry."""
    modules: dict[str, str] = {}
    for item in (v.strip().lower() for v in value.split(',')):
        if not item:
            continue
        if item == 'all':
            for group in PROVIDES.values():
                modules.update(group)
            continue
        group = PROVIDES.get(ALIASES.get(item, item))
        if group is None:
            raise ValueError(f'${ENV}: unknown entry {item!r} (known: '
                             f'{", ".join(sorted(PROVIDES))}, all)')
        modules.update(group)
    return modules


class _Alias(importlib.abc.Loader):
    def __init__(self, name: str, target: str):
        self.name, self.target = name, target

    def create_module(self, spec):
        module = importlib.import_module(self.target)
        logging.getLogger('fuseshim').info('fuseshim: %r provided by %s (%s)', self.name,
                                           self.target, ENV)
        return module

    def exec_module(self, module):
        pass        # the layer ran when it was imported under its own name


class ProvideFinder(importlib.abc.MetaPathFinder):
    """Finds the provided names before any other finder does."""

    def __init__(self, modules: dict[str, str]):
        self.modules = modules

    def find_spec(self, fullname, path=None, target=None):
        layer = self.modules.get(fullname)
        if layer is None:
            return None
        # a name with provided submodules must look like a package, or
        # ``import pyfuse3.asyncio`` fails before any finder is asked
        parent = any(name.startswith(fullname + '.') for name in self.modules)
        return importlib.machinery.ModuleSpec(fullname, _Alias(fullname, layer),
                                              is_package=parent)


def install(modules: dict[str, str]) -> ProvideFinder | None:
    if not modules:
        return None
    for f in sys.meta_path:
        if isinstance(f, ProvideFinder):
            f.modules.update(modules)
            return f
    finder = ProvideFinder(dict(modules))
    sys.meta_path.insert(0, finder)
    return finder


def install_from_env() -> None:
    value = os.environ.get(ENV)
    if not value:
        return
    try:
        install(parse(value))
    except ValueError as e:
        # at interpreter start-up a traceback would only confuse: say it once
        print(f'fuseshim: {e}; nothing is provided', file=sys.stderr)


install_from_env()
