"""Quick tests of the migration matrix runner (fuseshim.matrix): the schema
check of matrix.yaml (malformed files give clear errors), the expectation
logic, cell selection, judging, reports and the small helpers.  Nothing here
mounts, builds or boots anything; the matrix itself runs with
``python -m fuseshim.matrix`` (docs/matrix.md)."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
import zipfile

import pytest

import matrix_extra

matrix_extra.require()
import yaml  # noqa: E402

from fuseshim.matrix import model, report, schema  # noqa: E402
from fuseshim.matrix.__main__ import main as matrix_main  # noqa: E402
from fuseshim.matrix.apt import system_mirror  # noqa: E402
from fuseshim.matrix.build import build_ident, check_wheel_files  # noqa: E402
from fuseshim.matrix.libfuse import LibfusePrefix  # noqa: E402
from fuseshim.matrix.runner import _abs_args, _tests_result, pytest_summary  # noqa: E402
from fuseshim.matrix.vm import build_initramfs, module_depends  # noqa: E402
from matrix_samples import MINIMAL  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MATRIX = os.path.join(REPO, 'matrix.yaml')


def load(text):
    return schema.check(schema.load_yaml_text(textwrap.dedent(text)))


def errors_of(text) -> str:
    with pytest.raises(schema.MatrixError) as ei:
        load(text)
    return str(ei.value)


# ---------------------------------------------------------------- the real file

def test_repository_matrix_is_valid():
    cfg = schema.load(MATRIX)
    versions = [e.version for e in cfg.libfuse]
    assert versions == ['3.10.3', '3.14.0', '3.17.2', '3.18.3', '3.18.3-uring']
    assert [k.name for k in cfg.kernels] == ['host', '5.10', '6.1', '6.12', '7.2', 'next']
    assert cfg.startup == ['auto', 'classic']
    assert {'ci', 'full'} <= set(cfg.presets)


def test_configuration_is_typed_frozen_and_defaulted():
    cfg = load(CLIENTS)
    assert isinstance(cfg, schema.Matrix) and isinstance(cfg.libfuse[0], schema.LibfuseEntry)
    with pytest.raises(ValueError, match='frozen'):
        cfg.libfuse[0].version = '3.99.0'
    # the defaults live in the models
    assert (cfg.timeouts.cell, cfg.vm.memory, cfg.busybox.package, cfg.tests.vm_path) == \
        (900, 2048, 'busybox-static', '@path')
    assert cfg.libfuse[0].debian.package == 'fuse3' and cfg.kernels[0].type == 'host'
    # what the JSON report records of a client: the file's own keys ("from", not "from_")
    assert cfg.clients[0].model_dump(by_alias=True)['tests'] == {
        'from': 'sdist', 'args': ['tests/'], 'scenario': None}


def test_a_validator_names_the_line_of_the_key_it_is_about():
    msg = errors_of(MINIMAL.replace('{version: 3.14.0-4, suite: bookworm}',
                                    '{version: 3.10.3-2,\n      suite: bookworm}'))
    assert "line 4: libfuse[0].debian.version: Debian version '3.10.3-2' does not belong" in msg


def test_ci_preset_covers_every_libfuse_on_host_and_an_old_and_a_new_vm_kernel():
    cfg = schema.load(MATRIX)
    cells = model.select(model.all_cells(cfg, host_release='6.18.44'),
                         cfg.presets['ci'].cells)
    host = {c.libfuse.version for c in cells if c.kernel.name == 'host'}
    # every release; the io_uring variant of 3.18.3 is in the full preset only
    assert host == {e.version for e in cfg.libfuse if not e.io_uring}
    vm_paths = {c.kernel.name: c.expect.startup_path for c in cells
                if c.is_vm and c.startup == 'auto'}
    assert 'sync' in vm_paths.values() and 'classic' in vm_paths.values()
    assert cfg.presets['ci'].packaging is True


# ---------------------------------------------------------------- malformed files

def test_not_a_mapping():
    assert 'must be a mapping' in str(pytest.raises(schema.MatrixError, schema.check,
                                                    ['a', 'list']).value)


def test_invalid_yaml_names_line_and_column():
    msg = errors_of('version: 1\nlibfuse: [\n  - {version: "3.14.0"\n')
    assert 'not valid YAML' in msg and 'line' in msg


def test_missing_required_keys_are_all_listed():
    msg = errors_of('version: 1\n')
    for key in ('libfuse', 'kernels', 'startup'):
        assert f"missing required key '{key}'" in msg
    assert '3 problems' in msg


def test_unknown_key_suggests_the_close_one():
    msg = errors_of(MINIMAL + 'startups: [auto]\n')
    assert "startups: unknown key (did you mean 'startup'?)" in msg


def test_unquoted_version_float_is_explained_with_its_line():
    text = MINIMAL.replace('"3.14.0"', '3.10')
    msg = errors_of(text)
    assert 'libfuse[0].version' in msg
    assert 'quote' in msg and '3.10 becomes 3.1' in msg
    assert 'line 4:' in msg


def test_duplicate_key_is_an_error():
    msg = errors_of(MINIMAL + 'startup: [auto]\n')
    assert "duplicate key 'startup'" in msg


def test_bad_enum_values():
    msg = errors_of(MINIMAL.replace('startup: [auto, classic]', 'startup: [auto, fast]')
                    .replace('source: apt-source, debian: {version: 3.14.0-4',
                             'source: tarball, debian: {version: 3.14.0-4'))
    assert "startup[1]: 'fast' is not one of 'auto', 'sync', 'classic'" in msg
    assert "libfuse[0].source: 'tarball' is not one of" in msg


def test_debian_version_must_belong_to_the_upstream_version():
    msg = errors_of(MINIMAL.replace('3.14.0-4', '3.10.3-2'))
    assert "does not belong to upstream version '3.14.0'" in msg


def test_vm_kernel_needs_image_and_host_kernel_fetches_nothing():
    msg = errors_of(MINIMAL.replace('suite: sid, image: "linux-binary-7.2*"', 'suite: sid')
                    .replace('{name: host}', '{name: host, image: "x"}'))
    assert "kernels[2]: a vm kernel needs 'image'" in msg
    assert 'kernels[0].image: a host kernel is the running one' in msg


def test_duplicate_axis_values():
    msg = errors_of(MINIMAL.replace('{name: "7.2", version: "7.2"', '{name: "6.12", version: "7.2"'))
    assert "'6.12' is listed twice" in msg


def test_rules_must_name_known_values_and_failures_need_reasons():
    msg = errors_of(MINIMAL + textwrap.dedent('''
        rules:
          exclude: [{kernel: "6.2"}]
          expect:
            - {libfuse: "3.14.0", outcome: fail}
            - {kernel: host}
        '''))
    assert "rules.exclude[0].kernel: '6.2' matches no kernel (known: host, 6.12, 7.2)" in msg
    assert 'rules.expect[0]: an expected failure needs a "reason"' in msg
    assert 'rules.expect[1]: says nothing' in msg


def test_type_errors_say_what_was_found():
    msg = errors_of(MINIMAL + 'timeouts: {cell: fast}\nvm: {memory: -1}\n')
    assert "timeouts.cell: expected a number, got a string ('fast')" in msg
    assert 'vm.memory: must be greater than 0, not -1' in msg


def test_preset_cells_are_checked():
    msg = errors_of(MINIMAL + 'presets:\n  ci: {cells: [{kernal: host}]}\n')
    assert "presets.ci.cells[0].kernal: unknown key (did you mean 'kernel'?)" in msg


def test_load_reports_unreadable_file(tmp_path):
    with pytest.raises(schema.MatrixError, match='cannot read it'):
        schema.load(tmp_path / 'missing.yaml')


# ---------------------------------------------------------------- expectations

@pytest.fixture
def cfg():
    return load(MINIMAL)


def cell(cells, cid):
    return next(c for c in cells if c.id == cid)


def test_versions_compare_numerically():
    assert model.version_ge('6.18', '6.18') and model.version_ge('6.18.44-fc-v669', '6.18')
    assert not model.version_ge('6.12.117+deb13-amd64', '6.18')
    assert model.version_ge('7.2', '6.18') and model.version_ge('3.17.2', '3.17')
    assert not model.version_ge('3.17.2', '3.17.3')


def test_startup_path_follows_the_kernel(cfg):
    cells = model.all_cells(cfg, host_release='6.18.44-fc')
    assert cell(cells, '3.14.0/host/auto').expect.startup_path == 'sync'
    assert cell(cells, '3.14.0/6.12/auto').expect.startup_path == 'classic'
    assert cell(cells, '3.14.0/7.2/auto').expect.startup_path == 'sync'
    assert all(c.expect.startup_path == 'classic' for c in cells if c.startup == 'classic')
    old_host = model.all_cells(cfg, host_release='6.12.5')
    assert cell(old_host, '3.14.0/host/auto').expect.startup_path == 'classic'


def test_sync_startup_on_old_kernel_expects_unavailable():
    assert model.expected_path('sync', False) == 'unavailable'
    assert model.expected_path('sync', True) == 'sync'


def test_soname_and_features_follow_the_libfuse_version(cfg):
    cells = model.all_cells(cfg, host_release='6.18')
    old, new = cell(cells, '3.14.0/host/auto'), cell(cells, '3.17.2/host/auto')
    assert old.expect.soname == 'libfuse3.so.3' and new.expect.soname == 'libfuse3.so.4'
    assert old.expect.features == {'passthrough': False, 'reply_statx': False}
    assert new.expect.features == {'passthrough': True, 'reply_statx': False}


def test_entry_feature_override():
    cfg = load(MINIMAL.replace('debian: {version: 3.17.2-3, suite: trixie}}',
                               'debian: {version: 3.17.2-3, suite: trixie}, '
                               'features: {reply_statx: true}}'))
    c = cell(model.all_cells(cfg, host_release='6.18'), '3.17.2/host/auto')
    assert c.expect.features['reply_statx'] is True


def test_rules_exclude_include_and_expect():
    cfg = load(MINIMAL + textwrap.dedent('''
        rules:
          exclude: [{kernel: "7.2"}]
          include: [{kernel: "7.2", libfuse: "3.17*", startup: auto}]
          expect:
            - {kernel: "6.12", startup: auto, outcome: fail, reason: known bug}
            - {kernel: host, libfuse: "3.14.0", startup_path: classic}
        '''))
    cells = model.all_cells(cfg, host_release='6.18')
    ids = {c.id for c in cells}
    assert '3.17.2/7.2/auto' in ids
    assert '3.17.2/7.2/classic' not in ids and '3.14.0/7.2/auto' not in ids
    assert cell(cells, '3.14.0/6.12/auto').expect.outcome == 'fail'
    assert cell(cells, '3.14.0/6.12/auto').expect.reason == 'known bug'
    assert cell(cells, '3.14.0/host/auto').expect.startup_path == 'classic'
    assert len(cells) == 2 * 2 * 2 + 1


def test_kernel_sync_init_flag_overrides_the_version():
    cfg = load(MINIMAL.replace('image: "linux-image-6.12*"}',
                               'image: "linux-image-6.12*", sync_init: true}'))
    assert cell(model.all_cells(cfg, host_release='6.18'),
                '3.14.0/6.12/auto').expect.startup_path == 'sync'


# ---------------------------------------------------------------- selection

def test_cell_patterns(cfg):
    cells = model.all_cells(cfg, host_release='6.18')
    av = cfg.axis_values()
    pick = lambda text: sorted(c.id for c in model.select(  # noqa: E731
        cells, model.parse_cell_patterns(text, av)))
    assert pick('3.17*/7.2') == ['3.17.2/7.2/auto', '3.17.2/7.2/classic']
    assert pick('kernel=host+startup=classic') == ['3.14.0/host/classic',
                                                   '3.17.2/host/classic']
    assert len(pick('host')) == 4 and len(pick('classic')) == 6
    with pytest.raises(schema.MatrixError, match='unknown axis'):
        model.parse_cell_patterns('kern=host')


def test_keyword_expression(cfg):
    cells = model.all_cells(cfg, host_release='6.18')
    got = model.select(cells, keyword='host and not (classic or 3.17)')
    assert [c.id for c in got] == ['3.14.0/host/auto']
    with pytest.raises(schema.MatrixError):
        model.keyword_filter('host and')


# ---------------------------------------------------------------- judging

def _judged(cfg, cid, probe=None, **result):
    c = cell(model.all_cells(cfg, host_release='6.18'), cid)
    if probe is not None:
        base = {'libfuse_runtime_version': c.libfuse.version,
                'libfuse_build_version': c.libfuse.version,
                'startup_path': c.expect.startup_path, 'build_features': c.expect.features,
                'problems': []}
        base.update(probe)
        c.result['probe'] = base
    c.result.update(result)
    c.result.setdefault('soname', c.expect.soname)
    return model.judge(c)


def test_judge_pass_and_mismatches(cfg):
    assert _judged(cfg, '3.17.2/7.2/auto', {}) == ('pass', [])
    st, probs = _judged(cfg, '3.17.2/7.2/auto', {'startup_path': 'classic',
                                                 'startup_reason': 'ENOTTY'})
    assert st == 'fail' and "startup path 'classic', expected 'sync' (ENOTTY)" in probs
    st, probs = _judged(cfg, '3.17.2/host/auto', {'libfuse_runtime_version': '3.14.0'},
                        soname='libfuse3.so.3')
    assert st == 'fail'
    assert "NEEDED 'libfuse3.so.3', expected 'libfuse3.so.4'" in probs
    assert any('libfuse_version()' in p for p in probs)
    st, probs = _judged(cfg, '3.14.0/host/auto', {'build_features': {'passthrough': True}})
    assert "feature 'passthrough' is True, expected False" in probs
    assert any("'reply_statx' is not reported" in p for p in probs)
    st, _ = _judged(cfg, '3.14.0/host/auto', {}, tests={'status': 'failed', 'summary': '1 failed'})
    assert st == 'fail'
    assert _judged(cfg, '3.14.0/host/auto', None, error='boom') == ('error', ['boom'])


def test_judge_known_failures():
    cfg = load(MINIMAL + 'rules:\n  expect: [{kernel: "6.12", outcome: fail, reason: bug 7}]\n')
    assert _judged(cfg, '3.14.0/6.12/auto', {'startup_path': 'sync'})[0] == 'xfail'
    st, probs = _judged(cfg, '3.14.0/6.12/auto', {})
    assert st == 'xpass' and 'remove the rules.expect entry' in probs[0]
    assert 'xpass' in model.UNEXPECTED and 'xfail' not in model.UNEXPECTED


# ---------------------------------------------------------------- helpers

def test_system_mirror_reads_deb822_and_skips_security(tmp_path):
    (tmp_path / 'sources.list.d').mkdir()
    (tmp_path / 'sources.list.d' / 'debian.sources').write_text(textwrap.dedent('''
        Types: deb
        URIs: http://mirror.example/debian-security
        Suites: bookworm-security
        Components: main

        Types: deb
        URIs: http://mirror.example/debian/
        Suites: bookworm bookworm-updates
        Components: main
        '''))
    assert system_mirror(str(tmp_path)) == 'http://mirror.example/debian'


def test_module_dependencies_from_modinfo():
    blob = b'\x7fELF...\0license=GPL\0depends=netfs,9pnet\0intree=Y\0'
    assert module_depends(blob) == ['netfs', '9pnet']
    assert module_depends(b'\0depends=\0') == []


def test_initramfs_is_a_newc_cpio(tmp_path):
    bb = tmp_path / 'busybox'
    bb.write_bytes(b'#!fake busybox')
    ko = tmp_path / 'fuse.ko'
    ko.write_bytes(b'\x7fELF module')
    out = tmp_path / 'initrd.gz'
    build_initramfs(str(out), str(bb), [('fuse', str(ko))])
    data = gzip.decompress(out.read_bytes())
    names, pos = [], 0
    while True:
        assert data[pos:pos + 6] == b'070701'
        fields = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        size, namesize = fields[6], fields[11]
        name = data[pos + 110: pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        body = data[pos:pos + size]
        pos += size + (-size % 4)
        if name == 'TRAILER!!!':
            break
        names.append(name)
        if name == 'modules.order':
            assert body == b'fuse\n'
        if name == 'dev/console':
            assert (fields[9], fields[10]) == (5, 1)
    assert {'init', 'bin/busybox', 'lib/modules/fuse.ko', 'dev/console'} <= set(names)


def _wheel(tmp_path, names):
    path = tmp_path / 'fuseshim-0.1.0-cp311-cp311-linux_x86_64.whl'
    with zipfile.ZipFile(path, 'w') as z:
        for n in names:
            z.writestr(n, 'x')
    return str(path)


def test_the_wheel_must_carry_the_report_template(tmp_path):
    """The packaging stage checks every module and template of the sdist
    against the wheel: a template left out of shim/meson.build is named."""
    import io
    import tarfile

    from fuseshim.matrix.build import sdist_modules, uncommitted_modules
    sdist = tmp_path / 'fuseshim-0.1.0.tar.gz'
    with tarfile.open(sdist, 'w:gz') as t:
        for name in ('shim/__init__.py', 'shim/_core.pyx', 'shim/meson.build',
                     'shim/matrix/report.py', 'shim/matrix/templates/report.html.j2',
                     'compat_tests/test_x.py'):
            data = b'x'
            info = tarfile.TarInfo(f'fuseshim-0.1.0/{name}')
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    modules = sdist_modules(str(sdist))
    assert modules == ['__init__.py', 'matrix/report.py', 'matrix/templates/report.html.j2']
    wheel = ['fuseshim/__init__.py', 'fuseshim/_core.pyi', 'fuseshim/py.typed',
             'fuseshim/_core.cpython-311-x86_64-linux-gnu.so', 'fuseshim/matrix/report.py',
             '_fuseshim_provide.py', 'fuseshim-provide.pth']
    assert check_wheel_files(_wheel(tmp_path, wheel), modules)[1] == [
        'fuseshim/matrix/templates/report.html.j2 is in the sdist but not in the wheel '
        '(missing from shim/meson.build install lists?)']
    wheel.append('fuseshim/matrix/templates/report.html.j2')
    assert check_wheel_files(_wheel(tmp_path, wheel), modules)[1] == []
    # this work tree's template is a package file too (named when git HEAD lacks it)
    assert 'matrix/templates/report.html.j2' in uncommitted_modules(REPO, ['__init__.py'])


def test_wheel_file_list_check(tmp_path):
    good = ['fuseshim/__init__.py', 'fuseshim/_core.pyi', 'fuseshim/py.typed',
            'fuseshim/_core.cpython-311-x86_64-linux-gnu.so', 'fuseshim/mount.py',
            'fuseshim-0.1.0.dist-info/METADATA', '_fuseshim_provide.py', 'fuseshim-provide.pth']
    modules = ['__init__.py', 'mount.py', '_fuseshim_provide.py']
    names, problems = check_wheel_files(_wheel(tmp_path, good), modules)
    assert problems == [] and names == sorted(good)
    bad = [n for n in good if not n.endswith(('.pyi', 'mount.py', '.pth'))] + [
        'fuseshim/_core.pyx', 'fuseshim/__pycache__/x.pyc', 'tests/test_x.py']
    _, problems = check_wheel_files(_wheel(tmp_path, bad), modules)
    text = '\n'.join(problems)
    assert 'fuseshim-provide.pth missing' in text
    assert 'fuseshim/_core.pyi missing' in text
    assert 'fuseshim/mount.py is in the sdist but not in the wheel' in text
    assert 'stray file fuseshim/_core.pyx' in text
    assert 'stray top-level entry tests/test_x.py' in text


def test_junit_results_are_counted(tmp_path):
    junit = tmp_path / 'junit.xml'
    junit.write_text('<testsuites><testsuite tests="4" failures="1" errors="0" skipped="1">'
                     '<testcase classname="t" name="a"/><testcase classname="t" name="b">'
                     '<failure/></testcase></testsuite></testsuites>')
    r = _tests_result(1, str(junit), '== 1 failed, 2 passed, 1 skipped in 1s ==\n')
    assert (r['status'], r['passed'], r['failures'], r['skipped']) == ('failed', 2, 1, 1)
    assert r['failed_tests'] == ['t::b'] and r['summary'].startswith('1 failed')
    assert _tests_result(5, str(tmp_path / 'none.xml'), '')['status'] == 'no-tests'
    assert _tests_result(None, str(tmp_path / 'none.xml'), '')['status'] == 'timed-out'


@pytest.mark.parametrize('output, summary', [
    # what the 3.18.3 packaging stage printed: asyncio's complaint after pytest's line
    ('FAILED t.py::test_x\n====== 1 failed, 610 passed, 30 skipped in 402.13s (0:06:42) ======\n'
     'Task was destroyed but it is pending!\ntask: <Task cancelling name=\'Task-7\'>\n',
     '1 failed, 610 passed, 30 skipped in 402.13s (0:06:42)'),
    ('..\n2 passed in 0.31s\n', '2 passed in 0.31s'),
    ('==== no tests ran in 0.01s ====\n', 'no tests ran in 0.01s'),
    ('= 3 passed, 1 warning in 1.00s =\n\n\n', '3 passed, 1 warning in 1.00s'),
    ('Traceback (most recent call last):\nImportError: no module\n',
     "(pytest printed no result line; its last line: 'ImportError: no module')"),
    ('', ''),
])
def test_report_quotes_pytests_own_result_line(output, summary):
    assert pytest_summary(output) == summary


def test_relative_pytest_arguments_become_absolute(tmp_path):
    (tmp_path / 'tests').mkdir()
    args = _abs_args(['--ignore=tests/x.py', '-p', 'no:cacheprovider', 'tests', '-x'],
                     str(tmp_path))
    assert args == [f'--ignore={tmp_path}/tests/x.py', '-p', 'no:cacheprovider',
                    f'{tmp_path}/tests', '-x']


# ---------------------------------------------------------------- reports and CLI

def test_reports_are_written(tmp_path, cfg):
    cells = model.all_cells(cfg, host_release='6.18')[:3]
    for i, c in enumerate(cells):
        c.result.update({'status': ['pass', 'fail', 'error'][i], 'judgement': [] if i == 0
                         else ['startup path mismatch'], 'elapsed': 1.0,
                         'probe': {'startup_path': c.expect.startup_path}})

    class FakeRunner:
        packaging = {'3.14.0': {'status': 'pass', 'log': 'logs/p.log', 'wheel': 'w.whl'}}
        builds, kernels, prep_errors = {}, {}, {}

    summary = {'unexpected': [cells[1].id, cells[2].id], 'timings': {'total': 12.0},
               'leftover_mounts': []}
    paths = report.write_all(str(tmp_path), cfg, cells, FakeRunner(), summary, {'preset': 't'})
    html = open(paths['html']).read()
    assert '<table>' in html and 'td class="fail"' in html and cells[0].slug in html
    assert json.load(open(paths['json']))['summary']['unexpected'] == summary['unexpected']
    suite = ET.parse(paths['junit']).getroot().find('testsuite')
    assert (suite.get('tests'), suite.get('failures'), suite.get('errors')) == ('4', '1', '1')
    md = open(paths['markdown']).read()
    assert '| **3.14.0** |' in md and 'Unexpected results: 2' in md
    table = report.terminal_table(cells, FakeRunner.packaging)
    assert 'PASS sync' in table and 'packaging' in table


def test_install_prereqs_pip_installs_the_matrix_extra(monkeypatch, capsys):
    """--install-prereqs installs pyproject.toml's "matrix" extra (the one
    list; a copy in __main__ had drifted: it lacked pydantic), as the
    installed fuseshim's metadata declares it."""
    import importlib.metadata
    import subprocess
    import sys
    import tomllib

    from fuseshim.matrix import __main__ as cli, prereqs
    with open(os.path.join(REPO, 'pyproject.toml'), 'rb') as f:
        extras = tomllib.load(f)['project']['optional-dependencies']
    assert 'Jinja2>=3.0' in extras['matrix'] and 'pydantic>=2.5' in extras['matrix']
    # the metadata as meson-python writes it (Requires-Dist with an extra marker)
    metadata = [f'{r}; extra == "{name}"' for name, reqs in extras.items() for r in reqs]
    monkeypatch.setattr(importlib.metadata, 'requires',
                        lambda dist: metadata if dist == 'fuseshim' else None)
    ran = []
    monkeypatch.setattr(prereqs.subprocess, 'run',
                        lambda cmd, env: ran.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    assert cli.main(['--install-prereqs']) == 0
    assert ran[0][:2] == ['apt-get', 'install'] and 'qemu-system-x86' in ran[0]
    assert ran[1] == [sys.executable, '-m', 'pip', 'install', *extras['matrix']]
    assert 'Jinja2>=3.0' in capsys.readouterr().out


def test_cli_check_list_and_errors(tmp_path, capsys):
    assert matrix_main(['--matrix', MATRIX, '--check']) == 0
    assert 'OK' in capsys.readouterr().out
    assert matrix_main(['--matrix', MATRIX, '--list', '--preset', 'ci']) == 0
    out = capsys.readouterr().out
    assert '3.10.3/host/auto' in out and 'expect path=' in out
    bad = tmp_path / 'bad.yaml'
    bad.write_text(MINIMAL.replace('startup: [auto, classic]', 'startup: auto'))
    assert matrix_main(['--matrix', str(bad), '--check']) == 2
    assert 'startup: expected a list' in capsys.readouterr().err
    assert matrix_main(['--matrix', MATRIX, '--preset', 'nope', '--list']) == 2
    assert matrix_main(['--matrix', MATRIX, '--cells', 'kernel=9.9', '--list']) == 2


def test_sitecustomize_drops_editable_finders_without_asking_them():
    import sys
    from fuseshim.matrix.build import SITECUSTOMIZE

    def finder(module, answer):
        cls = type('Finder', (), {'__module__': module})
        f = cls()
        f.asked = False

        def find_spec(name, path, target=None):
            f.asked = True
            if isinstance(answer, Exception):
                raise answer
            return answer if name == 'fuseshim' else None
        f.find_spec = find_spec
        return f

    ours = finder('_fuseshim_editable_loader', PermissionError('rebuild as nobody'))
    other_broken = finder('_other_editable_loader', PermissionError('x'))
    other_unrelated = finder('_other_editable_loader', None)
    plain = finder('somewhere', object())
    saved = list(sys.meta_path)
    sys.meta_path[:0] = [ours, other_broken, other_unrelated, plain]
    try:
        exec(compile(SITECUSTOMIZE, 'sitecustomize.py', 'exec'), {})
        left = list(sys.meta_path)
    finally:
        sys.meta_path[:] = saved
    assert ours not in left and not ours.asked
    assert other_broken not in left
    assert other_unrelated in left and plain in left and not plain.asked


# ---------------------------------------------------------------- clients stage

CLIENTS = MINIMAL + '''
clients:
  - name: demo
    project: demo-fs
    version: "1.2.0"
    peer: fusepy
    module: fuse
    apt: [libfuse2]
    pip: [pytest]
    env: {DEMO: "1"}
    tests: {from: sdist, args: [tests/]}
presets:
  only-clients: {clients: all, tests: false}
'''


def test_repository_clients_are_the_issues_projects():
    cfg = schema.load(MATRIX)
    pins = {e.name: (e.project, e.version, e.peer, e.module) for e in cfg.clients}
    assert pins == {'pyfuse3': ('pyfuse3', '3.5.0', 'pyfuse3', 'pyfuse3'),
                    'mfusepy': ('mfusepy', '3.1.1', 'mfusepy', 'mfusepy'),
                    'borg1.4': ('borgbackup', '1.4.5', 'pyfuse3', 'pyfuse3'),
                    'borg2.0': ('borgbackup', '2.0.0b23', 'mfusepy', 'mfusepy'),
                    'ratarmount': ('ratarmount', '1.3.0', 'mfusepy', 'mfusepy'),
                    'fsspec': ('fsspec', '2026.9.0', 'fusepy', 'fuse')}
    ci = set(cfg.presets['ci'].clients)
    assert {'pyfuse3', 'mfusepy', 'ratarmount', 'fsspec'} <= ci
    assert set(cfg.presets['clients'].clients) == set(pins)


def test_schema_peers_are_the_ones_the_import_hook_provides():
    import _fuseshim_provide
    assert set(schema.PEER_MODULES) == set(_fuseshim_provide.PROVIDES)
    for peer, modules in schema.PEER_MODULES.items():
        assert set(modules) == set(_fuseshim_provide.PROVIDES[peer])


def test_clients_section_is_read():
    cfg = load(CLIENTS)
    [e] = cfg.clients
    assert (e.name, e.project, e.version, e.peer, e.module) == \
        ('demo', 'demo-fs', '1.2.0', 'fusepy', 'fuse')
    assert e.tests.model_dump(by_alias=True) == {'from': 'sdist', 'args': ['tests/'],
                                                 'scenario': None}
    assert e.env == {'DEMO': '1'} and e.timeout == schema.CLIENT_DEFAULT_TIMEOUT
    assert cfg.presets['only-clients'].clients == ['demo']
    assert cfg.presets['only-clients'].tests.path is None


@pytest.mark.parametrize('change, message', [
    (('version: "1.2.0"', 'version: 1.20'), 'line 16: clients[0].version: 1.2 is a number'),
    (('version: "1.2.0"', 'version: ">=1.2"'), "line 16: clients[0].version: '>=1.2' is not one "
                                               'pinned release'),
    (('peer: fusepy', 'peer: llfuse'), "line 17: clients[0].peer: 'llfuse' is not one of"),
    (('module: fuse', 'module: mfusepy'), "line 18: clients[0].module: 'mfusepy' is not a "
                                          'module fuseshim provides for fusepy (fuse)'),
    (('    project: demo-fs\n', ''), "clients[0]: missing required key 'project'"),
    (('    apt: [libfuse2]', '    apts: [libfuse2]'), "line 19: clients[0].apts: unknown key "
                                                     "(did you mean 'apt'?)"),
    (('{from: sdist, args: [tests/]}', '{from: sdist}'),
     'line 22: clients[0].tests: from: sdist needs "args"'),
    (('{from: sdist, args: [tests/]}', '{from: scenario, scenario: nosuch}'),
     "clients[0].tests.scenario: no scenario 'nosuch'"),
    (('{from: sdist, args: [tests/]}', '{from: git, args: [x]}'),
     "clients[0].tests.from: 'git' is not one of"),
    (('env: {DEMO: "1"}', 'env: [DEMO]'), 'line 21: clients[0].env: expected a mapping'),
    (('{clients: all, tests: false}', '{clients: [demo, other]}'),
     "presets.only-clients.clients: 'other' is no client of the file (known: demo"),
])
def test_clients_errors_name_the_line(change, message):
    text = errors_of(CLIENTS.replace(*change))
    assert message in text, text


def test_duplicate_client_and_known_failures_need_reasons():
    dup = CLIENTS.replace('presets:', textwrap.indent(textwrap.dedent('''\
        - name: demo
          project: x
          version: "1"
          peer: pyfuse3
          module: pyfuse3
          tests: {from: installed, args: [--pyargs, x]}
          known_failures: [{test: "t::*"}]
        '''), '  ') + 'presets:')
    text = errors_of(dup)
    assert "clients[1].name: 'demo' is listed twice" in text
    assert "clients[1].known_failures[0]: missing required key 'reason'" in text


def _run(outcomes, side='real', error=None):
    from fuseshim.matrix import clients
    return {'side': side, 'outcomes': outcomes, 'counts': clients.count(outcomes),
            **({'error': error} if error else {})}


def test_client_comparison_is_per_test_id():
    from fuseshim.matrix.clients import compare
    real = _run({'a': 'passed', 'b': 'passed', 'c': 'failed', 'd': 'skipped', 'e': 'error'})
    same_counts = _run({'a': 'passed', 'b': 'failed', 'c': 'passed', 'd': 'skipped',
                        'e': 'error'}, 'fuseshim')
    v = compare(real, same_counts)
    # equal counts, but b passes only with the real peer: a regression
    assert v['status'] == 'fail' and [r['test'] for r in v['regressions']] == ['b']
    assert v['only_fuseshim_passed'] == ['c'] and v['both_failed'] == ['e']
    # failing on both sides is reported, not counted against fuseshim
    ok = compare(real, _run({'a': 'passed', 'b': 'passed', 'c': 'failed', 'd': 'skipped',
                             'e': 'failed'}, 'fuseshim'))
    assert ok['status'] == 'pass' and ok['both_failed'] == ['c', 'e']
    # a test skipped or missing on fuseshim's side is not a pass
    v = compare(real, _run({'a': 'skipped'}, 'fuseshim'))
    assert {(r['test'], r['fuseshim']) for r in v['regressions']} == {('a', 'skipped'),
                                                                        ('b', 'missing')}


def test_client_known_failures_and_errors():
    from fuseshim.matrix.clients import compare
    real = _run({'t::x': 'passed', 't::y': 'passed'})
    known = [schema.KnownFailure(test='t::x', reason='documented')]
    v = compare(real, _run({'t::x': 'failed', 't::y': 'passed'}, 'fuseshim'), known)
    assert v['status'] == 'xfail' and v['known'][0]['reason'] == 'documented'
    v = compare(real, _run({'t::x': 'passed', 't::y': 'passed'}, 'fuseshim'), known)
    assert v['status'] == 'xpass' and 'remove it' in v['problems'][0]
    assert compare(real, _run({}, 'fuseshim', error='pytest exit 4'))['status'] == 'error'
    # a real run that passed nothing cannot vouch for anything
    nothing = compare(_run({'t::x': 'failed'}), _run({'t::x': 'failed'}, 'fuseshim'))
    assert nothing['status'] == 'error' and 'passed no test' in nothing['problems'][0]


def test_client_junit_ids_keep_the_worst_outcome(tmp_path):
    from fuseshim.matrix.clients import junit_outcomes
    junit = tmp_path / 'junit.xml'
    junit.write_text('<testsuites><testsuite>'
                     '<testcase classname="tests.test_a" name="test_ok"/>'
                     '<testcase classname="tests.test_a" name="test_td"/>'
                     '<testcase classname="tests.test_a" name="test_td"><error/></testcase>'
                     '<testcase classname="" name="tests.test_examples"><error/></testcase>'
                     '<testcase classname="t" name="s"><skipped/></testcase>'
                     '<testcase classname="t" name="f"><failure/></testcase>'
                     '</testsuite></testsuites>')
    assert junit_outcomes(str(junit)) == {
        'tests.test_a::test_ok': 'passed', 'tests.test_a::test_td': 'error',
        'tests.test_examples': 'error', 't::s': 'skipped', 't::f': 'failed'}
    assert junit_outcomes(str(tmp_path / 'missing.xml')) == {}


def test_client_runs_use_the_cells_build_through_the_import_hook(tmp_path):
    from fuseshim.matrix import clients
    cfg = load(CLIENTS)
    [e] = cfg.clients
    real = clients.run_env(e, str(tmp_path / 'r'))
    assert 'FUSESHIM_PROVIDES' not in real and 'PYTHONPATH' not in real
    # short: multiprocessing's AF_UNIX sockets go there
    assert real['DEMO'] == '1' and len(real['TMPDIR']) < 50 and os.path.isdir(real['TMPDIR'])
    clients.remove_tmpdir(real['TMPDIR'])
    assert not os.path.exists(real['TMPDIR'])
    shim = clients.run_env(e, str(tmp_path / 's'), {
        'site': '/c/site', 'shims': '/c/shims', 'startup': 'classic',
        'libfuse_env': {'LD_LIBRARY_PATH': '/c/lib', 'PATH': '/elsewhere'}})
    assert (shim['FUSESHIM_PROVIDES'], shim['FUSESHIM_CLIENT_SITE'], shim['PYTHONPATH'],
            shim['FUSESHIM_STARTUP'], shim['LD_LIBRARY_PATH']) == \
        ('fusepy', '/c/site', '/c/shims', 'classic', '/c/lib')
    clients.remove_tmpdir(shim['TMPDIR'])
    cmd = clients.pytest_command(e, '/venv/bin/python', str(tmp_path))
    assert cmd[:4] == ['/venv/bin/python', '-m', 'pytest', 'tests/']
    assert '--continue-on-collection-errors' in cmd and f'--junitxml={tmp_path}/junit.xml' in cmd


def test_client_sitecustomize_runs_the_builds_pth(tmp_path):
    """The cell build becomes a site directory: its .pth files run, as from an
    installed wheel (that is how fuseshim-provide.pth installs the hook)."""
    import subprocess
    import sys
    from fuseshim.matrix import clients
    site = tmp_path / 'site'
    site.mkdir()
    (site / 'marker_mod.py').write_text('VALUE = 42\n')
    (site / 'marker.pth').write_text('import os; os.environ["MARKER_PTH"] = "ran"\n')
    shims = clients.write_sitecustomize(str(tmp_path / 'shims'))
    env = dict(os.environ, PYTHONPATH=shims, FUSESHIM_CLIENT_SITE=str(site))
    out = subprocess.run([sys.executable, '-S', '-c', 'import site; site.main(); '
                          'import os, marker_mod; print(os.environ.get("MARKER_PTH"), '
                          'marker_mod.VALUE)'], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ['ran', '42'], out.stderr


def test_client_reports(tmp_path, cfg):
    cells = model.all_cells(cfg, host_release='6.18')[:1]
    cells[0].result.update({'status': 'pass', 'judgement': [], 'elapsed': 1.0, 'probe': {}})
    real = _run({'t::a': 'passed', 't::b': 'passed', 't::c': 'failed'})
    real.update(elapsed=2.0)

    class FakeRunner:
        packaging, builds, kernels, prep_errors = {}, {}, {}, {}
        clients = {'demo': {
            'entry': {'project': 'demo-fs', 'version': '1.2.0', 'module': 'fuse'},
            'log': 'clients/demo/client.log', 'prepare': {'reused': False, 'elapsed': 3.0},
            'real': real, 'cells': {cells[0].id: {
                'status': 'fail', 'fuseshim': _run({'t::a': 'passed', 't::b': 'failed',
                                                    't::c': 'failed'}, 'fuseshim'),
                'regressions': [{'test': 't::b', 'real': 'passed', 'fuseshim': 'failed'}],
                'both_failed': ['t::c'], 'problems': ['t::b: passes with the real peer']}}}}

    summary = {'unexpected': [f'client demo on {cells[0].id}'], 'timings': {'total': 5.0},
               'leftover_mounts': []}
    paths = report.write_all(str(tmp_path), cfg, cells, FakeRunner(), summary, {})
    md = open(paths['markdown']).read()
    assert '| demo | demo-fs 1.2.0 | `fuse` | 2 passed, 1 failed | FAIL 1 passed, 2 failed |' \
        in md, md
    assert 'pass with the real peer only: `t::b`' in md and 'fail with both' in md
    suite = ET.parse(paths['junit']).getroot().find('testsuite')
    case = suite.find("testcase[@classname='matrix.clients.demo']")
    assert case.get('name') == cells[0].id and case.find('failure') is not None
    assert 'td class="fail"' in open(paths['html']).read()
    assert json.load(open(paths['json']))['clients']['demo']['cells'][cells[0].id][
        'regressions'][0]['test'] == 't::b'
    assert 'FAIL 1 passed, 2 failed' in report.clients_terminal_table(FakeRunner.clients)


def test_cli_selects_clients(capsys):
    assert matrix_main(['--matrix', MATRIX, '--list', '--cells', '3.14.0/host/auto',
                        '--clients', 'fsspec,ratarmount']) == 0
    listed = capsys.readouterr()
    assert listed.out.split()[:1] == ['3.14.0/host/auto'] and 'client' not in listed.out
    out = listed.err
    assert 'client fsspec' in out and 'client ratarmount' in out and 'client borg' not in out
    assert 'fuseshim in: 3.14.0/host/auto' in out
    assert matrix_main(['--matrix', MATRIX, '--list', '--clients', 'nosuch']) == 2
    assert "--clients: nosuch" in capsys.readouterr().err
    assert matrix_main(['--matrix', MATRIX, '--list', '--preset', 'clients',
                        '--no-clients']) == 0
    assert 'client ' not in capsys.readouterr().err


def test_client_results_of_shards_merge_per_cell():
    from fuseshim.matrix import clients
    a = {'entry': {'name': 'demo'}, 'real': _run({'t': 'passed'}),
         'cells': {'3.14.0/host/auto': {'status': 'pass'}}}
    b = {'entry': {'name': 'demo'}, 'real': _run({'t': 'passed'}),
         'cells': {'3.18.3/host/auto': {'status': 'fail', 'problems': ['t: ...']}}}
    merged = {}
    clients.merge_shards(merged, 'demo', a, 'shard-1')
    clients.merge_shards(merged, 'demo', b, 'shard-2')
    assert sorted(merged['demo']['cells']) == ['3.14.0/host/auto', '3.18.3/host/auto']
    assert clients.unexpected(merged) == ['client demo on 3.18.3/host/auto']
    with pytest.raises(ValueError, match='reported twice'):
        clients.merge_shards(merged, 'demo', a, 'shard-3')
    assert clients.unexpected({'x': {'error': 'install: offline', 'cells': {}}}) == ['client x']


def test_client_known_failures_may_name_libfuse_versions():
    from fuseshim.matrix import clients
    text = CLIENTS.replace("    tests: {from: sdist, args: [tests/]}\n",
                           "    tests: {from: sdist, args: [tests/]}\n"
                           "    known_failures: [{test: 't::x', reason: r, libfuse: ['3.17*']}]\n")
    [e] = load(text).clients
    assert clients.known_in(e.known_failures, '3.17.2') == e.known_failures
    assert clients.known_in(e.known_failures, '3.14.0') == []
    bad = errors_of(text.replace("['3.17*']", "['4.*']"))
    assert "known_failures[0].libfuse: '4.*' matches no libfuse" in bad


BLOCK_MATRIX_EXTRA = '''
import sys, importlib.abc
blocked = set(sys.argv[1].split(','))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in blocked:
            raise ModuleNotFoundError(f'No module named {name!r} (blocked)', name=name)
sys.meta_path.insert(0, Block())
import pytest
sys.exit(pytest.main(['-p', 'no:cacheprovider', '--collect-only', '-q', sys.argv[2]]))
'''


def test_the_suite_collects_without_the_matrix_extra(tmp_path):
    """The packaging stage runs the suite on the bare wheel (+ pytest): a test
    module that needs the matrix extra must skip, saying so, not break the
    collection (the full preset's cold run found 7 modules doing that)."""
    import matrix_extra
    tests = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run([sys.executable, '-c', BLOCK_MATRIX_EXTRA, ','.join(matrix_extra.MODULES),
                        tests], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert 'error' not in r.stdout.splitlines()[-1], r.stdout[-3000:]
    assert 'the matrix extra: pip install fuseshim[matrix]' in r.stdout


def test_install_prereqs_runs_without_the_matrix_extra(tmp_path):
    """--install-prereqs installs the matrix extra, so it must start without
    it (the runner imported pydantic, PyYAML and Jinja2 before reading its
    options)."""
    import matrix_extra
    script = BLOCK_MATRIX_EXTRA.split('import pytest')[0] + textwrap.dedent('''
        import subprocess
        ran = []
        subprocess.run = lambda cmd, env: ran.append(cmd) or subprocess.CompletedProcess(cmd, 0)
        from fuseshim.matrix.__main__ import main
        rc = main(['--install-prereqs'])
        print('ran:', [c[:3] for c in ran])
        sys.exit(rc)
        ''')
    r = subprocess.run([sys.executable, '-c', script, ','.join(matrix_extra.MODULES)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "['apt-get', 'install', '-y']" in r.stdout
    assert f"['{sys.executable}', '-m', 'pip']" in r.stdout


def test_the_host_chain_starts_first_beside_the_vms(tmp_path):
    """The full preset's host cells and packaging stages run as one chain
    handed to the first worker; the VM boots follow, the one with the
    conformance suites first (the cold run spent 20 minutes with both
    workers in VMs while the host suites, the longest chain, waited)."""
    from fuseshim.matrix.runner import Options, Runner
    cfg = schema.load(MATRIX)
    cells = model.all_cells(cfg)
    native = [c for c in cells if not c.is_vm]
    groups = {}
    for c in cells:
        if c.is_vm:
            groups.setdefault(c.kernel.name, []).append(c)
    versions = sorted({c.libfuse.version for c in cells}, key=model.row_key)
    runner = Runner(cfg, Options(tests=cfg.tests, tests_base=REPO, jobs=2,
                                 report_dir=str(tmp_path), cache=str(tmp_path)))
    jobs = runner.cell_jobs(native, versions, groups)
    assert jobs[0] == (runner._run_host_chain, (native, versions))
    vm_order = [args[0] for fn, args in jobs[1:]]
    assert [fn for fn, _ in jobs[1:]] == [runner._run_vm_group] * len(groups)
    assert sorted(vm_order) == sorted(groups)
    # the kernels whose cells run the conformance suites (tests.vm_extra) go first
    extra = {k for e in cfg.tests.vm_extra for r in e.cells for k in r.kernel}
    assert set(vm_order[:len(extra)]) == extra, vm_order
    # --parallel-tests: no chain, every host cell its own job
    runner = Runner(cfg, Options(tests=cfg.tests, tests_base=REPO, jobs=2, parallel_tests=True,
                                 report_dir=str(tmp_path), cache=str(tmp_path)))
    jobs = runner.cell_jobs(native, versions, groups)
    assert [fn for fn, _ in jobs].count(runner._run_native) == len(native)


def test_a_build_tree_is_for_one_interpreter_path(monkeypatch, tmp_path):
    """Two venvs of one Python version must not share a configured build
    tree: meson recorded the first one's path (ninja then fails once that
    venv is gone: "'/…/bin/python', needed by 'shim/_optable.pxi', missing")."""
    lf = LibfusePrefix('3.18.3', str(tmp_path / 'prefix'), '', '', '')
    monkeypatch.setattr(sys, 'executable', '/venv-a/bin/python')
    a = build_ident('/src', lf)
    monkeypatch.setattr(sys, 'executable', '/venv-b/bin/python')
    assert build_ident('/src', lf) != a
    assert build_ident('/src', lf) == build_ident('/src', lf)
    assert build_ident('/other-src', lf) != build_ident('/src', lf)
