"""S_ISUID/S_ISGID after another user's write, truncate, O_TRUNC open or
chown: the examples end exactly as a plain local directory (ext4/tmpfs here).

Root prepares each file (owner, group, mode, some data); one user -- nobody
(uid 65534, no supplementary groups, no capabilities: setpriv), or root --
runs one operation through perl; the operation's outcome (exit status and
error text, which carries strerror) and the file's mode afterwards must be
the same through the mount and on the local directory, in the same run.

Without FUSE_HANDLE_KILLPRIV_V2 the kernel drops the bits itself before the
write or truncate, with a chmod sent under the writer's credentials: the
passthrough example, acting as the caller, got EPERM from the backing
filesystem (not the owner) and the write failed; memfs kept the bits on an
O_TRUNC open and a S_ISGID without group-execute, which ext4 clears for a
writer outside the file's group.
"""
from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess

import pytest

import fuseshim
from conftest import mounted
from fuseshim.examples.memfs import AsyncMemFS, MemFS
from fuseshim.examples.passthrough import AsyncPassthroughFS, PassthroughFS, can_act_as_caller
from reliability_helpers import as_user, public_dir  # noqa: F401  (fixture)

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root (other users via setpriv)'),
    pytest.mark.skipif(shutil.which('setpriv') is None, reason='needs setpriv (util-linux)'),
    pytest.mark.skipif(shutil.which('perl') is None, reason='needs perl'),
]

NOBODY = 65534

#: perl one-liners; $f is the file, each failure prints "<what>: <strerror>"
OPS = {
    'write': 'open(F, ">>", $f) or die "open: $!\\n"; '
             'defined(syswrite(F, "x")) or die "write: $!\\n"; close(F) or die "close: $!\\n"',
    'truncate': 'truncate($f, 2) or die "truncate: $!\\n"',
    'ftruncate': 'open(F, "+<", $f) or die "open: $!\\n"; truncate(F, 2) or die "ftruncate: $!\\n"',
    'open_trunc': 'open(F, ">", $f) or die "open: $!\\n"; close(F) or die "close: $!\\n"',
    'chgrp_nogroup': f'chown(-1, {NOBODY}, $f) or die "chown: $!\\n"',
    'chown_root': 'chown(0, 0, $f) or die "chown: $!\\n"',
    'chmod_drop_suid': 'chmod(0777, $f) or die "chmod: $!\\n"',
}

#: (name, owner uid, group gid, mode, who runs the operation, operation)
CASES = [
    # another user writes: the bits go (S_ISGID: group-executable, or the
    # writer is not in the file's group)
    ('write-6777', 0, 0, 0o6777, 'nobody', 'write'),
    ('write-4777', 0, 0, 0o4777, 'nobody', 'write'),
    ('write-2777', 0, 0, 0o2777, 'nobody', 'write'),
    ('write-2767-not-in-group', 0, 0, 0o2767, 'nobody', 'write'),
    ('write-6767-in-group', 0, NOBODY, 0o6767, 'nobody', 'write'),
    ('write-0777', 0, 0, 0o777, 'nobody', 'write'),
    ('write-6755-no-permission', 0, 0, 0o6755, 'nobody', 'write'),
    ('write-6777-by-root', NOBODY, NOBODY, 0o6777, 'root', 'write'),   # CAP_FSETID: kept
    # another user truncates
    ('truncate-6777', 0, 0, 0o6777, 'nobody', 'truncate'),
    ('ftruncate-6777', 0, 0, 0o6777, 'nobody', 'ftruncate'),
    ('ftruncate-2767-in-group', 0, NOBODY, 0o2767, 'nobody', 'ftruncate'),
    ('open-trunc-6777', 0, 0, 0o6777, 'nobody', 'open_trunc'),
    ('open-trunc-6777-by-root', NOBODY, NOBODY, 0o6777, 'root', 'open_trunc'),
    # chown: the owner (nobody) changes the group; root gives the file away
    ('chgrp-6777', NOBODY, 0, 0o6777, 'nobody', 'chgrp_nogroup'),
    ('chgrp-2767-not-in-old-group', NOBODY, 0, 0o2767, 'nobody', 'chgrp_nogroup'),
    ('chgrp-2767-in-group', NOBODY, NOBODY, 0o2767, 'nobody', 'chgrp_nogroup'),
    ('chown-6777-by-root', NOBODY, NOBODY, 0o6777, 'root', 'chown_root'),
    ('chown-6767-by-root', NOBODY, NOBODY, 0o6767, 'root', 'chown_root'),
    # what a caller may change otherwise stays as it was
    ('chmod-by-non-owner', 0, 0, 0o6777, 'nobody', 'chmod_drop_suid'),
]


def run_cases(root) -> list[tuple]:
    """Every case in ``root`` -> [(name, exit status, error text, mode after)]."""
    out = []
    for name, uid, gid, mode, who, op in CASES:
        path = os.path.join(root, name)
        with open(path, 'w') as f:
            f.write('data')
        os.chown(path, uid, gid)
        os.chmod(path, mode)        # after chown, which clears the bits
        assert stat.S_IMODE(os.stat(path).st_mode) == mode, name
        cmd = f'perl -e {shlex.quote("my $f = shift; " + OPS[op])} {shlex.quote(path)}'
        if who == 'root':
            res = subprocess.run(['sh', '-c', cmd], capture_output=True, text=True, timeout=30)
        else:
            res = as_user(NOBODY, cmd)
        after = stat.S_IMODE(os.stat(path).st_mode)
        out.append((name, res.returncode, res.stderr.replace(root, '$R').strip(), oct(after)))
    return out


def _killpriv_impossible(m) -> str | None:
    """Why the kernel and libfuse cannot agree on FUSE_HANDLE_KILLPRIV_V2
    here, or None (then the test must pass, granted or not)."""
    built = fuseshim.build_features()['libfuse_build_version']
    if tuple(int(x) for x in built.split('.')[:2]) < (3, 13):
        return f'libfuse {built} cannot negotiate FUSE_HANDLE_KILLPRIV_V2 (needs >= 3.13)'
    if m.connection['proto_minor'] < 33:
        return (f"kernel protocol 7.{m.connection['proto_minor']} has no "
                'FUSE_HANDLE_KILLPRIV_V2 (needs >= 7.33, Linux 5.11)')
    return None


CONFIGS = {
    # name: (Operations factory(src), options, startup)
    'passthrough': (PassthroughFS, ('allow_other', 'default_permissions'), 'sync'),
    'passthrough-async-classic': (AsyncPassthroughFS, ('allow_other', 'default_permissions'),
                                  'classic'),
    'passthrough-no-default-permissions': (PassthroughFS, ('allow_other',), 'sync'),
    'passthrough-as-daemon': (lambda src: PassthroughFS(src, act_as_caller=False),
                              ('allow_other', 'default_permissions'), 'sync'),
    'memfs': (lambda src: MemFS(root_mode=0o755), ('allow_other', 'default_permissions'), 'sync'),
    'memfs-async-classic': (lambda src: AsyncMemFS(root_mode=0o755),
                            ('allow_other', 'default_permissions'), 'classic'),
}


@pytest.mark.parametrize('config', list(CONFIGS))
def test_suid_sgid_after_other_users_match_local_fs(public_dir, config):
    factory, options, startup = CONFIGS[config]
    if config.startswith('passthrough') and not can_act_as_caller() \
            and config != 'passthrough-as-daemon':
        pytest.skip('per-thread credentials unsupported on this architecture')
    src, mnt, native = (os.path.join(public_dir, d) for d in ('src', 'mnt', 'native'))
    for d in (src, mnt, native):
        os.mkdir(d)
        os.chmod(d, 0o755)           # nobody reaches the files, creates nothing
    ops = factory(src)
    with mounted(ops, mnt, startup=startup, workers=2, options=list(options)) as m:
        reason = _killpriv_impossible(m)
        if reason:
            pytest.skip(reason)
        got = run_cases(mnt)
    ref = run_cases(native)
    diff = [f'{g[0]}: mount rc={g[1]} err={g[2]!r} mode={g[3]}; '
            f'local rc={r[1]} err={r[2]!r} mode={r[3]}'
            for g, r in zip(got, ref) if g != r]
    assert not diff, '\n'.join(diff)
    # the reference really exercised clearing, keeping and refusing
    modes = {r[0]: r[3] for r in ref}
    assert modes['write-6777'] == '0o777' and modes['write-6777-by-root'] == '0o6777'
    assert modes['ftruncate-2767-in-group'] == '0o2767'
    assert any(r[1] != 0 for r in ref)
    assert ops.check_consistency() == []


def test_killpriv_v2_negotiated_where_available(public_dir):
    """Where libfuse (>= 3.13) and the kernel (protocol >= 7.33) can, an
    Operations with enable_killpriv gets it; fuseshim.features() says
    whether the build can ask at all."""
    mnt = os.path.join(public_dir, 'mnt')
    os.mkdir(mnt)
    with mounted(MemFS(), mnt) as m:
        can = _killpriv_impossible(m) is None
        assert m.granted.get('handle_killpriv_v2') is can, m.granted
        if can:
            assert fuseshim.features()['killpriv_v2']
    with mounted(fuseshim.Operations(), mnt) as m:     # not asked for: not granted
        assert 'handle_killpriv_v2' not in m.granted


class ThreeArgumentWrite(MemFS):
    """A subclass keeping pyfuse3's write(fh, off, buf)."""
    def write(self, fh, off, buf):
        return MemFS.write(self, fh, off, buf)


def test_write_without_the_writer_argument_keeps_the_kernels_chmod(public_dir):
    """enable_killpriv inherited by a write() that takes no fourth argument
    is not asked for (it would fail every write): the kernel drops the bits
    with its chmod as before, and the writes succeed."""
    mnt = os.path.join(public_dir, 'mnt')
    os.mkdir(mnt)
    with mounted(ThreeArgumentWrite(root_mode=0o755), mnt,
                 options=['allow_other', 'default_permissions']) as m:
        assert 'handle_killpriv_v2' not in m.granted
        path = os.path.join(mnt, 'f')
        with open(path, 'w') as f:
            f.write('data')
        os.chmod(path, 0o6777)
        res = as_user(NOBODY, f'echo x >> {shlex.quote(path)}')
        assert (res.returncode, res.stderr) == (0, '')
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o777


#: opens a FIFO for reading without waiting for a writer
OPEN_FIFO = ('perl -MFcntl -e \'sysopen(F, shift, O_RDONLY | O_NONBLOCK) '
             'or die "open: $!\\n"; print "opened\\n"\' ')


def test_fifo_opens_are_never_asked_without_default_permissions(public_dir):
    """A documented limit (docs/reliability.md, the example's --help): the
    kernel opens FIFOs itself and never sends FUSE_OPEN, so without
    default_permissions a FIFO nobody may read (0600, root's) opens anyway;
    with default_permissions the kernel refuses it, as the local directory."""
    if not can_act_as_caller():
        pytest.skip('per-thread credentials unsupported on this architecture')
    src, mnt = os.path.join(public_dir, 'src'), os.path.join(public_dir, 'mnt')
    os.mkdir(src)
    os.mkdir(mnt)
    os.chmod(src, 0o755)
    os.mkfifo(os.path.join(src, 'fifo'), 0o600)
    local = as_user(NOBODY, OPEN_FIFO + os.path.join(src, 'fifo'))
    assert (local.returncode, local.stderr.strip()) == (13, 'open: Permission denied')
    outcome = {}
    for options in (('allow_other',), ('allow_other', 'default_permissions')):
        ops = PassthroughFS(src)
        with mounted(ops, mnt, options=list(options)):
            res = as_user(NOBODY, OPEN_FIFO + os.path.join(mnt, 'fifo'))
        outcome[options] = (res.returncode, (res.stdout + res.stderr).strip())
        assert ops.calls['open'] == 0     # the daemon was never asked either way
    assert outcome[('allow_other',)] == (0, 'opened')
    assert outcome[('allow_other', 'default_permissions')] == (13, 'open: Permission denied')
