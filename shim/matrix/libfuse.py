"""Fetch and build one libfuse version into a per-version prefix in the cache.

apt-source: ``apt-get source fuse3=<debian version>`` (Debian's patches
applied by dpkg-source), then pip's meson + ninja into ``prefix/``: the
library and its own fusermount3 (setuid root, as a packager installs it), no
examples or tests.  The helper must match: libfuse runs the fusermount3 of its
own bindir first, and since 3.15 a privileged auto_unmount mount asks it for
``--auto-unmount``, which the system's older fusermount3 (Debian 12: 3.14)
rejects, so the mount would silently never be auto-unmounted.  The udev rule
and fuse.conf go into the prefix too; no init script is installed.
apt-binary: the binary packages (e.g. libfuse3-3 + libfuse3-dev) unpacked
with ``dpkg -x``; the pkg-config file's prefix is rewritten to the unpacked
tree.  system: the libfuse pkg-config finds on this machine, as it is.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

from .prereqs import URING_BUILD_DEPS
from .schema import LibfuseEntry, upstream
from .util import Log, StageError, read_json, run, write_json

BUILD_OPTIONS = ['-Dutils=true', '-Duseroot=true', '-Dinitscriptdir=',
                 '-Dexamples=false', '-Dtests=false']


@dataclass
class LibfusePrefix:
    version: str
    prefix: str
    pkgconfig_dir: str
    libdir: str
    log: str
    reused: bool = False
    stamp: str = ''

    def env(self, base=None) -> dict:
        env = dict(os.environ if base is None else base)
        if self.pkgconfig_dir:
            env['PKG_CONFIG_PATH'] = self.pkgconfig_dir
        if self.libdir:
            env['LD_LIBRARY_PATH'] = self.libdir + (
                os.pathsep + env['LD_LIBRARY_PATH'] if env.get('LD_LIBRARY_PATH') else '')
        return env

    def to_dict(self):
        return dict(self.__dict__)


def build_tools_env(env=None) -> dict:
    """PATH with pip's meson and ninja (this interpreter's scripts dir first)."""
    env = dict(os.environ if env is None else env)
    dirs = [os.path.dirname(sys.executable)]
    try:
        import ninja  # pip's ninja
        dirs.append(ninja.BIN_DIR)
    except (ImportError, AttributeError):
        pass
    env['PATH'] = os.pathsep.join(dirs + [env.get('PATH', '/usr/bin:/bin')])
    return env


def meson_cmd() -> list[str]:
    try:
        import mesonbuild  # noqa: F401  (pip's meson)
        return [sys.executable, '-m', 'mesonbuild.mesonmain']
    except ImportError:
        m = shutil.which('meson')
        if not m:
            raise StageError('meson is missing: pip install meson ninja') from None
        return [m]


def spec_key(entry: LibfuseEntry) -> dict:
    return {'version': entry.version, 'source': entry.source,
            'debian': entry.debian.model_dump() if entry.debian else None,
            'options': BUILD_OPTIONS, 'io_uring': entry.io_uring, 'layout': 5}


URING_OPTION = 'enable-io-uring'      # libfuse >= 3.18


def uring_options(entry: LibfuseEntry, source_tree: str) -> list[str]:
    """libfuse >= 3.18 compiles the io_uring transport in whenever liburing
    and libnuma are found, so say it either way: a row that does not ask
    for it must not change when a host happens to have liburing-dev."""
    with open(os.path.join(source_tree, 'meson_options.txt')) as f:
        has_option = f"option('{URING_OPTION}'" in f.read()
    if not has_option:
        if entry.io_uring:
            raise StageError(f'libfuse {entry.version} has no io_uring transport '
                             f'(no {URING_OPTION} build option; it came with 3.18)')
        return []
    return [f'-D{URING_OPTION}={"true" if entry.io_uring else "false"}']


def _check_uring(prefix: 'LibfusePrefix', entry: LibfuseEntry, log: Log):
    """The built library links liburing exactly when the row asked for the
    transport (meson drops it silently when liburing is missing)."""
    from ..elf import needed
    libs = sorted(glob.glob(os.path.join(prefix.libdir, 'libfuse3.so.*.*')))
    if not libs:
        raise StageError(f'no libfuse3.so built in {prefix.libdir}')
    has = any(n.startswith('liburing.so') for n in needed(libs[0]))
    log.write(f'{libs[0]}: io_uring transport {"compiled in" if has else "not compiled in"}')
    if has != entry.io_uring:
        hint = (f' (install {" and ".join(URING_BUILD_DEPS)}: fuseshim-matrix '
                '--install-prereqs)' if not has else '')
        raise StageError(f'libfuse {entry.version}: io_uring transport '
                         f'{"compiled in" if has else "missing"}, but the row says '
                         f'io_uring: {entry.io_uring}{hint}')


def ensure_libfuse(entry: LibfuseEntry, cache: str, apt, log: Log, rebuild=False,
                   timeout=1200) -> LibfusePrefix:
    """Build (or reuse) the libfuse of a matrix entry; returns its prefix."""
    ver = entry.version
    if entry.source == 'system':
        return _system(ver, log)
    root = os.path.join(cache, 'libfuse', ver)
    stamp = os.path.join(root, 'stamp.json')
    key = spec_key(entry)
    done = read_json(stamp)
    if done and done.get('key') == key and not rebuild and os.path.isdir(done['pkgconfig_dir']):
        log.write(f'libfuse {ver}: reusing {root}')
        return LibfusePrefix(ver, done['prefix'], done['pkgconfig_dir'], done['libdir'],
                             log.path, reused=True, stamp=stamp)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    apt.ensure()
    if entry.source == 'apt-source':
        res = _from_source(entry, root, apt, log, timeout)
    else:
        res = _from_binaries(entry, root, apt, log)
    _check_pc(res, log)
    write_json(stamp, {'key': key, 'prefix': res.prefix, 'pkgconfig_dir': res.pkgconfig_dir,
                       'libdir': res.libdir})
    res.stamp = stamp
    return res


def _from_source(entry, root, apt, log, timeout) -> LibfusePrefix:
    deb = entry.debian
    src = os.path.join(root, 'src')
    log.section(f'apt-get source {deb.package}={deb.version}')
    apt.source(f'{deb.package}={deb.version}', src, log=log)
    tops = [d for d in glob.glob(os.path.join(src, '*')) if os.path.isdir(d)
            and os.path.exists(os.path.join(d, 'meson.build'))]
    if len(tops) != 1:
        raise StageError(f'apt-get source left {len(tops)} source trees in {src}')
    prefix = os.path.join(root, 'prefix')
    build = os.path.join(root, 'build')
    env = build_tools_env()
    env.pop('PKG_CONFIG_PATH', None)
    log.section('meson setup + ninja install')
    run(meson_cmd() + ['setup', build, tops[0], f'--prefix={prefix}', '--libdir=lib',
                       '--buildtype=debugoptimized', *BUILD_OPTIONS,
                       *uring_options(entry, tops[0]),
                       f'-Dudevrulesdir={prefix}/lib/udev/rules.d'],
        env=env, log=log, timeout=timeout)
    run(meson_cmd() + ['install', '-C', build, '--quiet'], env=env, log=log, timeout=timeout)
    _check_fusermount(os.path.join(prefix, 'bin', 'fusermount3'), entry.upstream, log)
    pcdir = os.path.join(prefix, 'lib', 'pkgconfig')
    res = LibfusePrefix(entry.version, prefix, pcdir, os.path.join(prefix, 'lib'), log.path)
    _check_uring(res, entry, log)
    return res


def _check_fusermount(path: str, version: str, log: Log):
    """The prefix's fusermount3: the same version, setuid root (the
    unprivileged tests mount through it)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise StageError(f'the libfuse build installed no fusermount3: {e}') from None
    out = subprocess.run([path, '-V'], capture_output=True, text=True)
    log.write(f'{path}: mode {st.st_mode:o} uid {st.st_uid}: {out.stdout.strip()}')
    if not out.stdout.strip().endswith(version):
        raise StageError(f'{path} -V says {out.stdout.strip()!r}, expected {version}')
    if st.st_uid != 0 or not st.st_mode & 0o4000:
        raise StageError(f'{path} is not setuid root (mode {st.st_mode:o}, uid {st.st_uid})')


def _from_binaries(entry, root, apt, log) -> LibfusePrefix:
    deb = entry.debian
    dl = os.path.join(root, 'debs')
    log.section('apt-get download ' + ' '.join(deb.packages))
    debs = apt.download([f'{p}={deb.version}' for p in deb.packages], dl, log=log)
    if len(debs) != len(deb.packages):
        raise StageError(f'expected {len(deb.packages)} .deb files, got {debs}')
    prefix = os.path.join(root, 'prefix')
    for d in debs:
        run(['dpkg', '-x', d, prefix], log=log)
    pcs = glob.glob(os.path.join(prefix, 'usr', 'lib', '*', 'pkgconfig', 'fuse3.pc')) + \
        glob.glob(os.path.join(prefix, 'usr', 'lib', 'pkgconfig', 'fuse3.pc'))
    if not pcs:
        raise StageError(f'no fuse3.pc in the unpacked packages under {prefix}')
    pc = pcs[0]
    usr = os.path.join(prefix, 'usr')
    # absolute symlinks (libfuse3.so -> /lib/x86_64-linux-gnu/libfuse3.so.3) would
    # link against the system's libfuse: point them into the unpacked tree
    for dirpath, _dirs, files in os.walk(prefix):
        for name in files:
            p = os.path.join(dirpath, name)
            if os.path.islink(p) and os.readlink(p).startswith('/'):
                target = prefix + os.readlink(p)
                os.remove(p)
                os.symlink(os.path.relpath(target, dirpath), p)
                log.write(f'symlink {p} -> {os.readlink(p)}')
    with open(pc) as f:
        text = f.read()
    new = re.sub(r'^prefix=.*$', f'prefix={usr}', text, flags=re.M)
    # any other absolute /usr paths (libdir=/usr/lib/..., includedir=/usr/include)
    new = re.sub(r'^(\w+dir)=/usr(/|$)', lambda m: f'{m.group(1)}=${{prefix}}{m.group(2)}', new,
                 flags=re.M)
    with open(pc, 'w') as f:
        f.write(new)
    log.write(f'rewrote {pc}:\n{new}')
    # bullseye ships the library in /lib/<triplet>, the .pc and .so link in /usr/lib
    real = [p for p in glob.glob(os.path.join(prefix, '**', 'libfuse3.so.*'), recursive=True)
            if not os.path.islink(p)]
    if not real:
        raise StageError(f'no libfuse3.so.* in the unpacked packages under {prefix}')
    libdir = os.path.dirname(real[0])
    return LibfusePrefix(entry.version, usr, os.path.dirname(pc), libdir, log.path)


def _system(ver, log) -> LibfusePrefix:
    got = subprocess.run(['pkg-config', '--modversion', 'fuse3'], capture_output=True,
                         text=True).stdout.strip()
    if got != ver:
        raise StageError(f'the system libfuse is {got or "missing"}, the matrix says {ver}')
    log.write(f'libfuse {ver}: the system one (pkg-config)')
    return LibfusePrefix(ver, '/usr', '', '', log.path, reused=True)


def _check_pc(res: LibfusePrefix, log: Log):
    env = res.env()
    ver = subprocess.run(['pkg-config', '--modversion', 'fuse3'], capture_output=True,
                         text=True, env=env)
    flags = subprocess.run(['pkg-config', '--cflags', '--libs', 'fuse3'], capture_output=True,
                           text=True, env=env)
    log.write(f'pkg-config fuse3 in {res.pkgconfig_dir}: {ver.stdout.strip()} '
              f'{flags.stdout.strip()} {ver.stderr.strip()}')
    if ver.returncode != 0 or ver.stdout.strip() != upstream(res.version):
        raise StageError(f'pkg-config in {res.pkgconfig_dir} reports '
                         f'{ver.stdout.strip() or ver.stderr.strip()!r}, expected '
                         f'{upstream(res.version)}')
    if os.path.dirname(res.prefix) not in flags.stdout:
        raise StageError(f'pkg-config fuse3 does not point into {res.prefix}: {flags.stdout}')
