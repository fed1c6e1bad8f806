"""The implementations under test: how to start each one's daemon, whether it
is usable here (and why not), and the mount/unmount lifecycle."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from . import native, newlibfuse

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable

# kinds: baseline (no FUSE), native (C), fuseshim (its own API), passthrough
# (fuseshim's API built against libfuse >= 3.17, FUSE passthrough; see
# newlibfuse.py), compat (fuseshim's compat layers), peer (another Python binding)


@dataclass
class Impl:
    name: str
    label: str
    kind: str
    module: str | None = None          # benchmarks.daemons.<module>
    args: list = field(default_factory=list)
    env: dict = field(default_factory=dict)
    probe: str | None = None           # Python code that must run (prints a version)
    binary: str | None = None          # native: key into native.binaries()
    uses_fuseshim: bool = False
    # the workloads run (None: all of WORKLOADS); rows that only make sense
    # for some, as the waiting-handler rows, skip the others
    workloads: tuple | None = None
    available: bool = True
    skip_reason: str | None = None
    version: str | None = None

    def argv(self, src, mnt, fsname, binaries):
        if self.kind == 'native':
            exe = binaries[self.binary]
            if self.binary == 'passthrough_ll':
                return [exe, '-f', '-s', '-o', f'source={src},timeout=0,fsname={fsname}', mnt]
            return [exe, '--nocache', '--single', '--foreground', src, mnt]
        return [PY, '-m', f'benchmarks.daemons.{self.module}', src, mnt,
                '--fsname', fsname, *self.args]

    def runs(self, workload) -> bool:
        return self.workloads is None or workload in self.workloads

    def to_dict(self):
        return {'label': self.label, 'kind': self.kind, 'available': self.available,
                'skip_reason': self.skip_reason, 'version': self.version,
                'workloads': list(self.workloads) if self.workloads else None}


_V = 'import importlib.metadata as m; print(m.version({!r}))'

# workload -> the metric it yields (runner.run_once; cpu_us_per_req comes with stat)
WORKLOADS = {'stat': 'stat_ops', 'pstat': 'pstat_ops', 'listdir': 'listdir_ops',
             'create': 'create_ops', 'read': 'read_mbps'}

# Waiting handlers: the pyfuse3 daemon's lookup and getattr first await
# trio.sleep(WAIT_MS / 1000), a backing store's latency (S3QL, borg: network,
# disk), so that several trio tasks have something to overlap.  1 ms: trio's
# sleeps are epoll timeouts in whole milliseconds (Python rounds them up), so
# a shorter wait is a 1 ms wait anyway.  1 ms (about 1.2 ms as slept on the
# 2-vCPU VM) is several times the daemon's CPU per waiting request (0.1-0.2
# ms with trio's timer and the wake-up from idle), so the workload is bound
# by the waits, not by the CPU, even with 4 clients on one pinned CPU; and a
# stat (LOOKUP + GETATTR) at ~2.5 ms keeps each row short: the timed loops
# need 200 stats per client, ~2 s for 4 clients served by one task.  Longer
# waits would only make the runs longer.  Only stat and the 4-client stat
# are run: reads, creates and listings do not wait.
WAIT_MS = 1
_WAIT_ARGS = ['--handler-wait-ms', str(WAIT_MS)]
_WAIT_WORKLOADS = ('stat', 'pstat')

_FSTAT_PROBE = ('import fuseshim\nassert hasattr(fuseshim.EntryAttributes, "fstat"), '
                '"this fuseshim has no EntryAttributes.fstat / lstat(dir_fd=)"\n'
                'print(fuseshim.__version__)')

REGISTRY = [
    Impl('backing', 'no FUSE (tmpfs backing dir)', 'baseline'),
    Impl('c-passthrough_ll', 'C passthrough_ll (-s)', 'native', binary='passthrough_ll'),
    Impl('c-passthrough_hp', 'C passthrough_hp (--single, splice)', 'native',
         binary='passthrough_hp'),
    Impl('fuseshim-sync-1w', 'fuseshim sync, 1 worker', 'fuseshim', 'fuseshim_fs',
         ['--workers', '1'], uses_fuseshim=True,
         probe='import fuseshim; print(fuseshim.__version__, "libfuse", fuseshim.libfuse_version())'),
    Impl('fuseshim-sync-2w', 'fuseshim sync, 2 workers', 'fuseshim', 'fuseshim_fs',
         ['--workers', '2'], uses_fuseshim=True,
         probe='import fuseshim; print(fuseshim.__version__)'),
    # A/A control: the 1-worker daemon once more, so the spread between two
    # runs of one configuration is known when 2 workers are judged against 1
    Impl('fuseshim-sync-1w-aa', 'fuseshim sync, 1 worker, again (A/A control)', 'fuseshim',
         'fuseshim_fs', ['--workers', '1'], uses_fuseshim=True,
         probe='import fuseshim; print(fuseshim.__version__)'),
    Impl('fuseshim-plain-readdir', 'fuseshim sync, 1 worker, plain READDIR only', 'fuseshim',
         'fuseshim_fs', ['--workers', '1', '--plain-readdir'], uses_fuseshim=True,
         probe='import fuseshim; print(fuseshim.__version__)'),
    Impl('fuseshim-read-range', 'fuseshim sync, 1 worker, reads by read() -> FdRange', 'fuseshim',
         'fuseshim_fs', ['--workers', '1', '--read', 'range'], uses_fuseshim=True,
         probe='import fuseshim; print(fuseshim.__version__)'),
    # the C fast path: lookups declare an O_PATH fd, GETATTR is answered in C
    Impl('fuseshim-fast-getattr', 'fuseshim sync, 1 worker, GETATTR in C (O_PATH path_fd)',
         'fuseshim', 'fuseshim_fs', ['--workers', '1', '--fast-getattr'], uses_fuseshim=True,
         probe=('import fuseshim\nassert hasattr(fuseshim.EntryAttributes(), "path_fd"), '
                '"this fuseshim has no EntryAttributes.path_fd"\nprint(fuseshim.__version__)')),
    # passthrough_ll's own system calls from Python handlers: an O_PATH fd per
    # inode, LOOKUP by fstatat() in the parent's fd, GETATTR by fstatat() of
    # the inode's (no full-path walks); then the same with GETATTR in C
    Impl('fuseshim-fd-relative', 'fuseshim sync, 1 worker, fd-relative handlers (O_PATH fds, '
         'fstatat)', 'fuseshim', 'fuseshim_fs', ['--workers', '1', '--fd-relative'],
         uses_fuseshim=True, probe=_FSTAT_PROBE),
    Impl('fuseshim-fast-getattr-fd', 'fuseshim sync, 1 worker, GETATTR in C, LOOKUP fd-relative',
         'fuseshim', 'fuseshim_fs', ['--workers', '1', '--fast-getattr', '--fd-relative'],
         uses_fuseshim=True, probe=_FSTAT_PROBE),
    Impl('fuseshim-async', 'fuseshim async, 1 worker', 'fuseshim', 'fuseshim_fs',
         ['--async'], uses_fuseshim=True,
         probe='import fuseshim; print(fuseshim.__version__)'),
    Impl('fuseshim-passthrough-backing',
         f'fuseshim FUSE passthrough (backing files, libfuse {newlibfuse.PASSTHROUGH_LIBFUSE})',
         'passthrough', 'fuseshim_fs', ['--workers', '1', '--backing'],
         probe=('import fuseshim\nf = fuseshim.build_features()\n'
                'assert f["passthrough"], "this fuseshim build has no FUSE passthrough: %r" % f\n'
                'print(fuseshim.__version__, "libfuse", fuseshim.libfuse_version())')),
    Impl('fuseshim-compat-pyfuse3', 'fuseshim.compat.pyfuse3 (trio, max_tasks=1)', 'compat',
         'pyfuse3_fs', ['--impl', 'compat'], uses_fuseshim=True,
         probe=('import trio\nfrom fuseshim.compat import pyfuse3 as m\n'
                'missing = [a for a in ("init", "main", "close", "Operations", "EntryAttributes",'
                ' "FileInfo", "FUSEError", "readdir_reply", "StatvfsData", "default_options",'
                ' "ROOT_INODE") if not hasattr(m, a)]\n'
                'assert not missing, "fuseshim.compat.pyfuse3 lacks " + ", ".join(missing)\n'
                'import fuseshim; print(fuseshim.__version__)')),
    Impl('fuseshim-compat-fusepy', 'fuseshim.compat.fusepy (nothreads)', 'compat',
         'fusepy_fs', ['--impl', 'compat'], uses_fuseshim=True,
         probe=('from fuseshim.compat import fusepy as m\n'
                'missing = [a for a in ("FUSE", "Operations", "FuseOSError")'
                ' if not hasattr(m, a)]\n'
                'assert not missing, "fuseshim.compat.fusepy lacks " + ", ".join(missing)\n'
                'import fuseshim; print(fuseshim.__version__)')),
    # the configurations programs run: pyfuse3.main() with its defaults
    # (max_tasks=99; S3QL, borg), fusepy's FUSE() without nothreads
    Impl('fuseshim-compat-pyfuse3-default', 'fuseshim.compat.pyfuse3 (trio, main() defaults: '
         'max_tasks=99)', 'compat', 'pyfuse3_fs', ['--impl', 'compat', '--max-tasks', '99'],
         uses_fuseshim=True, probe='import fuseshim; print(fuseshim.__version__)'),
    Impl('fuseshim-compat-fusepy-mt', 'fuseshim.compat.fusepy (multi-threaded, the default)',
         'compat', 'fusepy_fs', ['--impl', 'compat', '--threads'], uses_fuseshim=True,
         probe='import fuseshim; print(fuseshim.__version__)'),
    Impl('pyfuse3', 'pyfuse3 (trio, max_tasks=1)', 'peer', 'pyfuse3_fs', ['--impl', 'pyfuse3'],
         probe='import pyfuse3, trio; ' + _V.format('pyfuse3')),
    Impl('pyfuse3-default', 'pyfuse3 (trio, main() defaults: max_tasks=99)', 'peer',
         'pyfuse3_fs', ['--impl', 'pyfuse3', '--max-tasks', '99'],
         probe='import pyfuse3, trio; ' + _V.format('pyfuse3')),
    Impl('llfuse', 'llfuse (libfuse2, 1 worker)', 'peer', 'llfuse_fs', ['--workers', '1'],
         probe='import llfuse; ' + _V.format('llfuse')),
    Impl('mfusepy', 'mfusepy (libfuse3, -s)', 'peer', 'fusepy_fs', ['--impl', 'mfusepy'],
         env={'FUSE_LIBRARY_NAME': 'fuse3'},
         probe=('import mfusepy\nassert mfusepy.fuse_version_major == 3, '
                '"mfusepy loaded libfuse %s" % mfusepy.fuse_version_major\n' + _V.format('mfusepy'))),
    Impl('mfusepy-mt', 'mfusepy (libfuse3, multi-threaded)', 'peer', 'fusepy_fs',
         ['--impl', 'mfusepy', '--threads'], env={'FUSE_LIBRARY_NAME': 'fuse3'},
         probe=('import mfusepy\nassert mfusepy.fuse_version_major == 3, '
                '"mfusepy loaded libfuse %s" % mfusepy.fuse_version_major\n' + _V.format('mfusepy'))),
    Impl('fusepy', 'fusepy (libfuse2, -s)', 'peer', 'fusepy_fs', ['--impl', 'fusepy'],
         probe='import fuse; ' + _V.format('fusepy')),
    # waiting handlers (WAIT_MS above): does pyfuse3's max_tasks=99 serve
    # concurrent clients' requests while handlers wait, the layer as the real one
    Impl('fuseshim-compat-pyfuse3-wait', f'fuseshim.compat.pyfuse3 (trio, max_tasks=1), '
         f'handlers wait {WAIT_MS} ms', 'compat', 'pyfuse3_fs',
         ['--impl', 'compat', '--max-tasks', '1', *_WAIT_ARGS], uses_fuseshim=True,
         workloads=_WAIT_WORKLOADS, probe='import fuseshim; print(fuseshim.__version__)'),
    Impl('fuseshim-compat-pyfuse3-wait-default', f'fuseshim.compat.pyfuse3 (trio, main() '
         f'defaults: max_tasks=99), handlers wait {WAIT_MS} ms', 'compat', 'pyfuse3_fs',
         ['--impl', 'compat', '--max-tasks', '99', *_WAIT_ARGS], uses_fuseshim=True,
         workloads=_WAIT_WORKLOADS, probe='import fuseshim; print(fuseshim.__version__)'),
    # A/A control of the waiting rows: the 1-task row once more, one client
    # only (the allowance of "99 tasks not slower than 1 with one client")
    Impl('fuseshim-compat-pyfuse3-wait-aa', f'fuseshim.compat.pyfuse3 (trio, max_tasks=1), '
         f'handlers wait {WAIT_MS} ms, again (A/A control)', 'compat', 'pyfuse3_fs',
         ['--impl', 'compat', '--max-tasks', '1', *_WAIT_ARGS], uses_fuseshim=True,
         workloads=('stat',), probe='import fuseshim; print(fuseshim.__version__)'),
    Impl('pyfuse3-wait', f'pyfuse3 (trio, max_tasks=1), handlers wait {WAIT_MS} ms', 'peer',
         'pyfuse3_fs', ['--impl', 'pyfuse3', '--max-tasks', '1', *_WAIT_ARGS],
         workloads=_WAIT_WORKLOADS, probe='import pyfuse3, trio; ' + _V.format('pyfuse3')),
    Impl('pyfuse3-wait-default', f'pyfuse3 (trio, main() defaults: max_tasks=99), handlers '
         f'wait {WAIT_MS} ms', 'peer', 'pyfuse3_fs',
         ['--impl', 'pyfuse3', '--max-tasks', '99', *_WAIT_ARGS],
         workloads=_WAIT_WORKLOADS, probe='import pyfuse3, trio; ' + _V.format('pyfuse3')),
]

assert all(set(i.workloads or ()) <= set(WORKLOADS) for i in REGISTRY)
FUSESHIM_NAMES = [i.name for i in REGISTRY if i.kind == 'fuseshim']
WAITING = tuple(i.name for i in REGISTRY if '--handler-wait-ms' in i.args)
REFERENCE = 'c-passthrough_ll'


def registry():
    return [Impl(**{k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict)
                        else v) for k, v in i.__dict__.items()}) for i in REGISTRY]


def child_env(impl: Impl, fuseshim_env: dict) -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in [fuseshim_env.get('PYTHONPATH'), REPO, os.environ.get('PYTHONPATH')] if p)
    for k, v in fuseshim_env.items():
        if k != 'PYTHONPATH':
            env[k] = v
    env.update(impl.env)
    env['PYTHONDONTWRITEBYTECODE'] = '1'
    return env


def probe(impl: Impl, fuseshim_env: dict, build_native: bool):
    """Decide whether ``impl`` can run here; fill available/skip_reason/version."""
    if impl.kind == 'baseline':
        return
    if impl.kind == 'native':
        try:
            bins = native.ensure() if build_native else native.binaries()
        except (native.NativeUnavailable, OSError, subprocess.SubprocessError) as e:
            impl.available, impl.skip_reason = False, f'could not build libfuse examples: {e}'
            return
        if impl.binary not in bins:
            impl.available = False
            impl.skip_reason = (f'{impl.binary} is not built (run python -m benchmarks.native, '
                                'or drop --no-build)')
            return
        impl.version = f'libfuse {native.DEBIAN_VERSION} (Debian source)'
        return
    if impl.kind == 'passthrough':
        # fuseshim built against a libfuse >= 3.17 (not the one this interpreter imports)
        try:
            built = newlibfuse.ensure(build=build_native)
        except (newlibfuse.Unavailable, OSError, subprocess.SubprocessError) as e:
            impl.available, impl.skip_reason = False, str(e)
            return
        impl.env.update(built['env'])
    try:
        p = subprocess.run([PY, '-c', impl.probe], capture_output=True, text=True, timeout=120,
                           env=child_env(impl, fuseshim_env), cwd=REPO)
    except subprocess.TimeoutExpired:
        impl.available, impl.skip_reason = False, 'import probe timed out'
        return
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        impl.available = False
        impl.skip_reason = 'not importable: ' + (lines[-1] if lines else f'exit {p.returncode}')
        return
    impl.version = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else None


# ---------------------------------------------------------------- mounts

def mountinfo_points() -> set:
    pts = set()
    with open('/proc/self/mountinfo') as f:
        for line in f:
            mp = line.split()[4]
            pts.add(mp.encode().decode('unicode_escape'))
    return pts


def is_mounted(path) -> bool:
    return os.path.realpath(path) in mountinfo_points()


def unmount(path, log=None) -> bool:
    """fusermount3 -u, then umount, then umount -l; True when gone."""
    path = os.path.realpath(path)
    for cmd in (['fusermount3', '-u', path], ['umount', path], ['umount', '-l', path]):
        if not is_mounted(path):
            return True
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
            if p.returncode != 0 and log:
                log(f'{" ".join(cmd)}: {p.stderr.strip()}')
        except (OSError, subprocess.TimeoutExpired) as e:
            if log:
                log(f'{" ".join(cmd)}: {e}')
        deadline = time.monotonic() + 2
        while is_mounted(path) and time.monotonic() < deadline:
            time.sleep(0.01)
    return not is_mounted(path)


class DaemonError(RuntimeError):
    pass


class Daemon:
    """One daemon process serving ``mnt``; start() measures process start to
    the first successful stat of the mounted root."""

    def __init__(self, argv, env, mnt, log_path, cpu=None):
        self.argv = argv
        self.env = env
        self.mnt = os.path.realpath(mnt)
        self.log_path = log_path
        self.cpu = cpu
        self.proc: subprocess.Popen | None = None
        self.ready_ms: float | None = None

    @property
    def pid(self):
        return self.proc.pid

    def _preexec(self):
        if self.cpu is not None:
            os.sched_setaffinity(0, self.cpu)

    def start(self, timeout):
        parent_dev = os.stat(os.path.dirname(self.mnt)).st_dev
        if os.stat(self.mnt).st_dev != parent_dev or is_mounted(self.mnt):
            raise DaemonError(f'{self.mnt} is already a mountpoint')
        self.log = open(self.log_path, 'ab')
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=REPO, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log, preexec_fn=self._preexec)
        deadline = t0 + timeout
        while True:
            try:
                if os.stat(self.mnt).st_dev != parent_dev:
                    break
            except OSError as e:
                raise DaemonError(f'stat of the new mount failed: {e}') from e
            if self.proc.poll() is not None:
                raise DaemonError(f'daemon exited with {self.proc.returncode} before the mount '
                                  f'was ready: {self.tail()}')
            if time.perf_counter() > deadline:
                raise DaemonError(f'not mounted after {timeout} s: {self.tail()}')
            time.sleep(0.0002)
        self.ready_ms = (time.perf_counter() - t0) * 1e3
        return self.ready_ms

    def tail(self, n=600):
        try:
            self.log.flush()
            with open(self.log_path, 'rb') as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - n))
                return f.read().decode('utf-8', 'replace').strip().replace('\n', ' | ')
        except OSError:
            return ''

    def stop(self, logf=None):
        """Unmount, then reap the daemon (SIGTERM, SIGKILL if it lingers)."""
        ok = unmount(self.mnt, logf)
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGTERM)
                try:
                    self.proc.wait(3)
                except subprocess.TimeoutExpired:
                    self.kill(signal.SIGKILL)
                    self.proc.wait(5)
        if not ok:
            ok = unmount(self.mnt, logf)
        try:
            self.log.close()
        except (AttributeError, OSError):
            pass
        return ok

    def kill(self, sig=signal.SIGKILL):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass


def run_inproc(env, src, mnt, count, cpu, timeout) -> dict:
    """fuseshim.mount() call to ready, measured inside one process."""
    def pin():
        if cpu is not None:
            os.sched_setaffinity(0, cpu)
    try:
        p = subprocess.run([PY, '-m', 'benchmarks.daemons.inproc_mount', src, mnt,
                            '--count', str(count)], env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=timeout, preexec_fn=pin)
    finally:
        if is_mounted(mnt):
            unmount(mnt)
    if p.returncode != 0:
        raise DaemonError(f'inproc_mount failed ({p.returncode}): {p.stderr.strip()[-500:]}')
    return json.loads(p.stdout.strip().splitlines()[-1])
