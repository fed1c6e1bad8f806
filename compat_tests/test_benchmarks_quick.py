"""The benchmark suite works (CI): ``python -m benchmarks --quick`` mounts every
implementation that is usable here (fuseshim's own always; the peers and C
examples when installed/built), answers each benchmark once with tiny sizes,
and writes well-formed JSON.  No timing is asserted anywhere."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

import matrix_extra

# benchmarks/ builds its C peers with the matrix's private apt (python-debian)
matrix_extra.require()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='the benchmarks mount filesystems: needs root'),
    pytest.mark.skipif(not os.path.exists('/dev/fuse'), reason='no /dev/fuse'),
]

ALWAYS = ('backing', 'fuseshim-sync-1w', 'fuseshim-sync-2w', 'fuseshim-async')
PER_RUN = {'stat_ops', 'pstat_ops', 'listdir_ops', 'read_mbps', 'create_ops'}
PER_DAEMON = {'mount_ready_ms', 'cpu_us_per_req'}


def _mounts():
    with open('/proc/self/mountinfo') as f:
        return {line.split()[4] for line in f}


@pytest.fixture(scope='module')
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('bench')
    # the run's work directory (backing tmpfs, mountpoints) goes below a
    # directory of this test's own, so only its own mounts are counted (a
    # matrix run beside it mounts benchmark filesystems too)
    work = tmp_path_factory.mktemp('bench-tmp')
    # --no-build: the C peers take part only if already built into the cache
    p = subprocess.run([sys.executable, '-m', 'benchmarks', '--quick', '--no-build',
                        '--out', str(out)], cwd=REPO, capture_output=True, text=True,
                       timeout=240, env=dict(os.environ, TMPDIR=str(work)))
    leftover = {m for m in _mounts() if m.startswith(str(work) + '/')}
    return p, out, leftover, work


def test_quick_mode_completes(quick_run):
    p, out, leftover, work = quick_run
    assert p.returncode == 0, f'exit {p.returncode}\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}'
    assert not leftover, f'mounts left behind: {leftover}'
    # ...and the run worked below that directory (else the check above saw nothing)
    assert f'workdir {work}/fuseshim-bench-' in p.stdout + p.stderr
    assert (out / 'results.md').read_text().startswith('# fuseshim benchmark results')


def test_quick_mode_json(quick_run):
    _, out, _, _ = quick_run
    data = json.loads((out / 'results.json').read_text())
    for key in ('meta', 'implementations', 'samples', 'summary', 'ratios', 'targets',
                'import_time', 'inproc_mount', 'errors', 'failed'):
        assert key in data, key
    assert data['meta']['config']['quick'] is True
    assert not data['failed'], data['failed']
    impls = data['implementations']
    for name in ALWAYS:
        assert impls[name]['available'], (name, impls[name])
    samples = data['samples']['pinned']
    for name, info in impls.items():
        if not info['available']:
            assert info['skip_reason'], name       # skipped, with the reason printed
            assert name not in samples
            continue
        want = PER_RUN | (set() if name == 'backing' else PER_DAEMON)
        assert want <= set(samples[name]), (name, sorted(samples[name]))
        for metric in want:
            for v in samples[name][metric]:
                assert isinstance(v, (int, float)) and math.isfinite(v) and v >= 0, (name, metric, v)
        summary = data['summary']['pinned'][name]
        assert {'median', 'min', 'max', 'n'} <= set(summary['stat_ops'])
    for t in data['targets']:
        assert {'id', 'target', 'status', 'measured'} <= set(t), t
        assert t['status'] == 'not judged (quick mode)', t
    inproc = data['inproc_mount']['pinned']
    assert inproc and all('ready_ms' in s for s in inproc)
    assert 'median_ms' in data['import_time']['fuseshim'], data['import_time']
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (out / 'ratios.png').stat().st_size > 0


@pytest.mark.parametrize('two, again, status, noted', [
    (101, 99, 'met', False),      # faster: met outright
    (99, 98, 'met', True),        # 1 % slower, the A/A control differs by 2 %: noise
    (99, 102, 'met', True),       # the control's spread counts either way
    (97, 99, 'not met', False),   # 3 % slower than a 1 % spread
    (99, None, 'not met', False),  # no control measured: no allowance
])
def test_worker_target_allows_only_the_aa_spread(two, again, status, noted):
    """2 workers vs 1 is judged against the A/A control (the 1-worker
    daemon measured twice in the same run), and only within its spread."""
    sys.path.insert(0, REPO)
    from benchmarks import report
    one = {'stat_ops': {'median': 100}}
    by_impl = {'fuseshim-sync-1w': one, 'fuseshim-sync-2w': {'stat_ops': {'median': two}}}
    if again is not None:
        by_impl[report.AA_CONTROL] = {'stat_ops': {'median': again}}
    data = {'summary': {'pinned': by_impl}, 'meta': {'config': {}}, 'implementations': {}}
    row = next(r for r in report.targets(data) if r['id'] == 'workers-stat')
    assert row['status'] == status
    assert ('A/A' in row.get('note', '')) == noted


@pytest.mark.parametrize('layer, c, status, note', [
    (250, 320, 'not met', 'C passthrough_ll itself: 3.20x pinned'),   # above what C reaches
    (310, 320, 'met', None),                                          # met: nothing to add
    (250, None, 'not met', None),                                     # no C row: no note
])
def test_missed_peer_ratio_names_what_c_reaches(layer, c, status, note):
    """A target against a peer that is missed says what the C reference
    itself reaches against that peer in the same run (the host's ceiling
    for a layer doing C's work plus its own); met rows get no note."""
    sys.path.insert(0, REPO)
    from benchmarks import report
    by_impl = {'pyfuse3': {'stat_ops': {'median': 100}},
               'fuseshim-compat-pyfuse3': {'stat_ops': {'median': layer}}}
    if c is not None:
        by_impl['c-passthrough_ll'] = {'stat_ops': {'median': c}}
    data = {'summary': {'pinned': by_impl}, 'meta': {'config': {}}, 'implementations': {}}
    row = next(r for r in report.targets(data) if r['id'] == 'compat-pyfuse3')
    assert row['status'] == status
    assert row.get('note') == note
    # a target whose reference is C itself never gets the note
    row = next(r for r in report.targets(data) if r['id'] == 'stat-vs-ll-plain')
    assert 'note' not in row
