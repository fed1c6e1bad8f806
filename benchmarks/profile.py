"""Profile one implementation's daemon under one workload.

    python -m benchmarks.profile fuseshim-sync-1w --workload stat [--seconds 5]
        [--tool py-spy|perf|both] [--out DIR]

Mounts the implementation (daemon and client pinned to one CPU, as in the
pinned benchmark mode), runs the workload in a client process, and records
the daemon with py-spy (``--native``: Python, Cython and C frames) and/or
``perf record -g``.  Prints the hottest frames: self time per function, and
inclusive time per function, from py-spy's collapsed stacks; perf's report
is written next to it.
"""
from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time

from . import impls as I
from . import measure, native, staging
from .runner import Backing, Config

WORKLOADS = {
    'stat': "import os\nwhile True: os.stat(R + '/statfile')",
    'listdir': "import os\nwhile True: os.listdir(R + '/dir')",
    'read': ("import os\nb = bytearray(1 << 20)\nwhile True:\n"
             "    with open(R + '/big', 'rb', buffering=0) as f:\n"
             "        while f.readinto(b): pass\n"
             "    open('/proc/sys/vm/drop_caches', 'w').write('3')"),
    'create': ("import os, itertools\nd = b'x' * 4096\nfor i in itertools.count():\n"
               "    fd = os.open(f'{R}/create/p/f{i}', os.O_WRONLY | os.O_CREAT | os.O_EXCL)\n"
               "    os.write(fd, d); os.close(fd)\n"
               "    if i % 2000 == 1999:\n"
               "        for j in range(i - 1999, i + 1): os.unlink(f'{B}/create/p/f{j}')"),
}


def collapse(path):
    """py-spy raw output -> (self Counter, inclusive Counter, total samples)."""
    own, incl = collections.Counter(), collections.Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, n = line.rstrip('\n').rpartition(' ')
            if not stack:
                continue
            n = int(n)
            total += n
            frames = stack.split(';')
            own[_short(frames[-1])] += n
            for fr in set(_short(x) for x in frames):
                incl[fr] += n
    return own, incl, total


def _short(frame):
    # "func (file.py:123)" -> "func (file.py)"
    name, _, where = frame.partition(' (')
    where = where.rstrip(')')
    file = os.path.basename(where.split(':')[0]) if where else ''
    return f'{name} ({file})' if file else name


def main(argv=None):
    p = argparse.ArgumentParser(prog='python -m benchmarks.profile', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('impl', choices=[i.name for i in I.REGISTRY if i.kind != 'baseline'])
    p.add_argument('--workload', choices=sorted(WORKLOADS), default='stat')
    p.add_argument('--seconds', type=float, default=5.0)
    p.add_argument('--tool', choices=('py-spy', 'perf', 'both'), default='both')
    p.add_argument('--rate', type=int, default=1000, help='py-spy samples per second')
    p.add_argument('--top', type=int, default=25)
    p.add_argument('--cpu', type=int, default=0)
    p.add_argument('--unpinned', action='store_true')
    p.add_argument('--out', help='output directory (default: a temporary one, printed)')
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit('needs root')
    out = os.path.abspath(args.out or tempfile.mkdtemp(prefix='fuseshim-profile-'))
    os.makedirs(out, exist_ok=True)
    impl = next(i for i in I.registry() if i.name == args.impl)
    cfg_args = argparse.Namespace(reps=1, modes=['pinned'], duration=0, read_mib=64)
    cfg = Config(False, cfg_args)
    cfg.read_size = 64 << 20
    cfg.count_read_size = 0
    workdir = tempfile.mkdtemp(prefix='fuseshim-bench-')
    backing = Backing(workdir, cfg)
    cpu = None if args.unpinned else {args.cpu}
    daemon = client = None
    try:
        backing.setup()
        os.mkdir(os.path.join(backing.root, 'create', 'p'))
        st = staging.stage(os.path.join(workdir, 'site'))
        env = I.child_env(impl, st['env'] if impl.uses_fuseshim else {})
        bins = native.binaries() if impl.kind == 'native' else {}
        daemon = I.Daemon(impl.argv(backing.root, backing.mnt, 'bench-profile', bins), env,
                          backing.mnt, os.path.join(out, 'daemon.log'), cpu=cpu)
        daemon.start(30)
        code = f'R = {backing.mnt!r}\nB = {backing.root!r}\n' + WORKLOADS[args.workload]
        client = subprocess.Popen(
            [sys.executable, '-c', code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpu)) if cpu else None)
        time.sleep(0.5)
        procs = []
        if args.tool in ('py-spy', 'both') and impl.kind != 'native':
            if not shutil.which('py-spy'):
                print('py-spy missing: pip install py-spy')
            else:
                procs.append(('py-spy', subprocess.Popen(
                    ['py-spy', 'record', '--pid', str(daemon.pid), '--duration',
                     str(int(args.seconds)), '--rate', str(args.rate), '--native',
                     '--threads', '--format', 'raw', '-o', os.path.join(out, 'pyspy.txt')],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
        if args.tool in ('perf', 'both') and shutil.which('perf'):
            procs.append(('perf', subprocess.Popen(
                ['perf', 'record', '-F', '2999', '-g', '-p', str(daemon.pid),
                 '-o', os.path.join(out, 'perf.data'), '--', 'sleep', str(args.seconds)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
        c0 = measure.proc_cpu(daemon.pid)
        t0 = time.monotonic()
        for name, pr in procs:
            _, err = pr.communicate(timeout=args.seconds + 120)
            if pr.returncode != 0:
                print(f'{name} failed: {err.strip()[-500:]}')
        c1 = measure.proc_cpu(daemon.pid)
        busy = (c1[1] - c0[1]) / (time.monotonic() - t0)
    finally:
        if client is not None:
            client.kill()
            client.wait()
        if daemon is not None:
            daemon.stop()
        backing.cleanup()
    print(f'{impl.name} under {args.workload}: daemon busy {busy:.0%} of one CPU; output in {out}')
    spy = os.path.join(out, 'pyspy.txt')
    if os.path.exists(spy):
        own, incl, total = collapse(spy)
        print(f'\npy-spy: {total} samples; self time (top {args.top}):')
        for fr, n in own.most_common(args.top):
            print(f'  {100 * n / total:5.1f}%  {fr}')
        print(f'\npy-spy: inclusive time (top {args.top}):')
        for fr, n in incl.most_common(args.top):
            print(f'  {100 * n / total:5.1f}%  {fr}')
    pdata = os.path.join(out, 'perf.data')
    if os.path.exists(pdata):
        rep = subprocess.run(['perf', 'report', '-i', pdata, '--stdio', '--no-children',
                              '--sort', 'dso,symbol', '--percent-limit', '0.7', '-g', 'none'],
                             capture_output=True, text=True)
        with open(os.path.join(out, 'perf-report.txt'), 'w') as f:
            f.write(rep.stdout)
        rows = [ln for ln in rep.stdout.splitlines() if ln.strip() and not ln.startswith('#')]
        print(f'\nperf (self, by dso/symbol; full report in {out}/perf-report.txt):')
        for ln in rows[:args.top]:
            print('  ' + ln.strip())


if __name__ == '__main__':
    main()
