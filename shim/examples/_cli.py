"""Shared command line for the examples: --startup, --workers, --debug, -o,
--close-timeout, --destroy-marker."""
from __future__ import annotations

import argparse
import functools
import inspect
import logging
import os
import signal
import sys
import threading

import fuseshim


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument('mountpoint')
    p.add_argument('--startup', choices=('auto', 'sync', 'classic'), default='auto',
                   help='startup path (default: auto)')
    p.add_argument('--workers', type=int, default=1, help='worker threads (default: 1)')
    p.add_argument('--debug', action='store_true', help='log every request (libfuse -d)')
    p.add_argument('-o', dest='options', action='append', default=[],
                   help='mount options, comma-separated (repeatable)')
    p.add_argument('--close-timeout', type=float, default=5.0, metavar='SECONDS',
                   help='on exit, wait this long for files still open before aborting '
                        'the connection (default: 5)')
    p.add_argument('--destroy-marker', metavar='FILE',
                   help='write "destroyed" to FILE once the destroy handler has run '
                        '(tests use it to see a clean shutdown)')
    return p


log = logging.getLogger('fuseshim.examples')


def _mark_destroy(ops, marker):
    """Make ``ops.destroy`` log its call and then write ``marker``."""
    original = ops.destroy

    def done():
        log.info('destroy handler called')
        tmp = f'{marker}.tmp'
        with open(tmp, 'w') as f:
            f.write('destroyed\n')
        os.replace(tmp, marker)   # appears complete or not at all

    if inspect.iscoroutinefunction(original):
        @functools.wraps(original)
        async def destroy():
            await original()
            done()
    else:
        @functools.wraps(original)
        def destroy():
            original()
            done()
    ops.destroy = destroy


def run(ops, args) -> int:
    """Mount, report the startup path, serve until unmounted or Ctrl-C/SIGTERM."""
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format='%(levelname)s %(message)s')
    options = [o for group in args.options for o in group.split(',') if o]
    if args.debug:
        options.append('debug')
    if args.destroy_marker:
        _mark_destroy(ops, os.path.abspath(args.destroy_marker))
    # Handlers before mounting: a signal at any moment must end in an unmount.
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        m = fuseshim.mount(ops, args.mountpoint, options=options, startup=args.startup,
                           workers=args.workers, close_timeout=args.close_timeout)
    except (OSError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    try:
        print(f'mounted {m.mountpoint} via {m.startup_path} startup ({m.startup_reason})',
              flush=True)
        while not stop.is_set() and not m.wait(0.2):
            pass
    finally:
        m.close()
        log.info('unmounted %s', m.mountpoint)
    return 0
