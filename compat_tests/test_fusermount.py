"""fuseshim.fusermount: the helper libfuse runs, and auto_unmount refused
where that helper cannot do it (libfuse >= 3.15 as root asks it for
--auto-unmount; an older fusermount3 rejects that and the mount would
silently stay behind a killed daemon)."""
from __future__ import annotations

import errno
import os

import pytest

import fuseshim
from conftest import mounted_paths
from fuseshim import fusermount
from fuseshim.examples.hello import HelloFS


def test_helper_is_the_one_libfuse_runs():
    """The loaded libfuse's compiled-in helper (or PATH), with its version."""
    h = fusermount.helper()
    lib = fusermount._loaded_libfuse()
    assert lib and os.path.basename(lib).startswith('libfuse3.so'), lib
    compiled = fusermount._compiled_in_path(lib)
    assert compiled and compiled.endswith('/fusermount3'), compiled
    if os.access(compiled, os.X_OK):
        assert h.path == compiled
    assert h.path and h.version, h
    assert fusermount.unmount_argv('/m') == [h.path, '-u', '-z', '--', '/m']


def test_auto_unmount_works_with_this_libfuse_and_helper():
    """On this machine, and in every matrix cell, the helper libfuse runs
    can auto-unmount for it (the cells build libfuse's own fusermount3)."""
    assert fusermount.auto_unmount_problem(privileged=True) is None, fusermount.helper()


@pytest.mark.parametrize('lib, helper_version, privileged, refused', [
    ('3.17.2', '3.14.0', True, True),      # root: mount(2) + `fusermount3 --auto-unmount`
    ('3.18.3', '3.14.0', True, True),
    ('3.15.0', '3.15.0', True, False),
    ('3.18.3', '3.18.3', True, False),
    ('3.17.2', '3.14.0', False, False),    # unprivileged: fusermount3 mounts and watches
    ('3.14.0', '3.14.0', True, False),     # before 3.15 fusermount3 mounts and watches
    ('3.10.3', '3.14.0', True, False),
])
def test_auto_unmount_problem_rules(monkeypatch, lib, helper_version, privileged, refused):
    monkeypatch.setattr(fusermount, 'libfuse_version', lambda: lib)
    monkeypatch.setattr(fusermount, 'helper',
                        lambda: fusermount.Helper('/x/fusermount3', helper_version, 'PATH'))
    problem = fusermount.auto_unmount_problem(privileged)
    assert (problem is not None) == refused, problem
    if refused:
        assert '--auto-unmount' in problem and helper_version in problem


def test_no_helper_at_all(monkeypatch):
    monkeypatch.setattr(fusermount, 'helper', lambda: fusermount.Helper(None, None, 'PATH'))
    assert 'there is none' in fusermount.auto_unmount_problem(privileged=False)


def test_mount_refuses_auto_unmount_with_a_helper_that_cannot(monkeypatch, tmp_path):
    """A clear error before anything is mounted, not a mount that would stay
    behind its daemon."""
    monkeypatch.setattr(fusermount, 'libfuse_version', lambda: '3.17.2')
    monkeypatch.setattr(fusermount, 'helper',
                        lambda: fusermount.Helper('/x/fusermount3', '3.14.0', 'PATH'))
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    with pytest.raises(fuseshim.MountError) as info:
        fuseshim.mount(HelloFS(), str(mnt), options=['auto_unmount'])
    assert info.value.errno == errno.EOPNOTSUPP
    assert 'silently not happen' in str(info.value) and '3.14.0' in str(info.value)
    assert str(mnt) not in mounted_paths()
