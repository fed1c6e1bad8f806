"""The operation table (shim/operations_table.py) is the one source: every
list derived from it must agree, and its columns must be true.

Checked here: the compiled OP_NAMES / OP_REPLIES, the fuse_lowlevel_ops
members the built _fill_ops() really sets (read back by offset against the
libfuse header's member order), the members includes/libfuse.pxd declares,
the replies _dispatch.pxi's _reply() sends, the Operations methods, the
pyfuse3 layer's forwarded requests, docs/api.md (its generated reference and
its handler table), and the meson probes behind the libfuse version column.
"""
from __future__ import annotations

import ctypes
import importlib.util
import inspect
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import fuseshim
from fuseshim import _core, operations_table as table
from fuseshim.compat import pyfuse3 as pyfuse3_layer
from fuseshim.operations import Operations

REPO = Path(__file__).resolve().parents[1]
ALL_MEMBERS = [m for op in table.OPERATIONS for m in op.members]


def _version(text):
    return tuple(int(p) for p in text.split('.'))


def test_compiled_op_lists_are_the_table():
    assert _core.OP_NAMES == table.OP_NAMES == tuple(op.name for op in table.OPERATIONS)
    assert _core.OP_REPLIES == tuple(op.reply for op in table.OPERATIONS)
    # the fault hook for replies exists exactly where _reply_open answers
    assert _core._FAULT_OPS[1] == tuple(op.name for op in table.OPERATIONS
                                        if op.reply in ('open', 'create'))


# ---------------------------------------------------------------- fuse_lowlevel_ops

def _libfuse_header():
    """The member names of the linked libfuse's struct fuse_lowlevel_ops in
    declaration order (each a function pointer), and the header's version."""
    if shutil.which('pkg-config') is None:
        pytest.skip('pkg-config is not installed: cannot find the libfuse headers')
    flags = subprocess.run(['pkg-config', '--cflags-only-I', 'fuse3'], capture_output=True,
                           text=True).stdout.split()
    dirs = [Path(f[2:]) for f in flags if f.startswith('-I')]
    header = next((d / 'fuse_lowlevel.h' for d in dirs if (d / 'fuse_lowlevel.h').exists()), None)
    if header is None:
        pytest.skip(f'pkg-config names no directory with fuse_lowlevel.h ({flags})')
    text = header.read_text()
    body = re.search(r'struct fuse_lowlevel_ops \{(.*?)\n\};', text, re.S).group(1)
    body = re.sub(r'/\*.*?\*/', '', body, flags=re.S)
    members = []
    for name in re.findall(r'\(\*\s*(\w+)\s*\)', body):
        if name not in members:   # "#if FUSE_USE_VERSION < 35 ... #else" declares ioctl twice
            members.append(name)
    defines = ''.join(p.read_text() for d in dirs for p in d.glob('*.h'))
    major = re.search(r'#define FUSE_MAJOR_VERSION (\d+)', defines).group(1)
    minor = re.search(r'#define FUSE_MINOR_VERSION (\d+)', defines).group(1)
    return members, (int(major), int(minor))


def _filled(implemented, header_members):
    raw = _core._test_only_filled_ops(set(implemented))
    width = ctypes.sizeof(ctypes.c_void_p)
    assert len(raw) >= width * len(header_members)
    return {name for i, name in enumerate(header_members)
            if raw[i * width:(i + 1) * width] != bytes(width)}


def test_fill_ops_sets_exactly_the_members_of_the_table():
    members, _ = _libfuse_header()
    session = set(table.SESSION_CALLBACKS)
    everything = set(table.OP_NAMES) | set(table.OPT_IN_MEMBERS)
    assert _filled(everything, members) == set(ALL_MEMBERS) | session
    assert _filled((), members) == session
    for op in table.OPERATIONS:
        plain = {m for m in op.members if m not in table.OPT_IN_MEMBERS}
        assert _filled({op.name}, members) == plain | session, op.name
        assert _filled({op.name, *table.OPT_IN_MEMBERS}, members) == set(op.members) | session
    # an opt-in member alone (no readdir handler) is never filled
    assert _filled(set(table.OPT_IN_MEMBERS), members) == session


def test_since_column_matches_the_libfuse_header():
    members, version = _libfuse_header()
    for op in table.OPERATIONS:
        for m in op.members:
            assert (m in members) == (_version(op.since) <= version), (op.name, m, version)
    if fuseshim.features()['libfuse_build_version'].split('.')[:2] == [str(v) for v in version]:
        # the header is the one the extension was built with: same struct size
        raw = _core._test_only_filled_ops(set())
        assert len(raw) == ctypes.sizeof(ctypes.c_void_p) * len(members)


def test_libfuse_pxd_declares_the_members_the_table_fills():
    text = (REPO / 'shim' / 'includes' / 'libfuse.pxd').read_text()
    body = re.search(r'struct fuse_lowlevel_ops:\n((?:        .*\n)+)', text).group(1)
    declared = re.findall(r'\(\*(\w+)\)', body)
    assert declared == [*table.SESSION_CALLBACKS, *[m for m in declared
                                                    if m not in table.SESSION_CALLBACKS]]
    assert sorted(declared[2:]) == sorted(ALL_MEMBERS)


def test_versions_newer_than_the_minimum_name_a_meson_probe():
    meson = (REPO / 'meson.build').read_text()
    assert re.search(r"dependency\('fuse3', version: '>=%s'" % re.escape(table.LIBFUSE_MINIMUM),
                     meson)
    probes = set(re.findall(r"HAVE_\w+", meson)) | {
        'HAVE_' + fn.upper() for fn in re.findall(r"'(fuse_\w+)',\s+#", meson)}
    for op in table.OPERATIONS:
        if table.needs_probe(op):
            assert op.probe in probes, op
        else:
            assert op.probe is None, f'{op.name}: libfuse {table.LIBFUSE_MINIMUM} has it'


# ---------------------------------------------------------------- replies

# the calls in _reply()'s branch that answer each reply kind
REPLY_CALLS = {
    'entry': {'fuse_reply_entry'}, 'attr': {'fuse_reply_attr'},
    'readlink': {'fuse_reply_readlink'}, 'open': {'_reply_open'}, 'create': {'_reply_open'},
    'data': {'fuse_reply_buf', '_reply_fd_range'}, 'write': {'fuse_reply_write'},
    'buf': {'fuse_reply_buf'}, 'statfs': {'fuse_reply_statfs'},
    'xattr': {'fuse_reply_xattr', 'fuse_reply_buf'}, 'lock': {'fuse_reply_lock'},
    'bmap': {'fuse_reply_bmap'}, 'ioctl': {'fuse_reply_ioctl'}, 'poll': {'fuse_reply_poll'},
    'lseek': {'fuse_reply_lseek'}, 'none': {'fuse_reply_none'}, 'err': {'fuse_reply_err'},
}


def _reply_branches():
    """{op name: the reply calls of its branch in _dispatch.pxi's _reply()}."""
    src = (REPO / 'shim' / '_dispatch.pxi').read_text()
    body = re.search(r'\ncdef int _reply\(.*?\n(.*?)\n(?=\S)', src, re.S).group(1)
    parts = re.split(r'\n    (if .*|elif .*|else):', body)
    found = {}
    for cond, code in zip(parts[1::2], parts[2::2]):
        calls = set(re.findall(r'\b(fuse_reply_\w+|_reply_open|_reply_fd_range)\(', code))
        if cond == 'else':
            names = [n for n in table.OP_NAMES if n not in found]
        elif '_replies_none(op)' in cond:
            names = [op.name for op in table.OPERATIONS if op.reply == 'none']
        else:
            names = [n.lower() for n in re.findall(r'op == OP_(\w+)', cond)]
        for n in names:
            found[n] = calls
    return found


def test_reply_column_matches_the_replies_dispatch_sends():
    branches = _reply_branches()
    assert set(branches) == set(table.OP_NAMES)
    for op in table.OPERATIONS:
        assert REPLY_CALLS[op.reply] <= branches[op.name], (op.name, op.reply, branches[op.name])
    assert set(REPLY_CALLS) == set(table.REPLY_KINDS)


# ---------------------------------------------------------------- Python layers

def test_operations_class_has_a_method_per_operation():
    methods = {n for n, v in vars(Operations).items()
               if inspect.isfunction(v) and not n.startswith('_')}
    assert methods == set(table.OP_NAMES) | set(table.SESSION_CALLBACKS)


def test_pyfuse3_layer_forwards_only_table_operations():
    forwarded = set(pyfuse3_layer._FORWARDED)
    adapted = {n for n, v in vars(pyfuse3_layer._Adapter).items()
               if inspect.iscoroutinefunction(v) and not n.startswith('_')}
    assert forwarded and adapted
    assert forwarded | adapted <= set(table.OP_NAMES) | set(table.SESSION_CALLBACKS)


# ---------------------------------------------------------------- docs

BEGIN = '<!-- operation reference: generated from shim/operations_table.py -->\n'
END = '<!-- end of the operation reference -->'


def test_docs_operation_reference_is_the_table():
    text = (REPO / 'docs' / 'api.md').read_text()
    assert BEGIN in text and END in text
    shown = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert shown == table.markdown_table(), (
        'docs/api.md differs from operations_table.markdown_table(); paste its output')


def test_docs_handler_table_names_every_operation():
    text = (REPO / 'docs' / 'api.md').read_text()
    section = text.split('| handler | returns |', 1)[1].split('\n\n', 1)[0]
    names = set()
    for row in section.splitlines()[1:]:
        first = row.split('|')[1]
        names |= set(re.findall(r'`(\w+)\(', first)) | set(re.findall(r'`(\w+)`,', first))
    assert names == set(table.OP_NAMES) | set(table.SESSION_CALLBACKS)


# ---------------------------------------------------------------- the generator

def _generator():
    spec = importlib.util.spec_from_file_location('gen_optable', REPO / 'scripts' / 'gen_optable.py')
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    return gen


@pytest.mark.parametrize('change, message', [
    (lambda ops: ops + (ops[0],), 'listed twice'),
    (lambda ops: ops[:1] + (ops[1]._replace(reply='bytes'),) + ops[2:], 'unknown reply kind'),
    (lambda ops: ops + (table.Operation('tmpfile', ('tmpfile',), '3.17', 'create'),),
     'name its meson probe'),
    (lambda ops: ops + (table.Operation('forget2', ('forget_multi',), '3.0', 'none'),),
     'member is listed twice'),
    (lambda ops: ops + (table.Operation('bad-name', ('x',), '3.0', 'err'),), 'no C identifier'),
])
def test_generator_refuses_a_malformed_table(change, message, monkeypatch):
    gen = _generator()
    t = gen.load_table(REPO / 'shim' / 'operations_table.py')
    gen.check(t)
    monkeypatch.setattr(t, 'OPERATIONS', change(t.OPERATIONS))
    with pytest.raises(SystemExit, match=message):
        gen.check(t)


def test_generated_code_is_what_the_build_compiled(tmp_path):
    gen = _generator()
    out = tmp_path / '_optable.pxi'
    gen.main(['gen_optable.py', str(REPO / 'shim' / 'operations_table.py'), str(out)])
    text = out.read_text()
    assert 'OP_NAMES = (%s)' % ''.join(f'{n!r}, ' for n in _core.OP_NAMES) in text
    assert f'OP_COUNT = {len(_core.OP_NAMES)}' in text
