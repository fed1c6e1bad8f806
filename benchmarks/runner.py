"""python -m benchmarks: mount comparable passthrough filesystems over one tmpfs
backing directory and measure them side by side, interleaved, in one run.

Run as root (mounts, a private tmpfs, /proc/sys/vm/drop_caches).  See
docs/performance.md for the method; ``--help`` for the options.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

from . import impls as I
from . import importtime, measure, native, prereqs, report, staging

METRICS = ('stat_ops', 'pstat_ops', 'listdir_ops', 'read_mbps', 'create_ops',
           'mount_ready_ms', 'cpu_us_per_req')


class Config:
    def __init__(self, quick: bool, args):
        self.quick = quick
        if quick:
            self.reps = args.reps or 1
            self.modes = args.modes or ['pinned']
            self.duration = 0.0
            self.min_ops = {'stat': 1, 'listdir': 1, 'create': 1}
            self.max_create = 1
            self.read_size = 1 << 20
            self.dir_entries = 20
            self.inproc_count = 1
            self.import_runs = 3
            self.run_timeout = 30.0
            self.count_n = {'stat': 20, 'listdir': 2, 'create': 5}
            self.count_read_size = 1 << 20
        else:
            self.reps = args.reps or 5
            self.modes = args.modes or ['pinned', 'unpinned']
            self.duration = args.duration
            self.min_ops = {'stat': 200, 'listdir': 5, 'create': 100}
            self.max_create = 150_000
            self.read_size = args.read_mib << 20
            self.dir_entries = 1000
            self.inproc_count = 5
            self.import_runs = 9
            self.run_timeout = 120.0
            self.count_n = {'stat': 2000, 'listdir': 20, 'create': 200}
            self.count_read_size = 16 << 20
        self.nclients = 4

    def to_dict(self):
        return {k: v for k, v in self.__dict__.items()}


def log(msg):
    print(f'[{time.strftime("%H:%M:%S")}] {msg}', flush=True)


# ---------------------------------------------------------------- the backing store

class Backing:
    """A private tmpfs holding the benchmark tree, and the mountpoint."""

    def __init__(self, workdir, cfg: Config):
        self.workdir = workdir
        self.root = os.path.join(workdir, 'backing')
        self.mnt = os.path.join(workdir, 'mnt')
        self.cfg = cfg
        self.tmpfs = False

    def setup(self):
        os.makedirs(self.root)
        os.makedirs(self.mnt)
        size_mib = (self.cfg.read_size + self.cfg.count_read_size
                    + self.cfg.max_create * len(measure.DATA_4K)) // (1 << 20) + 256
        p = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size_mib}m,mode=755',
                            'fuseshim-bench', self.root], capture_output=True, text=True)
        if p.returncode == 0:
            self.tmpfs = True
        elif not _is_tmpfs(self.root):
            raise SystemExit(f'cannot mount a tmpfs for the backing store: {p.stderr.strip()}')
        with open(os.path.join(self.root, 'statfile'), 'wb') as f:
            f.write(b'x' * 100)
        d = os.path.join(self.root, 'dir')
        os.mkdir(d)
        for i in range(self.cfg.dir_entries):
            open(os.path.join(d, f'entry-{i:05d}'), 'wb').close()
        os.mkdir(os.path.join(self.root, 'create'))
        chunk = os.urandom(1 << 20)
        for name, size in (('big', self.cfg.read_size), ('mid', self.cfg.count_read_size)):
            with open(os.path.join(self.root, name), 'wb') as f:
                for _ in range(size // len(chunk)):
                    f.write(chunk)
                f.write(chunk[:size % len(chunk)])

    def cleanup(self):
        if I.is_mounted(self.mnt):
            I.unmount(self.mnt, log)
        if self.tmpfs and I.is_mounted(self.root):
            subprocess.run(['umount', self.root], capture_output=True)
            if I.is_mounted(self.root):
                subprocess.run(['umount', '-l', self.root], capture_output=True)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _is_tmpfs(path):
    p = subprocess.run(['stat', '-f', '-c', '%T', path], capture_output=True, text=True)
    return p.stdout.strip() == 'tmpfs'


# ---------------------------------------------------------------- one measurement

class Watchdog:
    """A forked process that SIGKILLs the daemon if a run takes too long: a
    hung daemon would block the client in the kernel forever, and killing it
    ends the connection, so the blocked syscalls return.  (A process, not a
    thread: a second thread in the client process measurably slows it.)"""

    def __init__(self, timeout, pid):
        self.pid = os.fork()
        if self.pid == 0:
            try:
                time.sleep(timeout)
                os.kill(pid, signal.SIGKILL)
                os._exit(3)
            finally:
                os._exit(0)

    def cancel(self) -> bool:
        """Stop the watchdog; True if it had fired."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, status = os.waitpid(self.pid, 0)
        return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 3


class Runner:
    def __init__(self, cfg: Config, args, workdir, out_dir):
        self.cfg = cfg
        self.args = args
        self.backing = Backing(workdir, cfg)
        self.out_dir = out_dir
        self.logs = os.path.join(out_dir, 'logs')
        os.makedirs(self.logs, exist_ok=True)
        self.all_cpus = os.sched_getaffinity(0)
        self.fuseshim_env = {}
        self.binaries = {}
        self.errors = []
        self.samples = {}          # mode -> impl -> metric -> [values]
        self.requests = {}         # impl -> {op: requests per op}
        self.inproc = {}           # mode -> [samples]
        self.inproc_info = {}
        self.current: I.Daemon | None = None
        self.req_per_stat = {}

    def cpu_set(self, mode):
        return {self.args.cpu} if mode == 'pinned' else None

    def set_mode(self, mode):
        os.sched_setaffinity(0, {self.args.cpu} if mode == 'pinned' else self.all_cpus)

    def env_for(self, impl):
        return I.child_env(impl, self.fuseshim_env if impl.uses_fuseshim else {})

    def start(self, impl, mode):
        argv = impl.argv(self.backing.root, self.backing.mnt, f'bench-{impl.name}', self.binaries)
        d = I.Daemon(argv, self.env_for(impl), self.backing.mnt,
                     os.path.join(self.logs, f'{impl.name}.log'), cpu=self.cpu_set(mode))
        self.current = d
        try:
            d.start(timeout=min(30.0, self.cfg.run_timeout))
        except BaseException:
            self.stop()
            raise
        return d

    def stop(self):
        d, self.current = self.current, None
        if d is not None and not d.stop(log):
            self.errors.append(f'could not unmount {d.mnt}')

    def run_once(self, impl, mode, tag):
        cfg = self.cfg
        base = self.backing.root
        res = {}
        daemon = None
        root = base
        if impl.kind != 'baseline':
            daemon = self.start(impl, mode)
            res['mount_ready_ms'] = daemon.ready_ms
            root = self.backing.mnt
        watchdog = Watchdog(cfg.run_timeout, daemon.pid) if daemon else None
        try:
            if impl.runs('stat'):
                s = measure.bench_stat(f'{root}/statfile', cfg.duration, cfg.min_ops['stat'],
                                       daemon.pid if daemon else None)
                res['stat_ops'] = s['stat_ops']
                res['client_cpu_us_per_stat'] = s['client_cpu_s'] / s['stat_count'] * 1e6
                if daemon:
                    nreq = s['stat_count'] * self.req_per_stat.get(impl.name, 2.0)
                    res['cpu_us_per_req'] = s['daemon_cpu_s'] / nreq * 1e6
                    res['cpu_us_per_req_sched'] = s['daemon_sched_s'] / nreq * 1e6
            if impl.runs('pstat'):
                res.update(measure.bench_parallel_stat(f'{root}/statfile', cfg.nclients,
                                                       cfg.duration, cfg.min_ops['stat']))
            if impl.runs('listdir'):
                res.update(measure.bench_listdir(f'{root}/dir', cfg.dir_entries, cfg.duration,
                                                 cfg.min_ops['listdir']))
            if impl.runs('create'):
                res.update(measure.bench_create(f'{root}/create/{tag}', f'{base}/create/{tag}',
                                                cfg.duration, cfg.min_ops['create'],
                                                cfg.max_create))
            if impl.runs('read'):
                res.update(measure.bench_read(f'{root}/big', cfg.read_size))
        finally:
            if watchdog and watchdog.cancel():
                self.errors.append(f'{impl.name}: killed after {cfg.run_timeout} s (hung?)')
            if daemon:
                self.stop()
        return {k: v for k, v in res.items() if not k.endswith('_count')}

    # ------------------------------------------------------------ phases

    def prepare(self, impls):
        log(f'workdir {self.backing.workdir}; output {self.out_dir}')
        self.backing.setup()
        st = staging.stage(os.path.join(self.backing.workdir, 'site'))
        self.fuseshim_env = st['env']
        self.staging_info = {k: v for k, v in st.items() if k != 'env'}
        log(f'fuseshim: {st["note"]}')
        for impl in impls:
            I.probe(impl, self.fuseshim_env, build_native=not self.args.no_build)
            if impl.available:
                log(f'  {impl.name:26s} {impl.version or ""}')
            else:
                log(f'  {impl.name:26s} SKIPPED: {impl.skip_reason}')
        if any(i.kind == 'native' and i.available for i in impls):
            self.binaries = native.binaries()

    def measure_imports(self):
        cfg = self.cfg
        res = {}
        base_env = dict(os.environ)
        staged_env = dict(base_env)
        staged_env.update(self.fuseshim_env)
        log('import times (fresh interpreters)')
        res['fuseshim'] = importtime.time_import('fuseshim', staged_env, cfg.import_runs)
        res['fuseshim']['how'] = self.staging_info['mode']
        if self.staging_info['mode'] == 'staged':
            res['fuseshim (editable, incl. ninja check)'] = importtime.time_import(
                'fuseshim', base_env, max(3, cfg.import_runs // 3))
        res['fuseshim_top_imports'] = importtime.top_imports('fuseshim', staged_env)
        peers = {'pyfuse3': 'pyfuse3', 'llfuse': 'llfuse', 'mfusepy': 'mfusepy',
                 'fusepy': 'fuse'}
        for impl in self.impls:
            if impl.name in peers and impl.available:
                env = dict(base_env)
                env.update(impl.env)
                res[impl.name] = importtime.time_import(peers[impl.name], env,
                                                        max(3, cfg.import_runs // 3))
        for k, v in res.items():
            if isinstance(v, dict) and 'median_ms' in v:
                log(f'  import {k}: {v["median_ms"]:.1f} ms (median of {len(v["samples_ms"])})')
        return res

    def count_requests(self):
        """FUSE requests per client op, per implementation (perf tracepoint)."""
        why = measure.perf_available()
        if why:
            log(f'request counts skipped: {why}; CPU per request assumes 2 requests per stat')
            return why
        cfg = self.cfg
        log('requests per operation (perf, fuse:fuse_request_send)')
        self.set_mode('pinned')
        for impl in self.impls:
            if not impl.available or impl.kind == 'baseline':
                continue
            counts = {}
            try:
                self.start(impl, 'pinned')
                mnt = self.backing.mnt
                n = cfg.count_n
                # only the workloads the row runs (the stat's count also sets
                # its CPU per request)
                if impl.runs('stat'):
                    counts['stat'] = measure.count_requests(
                        sys.executable, 'stat', f'{mnt}/statfile', n['stat']) / n['stat']
                if impl.runs('listdir'):
                    counts['listdir'] = measure.count_requests(
                        sys.executable, 'listdir', f'{mnt}/dir', n['listdir']) / n['listdir']
                if impl.runs('create'):
                    os.mkdir(f'{self.backing.root}/create/count')
                    try:
                        counts['create'] = measure.count_requests(
                            sys.executable, 'create', f'{mnt}/create/count',
                            n['create']) / n['create']
                    finally:
                        shutil.rmtree(f'{self.backing.root}/create/count', ignore_errors=True)
                if impl.runs('read'):
                    counts['read_per_mib'] = measure.count_requests(
                        sys.executable, 'read', f'{mnt}/mid', 1) / (cfg.count_read_size / (1 << 20))
            except Exception as e:
                self.errors.append(f'{impl.name}: request count: {e}')
                log(f'  {impl.name}: request count failed: {e}')
            finally:
                self.stop()
            if counts:
                self.requests[impl.name] = {k: round(v, 3) for k, v in counts.items()}
                if counts.get('stat'):
                    self.req_per_stat[impl.name] = counts['stat']
                log(f'  {impl.name:26s} ' + ', '.join(f'{k} {v:.2f}' for k, v in counts.items()))
        return None

    def main_loop(self):
        cfg = self.cfg
        runnable = [i for i in self.impls if i.available]
        failed = {}
        t_start = time.monotonic()
        total = cfg.reps * len(cfg.modes) * len(runnable)
        done = 0
        for rep in range(cfg.reps):
            modes = cfg.modes[rep % len(cfg.modes):] + cfg.modes[:rep % len(cfg.modes)]
            for mode in modes:
                self.set_mode(mode)
                k = rep % len(runnable)
                order = runnable[k:] + runnable[:k]
                for impl in order:
                    done += 1
                    tag = f'r{rep}-{mode}-{impl.name}'
                    try:
                        res = self.run_once(impl, mode, tag)
                    except Exception as e:
                        msg = f'{impl.name} ({mode}, rep {rep + 1}): {type(e).__name__}: {e}'
                        self.errors.append(msg)
                        failed.setdefault(impl.name, msg)
                        log(f'  FAILED {msg}')
                        if self.args.verbose:
                            traceback.print_exc()
                        continue
                    bucket = self.samples.setdefault(mode, {}).setdefault(impl.name, {})
                    for key, v in res.items():
                        bucket.setdefault(key, []).append(v)
                    log(f'[{done}/{total}] {mode:8s} rep {rep + 1} {impl.name:26s} '
                        + report.brief(res))
                if any(i.name == 'fuseshim-sync-1w' for i in runnable):
                    self.run_inproc(mode)
        self.set_mode('unpinned')
        log(f'measurements took {time.monotonic() - t_start:.0f} s')
        return failed

    def run_inproc(self, mode):
        impl = next(i for i in self.impls if i.name == 'fuseshim-sync-1w')
        try:
            out = I.run_inproc(self.env_for(impl), self.backing.root, self.backing.mnt,
                               self.cfg.inproc_count, self.cpu_set(mode), self.cfg.run_timeout)
        except Exception as e:
            self.errors.append(f'in-process mount ({mode}): {e}')
            log(f'  FAILED in-process mount: {e}')
            return
        self.inproc.setdefault(mode, []).extend(out['samples'])
        self.inproc_info = {'startup_path': out['startup_path'],
                            'startup_reason': out['startup_reason']}
        med = sorted(s['ready_ms'] for s in out['samples'])[len(out['samples']) // 2]
        log(f'          {mode:8s} fuseshim mount() call to ready: {med:.2f} ms '
            f'({out["startup_path"]} startup)')


def cpu_busy(seconds=0.5) -> dict:
    """Per-CPU busy fraction over ``seconds`` (others' load disturbs the runs)."""
    def snap():
        out = {}
        with open('/proc/stat') as f:
            for line in f:
                if line.startswith('cpu') and line[3].isdigit():
                    parts = line.split()
                    vals = list(map(int, parts[1:]))
                    idle = vals[3] + vals[4]
                    out[parts[0]] = (sum(vals), idle)
        return out
    a = snap()
    time.sleep(seconds)
    b = snap()
    res = {}
    for cpu in b:
        tot = b[cpu][0] - a[cpu][0]
        res[cpu] = round(1 - (b[cpu][1] - a[cpu][1]) / tot, 3) if tot else 0.0
    return res


def metadata(cfg, runner) -> dict:
    def cmd(*c):
        try:
            return subprocess.run(c, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
    cpu_model = None
    try:
        with open('/proc/cpuinfo') as f:
            cpu_model = next((ln.split(':', 1)[1].strip() for ln in f
                              if ln.startswith('model name')), None)
    except OSError:
        pass
    return {
        'date': datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
        'host': platform.node(), 'kernel': platform.release(), 'cpu': cpu_model,
        'cpus': os.cpu_count(), 'python': platform.python_version(),
        'libfuse_system': cmd('pkg-config', '--modversion', 'fuse3'),
        'libfuse_native_peers': native.DEBIAN_VERSION,
        'git_commit': cmd('git', '-C', I.REPO, 'rev-parse', '--short', 'HEAD'),
        'git_dirty': bool(cmd('git', '-C', I.REPO, 'status', '--porcelain', '--', 'shim')),
        'fuseshim_staging': getattr(runner, 'staging_info', None),
        'cpu_busy_before': getattr(runner, 'busy_before', None),
        'cpu_busy_after': getattr(runner, 'busy_after', None),
        'loadavg_after': open('/proc/loadavg').read().split()[:3],
        'config': cfg.to_dict(),
        'argv': sys.argv[1:],
    }


def parse_args(argv):
    p = argparse.ArgumentParser(prog='python -m benchmarks', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true',
                   help='CI mode: tiny sizes, one pass; checks every implementation mounts and '
                        'answers each benchmark once (no timing is judged anywhere)')
    p.add_argument('--reps', type=int, help='repetitions (default 5; quick 1)')
    p.add_argument('--modes', nargs='+', choices=('pinned', 'unpinned'),
                   help='default: pinned unpinned (quick: pinned)')
    p.add_argument('--duration', type=float, default=0.7,
                   help='seconds per timed loop (stat, parallel stat, listdir, create)')
    p.add_argument('--read-mib', type=int, default=256, help='size of the sequential read')
    p.add_argument('--only', nargs='+', metavar='IMPL', help='run only these implementations')
    p.add_argument('--skip', nargs='+', metavar='IMPL', default=[], help='leave these out')
    p.add_argument('--no-build', action='store_true',
                   help='do not fetch/build the C peers; use them only if already built')
    p.add_argument('--no-requests', action='store_true',
                   help='skip the per-operation FUSE request counts (perf)')
    p.add_argument('--cpu', type=int, default=0, help='the CPU of pinned mode (default 0)')
    p.add_argument('--out', help='output directory (default benchmarks/results/<timestamp>)')
    p.add_argument('--no-plot', action='store_true', help='skip the PNG')
    p.add_argument('--update-docs', action='store_true',
                   help='write the tables into docs/performance.md and the plot to docs/')
    p.add_argument('--list', action='store_true', help='list the implementations and exit')
    p.add_argument('--install-prereqs', action='store_true',
                   help='install the peers and tools a full run uses (apt, pip), then run')
    p.add_argument('-v', '--verbose', action='store_true')
    args = p.parse_args(argv)
    names = [i.name for i in I.REGISTRY]
    for n in (args.only or []) + args.skip:
        if n not in names:
            p.error(f'unknown implementation {n!r}; known: {", ".join(names)}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        for i in I.REGISTRY:
            print(f'{i.name:26s} {i.label}')
        return 0
    if os.geteuid() != 0:
        print('the benchmarks need root (FUSE mounts, a tmpfs, drop_caches)', file=sys.stderr)
        return 2
    if args.install_prereqs and prereqs.install() != 0:
        return 1
    cfg = Config(args.quick, args)
    stamp = time.strftime('%Y%m%d-%H%M%S')
    out_dir = os.path.abspath(args.out or os.path.join(I.REPO, 'benchmarks', 'results', stamp))
    os.makedirs(out_dir, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix='fuseshim-bench-')
    runner = Runner(cfg, args, workdir, out_dir)
    impls = [i for i in I.registry()
             if (not args.only or i.name in args.only) and i.name not in args.skip]
    runner.impls = impls

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f'signal {signum}')
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    t0 = time.monotonic()
    imports = {}
    failed = {}
    req_note = None
    interrupted = False
    runner.busy_before = cpu_busy()
    busy = {c: v for c, v in runner.busy_before.items() if v > 0.2}
    if busy:
        log('WARNING: the machine is busy before the run (' + ', '.join(
            f'{c} {v:.0%}' for c, v in busy.items()) + '): figures will be disturbed')
    try:
        runner.prepare(impls)
        imports = runner.measure_imports()
        if not args.no_requests:
            req_note = runner.count_requests()
        else:
            req_note = 'skipped (--no-requests); CPU per request assumes 2 requests per stat'
        failed = runner.main_loop()
        runner.busy_after = cpu_busy()
    except KeyboardInterrupt:
        interrupted = True
        log('interrupted: cleaning up')
    finally:
        runner.stop()
        runner.set_mode('unpinned')
        runner.backing.cleanup()
        for s, h in old.items():
            signal.signal(s, h)
    data = {
        'meta': metadata(cfg, runner),
        'implementations': {i.name: i.to_dict() for i in impls},
        'failed': failed,
        'samples': runner.samples,
        'requests_per_op': runner.requests,
        'requests_note': req_note,
        'inproc_mount': runner.inproc,
        'inproc_info': runner.inproc_info,
        'import_time': imports,
        'errors': runner.errors,
        'interrupted': interrupted,
        'elapsed_s': round(time.monotonic() - t0, 1),
    }
    report.finish(data, out_dir, plot=not args.no_plot, update_docs=args.update_docs)
    log(f'done in {data["elapsed_s"]:.0f} s: {out_dir}/results.json, results.md'
        + ('' if args.no_plot else ', ratios.png'))
    latest = os.path.join(os.path.dirname(out_dir), 'latest')
    if args.out is None:
        try:
            if os.path.islink(latest):
                os.unlink(latest)
            os.symlink(os.path.basename(out_dir), latest)
        except OSError:
            pass
    if interrupted:
        return 130
    return 1 if failed else 0
