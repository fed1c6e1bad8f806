"""An ordinary user mounts through fusermount3 on the classic path.

The test drops to `nobody` inside a private mount namespace.  Python lives
under /root (mode 0700) here, so the namespace lays a world-readable tmpfs
over /root and binds the interpreter's tree back into it, and gives
/dev/fuse the mode 0666 Debian's udev rule sets; nothing outside the
namespace changes."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent('''
    import os, sys, fuseshim
    from fuseshim.examples.hello import HelloFS
    mnt = sys.argv[1]
    print('uid', os.getuid(), 'probe', fuseshim.probe_sync_init().supported)
    try:
        fuseshim.mount(HelloFS(), mnt, startup='sync')
    except fuseshim.SyncInitUnavailable as e:
        print('sync refused:', e)
    with fuseshim.mount(HelloFS(), mnt) as m:
        print('path', m.startup_path)
        print('reason', m.startup_reason)
        print('content', open(os.path.join(mnt, 'hello')).read().strip())
        print('fstype', [l.split()[2] for l in open('/proc/self/mounts') if l.split()[1] == mnt])
    print('after', [l.split()[1] for l in open('/proc/self/mounts') if l.split()[1] == mnt])
''')


def _python_root():
    # the directory under /root holding this interpreter's installation
    prefix = os.path.realpath(sys.base_prefix)
    parts = prefix.split(os.sep)
    return os.sep.join(parts[:3]) if prefix.startswith('/root/') else None


def _editable_build_dir():
    """An editable (meson-python) install rebuilds on import and writes its
    log into the build dir, which nobody may not write: overlay it."""
    spec = importlib.util.find_spec('_fuseshim_editable_loader')
    if spec is None:
        return None
    # MesonpyMetaFinder('fuseshim', {top-level names...}, '<build dir>', ...): the
    # set lists every top-level module the package installs (also _fuseshim_provide)
    m = re.search(r"'fuseshim',\s*\{[^}]*\},\s*'([^']+)'", open(spec.origin).read())
    # an editable install whose build dir is not found would fail later as a
    # PermissionError of nobody's import: say what is wrong instead
    assert m, f'cannot find the build dir in meson-python\'s editable loader {spec.origin}'
    return m.group(1)


@pytest.mark.skipif(shutil.which('fusermount3') is None, reason='needs fusermount3 (Debian fuse3)')
def test_unprivileged_user_mounts_classically_through_fusermount3():
    # pytest's tmp_path lives under a 0700 directory nobody cannot enter
    mnt = tempfile.mkdtemp(prefix='fuseshim-nobody-')
    os.chmod(mnt, 0o755)
    os.chown(mnt, 65534, 65534)
    scratch = tempfile.mkdtemp(prefix='fuseshim-ns-')  # bind sources, gone with the namespace
    try:
        _run_as_nobody(mnt, scratch)
    finally:
        os.rmdir(mnt)
        shutil.rmtree(scratch)


def _run_as_nobody(mnt, scratch):
    pyroot = _python_root()
    rebind = ''
    if pyroot:  # e.g. /root/.pyenv, invisible to nobody behind /root's 0700
        rebind = (f'mkdir -p {scratch}/py && mount --bind {pyroot} {scratch}/py && '
                  f'mount -t tmpfs -o mode=755 tmpfs /root && mkdir -p {pyroot} && '
                  f'mount --bind {scratch}/py {pyroot} && ')
    build = _editable_build_dir()
    if build:
        rebind += (f'mkdir -p {scratch}/ov && mount -t tmpfs -o mode=777 tmpfs {scratch}/ov && '
                   f'mkdir -m 777 {scratch}/ov/u {scratch}/ov/w && '
                   f'mount -t overlay overlay -o lowerdir={build},upperdir={scratch}/ov/u,'
                   f'workdir={scratch}/ov/w {build} && chmod -f a+rw {build} {build}/meson-logs '
                   f'{build}/meson-logs/* {build}/.ninja_log {build}/.ninja_deps; ')
    # This machine kind has no udev, so /dev/fuse is 0600; give the namespace
    # the node Debian's udev rule would make (0666), as fusermount3 expects.
    rebind += (f'mknod -m 666 {scratch}/dev-fuse c 10 229 && '
               f'mount --bind {scratch}/dev-fuse /dev/fuse && ')
    script = (rebind + 'exec setpriv --reuid=65534 --regid=65534 --clear-groups '
              '--inh-caps=-all "$0" -c "$1" "$2"')
    out = subprocess.run(['unshare', '-m', '--propagation', 'private', 'sh', '-c', script,
                          sys.executable, CHILD, str(mnt)],
                         capture_output=True, text=True, timeout=120, cwd='/')
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout
    assert 'uid 65534' in lines
    assert 'sync refused:' in lines and 'no CAP_SYS_ADMIN' in lines
    assert 'path classic' in lines
    assert 'reason no CAP_SYS_ADMIN: mounting through fusermount3' in lines
    assert 'content Hello, world!' in lines
    assert "fstype ['fuse']" in lines
    assert 'after []' in lines
