"""An interrupted matrix run stops, cleans up and says so.

Ctrl-C (or SIGTERM: a cancelled CI job, `timeout`) must stop the runner
within seconds: no further cells, every running child interrupted the way a
terminal would (so a test suite tears its fixtures down and unmounts), what
is still mounted below the run's directories lazily unmounted, exit status
130.  Before, the workers went on through the queue after Ctrl-C, and SIGTERM
killed the runner alone, orphaning its children (own sessions) and their
mounts."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import matrix_extra
from child_signals import ignoring

matrix_extra.require()
import fuseshim  # noqa: E402
from test_matrix_shards import REPO, SMALL, shared_cache  # noqa: E402

# the cell's test suite: mounts memfs, says so, and would then sleep for ten
# minutes; its fixture's teardown (which only an interrupt, not a kill, lets
# run) unmounts and leaves a mark
SLOW_SUITE = '''
import os, time
import pytest
import fuseshim
from fuseshim.examples.memfs import MemFS

MARKS = {marks!r}


@pytest.fixture
def mounted(tmp_path):
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    m = fuseshim.mount(MemFS(), str(mnt))
    open(os.path.join(MARKS, 'mounted'), 'w').write(str(mnt))
    try:
        yield mnt
    finally:
        m.close()
        open(os.path.join(MARKS, 'torn-down'), 'w').write(str(mnt))


def test_slow(mounted):
    time.sleep(600)
'''


def _mounts_below(path):
    with open('/proc/self/mounts') as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(str(path) + '/')]


def _pids_running(needle):
    out = []
    for pid in os.listdir('/proc'):
        if pid.isdigit():
            try:
                with open(f'/proc/{pid}/cmdline', 'rb') as f:
                    if needle.encode() in f.read():
                        out.append(int(pid))
            except OSError:
                pass
    return out


@pytest.mark.parametrize('how', [signal.SIGTERM, signal.SIGINT])
def test_interrupted_run_stops_its_children_and_unmounts(tmp_path_factory, how):
    if os.geteuid() != 0:
        pytest.skip('the matrix cells mount with mount(2): run as root')
    root = tmp_path_factory.mktemp(f'interrupt-{how.name}')
    os.chmod(root, 0o755)
    marks = root / 'marks'
    marks.mkdir()
    suite = root / f'slow_suite_{how.name}.py'
    suite.write_text(SLOW_SUITE.format(marks=str(marks)))
    matrix = root / 'matrix.yaml'
    matrix.write_text(textwrap.dedent(SMALL.format(version=fuseshim.libfuse_version())))
    report = root / 'report'
    # started as CI starts it (`make test` as a background job: SIGINT, SIGQUIT
    # and SIGHUP ignored): the runner must set up the dispositions it relies on
    runner = subprocess.Popen(
        [sys.executable, '-m', 'fuseshim.matrix', '--matrix', str(matrix), '--preset', 'small',
         '--cells', '*/host/classic', '--tests', str(suite), '--quiet', '--source', REPO,
         '--cache', str(shared_cache(tmp_path_factory)), '--report-dir', str(report)],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=ignoring(signal.SIGINT, signal.SIGQUIT, signal.SIGHUP))
    try:
        deadline = time.monotonic() + 600        # the cell build, if the cache is cold
        while not (marks / 'mounted').exists():
            assert runner.poll() is None, runner.communicate()[0]
            assert time.monotonic() < deadline, 'the cell suite never mounted'
            time.sleep(0.5)
        assert _mounts_below(report), 'the suite mounts below the report directory'
        t0 = time.monotonic()
        runner.send_signal(how)
        out, _ = runner.communicate(timeout=90)
        took = time.monotonic() - t0
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode == 128 + signal.SIGINT, out
    assert 'interrupted' in out, out
    assert (marks / 'torn-down').exists(), 'the suite was killed, not interrupted: ' + out
    assert _mounts_below(root) == []
    assert _pids_running(suite.name) == [], 'a child of the run outlived it'
    assert took < 60, f'stopping took {took:.0f} s'
