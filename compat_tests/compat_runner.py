"""Serve one test filesystem through one API, in this process, until it is
unmounted.  Used by the differential tests (compat_helpers.run_fs):

    python compat_runner.py --api pyfuse3|pyfuse3-compat|fusepy|fusepy-compat|
                                  mfusepy|mfusepy-compat
                            --fs module:factory --mnt DIR
                            [--asyncio] [--params JSON] [--options JSON] [--cpu N]

``factory(lib, **params)`` (defined once, in a test module) returns the
Operations object for the API module ``lib``.  --options are FUSE() keyword
arguments (fusepy) or extra mount options (pyfuse3).  --cpu pins the process
(all its threads) to one CPU.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys

APIS = {
    'pyfuse3': 'pyfuse3',
    'pyfuse3-compat': 'fuseshim.compat.pyfuse3',
    'fusepy': 'fuse',
    'fusepy-compat': 'fuseshim.compat.fusepy',
    'mfusepy': 'mfusepy',
    'mfusepy-compat': 'fuseshim.compat.mfusepy',
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--api', choices=sorted(APIS), required=True)
    p.add_argument('--fs', required=True)
    p.add_argument('--mnt', required=True)
    p.add_argument('--asyncio', action='store_true')
    p.add_argument('--params', default='{}')
    p.add_argument('--options', default=None)
    p.add_argument('--cpu', type=int, default=None)
    a = p.parse_args()
    if a.cpu is not None:
        os.sched_setaffinity(0, {a.cpu})
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format='%(levelname)s %(name)s: %(message)s')
    lib = importlib.import_module(APIS[a.api])
    modname, factory = a.fs.split(':')
    ops = getattr(importlib.import_module(modname), factory)(lib, **json.loads(a.params))
    if a.api.startswith('pyfuse3'):
        serve_pyfuse3(lib, a, ops)
    else:
        kwargs = json.loads(a.options) if a.options else {'foreground': True}
        lib.FUSE(ops, a.mnt, **kwargs)
        print('FUSE returned', flush=True)


def serve_pyfuse3(pyfuse3, a, ops):
    options = set(pyfuse3.default_options)
    options.add('fsname=compattest')
    for o in (json.loads(a.options) if a.options else []):
        if o.startswith('-'):
            options.discard(o[1:])
        else:
            options.add(o)
    if a.asyncio:
        import asyncio
        if a.api == 'pyfuse3':
            import pyfuse3.asyncio  # noqa: F401
        else:
            import fuseshim.compat.pyfuse3_asyncio  # noqa: F401
        pyfuse3.asyncio.enable()
        pyfuse3.init(ops, a.mnt, options)
        try:
            asyncio.run(pyfuse3.main())
        except BaseException:
            pyfuse3.close(unmount=False)
            raise
    else:
        import trio
        pyfuse3.init(ops, a.mnt, options)
        try:
            trio.run(pyfuse3.main)
        except BaseException:
            pyfuse3.close(unmount=False)
            raise
    pyfuse3.close()
    print('main returned', flush=True)


if __name__ == '__main__':
    main()
