"""The matrix's io_uring row: a variant of a libfuse release built with the
FUSE-over-io_uring transport, judged on whether the transport is really in.

The real build runs in the full preset (3.18.3-uring/host/*: the report's
io_uring column says "compiled in" there and "not compiled in" for 3.18.3);
these tests check the schema, the expectation, the judging and the build
options without building anything."""
from __future__ import annotations

import textwrap

import pytest

import matrix_extra

matrix_extra.require()

from fuseshim.matrix import libfuse, model, schema  # noqa: E402
from fuseshim.matrix.util import StageError  # noqa: E402

BASE = '''
version: 1
libfuse:
  - {version: "3.18.3", source: apt-source, debian: {version: 3.18.3-1, suite: sid}}
  - {version: "3.18.3-uring", source: apt-source, io_uring: true,
     debian: {version: 3.18.3-1, suite: sid}}
kernels: [{name: host}]
startup: [auto]
'''


def load(text):
    return schema.check(schema.load_yaml_text(textwrap.dedent(text)))


def test_a_variant_row_builds_its_upstream_release():
    cfg = load(BASE)
    plain, uring = model.all_cells(cfg, host_release='6.18.44')
    assert (plain.id, uring.id) == ('3.18.3/host/auto', '3.18.3-uring/host/auto')
    assert uring.expect.libfuse_version == '3.18.3'     # what libfuse_version() says
    assert (plain.expect.io_uring, uring.expect.io_uring) == (False, True)
    assert schema.upstream('3.18.3-uring') == '3.18.3'


@pytest.mark.parametrize('row, message', [
    ('{version: "3.18.3-URING", source: apt-source, debian: {version: 3.18.3-1, suite: sid}}',
     'is not a version like'),
    ('{version: "3.14.0", source: system, io_uring: true}',
     'only a libfuse built from source'),
    ('{version: "3.18.3-uring", source: apt-source, debian: {version: 3.17.2-3, suite: sid}}',
     'does not belong to upstream version'),
])
def test_variant_rows_are_checked(row, message):
    with pytest.raises(schema.MatrixError, match=message):
        load(f'''
        version: 1
        libfuse: [{row}]
        kernels: [{{name: host}}]
        startup: [auto]
        ''')


def judged(io_uring_seen):
    cfg = load(BASE)
    cell = model.all_cells(cfg, host_release='6.18.44')[1]
    cell.result = {'soname': cell.expect.soname, 'probe': {
        'libfuse_runtime_version': '3.18.3', 'libfuse_build_version': '3.18.3',
        'startup_path': 'sync', 'build_features': {}, 'problems': [],
        'io_uring': {'libfuse': io_uring_seen, 'kernel': False}}}
    return model.judge(cell)


def test_judge_fails_a_row_whose_transport_is_missing():
    assert judged(True) == ('pass', [])
    status, problems = judged(False)
    assert status == 'fail'
    assert problems == ['io_uring transport not in libfuse, expected in']


def options_for(tmp_path, row, has_option):
    debian = schema.Debian(version=schema.upstream(row['version']) + '-1', suite='sid')
    entry = schema.LibfuseEntry(source='apt-source', debian=debian, **row)
    (tmp_path / 'meson_options.txt').write_text(
        "option('utils', type: 'boolean', value: true)\n"
        + ("option('enable-io-uring', type: 'boolean', value: true,\n" if has_option else ''))
    return libfuse.uring_options(entry, str(tmp_path))


def test_build_options_say_it_either_way(tmp_path):
    # 3.18 turns the transport on by itself when liburing is installed:
    # a row that does not ask for it says false
    assert options_for(tmp_path, {'version': '3.18.3'}, True) == ['-Denable-io-uring=false']
    assert options_for(tmp_path, {'version': '3.18.3-uring', 'io_uring': True}, True) == [
        '-Denable-io-uring=true']
    assert options_for(tmp_path, {'version': '3.14.0'}, False) == []
    with pytest.raises(StageError, match='has no io_uring transport'):
        options_for(tmp_path, {'version': '3.17.2-uring', 'io_uring': True}, False)
