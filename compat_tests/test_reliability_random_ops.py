"""Model-based random operations (random_ops.py) on the memfs and passthrough
examples, compared op by op and byte for byte with the same sequence on a
plain ext4 directory in the same run.

The client runs in a subprocess: a page fault on a mapping of the mount
would hold this process's GIL, which the in-process daemon needs to answer.

Short runs are part of the normal suite (random seed per run, printed; fix it
with FUSESHIM_RANDOM_OPS_SEED=N).  FUSESHIM_LONG=1 adds the long runs
(FUSESHIM_RANDOM_OPS_COUNT operations per example, default 100,000).  A
failing run prints its shrunk sequence and writes it to a JSON file; replay it
with

    FUSESHIM_RANDOM_OPS_REPLAY=/var/tmp/fuseshim-random-ops-....json \\
        python -m pytest -p no:cacheprovider compat_tests/test_reliability_random_ops.py -k replay

or against any two directories with ``python compat_tests/random_ops.py replay``.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

import fuseshim._core
from conftest import mounted
from reliability_helpers import long_only
from fuseshim.examples.memfs import AsyncMemFS, MemFS
from fuseshim.examples.passthrough import AsyncPassthroughFS, PassthroughFS

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'random_ops.py')
#: ext4 here; tmpfs would refuse every O_DIRECT open (see random_ops.py)
REFERENCE_PARENT = os.environ.get('FUSESHIM_RANDOM_OPS_DIR', '/var/tmp')
SHORT_OPS = int(os.environ.get('FUSESHIM_RANDOM_OPS_SHORT', '4000'))
LONG_OPS = int(os.environ.get('FUSESHIM_RANDOM_OPS_COUNT', '100000'))

EXAMPLES = {
    'memfs': (MemFS, AsyncMemFS),
    'passthrough': (PassthroughFS, AsyncPassthroughFS),
    # GETATTR answered in C from the inodes' O_PATH fds (EntryAttributes.path_fd)
    'passthrough_fast': (PassthroughFS, AsyncPassthroughFS),
}


def _seed():
    env = os.environ.get('FUSESHIM_RANDOM_OPS_SEED')
    return int(env) if env else random.SystemRandom().randrange(1 << 31)


def _assert_accepts_o_direct(directory):
    probe = os.path.join(directory, '.o_direct_probe')
    try:
        fd = os.open(probe, os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o600)
    except OSError as e:
        pytest.fail(f'{directory} refuses O_DIRECT ({e}); the reference must be on a '
                    'filesystem that takes it (ext4, xfs, btrfs; not tmpfs): set '
                    'FUSESHIM_RANDOM_OPS_DIR')
    os.close(fd)
    os.unlink(probe)


@contextlib.contextmanager
def example_mounted(example, startup, workers, handlers='sync'):
    """Mount ``example`` below a fresh directory of REFERENCE_PARENT.
    -> dict(target=..., reference=..., backing=... or None, ops=...)"""
    base = tempfile.mkdtemp(prefix='fuseshim-random-ops-', dir=REFERENCE_PARENT)
    try:
        _assert_accepts_o_direct(base)
        dirs = {n: os.path.join(base, n) for n in ('mnt', 'ref', 'src')}
        for d in dirs.values():
            os.mkdir(d)
        cls = EXAMPLES[example][handlers == 'async']
        passthrough = example.startswith('passthrough')
        ops = (cls(dirs['src'], fast_getattr=example == 'passthrough_fast') if passthrough
               else cls())
        with mounted(ops, dirs['mnt'], startup=startup, workers=workers) as m:
            assert m.startup_path == startup
            yield {'target': dirs['mnt'], 'reference': dirs['ref'],
                   'backing': dirs['src'] if passthrough else None, 'ops': ops}
        assert ops.check_consistency() == []
        assert fuseshim._core._path_fd_inodes(m.session) == 0   # dropped at session end
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _drive(where, argv, label, timeout):
    """Run random_ops.py ``argv`` against ``where``; -> its JSON summary."""
    failure_file = os.path.join(
        REFERENCE_PARENT, f'fuseshim-random-ops-failure-{label}-{os.getpid()}-'
                          f'{int(time.time())}.json')
    cmd = [sys.executable, DRIVER, *argv, '--target', where['target'],
           '--reference', where['reference'], '--label', label,
           '--failure-file', failure_file]
    if where['backing']:
        cmd += ['--backing', where['backing']]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = res.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines else {}
    if res.returncode != 0 or not summary.get('ok'):
        pytest.fail(f'{res.stderr}\n(exit {res.returncode}) the sequence is in {failure_file}; '
                    f'replay: FUSESHIM_RANDOM_OPS_REPLAY={failure_file} python -m pytest '
                    f'-p no:cacheprovider {os.path.relpath(__file__)} -k replay',
                    pytrace=False)
    return summary


def _run_random(example, startup, workers, count, handlers='sync', timeout=600):
    seed = _seed()
    label = f'{example}-{startup}-{handlers}-w{workers}'
    with example_mounted(example, startup, workers, handlers) as where:
        t0 = time.monotonic()
        summary = _drive(where, ['run', '--seed', str(seed), '--ops', str(count)],
                         label, timeout)
        took = time.monotonic() - t0
    results = summary['results']
    ok = sum(v for k, v in results.items() if ':' not in k)
    errs = sum(v for k, v in results.items() if ':err:' in k)
    rest = summary['ops'] - ok - errs - summary['skipped']
    print(f'\nrandom-ops {label}: seed {seed}, {summary["ops"]} ops ({ok} succeeded, '
          f'{errs} failed alike with an errno, {summary["skipped"]} skipped as '
          f'legitimately different, {rest} not made alike: read-only or empty mapping, '
          f'beyond end of file), no difference, {took:.1f} s')
    return summary


def _assert_meaningful(summary):
    """The run did what it claims: most ops succeed, every family ran."""
    results = summary['results']
    done = {k for k, v in results.items() if ':' not in k and v}
    missing = {'open', 'close', 'read', 'write', 'pread', 'pwrite', 'ftruncate', 'truncate',
               'fallocate', 'copy', 'mmap', 'mapread', 'mapwrite', 'msync', 'fsync',
               'rename', 'link', 'unlink'} - done
    assert not missing, f'operations never succeeded: {missing} ({results})'
    ok = sum(results[k] for k in done)
    assert ok > summary['ops'] // 2, results


# ------------------------------------------------------------ short (normal suite)

@pytest.mark.parametrize('example,startup,workers,handlers', [
    ('memfs', 'sync', 1, 'sync'),
    ('memfs', 'classic', 3, 'sync'),
    ('memfs', 'sync', 2, 'async'),
    ('passthrough', 'sync', 3, 'sync'),
    ('passthrough', 'classic', 1, 'sync'),
    ('passthrough', 'classic', 2, 'async'),
    ('passthrough_fast', 'sync', 3, 'sync'),
    ('passthrough_fast', 'classic', 2, 'async'),
], ids=lambda v: str(v))
def test_random_ops_short(example, startup, workers, handlers):
    summary = _run_random(example, startup, workers, SHORT_OPS, handlers, timeout=300)
    _assert_meaningful(summary)


# ------------------------------------------------------------ long (opt-in)

@long_only
@pytest.mark.parametrize('example', sorted(EXAMPLES))
def test_random_ops_long(example):
    """FUSESHIM_RANDOM_OPS_COUNT (default 100,000) operations per example, in
    three runs: sync startup with 3 workers, classic with 1, and async def
    handlers (sync startup, 2 workers)."""
    third = LONG_OPS // 3
    runs = (('sync', 3, 'sync', LONG_OPS - 2 * third), ('classic', 1, 'sync', third),
            ('sync', 2, 'async', third))
    total = 0
    for startup, workers, handlers, count in runs:
        summary = _run_random(example, startup, workers, count, handlers, timeout=3600)
        _assert_meaningful(summary)
        total += summary['ops']
    assert total == LONG_OPS


# ------------------------------------------------------------ replay

REPLAY = os.environ.get('FUSESHIM_RANDOM_OPS_REPLAY')


@pytest.mark.skipif(not REPLAY, reason='replays a saved failure: set '
                                       'FUSESHIM_RANDOM_OPS_REPLAY=FILE.json')
def test_replay():
    """Replay a failing sequence on the example and mode it failed on."""
    with open(REPLAY) as f:
        saved = json.load(f)
    example, startup, handlers, workers = saved['label'].split('-')
    with example_mounted(example, startup, int(workers[1:]), handlers) as where:
        _drive(where, ['replay', REPLAY], saved['label'], timeout=600)


def run_fixed(example, ops, *, startup='sync', workers=1, handlers='sync'):
    """Regression tests: a fixed sequence must show no difference."""
    with example_mounted(example, startup, workers, handlers) as where:
        with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as f:
            json.dump({'seed': None, 'label': f'{example}-fixed', 'ops': ops}, f)
        try:
            _drive(where, ['replay', f.name, '--shrink-seconds', '20'],
                   f'{example}-{startup}-{handlers}-w{workers}', timeout=300)
        finally:
            os.unlink(f.name)


# ------------------------------------------------------------ the harness itself

def test_harness_detects_a_difference(tmp_path):
    """The comparison is not vacuous: a target that loses one byte of a
    write (simulated with a plain directory whose file is changed behind the
    driver's back) is reported, shrunk and written out for replay."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('random_ops', DRIVER)
    ro = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ro)
    target, ref = tmp_path / 't', tmp_path / 'r'
    target.mkdir()
    ref.mkdir()
    ops = [['open', 0, 'a', ['O_RDWR', 'O_CREAT']],
           ['pwrite', 0, 0, 100, 1],
           ['stat', 'a'],
           ['pwrite', 0, 50, 10, 2]]

    class Lossy(ro.Side):
        def op_pwrite(self, slot, off, n, dseed):
            got = super().op_pwrite(slot, off, n, dseed)
            if off == 50:
                os.pwrite(self.handles[slot][0], b'\0', 55)   # one byte lost
            return got

    with ro.Pair(str(target), str(ref), tag='x') as pair:
        pair.target.__class__ = Lossy
        for i, op in enumerate(ops):
            pair.step(i, op)
        with pytest.raises(ro.Difference) as info:
            pair.check_trees(len(ops) - 1, ops[-1])
    assert 'a: bytes differ from offset 0x37' in str(info.value)

    def fails(seq):   # the property: a pwrite at 50 after some data exists
        return any(op[0] == 'pwrite' and op[2] == 50 for op in seq) and \
            any(op[0] == 'open' for op in seq)
    assert ro.shrink(ops, fails, 10) == [ops[0], ops[3]]


# ------------------------------------------------------------ regressions found by the tester

def test_passthrough_shared_mapping_of_an_append_handle_is_written_in_place():
    """Found by the tester (seed 1): the kernel writes a shared mapping's
    dirty pages back through *any* writable handle of the file, here one
    opened O_APPEND.  The example opened its backing descriptor with
    O_APPEND too, so pwrite() at the page's offset appended at end of file
    instead, and the mapped bytes never reached their place (zeros read back)."""
    run_fixed('passthrough', [
        ['open', 1, 'd/b', ['O_RDONLY', 'O_CREAT', 'O_EXCL']],
        ['truncate', 'd/b', 20480],
        ['open', 5, 'd/b', ['O_RDWR', 'O_CREAT', 'O_APPEND', 'O_DIRECT']],
        ['mmap', 0, 5, 18161],
        ['mapwrite', 0, 255, 11220, 288545356],
    ])
    run_fixed('passthrough', [                       # the same without O_DIRECT
        ['open', 0, 'a', ['O_RDWR', 'O_CREAT', 'O_APPEND']],
        ['ftruncate', 0, 8192],
        ['mmap', 0, 0, 8192],
        ['mapwrite', 0, 100, 5000, 7],
        ['msync', 0],
        ['pread', 0, 0, 8192],
    ])


def test_passthrough_odirect_file_written_through_a_shared_mapping():
    """issue 13's data loss as the tester finds it (shrunk from seeds 11 and
    12 on the example before its fix): an O_DIRECT handle, a size that is no
    multiple of 4 KiB, a write through the mapping -- the last page's
    writeback arrives cut at end of file and the O_DIRECT backing fd refused
    it (EIO on the next read, zeros in the backing file)."""
    run_fixed('passthrough', [
        ['open', 1, 'd/a', ['O_RDWR', 'O_CREAT', 'O_DIRECT']],
        ['fallocate', 1, 0, 1543, 3677],
        ['mmap', 2, 1, 5220],
        ['mapwrite', 2, 4090, 109, 971477956],
    ], workers=3)
    run_fixed('passthrough', [
        ['open', 0, 'a', ['O_RDWR', 'O_CREAT', 'O_DIRECT']],
        ['fallocate', 0, 0, 3563, 448],
        ['mmap', 2, 0, 1407],
        ['mapwrite', 2, 682, 55, 1019133013],
        ['msync', 2],
    ], startup='classic')
