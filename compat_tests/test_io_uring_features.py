"""features() reports FUSE over io_uring: compiled into libfuse, offered by the kernel.

The matrix's io_uring cell (libfuse 3.18.3 built with liburing) checks the
"compiled in" answer for real; here the answers are checked against
independent readings (binutils' readelf, the sysfs file) for the libfuse and
kernel this suite runs on."""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys

import pytest

import fuseshim
from fuseshim import elf, kernel
from fuseshim._core import libfuse_path

needs_readelf = pytest.mark.skipif(shutil.which('readelf') is None,
                                   reason='readelf (binutils) gives the independent answer')


def readelf_needed(path):
    out = subprocess.run(['readelf', '-d', path], capture_output=True, text=True,
                         check=True).stdout
    return re.findall(r'\(NEEDED\)\s+Shared library: \[([^\]]+)\]', out)


@needs_readelf
def test_elf_needed_agrees_with_readelf():
    core = fuseshim._core.__file__
    # (the interpreter itself, not a pyenv shim script in front of it)
    paths = [libfuse_path(), core, os.path.realpath(sys.executable), '/bin/ls']
    paths += glob.glob('/usr/lib/x86_64-linux-gnu/libc.so.6')
    for path in paths:
        assert elf.needed(path) == readelf_needed(path), path
    assert any(n.startswith('libfuse3.so') for n in elf.needed(core))


def test_elf_needed_refuses_what_is_not_elf(tmp_path):
    f = tmp_path / 'not-elf.so'
    f.write_bytes(b'#!/bin/sh\n')
    with pytest.raises(elf.ELFError, match='not an ELF file'):
        elf.needed(str(f))


@needs_readelf
def test_features_io_uring_transport_matches_libfuse_needed():
    compiled_in = any(n.startswith('liburing.so') for n in readelf_needed(libfuse_path()))
    feats = fuseshim.features()
    assert feats['io_uring_transport'] is compiled_in
    assert fuseshim.libfuse_io_uring() is compiled_in


@pytest.mark.parametrize('content, expected', [('Y\n', True), ('N\n', False), (None, None)])
def test_fuse_io_uring_enabled_reads_the_module_parameter(tmp_path, content, expected):
    param = tmp_path / 'enable_uring'
    if content is not None:
        param.write_text(content)
    assert kernel.fuse_io_uring_enabled(str(param)) is expected


def test_features_io_uring_kernel_is_this_kernels_parameter():
    try:
        with open(kernel.URING_PARAMETER) as f:
            want = f.read().strip() == 'Y'
    except FileNotFoundError:
        want = None
    assert fuseshim.features()['io_uring_kernel'] is want
