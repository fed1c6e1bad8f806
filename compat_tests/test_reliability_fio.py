"""Data integrity: fio random read/write with crc32c verification through the
memfs and passthrough examples, on both startup paths, with one and several
workers.  fio writes blocks of 4 KiB-1 MiB (bssplit) from 4 jobs at once and
verifies every block it wrote (--verify=crc32c --verify_fatal=1); its JSON
report must show no error in any job.

The short variant runs in the normal suite; the long one (>= 10 GiB written
per configuration) only with FUSESHIM_LONG=1.
"""
from __future__ import annotations

import os

import pytest

from conftest import mounted
from fuseshim.examples.memfs import AsyncMemFS, MemFS
from fuseshim.examples.passthrough import AsyncPassthroughFS, PassthroughFS
from reliability_helpers import fio_totals, long_only, needs_fio, run_fio

pytestmark = needs_fio

GIB = 1 << 30
MIB = 1 << 20


def _serve_fio(tmp_path, fs, startup, workers, *, size_mib, runs=1, direct=1,
               handlers='sync', timeout=600, rwmixwrite=50):
    """Mount ``fs`` and run fio in it ``runs`` times (fresh files and a fresh
    random seed each time: fio's own --loops would rewrite the same blocks
    with the same data, and with --randrepeat=0 its verify log goes wrong
    after the first loop even on tmpfs); returns the summed totals."""
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    if fs == 'memfs':
        ops = AsyncMemFS() if handlers == 'async' else MemFS()
    else:
        src = tmp_path / 'src'
        src.mkdir()
        ops = (AsyncPassthroughFS if handlers == 'async' else PassthroughFS)(str(src))
    totals = {'written': 0, 'read': 0, 'runs': 0}
    with mounted(ops, mnt, startup=startup, workers=workers) as m:
        assert m.startup_path == startup
        for run in range(runs):
            data, res = run_fio(str(mnt), size_mib=size_mib, direct=direct, timeout=timeout,
                                rwmixwrite=rwmixwrite)
            t = fio_totals(data)
            assert res.returncode == 0 and not t['errors'], (
                f'fio run {run} failed (rc {res.returncode}, job errors {t["errors"]}):\n'
                f'{res.stderr[-3000:]}')
            # fio verified every block it wrote: a run reads (size - written)
            # in its mixed phase and everything written in its verify phase
            assert t['read'] == 4 * size_mib * MIB, t
            assert t['written'] > 0
            files = sorted(os.listdir(mnt))
            assert len(files) == 4, files
            for name in files:
                os.unlink(mnt / name)
            totals['written'] += t['written']
            totals['read'] += t['read']
            totals['runs'] += 1
    assert ops.check_consistency() == []
    return totals


@pytest.mark.parametrize('fs', ['memfs', 'passthrough'])
@pytest.mark.parametrize('workers', [1, 4])
@pytest.mark.parametrize('startup', ['sync', 'classic'])
def test_fio_verify_short(tmp_path, fs, startup, workers, record_property):
    totals = _serve_fio(tmp_path, fs, startup, workers, size_mib=48)
    record_property('bytes_verified', totals['written'])
    assert totals['written'] >= 4 * 48 * MIB // 4     # about half of it, at random


@pytest.mark.parametrize('fs', ['memfs', 'passthrough'])
def test_fio_verify_async_handlers(tmp_path, fs, record_property):
    totals = _serve_fio(tmp_path, fs, 'sync', 2, size_mib=16, handlers='async')
    record_property('bytes_verified', totals['written'])


@pytest.mark.parametrize('fs', ['memfs', 'passthrough'])
def test_fio_verify_buffered(tmp_path, fs, record_property):
    """Through the page cache (no O_DIRECT): fio invalidates the cache before
    its verify phase, so the data is read back from the daemon."""
    totals = _serve_fio(tmp_path, fs, 'classic', 2, size_mib=16, direct=0)
    record_property('bytes_verified', totals['written'])


class CorruptingMemFS(MemFS):
    """Flips one bit in every 40th read: the harness must notice."""
    reads = 0

    def read(self, fh, off, size):
        data = bytearray(MemFS.read(self, fh, off, size))
        self.reads += 1
        if self.reads % 40 == 0 and len(data) > 100:
            data[99] ^= 0x10
        return bytes(data)


def test_fio_detects_corruption(tmp_path):
    """Negative control: a filesystem returning a flipped bit fails fio."""
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    with mounted(CorruptingMemFS(), mnt, workers=2):
        data, res = run_fio(str(mnt), size_mib=16, numjobs=2)
    totals = fio_totals(data)
    assert res.returncode != 0 and totals['errors'], totals
    assert 'verify failed' in res.stderr or 'bad magic' in res.stderr, res.stderr[-2000:]


@long_only
@pytest.mark.parametrize('fs', ['memfs', 'passthrough'])
@pytest.mark.parametrize('startup', ['sync', 'classic'])
def test_fio_verify_long(tmp_path, fs, startup, record_property):
    """>= 10 GiB written and verified per configuration: 15 fio runs of 4
    jobs x 256 MiB files with 70% writes."""
    totals = _serve_fio(tmp_path, fs, startup, 4, size_mib=256, runs=15, rwmixwrite=70,
                        timeout=1800)
    record_property('bytes_verified', totals['written'])
    print(f'\nfio {fs} {startup}: {totals["written"] / GIB:.2f} GiB written and verified, '
          f'{totals["read"] / GIB:.2f} GiB read')
    assert totals['written'] >= 10 * GIB
