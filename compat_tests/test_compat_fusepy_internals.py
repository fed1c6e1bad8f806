"""In-process checks of fuseshim.compat.fusepy's shortcuts on the request path
(no mount): the per-node path cache, the stat dict conversion and the
inlined Operations.__call__.  The mounted, differential tests against the real
fusepy/mfusepy are in test_compat_fusepy.py; these pin down the cases those
do not reach cheaply (a renamed directory above a cached path, equal values of
other types than the memoised floats)."""
from __future__ import annotations

import decimal
import errno

import pytest

import fuseshim
from fuseshim.compat import fusepy, mfusepy
from fuseshim.compat.fusepy import FUSE_ROOT_ID, _NodeTable, _Stale
from pathfs_driver import PathLayerFront


@pytest.fixture(params=[True, False], ids=['threaded', 'nothreads'])
def nodes(request):
    return _NodeTable(threaded=request.param)


def _make(nodes, parent, name):
    return nodes.find(parent, name).id


def test_cached_paths_follow_a_renamed_directory(nodes):
    d = _make(nodes, FUSE_ROOT_ID, b'd')
    sub = _make(nodes, d, b'sub')
    f = _make(nodes, sub, b'f')
    assert nodes.path(f) == b'/d/sub/f'
    assert nodes.path(sub, b'x') == b'/d/sub/x'
    nodes.rename(FUSE_ROOT_ID, b'd', FUSE_ROOT_ID, b'e')
    assert nodes.path(f) == b'/e/sub/f'
    assert nodes.path(sub, b'x') == b'/e/sub/x'


def test_cached_paths_follow_an_exchange(nodes):
    a = _make(nodes, FUSE_ROOT_ID, b'a')
    b = _make(nodes, FUSE_ROOT_ID, b'b')
    fa = _make(nodes, a, b'f')
    assert nodes.path(fa) == b'/a/f'
    nodes.exchange(FUSE_ROOT_ID, b'a', FUSE_ROOT_ID, b'b')
    assert nodes.path(fa) == b'/b/f'
    assert nodes.path(b) == b'/a'


def test_cached_path_of_an_unlinked_node_is_stale(nodes):
    d = _make(nodes, FUSE_ROOT_ID, b'd')
    f = _make(nodes, d, b'f')
    assert nodes.path(f) == b'/d/f'
    nodes.remove(d, b'f')          # f keeps its lookup: the node stays, nameless
    with pytest.raises(_Stale):
        nodes.path(f)
    assert nodes.path(FUSE_ROOT_ID) == b'/'
    assert nodes.path(FUSE_ROOT_ID, b'n') == b'/n'


def test_unknown_node_is_estale(nodes):
    with pytest.raises(fuseshim.FUSEError) as ei:
        nodes.path(12345)
    assert ei.value.errno == errno.ESTALE


def test_find_counts_lookups(nodes):
    n1 = nodes.find(FUSE_ROOT_ID, b'x')
    n2 = nodes.find(FUSE_ROOT_ID, b'x')
    assert n1 is n2 and n1.nlookup == 2
    nodes.forget(n1.id, 2)
    assert nodes.by_name.get((FUSE_ROOT_ID, b'x')) is None


def _layer(ops, use_ns=False, mod=fusepy):
    front = PathLayerFront(mod.FUSE, ops)
    front.use_ns = use_ns
    front._registered = {'getattr'}     # whatever ops defines
    return fusepy._PathOps(front, threaded=False)


def _seconds_to_ns_reference(val):
    # fusepy's set_st_attrs: tv_sec = int(val); tv_nsec = int((val - tv_sec) * 1E9)
    sec = int(val)
    return sec * 10 ** 9 + int((val - sec) * 1E9)


@pytest.mark.parametrize('t', [1_700_000_000.123456, 0.5, 1_600_000_000, -1.25, -0.999999999,
                               1_700_000_000.999999999, 9.1e9, 9.21e9, -9.21e9, 9_210_000_000,
                               True])
def test_times_convert_as_fusepy(t):
    """Floats and ints are converted in C, the rest (bools, sizes near the
    int64-of-ns limit) in Python: every way gives fusepy's own result."""
    layer = _layer(fusepy.Operations())
    e = layer._fill({'st_mtime': t, 'st_atime': t, 'st_ctime': t})
    assert e.st_mtime_ns == e.st_atime_ns == e.st_ctime_ns == _seconds_to_ns_reference(t)


def test_times_convert_as_fusepy_random():
    import random
    rnd = random.Random(5)
    layer = _layer(fusepy.Operations())
    for _ in range(20000):
        t = rnd.uniform(-2e9, 4e9) if rnd.random() < 0.9 else rnd.uniform(-10, 10)
        assert layer._fill({'st_mtime': t}).st_mtime_ns == _seconds_to_ns_reference(t), t


@pytest.mark.parametrize('t', [float('nan'), float('inf')])
def test_times_that_fusepy_cannot_convert_fail_alike(t):
    layer = _layer(fusepy.Operations())
    with pytest.raises((ValueError, OverflowError)):
        _seconds_to_ns_reference(t)
    with pytest.raises((ValueError, OverflowError)):
        layer._fill({'st_mtime': t})


def test_decimal_times_fail_as_in_fusepy():
    layer = _layer(fusepy.Operations())
    with pytest.raises(TypeError):   # Decimal - int, then * float: fusepy fails too
        layer._fill({'st_mtime': decimal.Decimal('1.5')})


def test_use_ns_times_are_taken_as_ns():
    layer = _layer(fusepy.Operations(), use_ns=True)
    assert layer._fill({'st_mtime': 1_700_000_000_123_456_789}).st_mtime_ns == \
        1_700_000_000_123_456_789


def test_int_fields_reject_floats_and_take_index_and_bool():
    class Index:
        def __index__(self):
            return 7

    layer = _layer(fusepy.Operations())
    e = layer._fill({'st_size': Index(), 'st_nlink': True, 'st_mode': 0o100644,
                     'st_dev': 99, 'unknown': object()})
    assert (e.st_size, e.st_nlink, e.st_mode) == (7, 1, 0o100644)
    assert (e.st_blksize, e.st_ino) == (0, 0)          # a zeroed struct stat
    with pytest.raises(TypeError):
        layer._fill({'st_size': 1.0})
    with pytest.raises(TypeError):
        layer._fill(None)


def test_inlined_call_gives_efault_for_a_missing_operation():
    layer = _layer(fusepy.Operations())
    with pytest.raises(fusepy.FuseOSError) as ei:
        layer._op('no_such_operation', '/')
    assert ei.value.errno == errno.EFAULT
    assert layer._op('getattr', '/')['st_nlink'] == 2


def test_overridden_call_is_still_used():
    seen = []

    class Ops(fusepy.Operations):
        def __call__(self, op, *args):
            seen.append(op)
            return super().__call__(op, *args)

    layer = _layer(Ops())
    assert layer._op('getattr', '/')['st_nlink'] == 2
    assert seen == ['getattr']
    # ...also on the hottest requests: no call by name around __call__
    assert layer._ops_by_name is None
    assert layer.getattr(FUSE_ROOT_ID, None).st_nlink == 2
    assert seen == ['getattr', 'getattr']


def test_mfusepy_ignores_call():
    class Ops(mfusepy.Operations):
        def __call__(self, op, *args):
            raise AssertionError('mfusepy does not dispatch through __call__')

    ops = Ops()
    layer = _layer(ops, mod=mfusepy)
    assert layer._op('getattr', '/')['st_nlink'] == 2
    # LOOKUP and GETATTR call getattr by name without _op
    assert layer._ops_by_name is ops
    assert layer.getattr(FUSE_ROOT_ID, None).st_nlink == 2
