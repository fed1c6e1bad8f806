"""The one table of the FUSE low-level requests fuseshim serves.

Everything else that lists the operations is derived from this table:

- at build time, ``gen_optable.py`` (run by meson) writes ``_optable.pxi``:
  the ``Op`` enum the C callbacks index handlers with, ``OP_NAMES``,
  ``OP_REPLIES`` and ``_fill_ops()``, which points libfuse's
  ``fuse_lowlevel_ops`` members at the ``ll_<member>`` callbacks;
- at import time, ``Operations`` (operations.py) and the pyfuse3 layer read
  ``OP_NAMES``;
- docs/api.md's operation reference is rendered by ``markdown_table()``.

compat_tests/test_operations_table.py fails when a derived list disagrees
(including the members the built ``_fill_ops()`` really fills, read back
against the libfuse header, and the reply each operation gets in
``_dispatch.pxi``).

This module imports nothing from fuseshim: the build runs it on its own.
"""
from __future__ import annotations

from typing import NamedTuple


class Operation(NamedTuple):
    #: the ``Operations`` method; the row's position is its ``Op`` value
    name: str
    #: the ``fuse_lowlevel_ops`` members fuseshim fills for it, each with the
    #: callback ``ll_<member>`` (``forget`` also takes FORGET batches,
    #: ``write`` spliced data, ``readdir`` READDIRPLUS: see ``OPT_IN_MEMBERS``)
    members: tuple[str, ...]
    #: the first libfuse 3 release whose ``fuse_lowlevel_ops`` has every member
    since: str
    #: how a successful request is answered: a key of ``REPLY_KINDS``
    reply: str
    #: for members newer than the oldest libfuse fuseshim builds against
    #: (``LIBFUSE_MINIMUM``): the meson probe (``HAVE_...`` in meson.build and
    #: fuseshim_config.h) that compiles it in only where libfuse has it
    probe: str | None = None


#: the oldest libfuse fuseshim builds against (meson.build's dependency('fuse3'))
LIBFUSE_MINIMUM = '3.10'

#: what answers a successful request of each reply kind
REPLY_KINDS = {
    'entry': 'fuse_reply_entry',
    'attr': 'fuse_reply_attr',
    'readlink': 'fuse_reply_readlink',
    'open': 'fuse_reply_open',
    'create': 'fuse_reply_create',
    'data': 'fuse_reply_buf, or fuse_reply_data for an FdRange',
    'write': 'fuse_reply_write',
    'buf': 'fuse_reply_buf',
    'statfs': 'fuse_reply_statfs',
    'xattr': 'fuse_reply_xattr (size probe) or fuse_reply_buf',
    'lock': 'fuse_reply_lock',
    'bmap': 'fuse_reply_bmap',
    'ioctl': 'fuse_reply_ioctl',
    'poll': 'fuse_reply_poll',
    'lseek': 'fuse_reply_lseek',
    'err': 'fuse_reply_err(0)',
    'none': 'fuse_reply_none (nobody waits for an answer)',
}

_ = Operation
OPERATIONS: tuple[Operation, ...] = (
    _('lookup', ('lookup',), '3.0', 'entry'),
    _('forget', ('forget', 'forget_multi'), '3.0', 'none'),
    _('getattr', ('getattr',), '3.0', 'attr'),
    _('setattr', ('setattr',), '3.0', 'attr'),
    _('readlink', ('readlink',), '3.0', 'readlink'),
    _('mknod', ('mknod',), '3.0', 'entry'),
    _('mkdir', ('mkdir',), '3.0', 'entry'),
    _('unlink', ('unlink',), '3.0', 'err'),
    _('rmdir', ('rmdir',), '3.0', 'err'),
    _('symlink', ('symlink',), '3.0', 'entry'),
    _('rename', ('rename',), '3.0', 'err'),
    _('link', ('link',), '3.0', 'entry'),
    _('open', ('open',), '3.0', 'open'),
    _('read', ('read',), '3.0', 'data'),
    _('write', ('write', 'write_buf'), '3.0', 'write'),
    _('flush', ('flush',), '3.0', 'err'),
    _('release', ('release',), '3.0', 'err'),
    _('fsync', ('fsync',), '3.0', 'err'),
    _('opendir', ('opendir',), '3.0', 'open'),
    _('readdir', ('readdir', 'readdirplus'), '3.0', 'buf'),
    _('releasedir', ('releasedir',), '3.0', 'err'),
    _('fsyncdir', ('fsyncdir',), '3.0', 'err'),
    _('statfs', ('statfs',), '3.0', 'statfs'),
    _('setxattr', ('setxattr',), '3.0', 'err'),
    _('getxattr', ('getxattr',), '3.0', 'xattr'),
    _('listxattr', ('listxattr',), '3.0', 'xattr'),
    _('removexattr', ('removexattr',), '3.0', 'err'),
    _('access', ('access',), '3.0', 'err'),
    _('create', ('create',), '3.0', 'create'),
    _('getlk', ('getlk',), '3.0', 'lock'),
    _('setlk', ('setlk',), '3.0', 'err'),
    _('bmap', ('bmap',), '3.0', 'bmap'),
    _('ioctl', ('ioctl',), '3.0', 'ioctl'),
    _('poll', ('poll',), '3.0', 'poll'),
    _('retrieve_reply', ('retrieve_reply',), '3.0', 'none'),
    _('flock', ('flock',), '3.0', 'err'),
    _('fallocate', ('fallocate',), '3.0', 'err'),
    _('copy_file_range', ('copy_file_range',), '3.4', 'write'),
    _('lseek', ('lseek',), '3.8', 'lseek'),
)
del _

#: members filled only when the filesystem also answers the pseudo-operation
#: of the same name (``implemented_operations()`` adds "readdirplus" for a
#: readdir with ``enable_readdirplus``)
OPT_IN_MEMBERS = ('readdirplus',)

#: the session callbacks every filesystem gets (``Operations.init/destroy``),
#: outside the table: they are no requests and have no ``Op`` value
SESSION_CALLBACKS = ('init', 'destroy')

OP_NAMES: tuple[str, ...] = tuple(op.name for op in OPERATIONS)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split('.'))


def needs_probe(op: Operation) -> bool:
    """True when ``op``'s members are newer than ``LIBFUSE_MINIMUM``."""
    return _version(op.since) > _version(LIBFUSE_MINIMUM)


def markdown_table() -> str:
    """docs/api.md's operation reference (a test keeps the two equal)."""
    rows = ['| operation | `fuse_lowlevel_ops` members | since libfuse | success reply |',
            '|---|---|---|---|']
    for op in OPERATIONS:
        members = ', '.join(f'`{m}`' + (' (opt-in)' if m in OPT_IN_MEMBERS else '')
                            for m in op.members)
        since = op.since + (f' (`{op.probe}`)' if op.probe else '')
        rows.append(f'| `{op.name}` | {members} | {since} | {op.reply}: {REPLY_KINDS[op.reply]} |')
    return '\n'.join(rows) + '\n'
