"""Mount options: validated up front (so a bad option never half-mounts),
then rendered for libfuse (classic path) or for mount(2) (sync path)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

# Generic VFS flags: option -> (MS_* bit, set?)
_MS = {'rdonly': 1, 'nosuid': 2, 'nodev': 4, 'noexec': 8, 'synchronous': 16,
       'dirsync': 128, 'noatime': 1024, 'nodiratime': 2048, 'relatime': 1 << 21,
       'strictatime': 1 << 24, 'lazytime': 1 << 25}
VFS_FLAGS = {
    'ro': ('rdonly', True), 'rw': ('rdonly', False),
    'nosuid': ('nosuid', True), 'suid': ('nosuid', False),
    'nodev': ('nodev', True), 'dev': ('nodev', False),
    'noexec': ('noexec', True), 'exec': ('noexec', False),
    'sync': ('synchronous', True), 'async': ('synchronous', False),
    'dirsync': ('dirsync', True),
    'noatime': ('noatime', True), 'atime': ('noatime', False),
    'nodiratime': ('nodiratime', True), 'diratime': ('nodiratime', False),
    'relatime': ('relatime', True), 'norelatime': ('relatime', False),
    'strictatime': ('strictatime', True), 'nostrictatime': ('strictatime', False),
    'lazytime': ('lazytime', True), 'nolazytime': ('lazytime', False),
}
# Options the FUSE kernel module itself parses (passed in mount(2) data).
KERNEL_FLAGS = {'allow_other', 'default_permissions'}
KERNEL_VALUES = {'max_read', 'context', 'fscontext', 'defcontext', 'rootcontext'}
# Options only libfuse understands.
LIBFUSE_FLAGS = {'allow_root', 'auto_unmount', 'debug'}
LIBFUSE_VALUES = {'fsname', 'subtype'}
INT_VALUES = {'max_read'}


@dataclass
class MountOptions:
    """The parsed form of ``options`` given to fuseshim.mount()."""
    given: tuple = ()
    vfs: dict = field(default_factory=dict)        # MS_* name -> bool
    kernel: list = field(default_factory=list)     # "allow_other", "max_read=N", ...
    fsname: str = 'fuseshim'
    subtype: str | None = None
    allow_root: bool = False
    auto_unmount: bool = False
    debug: bool = False

    @property
    def needs_fusermount(self) -> bool:
        """auto_unmount is implemented by fusermount3's watchdog process."""
        return self.auto_unmount

    def libfuse_argv(self) -> list[str]:
        """argv for fuse_session_new(): every option, libfuse validates again."""
        argv = ['fuseshim']
        if self.debug:
            argv.append('-d')
        opts = [o for o in self.given if o != 'debug']
        if not any(o.startswith('fsname=') for o in opts):
            opts.append('fsname=' + self.fsname)
        argv += ['-o', ','.join(opts)]
        return argv

    def mount_flags(self) -> int:
        flags = _MS['nosuid'] | _MS['nodev']  # libfuse's defaults
        for name, on in self.vfs.items():
            flags = flags | _MS[name] if on else flags & ~_MS[name]
        return flags

    def mount_data(self, fd: int, root_mode: int) -> str:
        parts = [f'fd={fd}', f'rootmode={root_mode:o}',
                 f'user_id={os.getuid()}', f'group_id={os.getgid()}']
        parts += self.kernel
        if self.allow_root and 'allow_other' not in self.kernel:
            parts.append('allow_other')  # libfuse then filters callers itself
        return ','.join(parts)

    def fstype(self) -> str:
        return 'fuse.' + self.subtype if self.subtype else 'fuse'


def parse_options(options) -> MountOptions:
    """Validate ``options`` (an iterable of "name" / "name=value" strings, or
    one comma-separated string) and raise ValueError naming each bad one."""
    if isinstance(options, str):
        options = [o for o in options.split(',') if o]
    opts = tuple(str(o).strip() for o in options)
    mo = MountOptions(given=opts)
    errors = []
    for opt in opts:
        name, eq, value = opt.partition('=')
        if not name:
            errors.append(f'{opt!r}: empty option name')
        elif ',' in opt:
            errors.append(f'{opt!r}: give options as separate items, not comma-joined')
        elif name in VFS_FLAGS and not eq:
            flag, on = VFS_FLAGS[name]
            if flag in mo.vfs and mo.vfs[flag] != on:
                errors.append(f'{opt!r} contradicts an earlier option')
            mo.vfs[flag] = on
        elif name in KERNEL_FLAGS and not eq:
            mo.kernel.append(name)
        elif name in KERNEL_VALUES and eq:
            if name in INT_VALUES and not value.isdigit():
                errors.append(f'{opt!r}: {name} needs a whole number')
            mo.kernel.append(opt)
        elif name in LIBFUSE_FLAGS and not eq:
            setattr(mo, name, True)
        elif name in LIBFUSE_VALUES and eq:
            if not value or any(c in value for c in ' \t\n\\'):
                errors.append(f'{opt!r}: {name} must be a non-empty word')
            setattr(mo, name, value)
        elif name in VFS_FLAGS | dict.fromkeys(KERNEL_FLAGS | LIBFUSE_FLAGS):
            errors.append(f'{opt!r}: {name} takes no value')
        elif name in KERNEL_VALUES | LIBFUSE_VALUES:
            errors.append(f'{opt!r}: {name} needs a value ({name}=...)')
        else:
            errors.append(f'{opt!r}: unknown mount option')
    if mo.allow_root and 'allow_other' in mo.kernel:
        errors.append("'allow_root' and 'allow_other' are mutually exclusive")
    if errors:
        raise ValueError('bad mount options: ' + '; '.join(errors))
    return mo
