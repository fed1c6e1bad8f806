"""POSIX correctness of the passthrough example with real other users.

Each scenario is a list of shell steps, each run by one of several users
(setpriv --reuid/--regid/--groups, no capabilities; root steps run as root)
once below the mount (SRC/work seen through MNT/work) and once directly on
the backing directory (SRC/native).  Exit status, output and error messages
(which carry the errno: "Permission denied", "Operation not permitted", ...)
must agree step by step: ownership, umask, setgid directories, permission
checks, sticky directories, rename/unlink/link permission checks,
utimensat and truncate permissions, chmod/chown rules, user xattrs.

Python lives under /root (mode 0700) on this machine kind, so the clients
are coreutils in sh, not Python.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import mounted
from fuseshim.examples.passthrough import (AsyncPassthroughFS, PassthroughFS, can_act_as_caller,
                                          thread_fs_ids)
from reliability_helpers import public_dir  # noqa: F401  (fixture)

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root (other users via setpriv)'),
    pytest.mark.skipif(shutil.which('setpriv') is None, reason='needs setpriv (util-linux)'),
    pytest.mark.skipif(not can_act_as_caller(), reason='per-thread credentials unsupported here'),
]

G = 4300                                   # a group A and B share, C does not
USERS = {'root': None,
         'A': (4201, 4201, (4201, G)),
         'B': (4202, 4202, (4202, G)),
         'C': (4203, 4203, (4203,))}
STAT = "stat -c '%n %u %g %a %F %s %h'"


def S(*paths):
    return f'{STAT} ' + ' '.join(paths)


PERL_TRUNCATE = "perl -e 'truncate(\"{path}\", {size}) or die \"truncate: $!\\n\"'"
PERL_UTIME = "perl -e 'utime({times}, \"{path}\") or die \"utime: $!\\n\"'"

# (user, command); $R is the scenario root (mode 1777... set up below)
OWNERSHIP = [
    ('A', f'mkdir $R/a && touch $R/a/f && mkdir $R/a/d && ln -s f $R/a/l && mkfifo $R/a/p '
          f'&& {S("$R/a/f $R/a/d $R/a/l $R/a/p")}'),
    ('A', f'umask 0; touch $R/a/u0 && mkdir $R/a/ud0 && umask 077 && touch $R/a/u77 '
          f'&& mkdir $R/a/ud77 && {S("$R/a/u0 $R/a/ud0 $R/a/u77 $R/a/ud77")}'),
    ('A', f'echo data > $R/a/w && {S("$R/a/w")}'),
    ('A', f'chgrp {G} $R/a/f && {S("$R/a/f")}'),
    ('A', 'chgrp 4203 $R/a/f'),                          # not a member: EPERM
    ('A', 'chown 4202 $R/a/f'),                          # giving away: EPERM
    ('B', 'chmod 777 $R/a/f'),                           # not the owner: EPERM
    ('root', f'chown 4202:{G} $R/a/w && {S("$R/a/w")}'),
    ('A', f'mkdir $R/a/sg && chgrp {G} $R/a/sg && chmod 2777 $R/a/sg && {S("$R/a/sg")}'),
    ('B', f'touch $R/a/sg/bf && mkdir $R/a/sg/bd && {S("$R/a/sg/bf $R/a/sg/bd")}'),
    ('C', f'touch $R/a/sg/cf && mkdir $R/a/sg/cd && {S("$R/a/sg/cf $R/a/sg/cd")}'),
    ('root', 'touch $R/a/cgrp && chown 4201:4203 $R/a/cgrp'),
    ('A', f'chmod 2755 $R/a/cgrp && {S("$R/a/cgrp")}'),   # S_ISGID dropped: not a member
    ('A', f'chmod 4755 $R/a/f && {S("$R/a/f")} && echo more >> $R/a/f && {S("$R/a/f")}'),
    ('A', 'mknod $R/a/cdev c 1 3'),                      # EPERM without CAP_MKNOD
    ('root', f'mknod $R/rdev c 1 3 && {S("$R/rdev")}'),
    ('A', f'ln -s /nowhere $R/a/dangling && {S("$R/a/dangling")} && readlink $R/a/dangling'),
]

PERMISSIONS = [
    ('A', 'mkdir $R/a && echo secret > $R/a/private && chmod 600 $R/a/private'),
    ('B', 'cat $R/a/private'),
    ('B', 'echo x >> $R/a/private'),
    ('B', 'test -r $R/a/private && echo readable || echo not-readable'),
    ('A', f'chmod 640 $R/a/private && chgrp {G} $R/a/private'),
    ('B', 'cat $R/a/private; test -r $R/a/private && echo readable'),
    ('B', 'test -w $R/a/private && echo writable || echo not-writable'),
    ('C', 'cat $R/a/private'),
    ('root', 'cat $R/a/private'),
    ('A', 'mkdir $R/a/nox && touch $R/a/nox/f && chmod 600 $R/a/nox'),
    ('A', 'ls $R/a/nox'),
    ('A', 'stat -c %n $R/a/nox/f'),                      # no search permission
    ('A', 'cat $R/a/nox/f'),
    ('A', 'mkdir $R/a/nor && chmod 300 $R/a/nor && touch $R/a/nor/g && echo made'),
    ('A', 'ls $R/a/nor'),                                # no read permission
    ('A', 'mkdir $R/a/ro && chmod 555 $R/a/ro && touch $R/a/ro/x'),
    ('B', 'touch $R/a/byb'),                             # A's 755 dir
    ('A', "printf '#!/bin/sh\\necho ran\\n' > $R/a/s && chmod 744 $R/a/s && $R/a/s"),
    ('B', '$R/a/s'),                                     # not executable for B
    ('B', 'sh $R/a/s'),                                  # but readable
    ('C', 'cd $R/a/nox'),
    ('A', 'chmod 700 $R/a && ls $R/a > /dev/null && echo listed'),
    ('B', 'ls $R/a; stat -c %n $R/a/s'),
    ('A', 'chmod 755 $R/a'),
    ('root', 'chmod 000 $R/a/private && cat $R/a/private'),   # root reads anyway
    ('A', 'cat $R/a/private'),
]

STICKY = [
    ('root', 'mkdir $R/t && chmod 1777 $R/t'),
    ('A', 'touch $R/t/af && mkdir $R/t/ad && echo x > $R/t/aw && chmod 666 $R/t/aw'),
    ('B', 'rm -f $R/t/af'),
    ('B', 'mv $R/t/af $R/t/bf'),
    ('B', 'rmdir $R/t/ad'),
    ('B', 'touch $R/t/b2 && mv $R/t/b2 $R/t/af'),        # replacing A's file
    ('B', 'echo hi > $R/t/aw && cat $R/t/aw'),           # writing it is fine
    ('B', 'rm -f $R/t/b2 && echo removed-own'),
    ('A', 'rm -f $R/t/af && rmdir $R/t/ad && echo removed-own'),
    ('A', 'mkdir $R/t/adir && chmod 1777 $R/t/adir'),
    ('B', 'touch $R/t/adir/bf'),
    ('C', 'rm -f $R/t/adir/bf'),
    ('A', 'rm -f $R/t/adir/bf && echo dir-owner-removed'),
    ('root', 'touch $R/t/rootf && chmod 666 $R/t/rootf'),
    ('B', 'rm -f $R/t/rootf'),
    ('root', 'rm -f $R/t/aw && echo root-removed'),
]

RENAMES = [
    ('root', 'mkdir $R/shared && chmod 777 $R/shared'),
    ('A', 'mkdir $R/shared/x $R/shared/y $R/shared/x/sub && touch $R/shared/x/f'),
    ('A', 'chmod 555 $R/shared/x/sub && mv $R/shared/x/sub $R/shared/y/'),   # needs w on sub
    ('A', 'mv $R/shared/x/sub $R/shared/x/sub2 && echo same-parent-ok'),
    ('A', 'chmod 555 $R/shared/x && mv $R/shared/x/f $R/shared/y/f'),
    ('A', 'rm -f $R/shared/x/f'),
    ('A', 'ln $R/shared/x/f $R/shared/x/hl'),
    ('A', 'chmod 755 $R/shared/x && mv $R/shared/x/f $R/shared/y/f && echo moved'),
    ('B', 'mv $R/shared/y/f $R/shared/bf'),              # y is A's 755 dir
    ('B', 'mkdir $R/shared/bdir && mv $R/shared/bdir $R/shared/y/'),
    ('B', 'rmdir $R/shared/y/sub2'),
    ('A', 'echo s > $R/shared/y/p && chmod 600 $R/shared/y/p'),
    ('B', 'ln $R/shared/y/p $R/shared/hardlink'),        # protected_hardlinks: EPERM
    ('A', f'ln $R/shared/y/p $R/shared/ahl && {S("$R/shared/ahl")}'),
    ('B', 'ln -s y/p $R/shared/bsym && cat $R/shared/bsym'),
    ('A', 'mkdir $R/shared/full && touch $R/shared/full/z && rmdir $R/shared/full'),
    ('A', 'mkdir $R/shared/e1 && mv $R/shared/e1 $R/shared/full && echo replaced'),
]

TIMES_AND_SIZES = [
    ('root', 'mkdir $R/t && chmod 1777 $R/t'),
    ('A', 'touch $R/t/ut && chmod 666 $R/t/ut'),
    ('B', 'touch $R/t/ut && echo touched-now'),          # writers may set "now"
    ('B', "touch -d '2001-01-01 00:00:00 UTC' $R/t/ut"),  # only the owner: EPERM
    ('B', "touch -m -d '2001-01-01 00:00:00 UTC' $R/t/ut"),
    ('A', "touch -d '2001-01-01 00:00:00 UTC' $R/t/ut && stat -c '%X %Y' $R/t/ut"),
    ('A', 'chmod 644 $R/t/ut'),
    ('B', 'touch $R/t/ut'),                              # no write permission: EACCES
    ('C', 'touch -c $R/t/ut'),
    ('root', "touch -d '2002-02-02 00:00:00 UTC' $R/t/ut && stat -c '%X %Y' $R/t/ut"),
    ('A', 'echo hello > $R/t/tr && chmod 644 $R/t/tr'),
    ('B', 'truncate -s 2 $R/t/tr'),
    ('B', ': > $R/t/tr'),
    ('A', 'chmod 666 $R/t/tr'),
    ('B', f'truncate -s 2 $R/t/tr && {S("$R/t/tr")} && : > $R/t/tr && {S("$R/t/tr")}'),
    ('A', f'truncate -s 1M $R/t/tr && {S("$R/t/tr")} && chmod 444 $R/t/tr'),
    ('A', 'truncate -s 0 $R/t/tr'),                      # the owner too needs write
    ('root', f'truncate -s 7 $R/t/tr && {S("$R/t/tr")}'),
    # truncate(2) on a path (coreutils opens the file and uses ftruncate)
    ('B', PERL_TRUNCATE.format(path='$ENV{R}/t/tr', size=3)),
    ('A', 'chmod 646 $R/t/tr'),
    ('B', PERL_TRUNCATE.format(path='$ENV{R}/t/tr', size=3) + f' && {S("$R/t/tr")}'),
    ('C', PERL_TRUNCATE.format(path='$ENV{R}/t/tr', size=3)),   # others may write too
    ('A', 'chmod 640 $R/t/tr'),
    ('C', PERL_TRUNCATE.format(path='$ENV{R}/t/tr', size=1)),
    # utime(2) with NULL and with explicit times
    ('A', 'touch $R/t/u2 && chmod 662 $R/t/u2'),
    ('C', PERL_UTIME.format(times='undef, undef', path='$ENV{R}/t/u2') + ' && echo now-ok'),
    ('C', PERL_UTIME.format(times='1000, 1000', path='$ENV{R}/t/u2')),
    ('B', PERL_UTIME.format(times='1000, 2000', path='$ENV{R}/t/u2')),
    ('A', PERL_UTIME.format(times='1000, 2000', path='$ENV{R}/t/u2')
     + " && stat -c '%X %Y' $R/t/u2"),
]

XATTRS = [
    ('A', 'mkdir $R/a && echo v > $R/a/f && chmod 644 $R/a/f && '
          'setfattr -n user.k -v val $R/a/f && getfattr -n user.k --only-values $R/a/f'),
    ('B', 'getfattr -n user.k --only-values $R/a/f'),
    ('B', 'setfattr -n user.k -v other $R/a/f'),
    ('B', 'setfattr -x user.k $R/a/f'),
    ('A', 'chmod 600 $R/a/f'),
    ('C', 'getfattr -n user.k --only-values $R/a/f'),
    ('A', 'setfattr -n trusted.k -v t $R/a/f'),
    ('root', 'setfattr -n trusted.k -v t $R/a/f && getfattr -n trusted.k --only-values $R/a/f'),
    ('A', 'setfattr -x user.k $R/a/f && getfattr -d $R/a/f && echo gone'),
]

SCENARIOS = {'ownership': OWNERSHIP, 'permissions': PERMISSIONS, 'sticky': STICKY,
             'renames': RENAMES, 'times_and_sizes': TIMES_AND_SIZES, 'xattrs': XATTRS}


def run_steps(steps, root) -> list[tuple]:
    """Run every step with $R=root; -> [(user, cmd, rc, stdout, stderr)]
    with ``root`` replaced by $R in the output."""
    out = []
    for user, cmd in steps:
        env = {'R': root, 'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'LC_ALL': 'C', 'TZ': 'UTC'}
        ids = USERS[user]
        if ids is None:
            argv = ['sh', '-c', 'umask 022; ' + cmd]
        else:
            uid, gid, groups = ids
            argv = ['setpriv', f'--reuid={uid}', f'--regid={gid}',
                    '--groups=' + ','.join(map(str, groups)), '--inh-caps=-all',
                    'sh', '-c', 'umask 022; ' + cmd]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env, cwd='/')
        norm = lambda s: s.replace(root, '$R').strip()  # noqa: E731
        out.append((user, cmd, res.returncode, norm(res.stdout), norm(res.stderr)))
    return out


def _make_root(path):
    os.mkdir(path)
    os.chmod(path, 0o777)


def compare_on_mount(public_dir, steps, *, cls=PassthroughFS, options=('allow_other',
                     'default_permissions'), act_as_caller=None, startup='sync', workers=2):
    """-> (results through the mount, results on the backing directory)."""
    src, mnt = os.path.join(public_dir, 'src'), os.path.join(public_dir, 'mnt')
    os.mkdir(src)
    os.mkdir(mnt)
    ops = cls(src, act_as_caller=act_as_caller)
    with mounted(ops, mnt, startup=startup, workers=workers, options=list(options)):
        _make_root(os.path.join(mnt, 'work'))
        _make_root(os.path.join(src, 'native'))
        got = run_steps(steps, os.path.join(mnt, 'work'))
        ref = run_steps(steps, os.path.join(src, 'native'))
        # every thread (fuseshim workers, the async pool) is root again
        daemon = (os.geteuid(), os.getegid(), sorted(os.getgroups()))
        for tid in os.listdir('/proc/self/task'):
            try:
                uid, gid, groups = thread_fs_ids(int(tid))
            except FileNotFoundError:
                continue
            assert (uid, gid, sorted(groups)) == daemon, f'thread {tid} kept a caller\'s ids'
    assert ops.check_consistency() == []
    return got, ref


def differences(got, ref) -> list[str]:
    return [f'step {i} ({g[0]}: {g[1]})\n  mount:   rc={g[2]} out={g[3]!r} err={g[4]!r}\n'
            f'  backing: rc={r[2]} out={r[3]!r} err={r[4]!r}'
            for i, (g, r) in enumerate(zip(got, ref)) if g[2:] != r[2:]]


@pytest.mark.parametrize('scenario', list(SCENARIOS))
def test_passthrough_acts_as_the_caller(public_dir, scenario):
    """allow_other,default_permissions: every step agrees with the backing fs."""
    got, ref = compare_on_mount(public_dir, SCENARIOS[scenario])
    assert not differences(got, ref), '\n'.join(differences(got, ref))
    # the scenario exercised refusals, not only successes
    assert any(r[2] != 0 for r in ref) and any(r[2] == 0 for r in ref)


@pytest.mark.parametrize('scenario', ['ownership', 'sticky', 'times_and_sizes'])
def test_async_passthrough_acts_as_the_caller(public_dir, scenario):
    """The async variant runs those requests on its own thread pool."""
    got, ref = compare_on_mount(public_dir, SCENARIOS[scenario], cls=AsyncPassthroughFS,
                                startup='classic')
    assert not differences(got, ref), '\n'.join(differences(got, ref))


#: Steps that differ without default_permissions, and why: the kernel never
#: asks a FUSE daemon whether a caller may search a directory whose entries
#: are in its dentry cache, so "no x on the directory" goes unnoticed for
#: names looked up before (here: by their owner, before the chmod).
CACHED_PATH_STEPS = {
    ('permissions', 'A', 'stat -c %n $R/a/nox/f'),
    ('permissions', 'A', 'cat $R/a/nox/f'),
    ('permissions', 'B', 'ls $R/a; stat -c %n $R/a/s'),
}


@pytest.mark.parametrize('scenario', list(SCENARIOS))
def test_without_default_permissions(public_dir, scenario):
    """allow_other only: the backing filesystem makes every decision as the
    caller; only cached-path search checks escape it (documented)."""
    got, ref = compare_on_mount(public_dir, SCENARIOS[scenario], options=('allow_other',))
    diff = [(scenario, g[0], g[1]) for g, r in zip(got, ref) if g[2:] != r[2:]]
    assert set(diff) <= CACHED_PATH_STEPS, '\n'.join(differences(got, ref))


def test_acting_as_the_daemon_gets_ownership_wrong(public_dir):
    """The contrast: as libfuse's passthrough_ll (act_as_caller=False) files
    other users create belong to root."""
    steps = [('A', f': > $R/af && mkdir $R/ad && {S("$R/af $R/ad")}')]
    got, ref = compare_on_mount(public_dir, steps, act_as_caller=False)
    assert ref[0][3].count(' 4201 4201 ') == 2, ref
    assert got[0][3].count(' 0 0 ') == 2, got
