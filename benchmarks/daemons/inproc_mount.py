"""fuseshim in-process: time from the fuseshim.mount() call to the first
successful stat of the mounted root (from the same process), repeated.

    python -m benchmarks.daemons.inproc_mount SRC MNT --count N
Prints one JSON line: {"samples": [{...}, ...], "startup_path": ...}.
"""
from __future__ import annotations

import json
import os
import time

import fuseshim

from ._common import parser
from .fuseshim_fs import PassFS


def _mounted(path):
    with open('/proc/self/mountinfo') as f:
        return any(line.split()[4] == path for line in f)


def main(argv=None):
    p = parser(__doc__)
    p.add_argument('--count', type=int, default=5)
    p.add_argument('--startup', default='auto')
    args = p.parse_args(argv)
    mnt = os.path.realpath(args.mountpoint)
    parent_dev = os.stat(os.path.dirname(mnt)).st_dev
    samples = []
    path = reason = None
    for _ in range(args.count):
        ops = PassFS(args.source)
        t0 = time.perf_counter_ns()
        m = fuseshim.mount(ops, mnt, options=[f'fsname={args.fsname}'], workers=1,
                           startup=args.startup)
        try:
            t1 = time.perf_counter_ns()
            deadline = time.monotonic() + 10
            while os.stat(mnt).st_dev == parent_dev:
                if time.monotonic() > deadline:
                    raise RuntimeError('mounted, but the root never answered')
            t2 = time.perf_counter_ns()
            path, reason = m.startup_path, m.startup_reason
            samples.append({
                'ready_ms': (t2 - t0) / 1e6,
                'mount_returned_ms': (t1 - t0) / 1e6,
                'syscall_ms': (m.mount_returned_ns - m.mount_called_ns) / 1e6,
                'init_before_mount_returned': m.init_before_mount_returned,
            })
        finally:
            m.close()
        deadline = time.monotonic() + 5
        while _mounted(mnt) and time.monotonic() < deadline:
            time.sleep(0.005)
    print(json.dumps({'samples': samples, 'startup_path': path, 'startup_reason': reason}))


if __name__ == '__main__':
    main()
