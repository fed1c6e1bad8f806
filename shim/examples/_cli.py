"""Shared command line for the examples: --startup, --workers, --debug, -o."""
from __future__ import annotations

import argparse
import logging
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
    return p


def run(ops, args) -> int:
    """Mount, report the startup path, serve until unmounted or Ctrl-C/SIGTERM."""
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format='%(levelname)s %(message)s')
    options = [o for group in args.options for o in group.split(',') if o]
    if args.debug:
        options.append('debug')
    # Handlers before mounting: a signal at any moment must end in an unmount.
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        m = fuseshim.mount(ops, args.mountpoint, options=options, startup=args.startup,
                           workers=args.workers)
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
    return 0
