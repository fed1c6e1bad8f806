"""The per-cell probe: run *by path* with the cell's fuseshim on sys.path
(``python probe.py --startup auto --out probe.json``), on the host or inside
a VM.  It imports nothing from fuseshim.matrix, mounts a one-file filesystem
with the requested startup mode, reads it back and writes what it saw:

libfuse runtime/build versions, build_features(), the sync-init probe, the
startup path and reason, whether INIT was answered before mount(2) returned,
the negotiated protocol, and any problems.  Exit status 0 even when the
observations differ from the expectation: judging is the runner's job;
non-zero only when the probe itself broke.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import platform
import stat
import sys
import tempfile
import time
import traceback


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument('--startup', default='auto', choices=('auto', 'sync', 'classic'))
    ap.add_argument('--out', required=True)
    ap.add_argument('--expect-dir', help='fuseshim must be imported from below this directory')
    ap.add_argument('--init-timeout', type=float, default=30.0)
    args = ap.parse_args(argv)
    res: dict = {'startup_requested': args.startup, 'kernel_release': platform.release(),
                 'python': sys.version.split()[0], 'executable': sys.executable,
                 'problems': []}
    t0 = time.monotonic()
    try:
        _probe(args, res)
    except BaseException as e:  # noqa: BLE001 - everything goes into the report
        res['problems'].append(f'probe crashed: {type(e).__name__}: {e}')
        res['traceback'] = traceback.format_exc()
    res['elapsed'] = round(time.monotonic() - t0, 3)
    tmp = args.out + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(res, f, indent=2, sort_keys=True, default=str)
    os.replace(tmp, args.out)
    print(json.dumps({k: res.get(k) for k in ('libfuse_runtime_version', 'startup_path',
                                              'startup_reason', 'problems')}))
    return 0


def _probe(args, res):
    import fuseshim
    res['fuseshim_file'] = fuseshim.__file__
    core = sys.modules.get('fuseshim._core')
    res['core_file'] = getattr(core, '__file__', None)
    if args.expect_dir:
        want = os.path.realpath(args.expect_dir)
        if not os.path.realpath(fuseshim.__file__).startswith(want + os.sep):
            res['problems'].append(f'fuseshim was imported from {fuseshim.__file__}, not from '
                                   f'the cell build in {want}')
    res['libfuse_runtime_version'] = fuseshim.libfuse_version()
    feats = fuseshim.build_features() if hasattr(fuseshim, 'build_features') else {}
    res['libfuse_build_version'] = feats.pop('libfuse_build_version', None)
    res['build_features'] = feats
    probe = fuseshim.probe_sync_init()
    res['sync_init_probe'] = {'supported': probe.supported, 'reason': probe.reason,
                              'errno': getattr(probe, 'errno', 0)}
    res['loaded_libfuse'] = _loaded_libfuse()
    if hasattr(fuseshim, 'libfuse_io_uring'):
        # FUSE over io_uring: compiled into this libfuse? offered by the kernel?
        res['io_uring'] = {'libfuse': fuseshim.libfuse_io_uring(),
                           'kernel': fuseshim.kernel.fuse_io_uring_enabled()}
    _mount_once(fuseshim, args, res)


def _loaded_libfuse():
    try:
        with open('/proc/self/maps') as f:
            return sorted({line.split()[-1] for line in f if 'libfuse3.so' in line})
    except OSError:
        return []


def _mount_once(fuseshim, args, res):
    from fuseshim import EntryAttributes, FUSEError, ROOT_INODE

    data = b'fuseshim matrix probe\n'

    class ProbeFS(fuseshim.Operations):
        init_calls = 0

        def init(self):
            self.init_calls += 1

        def _attr(self, inode):
            a = EntryAttributes()
            if inode == ROOT_INODE:
                a.st_mode = stat.S_IFDIR | 0o755
                a.st_nlink = 2
            elif inode == ROOT_INODE + 1:
                a.st_mode = stat.S_IFREG | 0o444
                a.st_size = len(data)
            else:
                raise FUSEError(errno.ENOENT)
            a.st_ino = inode
            return a

        def getattr(self, inode, ctx=None):
            return self._attr(inode)

        def lookup(self, parent_inode, name, ctx=None):
            if parent_inode != ROOT_INODE or name != b'probe':
                raise FUSEError(errno.ENOENT)
            return self._attr(ROOT_INODE + 1)

        def opendir(self, inode, ctx):
            return inode

        def readdir(self, fh, start_id, token):
            if start_id == 0:
                fuseshim.readdir_reply(token, b'probe', self._attr(ROOT_INODE + 1), 1)

        def open(self, inode, flags, ctx):
            return fuseshim.FileInfo(fh=inode)

        def read(self, fh, off, size):
            return data[off:off + size]

    mnt = tempfile.mkdtemp(prefix='fuseshim-probe-')
    ops = ProbeFS()
    try:
        t = time.monotonic()
        try:
            m = fuseshim.mount(ops, mnt, startup=args.startup, init_timeout=args.init_timeout)
        except fuseshim.SyncInitUnavailable as e:
            res['startup_path'] = 'unavailable'
            res['startup_reason'] = str(e)
            return
        res['mount_seconds'] = round(time.monotonic() - t, 4)
        try:
            res['startup_path'] = m.startup_path
            res['startup_reason'] = m.startup_reason
            res['init_before_mount_returned'] = bool(m.init_before_mount_returned)
            conn = m.connection
            if conn.get('proto_major') is not None:
                res['protocol'] = f'{conn.get("proto_major")}.{conn.get("proto_minor")}'
            res['init_calls'] = ops.init_calls
            listing = os.listdir(mnt)
            with open(os.path.join(mnt, 'probe'), 'rb') as f:
                got = f.read()
            res['io_ok'] = listing == ['probe'] and got == data
            if not res['io_ok']:
                res['problems'].append(f'mounted filesystem answered {listing!r} / {got!r}')
            if ops.init_calls != 1:
                res['problems'].append(f'init ran {ops.init_calls} times')
            if m.startup_path == 'sync' and not m.init_before_mount_returned:
                res['problems'].append('sync path, yet INIT was not answered before mount(2) '
                                       'returned')
            if m.startup_path == 'classic' and m.init_before_mount_returned:
                res['problems'].append('classic path, yet INIT was answered before mount(2) '
                                       'returned')
        finally:
            m.close()
        if _mounted(mnt):
            res['problems'].append(f'{mnt} still mounted after close()')
            os.system(f'umount -l {mnt} 2>/dev/null')
    finally:
        try:
            os.rmdir(mnt)
        except OSError:
            pass


def _mounted(path):
    with open('/proc/self/mountinfo') as f:
        return any(line.split()[4] == path for line in f)


if __name__ == '__main__':
    sys.exit(main())
