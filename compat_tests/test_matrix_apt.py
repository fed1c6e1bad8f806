"""The matrix's private apt: which package a kernel or libfuse row resolves to.

Versions are compared by python-debian (Debian policy 5.6.12), not by an own
key: the old natural-sort key put ``7.3~rc7-1~exp1`` *after* ``7.3-1`` and
ignored epochs, so a release candidate could win over the release."""
from __future__ import annotations

import pytest

import matrix_extra

matrix_extra.require()

from fuseshim.matrix import apt  # noqa: E402


def pick(*versions):
    return apt.highest(('linux-image', v, 'sid') for v in versions)[1]


@pytest.mark.parametrize('expected, others', [
    # tilde sorts before anything, even the end of the string
    ('7.3-1', ['7.3~rc7-1~exp1']),
    ('7.3~rc7-1', ['7.3~rc7-1~exp1', '7.3~rc6-1']),
    # an epoch outranks every upstream version
    ('1:1.0-1', ['2.0-1', '9.9.9-9']),
    ('2:0.1', ['1:9.9']),
    # revisions: numeric parts compare as numbers, +bN binNMUs after the upload
    ('1.0-10', ['1.0-9', '1.0-2']),
    ('1.0-1+b1', ['1.0-1']),
    ('1.0-2', ['1.0-1+b1']),
    # Debian's 6.1.x kernels: ABI numbers and point releases
    ('6.1.176-1', ['6.1.76-1', '6.1.17-1']),
])
def test_highest_follows_debian_version_order(expected, others):
    for order in ([expected, *others], [*others, expected]):
        assert pick(*order) == expected


def test_highest_breaks_version_ties_by_name_not_by_list_order():
    rows = [('b-pkg', '1.0', 'sid'), ('a-pkg', '1.0', 'sid')]
    assert apt.highest(rows) == apt.highest(reversed(rows)) == ('b-pkg', '1.0')
    assert apt.highest([]) is None


def test_package_matcher_regex_and_glob():
    rx = apt.package_matcher(r'^linux-image-6\.1\.0-\d+-amd64-unsigned$')
    assert rx('linux-image-6.1.0-50-amd64-unsigned')
    assert not rx('linux-image-6.1.0-50-rt-amd64-unsigned')
    glob = apt.package_matcher('linux-binary-unsigned-7.3-*')
    assert glob('linux-binary-unsigned-7.3-amd64')
    assert not glob('linux-binary-unsigned-7.2-amd64')


INDEXTARGETS = """\
MetaKey: main/binary-amd64/Packages
Filename: /lists/sid_Packages.lz4
Codename: sid
Suite: unstable
Identifier: Packages

MetaKey: main/binary-amd64/Packages
Filename: /lists/experimental_Packages.lz4
Codename: experimental
Suite: experimental
Identifier: Packages
"""

LISTS = {
    '/lists/sid_Packages.lz4': """\
Package: linux-binary-unsigned-7.2.13+deb14-amd64
Source: linux
Version: 7.2.13-1
Description: Linux 7.2 for 64-bit PCs
 A multi-line description.
 .
 Package: a continuation line that looks like a field

Package: fuse3
Version: 3.18.3-1
""",
    '/lists/experimental_Packages.lz4': """\
Package: linux-binary-unsigned-7.3-amd64
Source: linux
Version: 7.3~rc7-1~exp1

Package: linux-binary-unsigned-7.3-rt-amd64
Version: 7.3~rc7-1~exp1
""",
}


@pytest.fixture
def fake_lists(tmp_path, monkeypatch):
    private = apt.PrivateApt(str(tmp_path), 'http://mirror.example/debian',
                             ['sid', 'experimental'])
    monkeypatch.setattr(private, 'apt_get_output', lambda *args: INDEXTARGETS)
    monkeypatch.setattr(apt.PrivateApt, 'cat_file', staticmethod(LISTS.__getitem__))
    return private


def test_packages_reads_deb822_stanzas_per_suite(fake_lists):
    everything = sorted(fake_lists.packages(lambda name: True))
    assert everything == [
        ('fuse3', '3.18.3-1', 'sid'),
        ('linux-binary-unsigned-7.2.13+deb14-amd64', '7.2.13-1', 'sid'),
        ('linux-binary-unsigned-7.3-amd64', '7.3~rc7-1~exp1', 'experimental'),
        ('linux-binary-unsigned-7.3-rt-amd64', '7.3~rc7-1~exp1', 'experimental'),
    ]
    # a suite is named by its codename or its archive name
    assert [r[0] for r in fake_lists.packages(lambda n: True, 'unstable')] == [
        'linux-binary-unsigned-7.2.13+deb14-amd64', 'fuse3']


def test_resolve_the_next_kernel_row(fake_lists):
    """matrix.yaml's `next` row: whatever experimental carries, flavours kept out."""
    got = fake_lists.resolve(r'^linux-binary-unsigned-\d+\.\d+-amd64$', 'experimental')
    assert got == ('linux-binary-unsigned-7.3-amd64', '7.3~rc7-1~exp1')
    with pytest.raises(apt.StageError, match='no package matches'):
        fake_lists.resolve('linux-image-9.9-*', 'sid')
