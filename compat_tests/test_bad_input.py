"""Bad input gives a clear Python exception before anything is mounted."""
from __future__ import annotations

import errno
import subprocess
import sys
import textwrap

import pytest

import fuseshim

from startup_helpers import RecordingHello, force_unmount, mounted_at


def test_missing_mountpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match='mountpoint does not exist'):
        fuseshim.mount(RecordingHello(), tmp_path / 'nope')


def test_mountpoint_is_a_file(tmp_path):
    f = tmp_path / 'file'
    f.write_text('x')
    with pytest.raises(NotADirectoryError, match='not a directory'):
        fuseshim.mount(RecordingHello(), f)


def test_already_mounted(mnt):
    with fuseshim.mount(RecordingHello(), mnt):
        with pytest.raises(fuseshim.MountError, match='already mounted') as info:
            fuseshim.mount(RecordingHello(), mnt)
        assert info.value.errno == errno.EBUSY
    assert not mounted_at(mnt)


@pytest.mark.parametrize('options, message', [
    (['bogus'], "'bogus': unknown mount option"),
    (['ro', 'rw'], "'rw' contradicts"),
    (['allow_other', 'allow_root'], 'mutually exclusive'),
    (['max_read=lots'], 'needs a whole number'),
    (['fsname='], 'non-empty'),
    (['allow_other=1'], 'takes no value'),
    (['subtype'], 'needs a value'),
    (['ro,nodev'], 'separate items'),
])
def test_bad_options(mnt, options, message):
    with pytest.raises(ValueError, match=message):
        fuseshim.mount(RecordingHello(), mnt, options=options)
    assert not mounted_at(mnt)


@pytest.mark.parametrize('kwargs, message', [
    ({'startup': 'fast'}, 'startup must be one of'),
    ({'workers': 0}, 'workers must be'),
    ({'init_timeout': -1}, 'init_timeout must be positive'),
])
def test_bad_arguments(mnt, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fuseshim.mount(RecordingHello(), mnt, **kwargs)


def test_dead_mount_is_reported(mnt):
    # A daemon that died without unmounting leaves ENOTCONN behind.
    script = textwrap.dedent(f'''
        import os, fuseshim
        from fuseshim.examples.hello import HelloFS
        m = fuseshim.mount(HelloFS(), {mnt!r}, startup='classic')
        os.listdir({mnt!r})
        os._exit(0)
    ''')
    subprocess.run([sys.executable, '-c', script], check=True, timeout=30)
    try:
        assert mounted_at(mnt)
        with pytest.raises(fuseshim.MountError, match='dead FUSE mount'):
            fuseshim.mount(RecordingHello(), mnt)
    finally:
        force_unmount(mnt)


@pytest.mark.parametrize('device_state, message', [
    ('missing', 'does not exist: load the fuse kernel module'),
    ('not-fuse', 'is not the FUSE device'),
])
def test_no_fuse_device(mnt, device_state, message):
    # A private mount namespace hides the real device (the host is untouched).
    prepare = {
        'missing': 'mount -t tmpfs none /dev',
        'not-fuse': 'mount --bind /dev/null /dev/fuse',
    }[device_state]
    script = textwrap.dedent(f'''
        import fuseshim
        from fuseshim.examples.hello import HelloFS
        try:
            fuseshim.mount(HelloFS(), {mnt!r})
        except OSError as e:
            print('ERROR', e)
        else:
            print('MOUNTED')
    ''')
    out = subprocess.run(['unshare', '-m', '--propagation', 'private', 'sh', '-c',
                          f'{prepare} && exec "$0" -c "$1"', sys.executable, script],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert 'ERROR' in out.stdout and message in out.stdout, out.stdout + out.stderr
    assert not mounted_at(mnt)
