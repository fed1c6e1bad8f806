"""Soak: 1,000 mount/unmount cycles per startup path and handler kind
(FUSESHIM_LONG=1 only;
test_failures.py runs 200 in the normal suite).  Each cycle mounts memfs
with two workers, writes, reads and lists a file, and unmounts.  Thread
count, open fds and RSS of the process are sampled every 100 cycles after a
warm-up: threads and fds must come back to exactly their baseline, RSS may
not keep growing (bounded by RSS_SLACK_KIB over the whole run, which is far
below what leaking one buffer or session per cycle would cost).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import mounted_paths
from reliability_helpers import long_only
from startup_helpers import force_unmount

HERE = os.path.dirname(os.path.abspath(__file__))

CYCLES = 1000
WARMUP = 50
RSS_SLACK_KIB = 1024          # 1 MiB over 1,000 cycles: about 1 KiB per cycle


CHILD = textwrap.dedent('''
    import gc, json, os, sys
    sys.path.insert(0, sys.argv[4])
    import fuseshim
    from fuseshim.examples.memfs import AsyncMemFS, MemFS
    from reliability_helpers import proc_figures
    mnt, startup, cycles, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[5])
    cls = AsyncMemFS if sys.argv[6] == 'async' else MemFS

    def cycle(i):
        ops = cls()
        with fuseshim.mount(ops, mnt, startup=startup, workers=2) as m:
            assert m.startup_path == startup
            p = os.path.join(mnt, f'f{i}')
            with open(p, 'wb') as f:
                f.write(b'cycle %d' % i)
            with open(p, 'rb') as f:
                assert f.read() == b'cycle %d' % i
            assert os.listdir(mnt) == [f'f{i}']
        assert ops.destroyed

    for i in range(warmup):
        cycle(i)
    gc.collect()
    print(json.dumps([0, proc_figures()]), flush=True)
    for i in range(1, cycles + 1):
        cycle(i)
        if i % 100 == 0:
            gc.collect()
            print(json.dumps([i, proc_figures()]), flush=True)
''')


@long_only
@pytest.mark.parametrize('handlers', ['sync', 'async'])
@pytest.mark.parametrize('startup', ['sync', 'classic'])
def test_1000_cycles_do_not_grow(tmp_path, startup, handlers, record_property):
    """In a fresh process (pytest's own log capture would grow the test
    process): threads, fds and RSS sampled every 100 cycles."""
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    mnt = str(mnt)
    try:
        res = subprocess.run([sys.executable, '-c', CHILD, mnt, startup, str(CYCLES), HERE,
                              str(WARMUP), handlers],
                             capture_output=True, text=True, timeout=1800)
    finally:
        force_unmount(mnt)
    assert res.returncode == 0, res.stderr[-3000:]
    assert mnt not in mounted_paths()
    samples = [json.loads(line) for line in res.stdout.splitlines() if line.startswith('[')]
    assert [n for n, _ in samples] == list(range(0, CYCLES + 1, 100))
    base, end = samples[0][1], samples[-1][1]
    growth = {k: end[k] - base[k] for k in base}
    lines = [f'{n:5d} cycles: threads {s["threads"]}, fds {s["fds"]}, rss {s["rss_kib"]} KiB'
             for n, s in samples]
    print(f'\n{startup} startup, {handlers} handlers: {CYCLES} cycles after {WARMUP} '
          f'warm-up; growth {growth}\n'
          + '\n'.join(lines))
    record_property('growth', growth)
    assert growth['threads'] == 0 and growth['fds'] == 0, lines
    assert growth['rss_kib'] <= RSS_SLACK_KIB, lines
    # and no steady climb over the last half either
    mid = samples[len(samples) // 2][1]
    assert end['rss_kib'] - mid['rss_kib'] <= RSS_SLACK_KIB // 2, lines
