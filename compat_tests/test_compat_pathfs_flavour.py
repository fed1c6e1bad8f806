"""The fusepy/mfusepy flavours of the path layer (fuseshim.compat._pathfs):
each peer's ``_FLAVOUR`` is the one place their differences live.

- every field of Flavour is read by the shared code (a field nobody reads
  describes nothing), and nothing else of the peers' modules is;
- the two descriptions differ in every field (a value both share is no
  difference: it belongs in the shared code);
- the peers' FUSE classes carry no behaviour of their own but the flavour
  bound to them (mfusepy's keeps only its signature-bearing __init__);
- a field changed in a copy of a flavour changes what the shared code does.
No mount here; the mounted differential tests are test_compat_fusepy.py."""
from __future__ import annotations

import dataclasses
import errno
import re
from pathlib import Path

import pytest

import fuseshim
from fuseshim.compat import _pathfs, fusepy, mfusepy
from fuseshim.compat._pathfs import frontend
from fuseshim.compat._pathfs.flavour import Flavour

from pathfs_driver import PathLayerFront

PATHFS = Path(_pathfs.__file__).parent
FIELDS = [f.name for f in dataclasses.fields(Flavour)]


def _shared_sources() -> str:
    return '\n'.join(p.read_text() for p in sorted(PATHFS.glob('*.py')) if p.name != 'flavour.py')


def test_flavours_are_frozen_descriptions():
    for flavour in (fusepy._FLAVOUR, mfusepy._FLAVOUR):
        assert isinstance(flavour, Flavour)
        with pytest.raises(dataclasses.FrozenInstanceError):
            flavour.rename_flags = not flavour.rename_flags
    assert fusepy.FUSE._flavour is fusepy._FLAVOUR
    assert mfusepy.FUSE._flavour is mfusepy._FLAVOUR


@pytest.mark.parametrize('field', FIELDS)
def test_every_field_is_read_by_the_shared_code(field):
    assert re.search(r'\b(?:_flavour|flavour)\.' + field + r'\b', _shared_sources()), \
        f'Flavour.{field} is read nowhere in fuseshim/compat/_pathfs'


def test_the_shared_code_reads_no_flavour_attribute_of_the_classes():
    """The old hooks (_rename_flags, _mount_error, ...) are gone: the shared
    code reaches the peers' differences through _flavour only."""
    old = ('_flavor', '_rename_flags', '_default_errors', '_signal_error',
           '_option_error', '_mount_error', '_file_info_type', '_config_type', '_check_callable',
           '_create_call', '_DirentStats')
    src = _shared_sources()
    assert [name for name in old if re.search(r'\.' + name + r'\b', src)] == []


@pytest.mark.parametrize('field', FIELDS)
def test_the_flavours_differ_in_every_field(field):
    assert getattr(fusepy._FLAVOUR, field) != getattr(mfusepy._FLAVOUR, field)


def test_peer_classes_hold_only_the_bound_flavour():
    bound = {'_flavour', '_dispatch', '_dispatcher', '_call_method', '_by_name'}
    own = {n for n in vars(mfusepy.FUSE) if n not in ('__module__', '__qualname__', '__doc__',
                                                      '__dict__', '__weakref__')}
    assert own <= bound | {'__init__'}, own - bound - {'__init__'}
    assert fusepy.FUSE is frontend.FUSE        # fusepy's FUSE is the front end itself
    assert mfusepy.FUSE.__mro__[1:] == (frontend.FUSE, object)


_Fuse = PathLayerFront     # the attributes of FUSE that PathOperations reads


def _flavoured(base, **changes):
    """A FUSE class like ``base`` with some flavour fields changed."""
    cls = type('FUSE', (base,), {})
    frontend.bind_flavour(cls, dataclasses.replace(base._flavour, **changes))
    return cls


class _Renames(fusepy.Operations):
    def __init__(self):
        self.renamed = []

    def getattr(self, path, fh=None):
        return {'st_mode': 0o100644, 'st_nlink': 1}

    def rename(self, old, new):
        self.renamed.append((old, new))
        return 0


@pytest.mark.parametrize('accepts', [False, True])
def test_a_changed_field_changes_the_behaviour(accepts):
    """rename_flags decides, alone, whether RENAME2 flags are refused."""
    cls = _flavoured(fusepy.FUSE, rename_flags=accepts)
    ops = _Renames()
    f = _Fuse(cls, ops)
    layer = fusepy._PathOps(f, threaded=False)
    layer.lookup(fusepy.FUSE_ROOT_ID, b'a', None)
    if accepts:
        layer.rename(fusepy.FUSE_ROOT_ID, b'a', fusepy.FUSE_ROOT_ID, b'b', 1, None)
        assert ops.renamed == [('/a', '/b')]
    else:
        with pytest.raises(fuseshim.FUSEError) as ei:
            layer.rename(fusepy.FUSE_ROOT_ID, b'a', fusepy.FUSE_ROOT_ID, b'b', 1, None)
        assert ei.value.errno == errno.EINVAL and ops.renamed == []


def test_the_call_convention_follows_the_flavour():
    """call_operator: fusepy calls a callable filesystem through __call__,
    mfusepy never does."""
    seen = []

    class Ops(mfusepy.Operations):
        def __call__(self, op, *args):
            seen.append(op)
            return getattr(self, op)(*args)

    ops = Ops()
    for cls, expected in ((fusepy.FUSE, ['getattr']), (mfusepy.FUSE, []),
                          (_flavoured(fusepy.FUSE, call_operator=None), [])):
        seen.clear()
        f = _Fuse(cls, ops)
        assert f._dispatcher()('getattr', '/')['st_nlink'] == 2
        assert seen == expected, cls


class _Syncs(fusepy.Operations):
    def __init__(self, implemented=True):
        self.synced = []
        if not implemented:
            self.fsync = self.fsyncdir = None      # fusepy: None means "not offered"

    def getattr(self, path, fh=None):
        return {'st_mode': 0o40755 if path == '/d' else 0o100644, 'st_nlink': 1}

    def opendir(self, path):
        return 7

    def fsync(self, path, datasync, fh):
        self.synced.append(('fsync', path, datasync, fh))
        return 0

    def fsyncdir(self, path, datasync, fh):
        self.synced.append(('fsyncdir', path, datasync, fh))
        return 0


@pytest.mark.parametrize('implemented', [True, False])
def test_fsync_and_fsyncdir_call_the_filesystem_by_path(implemented):
    """fsync and fsyncdir (one helper in the layer) hand the filesystem the
    path, fusepy's int datasync and its own handle; ENOSYS when the
    filesystem does not offer them."""
    from fuseshim.compat._pathfs.handles import OpenFile
    ops = _Syncs(implemented)
    layer = fusepy._PathOps(_Fuse(fusepy.FUSE, ops), threaded=False)
    f_ino = layer.lookup(fusepy.FUSE_ROOT_ID, b'f', None).st_ino
    d_ino = layer.lookup(fusepy.FUSE_ROOT_ID, b'd', None).st_ino
    fi = fusepy.fuse_file_info()
    fi.fh = 5
    fh = layer.handles.add_file(OpenFile(f_ino, 5, fi))
    dh = layer.opendir(d_ino, None)
    if not implemented:
        for call in (lambda: layer.fsync(fh, True), lambda: layer.fsyncdir(dh, False)):
            with pytest.raises(fuseshim.FUSEError) as ei:
                call()
            assert ei.value.errno == errno.ENOSYS
        return
    layer.fsync(fh, True)
    layer.fsyncdir(dh, False)
    assert ops.synced == [('fsync', '/f', 1, 5), ('fsyncdir', '/d', 0, 7)]
