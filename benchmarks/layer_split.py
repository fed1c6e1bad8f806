"""What the fusepy layer itself costs per request, in process, without FUSE.

    python -m benchmarks.layer_split [--n 200000] [--reps 7] [--cpu 0]

Times, per stat (LOOKUP + GETATTR, as the stat benchmark makes them), best
of ``--reps`` loops of ``--n``:

- ``os.lstat`` twice (what the benchmark's fusepy filesystem calls),
- the filesystem's ``getattr()`` twice (lstat plus its ten-key dict),
- the layer's ``lookup()`` + ``getattr()`` around that same filesystem
  (node table, path cache, dict -> attributes),

so that the layer's own share is the difference.  fuseshim's request path
(libfuse, the core's dispatch and reply) is not included: the daemon's perf
profile gives that part (``python -m benchmarks.profile``).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from fuseshim.compat import fusepy

from .daemons.fusepy_fs import build

# the flavour tests' in-process front (no mount): one description of what
# the layer reads of FUSE
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'compat_tests'))
from pathfs_driver import PathLayerFront  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(prog='python -m benchmarks.layer_split', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--n', type=int, default=200_000)
    p.add_argument('--reps', type=int, default=7)
    p.add_argument('--cpu', type=int, default=0, help='pin to this CPU (-1: do not pin)')
    a = p.parse_args(argv)
    if a.cpu >= 0:
        os.sched_setaffinity(0, {a.cpu})
    with tempfile.TemporaryDirectory() as d:
        open(os.path.join(d, 'statfile'), 'w').close()
        ops = build(fusepy)(d)
        front = PathLayerFront(fusepy.FUSE, ops)
        front.use_ns = False      # as the daemon's FUSE() (its times are float seconds)
        layer = fusepy._PathOps(front, threaded=False)
        path, n = os.path.join(d, 'statfile'), a.n

        def lstat_only():
            for _ in range(n):
                os.lstat(path)
                os.lstat(path)

        def fs_only():
            g = ops.getattr
            for _ in range(n):
                g('/statfile')
                g('/statfile')

        def via_layer():
            lookup, getattr_ = layer.lookup, layer.getattr
            for _ in range(n):
                getattr_(lookup(fusepy.FUSE_ROOT_ID, b'statfile', None).st_ino, None)

        def best(fn):
            times = []
            for _ in range(a.reps):
                t = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t) / n * 1e6)
            return min(times)

        lst, fs, lay = best(lstat_only), best(fs_only), best(via_layer)
    print(f'per request (half a stat), µs: os.lstat {lst / 2:.2f}; the filesystem\'s getattr() '
          f'{fs / 2:.2f} (beyond lstat {(fs - lst) / 2:.2f}); through the layer {lay / 2:.2f}: '
          f'the layer itself {(lay - fs) / 2:.2f}')


if __name__ == '__main__':
    main()
