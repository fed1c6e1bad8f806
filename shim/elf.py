"""The NEEDED entries of a shared library, read from its ELF file.

fuseshim asks this of the libfuse it runs (is the io_uring transport, which
libfuse links with liburing only when it compiles it in, part of it?) and the
matrix of every build it makes; neither should depend on binutils' readelf
being installed.
"""
from __future__ import annotations

import struct

_DT_NULL, _DT_NEEDED = 0, 1
_SHT_DYNAMIC = 6


class ELFError(ValueError):
    pass


def needed(path: str) -> list[str]:
    """The DT_NEEDED sonames of ``path`` (ELF32/ELF64, either byte order),
    in the order the dynamic linker loads them."""
    with open(path, 'rb') as f:
        data = f.read()
    if data[:4] != b'\x7fELF':
        raise ELFError(f'{path}: not an ELF file')
    is64 = {1: False, 2: True}.get(data[4])
    order = {1: '<', 2: '>'}.get(data[5])
    if is64 is None or order is None:
        raise ELFError(f'{path}: unknown ELF class or byte order')
    if is64:
        shoff, = struct.unpack_from(order + 'Q', data, 0x28)
        shentsize, shnum = struct.unpack_from(order + 'HH', data, 0x3A)
        sh_fmt, dyn_fmt = order + 'IIQQQQIIQQ', order + 'qQ'
    else:
        shoff, = struct.unpack_from(order + 'I', data, 0x20)
        shentsize, shnum = struct.unpack_from(order + 'HH', data, 0x2E)
        sh_fmt, dyn_fmt = order + 'IIIIIIIIII', order + 'iI'
    sections = [struct.unpack_from(sh_fmt, data, shoff + i * shentsize) for i in range(shnum)]
    out = []
    for _name, sh_type, _flags, _addr, offset, size, link, _info, _align, entsize in sections:
        if sh_type != _SHT_DYNAMIC:
            continue
        strtab_offset = sections[link][4]     # sh_link: the .dynstr section
        for pos in range(offset, offset + size, entsize or struct.calcsize(dyn_fmt)):
            tag, value = struct.unpack_from(dyn_fmt, data, pos)
            if tag == _DT_NULL:
                break
            if tag == _DT_NEEDED:
                start = strtab_offset + value
                out.append(data[start:data.index(b'\0', start)].decode())
    return out
