"""Exceptions raised by fuseshim's startup and teardown."""


class FuseshimError(Exception):
    """Base class of fuseshim's own errors."""


class MountError(FuseshimError, OSError):
    """mount(2) or libfuse's mount failed; nothing is left mounted."""


class SyncInitUnavailable(MountError):
    """startup="sync" was asked for but the kernel or the process can't do it."""


class InitError(MountError):
    """The filesystem's init handler raised; the mount was refused or undone."""


class InitTimeout(MountError):
    """The kernel's FUSE_INIT was not answered in time; the connection was aborted."""
