"""Which fusermount3 libfuse runs, and whether it can do what is asked of it.

libfuse spawns ``FUSERMOUNT_DIR/fusermount3`` (the bindir of its own
install, compiled in) and falls back to ``fusermount3`` on PATH.  The two
need not come from the same libfuse: a libfuse built into a private prefix
without its utilities runs the system's helper.  That matters for
``auto_unmount`` as root: since libfuse 3.15 a privileged process mounts
with mount(2) itself and then starts ``fusermount3 --auto-unmount`` only to
watch for its death; a fusermount3 older than 3.15 rejects that option, and
libfuse does not notice, so the mount would silently stay behind when the
daemon dies.  fuseshim refuses that combination with a clear error instead.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from ._core import libfuse_path, libfuse_version

PROG = 'fusermount3'
# libfuse >= 3.15 as root: mount(2), then `fusermount3 --auto-unmount`
AUTO_UNMOUNT_HELPER_SINCE = (3, 15)


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r'\d+', text)[:3])


@dataclass(frozen=True)
class Helper:
    path: str | None          # None: none found
    version: str | None       # as `fusermount3 -V` prints it
    source: str               # how it was found, for messages
    conf: str | None = None   # the fuse.conf it reads (compiled in: FUSE_CONF)


def _loaded_libfuse() -> str | None:
    """The libfuse3 fuseshim runs: the one its extension is linked with
    (a peer in the same process may map another soname too)."""
    path = libfuse_path()
    if path:
        return os.path.realpath(path)
    try:
        with open('/proc/self/maps') as f:
            for line in f:
                path = line.rstrip('\n').split(None, 5)[-1]
                if os.path.basename(path).startswith('libfuse3.so'):
                    return path
    except OSError:
        pass
    return None


def _string_literal(binary: str, suffix: str) -> str | None:
    """The first NUL-terminated absolute path ending in ``/suffix`` that is
    compiled into ``binary``."""
    try:
        with open(binary, 'rb') as f:
            data = f.read()
    except OSError:
        return None
    m = re.search(rb'\x00(/[\x21-\x7e]*?/' + re.escape(suffix.encode()) + rb')\x00', data)
    return m.group(1).decode() if m else None


def _compiled_in_path(lib: str) -> str | None:
    """FUSERMOUNT_DIR "/" FUSERMOUNT_PROG, a string literal in the library."""
    return _string_literal(lib, PROG)


@functools.lru_cache(maxsize=1)
def helper() -> Helper:
    """The fusermount3 libfuse would run, found as libfuse finds it."""
    lib = _loaded_libfuse()
    compiled = _compiled_in_path(lib) if lib else None
    if compiled and os.access(compiled, os.X_OK):
        path, source = compiled, f'the install path compiled into {lib}'
    else:
        path = shutil.which(PROG)
        source = 'PATH' + (f' ({compiled} does not exist)' if compiled else '')
    if path is None:
        return Helper(None, None, source)
    try:
        out = subprocess.run([path, '-V'], capture_output=True, text=True, timeout=10)
        m = re.search(r'version:\s*(\S+)', out.stdout + out.stderr)
        version = m.group(1) if m else None
    except (OSError, subprocess.TimeoutExpired):
        version = None
    return Helper(path, version, source, _string_literal(path, 'fuse.conf'))


def auto_unmount_problem(privileged: bool) -> str | None:
    """Why ``auto_unmount`` would not work here, or None if it will."""
    h = helper()
    lib = libfuse_version()
    if h.path is None:
        return f'auto_unmount needs {PROG}, and there is none ({h.source})'
    if not privileged or _version_tuple(lib) < AUTO_UNMOUNT_HELPER_SINCE:
        return None          # fusermount3 mounts and watches, any version does that
    if h.version is None:
        return (f'auto_unmount: cannot tell the version of {h.path} (found via {h.source}); '
                f'libfuse {lib} needs one >= 3.15 for its --auto-unmount')
    if _version_tuple(h.version) < AUTO_UNMOUNT_HELPER_SINCE:
        return (f'auto_unmount would silently not happen: libfuse {lib}, running as root, '
                f'mounts itself and asks {PROG} --auto-unmount to watch the daemon, but '
                f'{h.path} (found via {h.source}) is version {h.version}, which has no '
                f'--auto-unmount (needs >= 3.15). Install the {PROG} of the same libfuse '
                f'(its bindir), or mount without auto_unmount')
    return None


def unmount_argv(mountpoint: str) -> list[str]:
    """A lazy unmount through the same helper libfuse uses."""
    return [helper().path or PROG, '-u', '-z', '--', mountpoint]
