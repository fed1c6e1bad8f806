"""Everything in which the fusepy and mfusepy flavours of the path layer differ.

The shared machinery (frontend.FUSE, operations.PathOperations) reads these
fields and nothing else to tell the two apart; each peer's module makes one
``Flavour`` (fusepy.FLAVOUR, mfusepy.FLAVOUR), since several fields are that
peer's own public types.  A difference not described here is a bug.
"""
from dataclasses import dataclass
from typing import Any, Callable, Optional


def is_set(ops, name) -> bool:
    """fusepy's registration rule: every operation that is not None."""
    return getattr(ops, name, None) is not None


def offered(ops, name) -> bool:
    """mfusepy's registration rule: set, and not one of its base class's
    defaults (marked ``libfuse_ignore``).  Both flavours use it for mfusepy's
    additions (readdir_with_offset, init_with_config)."""
    value = getattr(ops, name, None)
    return value is not None and not getattr(value, 'libfuse_ignore', False)


class FreshDirentStat:
    """fusepy's readdir entries: a bare name has no struct stat; a non-empty
    attrs dict fills a fresh, zeroed one."""

    def for_name(self):
        return None

    def for_attrs(self, attrs):
        if not attrs:
            return None
        if isinstance(attrs, int) and not isinstance(attrs, bool):
            return {'st_mode': attrs}
        return dict(attrs)


class SharedDirentStat:
    """mfusepy's readdir entries: ONE struct stat for a whole listing, of
    which only st_mode and st_ino are copied from each entry's attrs; an entry
    without them keeps the previous entry's values, and a bare name gets the
    struct as it stands."""

    def __init__(self):
        self.st = {'st_mode': 0, 'st_ino': 0}

    def for_name(self):
        return dict(self.st)

    def for_attrs(self, attrs):
        if isinstance(attrs, int) and not isinstance(attrs, bool):
            self.st['st_mode'] = attrs
            return dict(self.st)
        if isinstance(attrs, dict):
            for k in ('st_mode', 'st_ino'):
                if k in attrs:
                    self.st[k] = attrs[k]
            return dict(self.st)
        return None


@dataclass(frozen=True)
class Flavour:
    # -- which operations libfuse would be given, and how they are called
    #: the registration rule: is_set (fusepy) or offered (mfusepy)
    registers: Callable[[Any, str], bool]
    #: init is offered even when the filesystem has none (mfusepy)
    always_offers_init: bool
    #: fusepy: its Operations.__call__; a callable filesystem gets every
    #: operation through its __call__ (one that keeps this one is called by
    #: name directly: the same, one call less).  None (mfusepy): methods are
    #: called directly, and a callable filesystem gets a DeprecationWarning
    call_operator: Optional[Callable]
    #: the filesystem attributes that must all be true to set nullpath_ok
    nullpath_ok_flags: tuple
    #: truncate() gets the file handle when the kernel names one (fusepy)
    truncate_gets_fh: bool
    #: create() gets the open flags when it takes a third argument (mfusepy)
    create_gets_flags: bool
    #: rename() accepts RENAME2 flags (libfuse 3; neither passes them on);
    #: False: they fail with EINVAL, as libfuse 2 lets the kernel do
    rename_flags: bool
    #: plain readdir()'s non-zero offsets are honoured (fusepy); False: they
    #: are dropped with a warning unless the filesystem has readdir_with_offset
    plain_readdir_offsets: bool
    #: how readdir entries' attrs become a struct stat (FreshDirentStat or
    #: SharedDirentStat)
    dirent_stat: type

    # -- the peer's types
    #: what open/create fill (and raw_fi hands over): the peer's fuse_file_info
    file_info_type: type
    #: the high-level options, which init_with_config() may change
    new_config: Callable[[], Any]
    #: init_with_config()'s connection argument
    new_conn_info: Callable[[], Any]

    # -- how FUSE() reports
    #: default of FUSE(errors=...) when None is given: how paths decode
    default_errors: str
    #: RuntimeError(code) when the options are rejected / the mount fails
    option_error: int
    mount_error: int
    #: RuntimeError(code) raised after a clean unmount by SIGINT/SIGTERM/SIGHUP
    #: (libfuse 3's loop error, which mfusepy raises); None: return normally
    signal_error: Optional[int]
