"""The client side of each benchmark (run in the runner process, or in
processes forked from it), and the daemon CPU accounting.

Every loop runs at least ``min_ops`` operations and until ``duration``
seconds have passed; the quick mode uses min_ops=1, duration=0 (each
benchmark answered once).  Nothing here asserts on a timing."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import time

CLK_TCK = os.sysconf('SC_CLK_TCK')
READ_CHUNK = 1 << 20
DATA_4K = bytes(range(256)) * 16


# ---------------------------------------------------------------- daemon CPU

def proc_cpu(pid: int) -> tuple[float, float]:
    """(utime+stime in seconds from /proc/PID/stat, summed on-CPU time in
    seconds of its live threads from /proc/PID/task/*/schedstat)."""
    with open(f'/proc/{pid}/stat') as f:
        rest = f.read().rpartition(')')[2].split()
    ticks = int(rest[11]) + int(rest[12])   # fields 14 (utime) and 15 (stime)
    sched = 0
    try:
        for tid in os.listdir(f'/proc/{pid}/task'):
            try:
                with open(f'/proc/{pid}/task/{tid}/schedstat') as f:
                    sched += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    except OSError:
        pass
    return ticks / CLK_TCK, sched / 1e9


def drop_caches():
    """Drop the page cache (and dentries/inodes) so a read pass reaches the
    filesystem.  Our backing store is tmpfs, whose pages are not dropped."""
    with open('/proc/sys/vm/drop_caches', 'w') as f:
        f.write('3\n')


# ---------------------------------------------------------------- loops

def _stat_loop(path, duration, min_ops):
    st = os.stat
    clock = time.perf_counter
    batch = 32 if min_ops >= 32 else 1
    n = 0
    t0 = clock()
    end = t0 + duration
    while True:
        for _ in range(batch):
            st(path)
        n += batch
        if n >= min_ops and clock() >= end:
            break
    return n, t0, clock()


def bench_stat(path, duration, min_ops, daemon_pid=None, warmup=200):
    """stat(2) of one file per op (LOOKUP + GETATTR with zero timeouts)."""
    for _ in range(min(warmup, max(min_ops, 1))):
        os.stat(path)
    cpu0 = proc_cpu(daemon_pid) if daemon_pid else None
    own0 = os.times()
    n, t0, t1 = _stat_loop(path, duration, min_ops)
    own1 = os.times()
    res = {'stat_ops': n / (t1 - t0), 'stat_count': n,
           'client_cpu_s': (own1.user - own0.user) + (own1.system - own0.system)}
    if daemon_pid:
        cpu1 = proc_cpu(daemon_pid)
        res['daemon_cpu_s'] = cpu1[0] - cpu0[0]
        res['daemon_sched_s'] = cpu1[1] - cpu0[1]
    return res


def bench_parallel_stat(path, nproc, duration, min_ops):
    """``nproc`` forked client processes stat the same file at once;
    throughput = all their ops / (last finish - first start)."""
    r_ready, w_ready = os.pipe()
    r_go, w_go = os.pipe()
    r_res, w_res = os.pipe()
    pids = []
    try:
        for _ in range(nproc):
            pid = os.fork()
            if pid == 0:  # child: only os-level calls, then _exit
                code = 1
                try:
                    os.close(r_ready)
                    os.close(w_go)
                    os.close(r_res)
                    os.write(w_ready, b'r')
                    os.read(r_go, 1)
                    n, t0, t1 = _stat_loop(path, duration, min_ops)
                    os.write(w_res, struct.pack('=qdd', n, t0, t1))
                    code = 0
                finally:
                    os._exit(code)
            pids.append(pid)
        os.close(w_ready)
        os.close(r_go)
        os.close(w_res)
        got = b''
        while len(got) < nproc:
            chunk = os.read(r_ready, nproc - len(got))
            if not chunk:
                raise RuntimeError('a parallel-stat client died before starting')
            got += chunk
        os.write(w_go, b'g' * nproc)
        size = struct.calcsize('=qdd')
        data = b''
        while len(data) < size * nproc:
            chunk = os.read(r_res, size * nproc - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        for fd in (r_ready, w_ready, r_go, w_go, r_res, w_res):
            try:
                os.close(fd)
            except OSError:
                pass
        codes = [os.waitpid(p, 0)[1] for p in pids]
    if len(data) < size * nproc or any(codes):
        raise RuntimeError(f'parallel-stat clients failed (exit statuses {codes})')
    rows = [struct.unpack_from('=qdd', data, i * size) for i in range(nproc)]
    total = sum(r[0] for r in rows)
    span = max(r[2] for r in rows) - min(r[1] for r in rows)
    return {'pstat_ops': total / span, 'pstat_count': total}


def bench_listdir(path, expect, duration, min_ops):
    """os.listdir of a directory of ``expect`` entries per op."""
    clock = time.perf_counter
    n = 0
    t0 = clock()
    end = t0 + duration
    while True:
        got = len(os.listdir(path))
        if got != expect:
            raise RuntimeError(f'listdir({path}) gave {got} entries, expected {expect}')
        n += 1
        if n >= min_ops and clock() >= end:
            break
    return {'listdir_ops': n / (clock() - t0), 'listdir_count': n}


def bench_read(path, size):
    """Sequential read of the whole file (1 MiB reads) after dropping caches."""
    drop_caches()
    buf = bytearray(READ_CHUNK)
    view = memoryview(buf)
    total = 0
    t0 = time.perf_counter()
    with open(path, 'rb', buffering=0) as f:
        while True:
            n = f.readinto(view)
            if not n:
                break
            total += n
    dt = time.perf_counter() - t0
    if total != size:
        raise RuntimeError(f'read {total} bytes of {path}, expected {size}')
    return {'read_mbps': total / dt / 1e6}


def bench_create(fuse_dir, backing_dir, duration, min_ops, max_ops):
    """open(O_CREAT|O_EXCL) + write 4 KiB + close of a new file per op, in a
    fresh directory (made and removed through the backing store, untimed)."""
    os.mkdir(backing_dir)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        clock = time.perf_counter
        n = 0
        t0 = clock()
        end = t0 + duration
        while True:
            fd = os.open(f'{fuse_dir}/f{n}', flags, 0o644)
            try:
                if os.write(fd, DATA_4K) != len(DATA_4K):
                    raise RuntimeError('short write')
            finally:
                os.close(fd)
            n += 1
            if n >= max_ops or (n >= min_ops and clock() >= end):
                break
        dt = clock() - t0
        if os.path.getsize(f'{backing_dir}/f0') != len(DATA_4K):
            raise RuntimeError('the written data did not reach the backing store')
    finally:
        shutil.rmtree(backing_dir, ignore_errors=True)
    return {'create_ops': n / dt, 'create_count': n}


# ---------------------------------------------------------------- request counts

COUNT_SCRIPT = r'''
import os, sys
kind, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if kind == "stat":
    for _ in range(n): os.stat(path)
elif kind == "listdir":
    for _ in range(n): os.listdir(path)
elif kind == "read":
    with open("/proc/sys/vm/drop_caches", "w") as f: f.write("3\n")
    with open(path, "rb", buffering=0) as f:
        while f.read(1 << 20): pass
elif kind == "create":
    for i in range(n):
        fd = os.open(f"{path}/f{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, b"x" * 4096); os.close(fd)
'''


def perf_available() -> str | None:
    """None if `perf stat -e fuse:fuse_request_send` works, else why not."""
    if not shutil.which('perf'):
        return 'perf is not installed'
    try:
        p = subprocess.run(['perf', 'stat', '-x,', '-e', 'fuse:fuse_request_send', 'true'],
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f'perf failed: {e}'
    if p.returncode != 0:
        return 'perf cannot count fuse:fuse_request_send: ' + p.stderr.strip()[-200:]
    return None


def count_requests(python, kind, path, n, env=None) -> int:
    """FUSE requests the kernel sends while a fresh client runs ``n`` ops
    (the fuse:fuse_request_send tracepoint, counted for that process)."""
    p = subprocess.run(['perf', 'stat', '-x,', '-e', 'fuse:fuse_request_send', '--',
                        python, '-c', COUNT_SCRIPT, kind, path, str(n)],
                       capture_output=True, text=True, timeout=120, env=env)
    if p.returncode != 0:
        raise RuntimeError(f'perf stat failed: {p.stderr.strip()[-300:]}')
    for line in p.stderr.splitlines():
        parts = line.split(',')
        if len(parts) > 2 and parts[2] == 'fuse:fuse_request_send':
            return int(parts[0])
    raise RuntimeError(f'no count in perf output: {p.stderr[-300:]}')
