"""Kernel cells: fetch a Debian kernel, build a tiny initramfs, boot it under
qemu (TCG) with the host's root shared read-only over 9p, run the cells'
commands inside and collect their results through a writable 9p share.

Guest layout::

    /            initramfs: busybox (static, from Debian) + the needed modules
    /host        the host's /, 9p, read-only (trans=virtio, cache=loose)
    /newroot     overlay: lower /host, upper tmpfs (fallback: /host with tmpfs
                 on /tmp, /run and /var/tmp) -> chroot target, so the host's
                 Python and the built fuseshim run unchanged, at the same paths
    <job dir>    the host's job directory, 9p read-write, mounted at the same
                 absolute path inside /newroot: job.sh, results, logs
    /tmp         ext4 on a scratch disk (a sparse image in the job directory,
                 made with the host's mkfs.ext4; tmpfs if there is none)

The console (serial, -nographic) is kept as console.log; the init script
prints ``FUSESHIM-VM: ...`` markers there.
"""
from __future__ import annotations

import glob
import gzip
import io
import lzma
import os
import re
import shutil
import stat
import subprocess
import threading
import time

from .schema import Busybox, Kernel, VmSettings
from .util import Log, StageError, read_json, run, write_json

# what the guest needs, by module name (built-in ones are simply not found):
# the 9p host root, the overlay, fuse, and the ext4 scratch disk on /tmp
NEEDED_MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'overlay', 'fuse', 'virtio_blk', 'ext4',
                  'crc32c_generic']
# The guest's /tmp is an ext4 filesystem on a scratch disk: the suites compare
# FUSE with a reference directory there, and the overlay's tmpfs lacks what
# they compare (user xattrs and O_DIRECT came to tmpfs only in Linux 6.6).
SCRATCH_SIZE = 4 << 30        # sparse; what the suites write stays far below
MARK = 'FUSESHIM-VM:'


# ---------------------------------------------------------------- kernel fetch

def ensure_kernel(kernel: Kernel, cache: str, apt, log: Log, rebuild=False,
                  busybox: Busybox | None = None) -> dict:
    """Download and unpack a kernel entry; returns {'vmlinuz', 'initrd',
    'release', 'packages', 'modules'}; cached under $CACHE/kernels/<name>/."""
    apt.ensure()
    image, image_ver = apt.resolve(kernel.image, kernel.suite)
    pkgs = [(image, image_ver)]
    if kernel.modules:
        pkgs.append(apt.resolve(kernel.modules, kernel.suite))
    key = {'packages': pkgs, 'needed': NEEDED_MODULES, 'layout': 4}   # layout: INIT's version
    root = os.path.join(cache, 'kernels', kernel.name)
    meta_path = os.path.join(root, 'meta.json')
    meta = read_json(meta_path)
    if meta and meta.get('key') == key and not rebuild and os.path.exists(meta['initrd']):
        log.write(f'kernel {kernel.name}: reusing {root} ({image} {image_ver})')
        meta['reused'] = True
        return meta
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    dl = os.path.join(root, 'debs')
    log.section(f'kernel {kernel.name}: apt-get download ' + ' '.join(p for p, _ in pkgs))
    debs = apt.download([f'{p}={v}' for p, v in pkgs], dl, log=log)
    tree = os.path.join(root, 'tree')
    for d in debs:
        run(['dpkg', '-x', d, tree], log=log)
    vmlinuz = _find_vmlinuz(tree)
    release = _release(tree, vmlinuz)
    moddir = _find_moddir(tree, release)
    mods = resolve_modules(moddir, NEEDED_MODULES) if moddir else []
    out_mods = os.path.join(root, 'modules')
    os.makedirs(out_mods)
    order = []
    for name, path in mods:
        dest = os.path.join(out_mods, name + '.ko')
        with open(dest, 'wb') as f:
            f.write(read_module(path))
        order.append(name)
    log.write(f'kernel {release}: vmlinuz {vmlinuz}; modules to load: {order or "none"}; '
              f'built in (not found as modules): '
              f'{[m for m in NEEDED_MODULES if m not in order]}')
    shutil.copy2(vmlinuz, os.path.join(root, 'vmlinuz'))
    busybox = busybox or Busybox()
    busybox_bin = ensure_busybox(cache, apt, log, busybox.package, busybox.suite)
    initrd = os.path.join(root, 'initrd.gz')
    build_initramfs(initrd, busybox_bin, [(n, os.path.join(out_mods, n + '.ko')) for n in order])
    shutil.rmtree(tree, ignore_errors=True)
    shutil.rmtree(dl, ignore_errors=True)
    meta = {'key': key, 'vmlinuz': os.path.join(root, 'vmlinuz'), 'initrd': initrd,
            'release': release, 'packages': [f'{p}={v}' for p, v in pkgs], 'modules': order}
    write_json(meta_path, meta)
    meta['reused'] = False
    return meta


_BUSYBOX_LOCK = threading.Lock()   # kernels are prepared in parallel; one busybox


def ensure_busybox(cache: str, apt, log: Log, package='busybox-static', suite='bookworm') -> str:
    with _BUSYBOX_LOCK:
        return _ensure_busybox(cache, apt, log, package, suite)


def _ensure_busybox(cache, apt, log, package, suite) -> str:
    root = os.path.join(cache, 'busybox')
    target = os.path.join(root, 'busybox')
    if os.path.exists(target):
        return target
    name, ver = apt.resolve(package, suite)
    tmp = os.path.join(root, 'x')
    shutil.rmtree(root, ignore_errors=True)
    debs = apt.download([f'{name}={ver}'], os.path.join(root, 'debs'), log=log)
    run(['dpkg', '-x', debs[0], tmp], log=log)
    found = [p for p in (os.path.join(tmp, 'bin', 'busybox'),
                         os.path.join(tmp, 'usr', 'bin', 'busybox')) if os.path.exists(p)]
    if not found:
        raise StageError(f'no busybox binary in {debs[0]}')
    shutil.copy2(found[0], target + '.tmp')
    os.replace(target + '.tmp', target)
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(os.path.join(root, 'debs'), ignore_errors=True)
    return target


def _find_vmlinuz(tree: str) -> str:
    cands = glob.glob(os.path.join(tree, 'boot', 'vmlinuz-*')) + \
        glob.glob(os.path.join(tree, 'usr', 'lib', 'modules', '*', 'vmlinuz*')) + \
        glob.glob(os.path.join(tree, 'lib', 'modules', '*', 'vmlinuz*'))
    if not cands:
        raise StageError(f'no vmlinuz in the kernel packages ({tree})')
    return sorted(cands)[0]


def _release(tree: str, vmlinuz: str) -> str:
    base = os.path.basename(vmlinuz)
    if base.startswith('vmlinuz-'):
        return base[len('vmlinuz-'):]
    return os.path.basename(os.path.dirname(vmlinuz))


def _find_moddir(tree: str, release: str) -> str | None:
    for d in (os.path.join(tree, 'lib', 'modules', release),
              os.path.join(tree, 'usr', 'lib', 'modules', release)):
        if os.path.isdir(os.path.join(d, 'kernel')):
            return d
    return None


def read_module(path: str) -> bytes:
    """A module file's ELF bytes, decompressing .ko.xz / .ko.gz / .ko.zst."""
    if path.endswith('.xz'):
        with lzma.open(path) as f:
            return f.read()
    if path.endswith('.gz'):
        with gzip.open(path) as f:
            return f.read()
    if path.endswith('.zst'):
        return subprocess.run(['zstd', '-dc', path], check=True, capture_output=True).stdout
    with open(path, 'rb') as f:
        return f.read()


def module_depends(data: bytes) -> list[str]:
    m = re.search(rb'(?:^|\0)depends=([^\0]*)\0', data)
    if not m or not m.group(1):
        return []
    return [d.decode() for d in m.group(1).split(b',') if d]


def resolve_modules(moddir: str, wanted: list[str]) -> list[tuple[str, str]]:
    """[(name, path)] of the wanted modules present as files, with their
    dependencies, dependencies first (names use '_' for '-')."""
    index = {}
    for path in glob.glob(os.path.join(moddir, 'kernel', '**', '*.ko*'), recursive=True):
        name = re.sub(r'\.ko(\.\w+)?$', '', os.path.basename(path)).replace('-', '_')
        index[name] = path
    order: list[tuple[str, str]] = []
    seen = set()

    def visit(name, chain=()):
        name = name.replace('-', '_')
        if name in seen or name not in index:
            return
        if name in chain:
            return
        for dep in module_depends(read_module(index[name])):
            visit(dep, chain + (name,))
        seen.add(name)
        order.append((name, index[name]))

    for w in wanted:
        visit(w)
    return order


# ---------------------------------------------------------------- initramfs

INIT = r'''#!/bin/busybox sh
# fuseshim matrix initramfs: host root over 9p, writable overlay, run the job
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /host /rw /newroot /job
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "FUSESHIM-VM: kernel $(uname -r) up after $(cut -d' ' -f1 /proc/uptime) s"
for m in $(cat /modules.order); do
  insmod /lib/modules/$m.ko || echo "FUSESHIM-VM: insmod $m failed"
done
JOBDIR=$(sed -n 's/.*fuseshim.jobdir=\([^ ]*\).*/\1/p' /proc/cmdline)
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /host \
  || { echo "FUSESHIM-VM: ERROR cannot mount the host root over 9p"; poweroff -f; }
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
if mount -t overlay overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /newroot; then
  echo "FUSESHIM-VM: root = overlay(host 9p ro + tmpfs)"
  OVERLAY=1
else
  echo "FUSESHIM-VM: overlay refused; root = host 9p ro + tmpfs on /tmp /run /var/tmp"
  mount --bind /host /newroot
  for d in tmp run var/tmp; do mount -t tmpfs -o mode=1777 tmpfs /newroot/$d; done
fi
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /newroot/dev/shm
mount -t fusectl fusectl /newroot/sys/fs/fuse/connections 2>/dev/null
if [ -b /dev/vda ] && mount -t ext4 /dev/vda /newroot/tmp; then
  chmod 1777 /newroot/tmp
  echo "FUSESHIM-VM: /tmp = ext4 scratch disk"
else
  echo "FUSESHIM-VM: no scratch disk; /tmp stays on the root's tmpfs"
fi
mkdir -p /newroot$JOBDIR
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 jobdir /newroot$JOBDIR \
  || { echo "FUSESHIM-VM: ERROR cannot mount the job dir"; poweroff -f; }
echo "FUSESHIM-VM: running $JOBDIR/job.sh"
chroot /newroot /bin/sh $JOBDIR/job.sh
echo "FUSESHIM-VM: job exit $?"
sync
umount /newroot$JOBDIR 2>/dev/null
echo "FUSESHIM-VM: DONE"
poweroff -f
'''


def _cpio_entry(out, name: str, mode: int, data: bytes = b'', rdev=(0, 0),
                ino=[1000]):  # noqa: B006  (a counter)
    ino[0] += 1
    nb = name.encode() + b'\0'
    hdr = '070701' + ''.join(f'{v:08X}' for v in (
        ino[0], mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(nb), 0))
    out.write(hdr.encode() + nb)
    out.write(b'\0' * (-(110 + len(nb)) % 4))
    out.write(data)
    out.write(b'\0' * (-len(data) % 4))


def build_initramfs(path: str, busybox: str, modules: list[tuple[str, str]]):
    """A gzip'd newc cpio: /init, /bin/busybox, /lib/modules/*.ko, /modules.order."""
    buf = io.BytesIO()
    for d in ('bin', 'lib', 'lib/modules', 'dev', 'proc', 'sys', 'host', 'rw', 'newroot'):
        _cpio_entry(buf, d, stat.S_IFDIR | 0o755)
    _cpio_entry(buf, 'dev/console', stat.S_IFCHR | 0o600, rdev=(5, 1))
    with open(busybox, 'rb') as f:
        _cpio_entry(buf, 'bin/busybox', stat.S_IFREG | 0o755, f.read())
    _cpio_entry(buf, 'bin/sh', stat.S_IFLNK | 0o777, b'busybox')
    _cpio_entry(buf, 'init', stat.S_IFREG | 0o755, INIT.encode())
    for name, p in modules:
        with open(p, 'rb') as f:
            _cpio_entry(buf, f'lib/modules/{name}.ko', stat.S_IFREG | 0o644, f.read())
    _cpio_entry(buf, 'modules.order', stat.S_IFREG | 0o644,
                ''.join(n + '\n' for n, _ in modules).encode())
    _cpio_entry(buf, 'TRAILER!!!', 0)
    with gzip.open(path + '.tmp', 'wb', compresslevel=6) as f:
        f.write(buf.getvalue())
    os.replace(path + '.tmp', path)


# ---------------------------------------------------------------- boot

def qemu_available(qemu='qemu-system-x86_64') -> str | None:
    return shutil.which(qemu)


def make_scratch_disk(jobdir: str, log: Log) -> str | None:
    """A sparse ext4 image for the guest's /tmp, or None (said in the log)
    when this host cannot make one."""
    mkfs = shutil.which('mkfs.ext4') or shutil.which('mkfs.ext4', path='/usr/sbin:/sbin')
    if not mkfs:
        log.write('no mkfs.ext4 (e2fsprogs): the guest keeps /tmp on tmpfs')
        return None
    path = os.path.join(jobdir, 'scratch.img')
    with open(path, 'wb') as f:
        f.truncate(SCRATCH_SIZE)
    # no metadata checksums: the guest then needs no crc32c driver to mount it
    run([mkfs, '-q', '-F', '-O', '^metadata_csum,^metadata_csum_seed', '-E',
         'lazy_itable_init=1,lazy_journal_init=1', path], log=log)
    return path


def boot(meta: dict, jobdir: str, vmcfg: VmSettings, timeout: float, log: Log) -> dict:
    """Boot the kernel with ``jobdir/job.sh`` as the job; returns
    {'exit': qemu exit code, 'console': path, 'elapsed': s, 'done': bool,
    'timed_out': bool}."""
    qemu = qemu_available(vmcfg.qemu)
    if not qemu:
        raise StageError(f'{vmcfg.qemu} is not installed: apt-get install '
                         'qemu-system-x86 (or fuseshim-matrix --install-prereqs)')
    console = os.path.join(jobdir, 'console.log')
    cmd = [qemu, '-machine', 'q35', '-accel', vmcfg.accel, '-cpu', vmcfg.cpu,
           '-m', str(vmcfg.memory), '-smp', str(vmcfg.smp),
           '-nographic', '-no-reboot', '-nodefaults', '-serial', f'file:{console}',
           '-kernel', meta['vmlinuz'], '-initrd', meta['initrd'],
           '-append', ' '.join(['console=ttyS0', 'panic=-1', 'loglevel=4', 'rdinit=/init',
                                'mitigations=off', f'fuseshim.jobdir={jobdir}']),
           '-fsdev', 'local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap',
           '-device', 'virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot',
           '-fsdev', f'local,id=jobdir,path={jobdir},security_model=none',
           '-device', 'virtio-9p-pci,fsdev=jobdir,mount_tag=jobdir']
    scratch = make_scratch_disk(jobdir, log)
    if scratch:
        cmd += ['-drive', f'file={scratch},if=virtio,format=raw,cache=unsafe']
    t0 = time.monotonic()
    timed_out = False
    try:
        cp = run(cmd, log=log, timeout=timeout, check=False)
        code = cp.returncode
    except StageError:
        timed_out, code = True, None
    finally:
        if scratch:
            os.unlink(scratch)
    elapsed = time.monotonic() - t0
    text = ''
    try:
        with open(console, encoding='utf-8', errors='replace') as f:
            text = f.read()
    except OSError:
        pass
    return {'exit': code, 'console': console, 'elapsed': round(elapsed, 1),
            'done': f'{MARK} DONE' in text, 'timed_out': timed_out,
            'markers': [MARK + ln.split(MARK, 1)[1].rstrip() for ln in text.splitlines()
                        if MARK in ln]}
