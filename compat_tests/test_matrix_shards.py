"""Fan-out to a CI system's job matrix: shards, --list --format, and merge.

The unit tests check the split on the repository's own matrix file; the
end-to-end test runs a small real matrix (the system libfuse on this kernel,
three startup modes, probe only: real builds and real mounts) once whole and
once as three shards, merges the shards and compares the two reports cell by
cell."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import matrix_extra

matrix_extra.require()

import fuseshim  # noqa: E402
from fuseshim.matrix import compare, model, schema, shard  # noqa: E402
from fuseshim.matrix.__main__ import main as matrix_main  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MATRIX = os.path.join(REPO, 'matrix.yaml')


def selection(preset):
    cfg = schema.load(MATRIX)
    cells = model.all_cells(cfg)
    if cfg.presets[preset].cells:
        cells = model.select(cells, cfg.presets[preset].cells)
    return cells


@pytest.mark.parametrize('preset', ['ci', 'full'])
@pytest.mark.parametrize('n', [1, 2, 3, 5, 7])
def test_shards_partition_cells_and_packaging(preset, n):
    cells = selection(preset)
    versions = sorted({c.libfuse.version for c in cells}, key=model.row_key)
    shards = shard.split(cells, versions, n)
    assert len(shards) == n
    dealt = [c.id for s in shards for c in s.cells]
    assert sorted(dealt) == sorted(c.id for c in cells)          # each cell exactly once
    assert sorted(v for s in shards for v in s.packaging) == versions
    for s in shards:
        for v in s.packaging:          # packaging runs where that libfuse is built anyway
            assert any(c.libfuse.version == v for c in s.cells)
    sizes = [len(s.cells) for s in shards]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize('bad', ['0/3', '4/3', '3', 'a/b', ''])
def test_shard_spec_errors(bad):
    with pytest.raises(schema.MatrixError, match='--shard'):
        shard.parse_spec(bad)


def run_main(capsys, *argv):
    rc = matrix_main(['--matrix', MATRIX, *argv])
    return rc, capsys.readouterr().out


def test_list_json_entries_match_shard_runs(capsys):
    rc, out = run_main(capsys, '--preset', 'ci', '--list', '--shards', '3', '--format', 'json')
    assert rc == 0
    entries = json.loads(out)
    assert [e['shard'] for e in entries] == ['1/3', '2/3', '3/3']
    all_ids = [c.id for c in selection('ci')]
    listed = [i for e in entries for i in e['cells'].split(',')]
    assert sorted(listed) == sorted(all_ids)
    for e in entries:
        assert e['args'] == f'--matrix={MATRIX} --preset=ci --shard={e["shard"]}'
        # --shard K/N locally gives the same split as the entry
        rc, text = run_main(capsys, '--preset', 'ci', '--shard', e['shard'], '--list')
        assert rc == 0
        assert [line.split()[0] for line in text.splitlines()] == e['cells'].split(',')
        # and the entry's --cells selection selects exactly those cells
        rc, text = run_main(capsys, '--preset', 'ci', '--cells', e['cells'], '--list')
        assert [line.split()[0] for line in text.splitlines()] == e['cells'].split(',')


def test_list_github_output_line(capsys):
    rc, out = run_main(capsys, '--preset', 'ci', '--list', '--shards', '2', '--format', 'github')
    assert rc == 0
    key, _, value = out.strip().partition('=')
    assert key == 'matrix'
    include = json.loads(value)['include']
    assert [e['name'] for e in include] == ['shard-1-of-2', 'shard-2-of-2']


# ---------------------------------------------------------------- end to end

SMALL = '''
version: 1
libfuse:
  - {{version: "{version}", source: system}}
kernels:
  - {{name: host}}
startup: [auto, sync, classic]
features: {{passthrough: "3.17", want_ext_64bit: "3.17", feature_flags: "3.17.3",
            reply_statx: "3.18"}}
presets:
  small: {{description: "one libfuse on this kernel, three startup modes"}}
'''


def matrix_cli(*args, cwd):
    """fuseshim-matrix in a child (its own signal handling and stdout)."""
    return subprocess.run([sys.executable, '-m', 'fuseshim.matrix', *args], cwd=cwd,
                          capture_output=True, text=True, timeout=900)


def shared_cache(tmp_path_factory):
    """One build cache for the small real matrices of this session's tests
    (test_matrix_interrupt.py too): the cell build is made once."""
    path = tmp_path_factory.getbasetemp() / 'small-matrix-cache'
    path.mkdir(exist_ok=True)
    os.chmod(path, 0o755)
    return path


@pytest.fixture(scope='module')
def small_matrix(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip('the matrix cells mount with mount(2): run as root')
    if shutil.which('pkg-config') is None:
        pytest.skip('pkg-config finds the system libfuse for the "system" source')
    root = tmp_path_factory.mktemp('shards')
    os.chmod(root, 0o755)
    path = root / 'matrix.yaml'
    path.write_text(textwrap.dedent(SMALL.format(version=fuseshim.libfuse_version())))
    common = ['--matrix', str(path), '--preset', 'small', '--no-tests', '--quiet',
              '--source', REPO, '--cache', str(shared_cache(tmp_path_factory))]
    single = matrix_cli(*common, '--report-dir', str(root / 'single'), cwd=root)
    assert single.returncode == 0, single.stdout + single.stderr
    for k in (1, 2, 3):
        r = matrix_cli(*common, '--shard', f'{k}/3', '--report-dir', str(root / f's{k}'),
                       cwd=root)
        assert r.returncode == 0, r.stdout + r.stderr
    return root, common


def test_three_shards_merged_equal_the_single_run(small_matrix):
    root, _ = small_matrix
    merged = matrix_cli('merge', str(root / 's1'), str(root / 's2'), str(root / 's3'),
                        '--matrix', str(root / 'matrix.yaml'),
                        '--report-dir', str(root / 'merged'), cwd=root)
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert compare.compare_dirs(str(root / 'single'), str(root / 'merged')) == []
    single = compare.decisions(str(root / 'single'))
    assert len(single['cells']) == 3 and len(single['junit']) == 3
    assert all(c['status'] == 'pass' for c in single['cells'].values())
    r = matrix_cli('compare', str(root / 'single'), str(root / 'merged'), cwd=root)
    assert r.returncode == 0 and 'agree: 3 cells' in r.stdout, r.stdout + r.stderr
    for name in ('report.md', 'index.html'):
        assert (root / 'merged' / name).exists()
    # every cell's log link points at a file inside the merged report
    with open(root / 'merged' / 'report.json') as f:
        for cell in json.load(f)['cells']:
            assert (root / 'merged' / cell['result']['log']).exists(), cell['result']['log']


def test_merge_says_which_cells_are_missing(small_matrix):
    root, _ = small_matrix
    r = matrix_cli('merge', str(root / 's1'), str(root / 's3'),
                   '--matrix', str(root / 'matrix.yaml'),
                   '--report-dir', str(root / 'partial'), cwd=root)
    assert r.returncode == 1, r.stdout + r.stderr
    missing = [c.id for c in shard.split(
        model.all_cells(schema.load(str(root / 'matrix.yaml'))), [], 3)[1].cells]
    assert f'missing (no shard reported them): {", ".join(missing)}' in r.stdout
    with open(root / 'partial' / 'report.json') as f:
        status = {c['id']: c['result']['status'] for c in json.load(f)['cells']}
    assert all(status[i] == 'error' for i in missing)


def test_merge_refuses_the_same_shard_twice(small_matrix):
    root, _ = small_matrix
    r = matrix_cli('merge', str(root / 's1'), str(root / 's1'),
                   '--matrix', str(root / 'matrix.yaml'), '--report-dir', str(root / 'dup'),
                   cwd=root)
    assert r.returncode == 2 and 'is reported by both' in r.stderr


def test_merge_refuses_another_matrix_file(small_matrix):
    root, _ = small_matrix
    other = root / 'other.yaml'
    other.write_text((root / 'matrix.yaml').read_text() + '\n# edited\n')
    r = matrix_cli('merge', str(root / 's1'), str(root / 's2'), str(root / 's3'),
                   '--matrix', str(other), '--report-dir', str(root / 'other'), cwd=root)
    assert r.returncode == 2 and 'was run with another matrix file' in r.stderr


def test_merge_refuses_another_fuseshim_revision(small_matrix, tmp_path):
    root, _ = small_matrix
    forged = tmp_path / 's2'
    shutil.copytree(root / 's2', forged)
    data = json.loads((forged / 'report.json').read_text())
    data['meta']['fuseshim_revision'] = '0' * 40
    (forged / 'report.json').write_text(json.dumps(data))
    r = matrix_cli('merge', str(root / 's1'), str(forged), str(root / 's3'),
                   '--matrix', str(root / 'matrix.yaml'), '--report-dir', str(tmp_path / 'm'),
                   cwd=root)
    assert r.returncode == 2 and 'differ in their fuseshim revision' in r.stderr


def test_compare_names_each_difference(small_matrix, tmp_path):
    """compare must fail on what a merge could get wrong: a cell's status,
    its startup path, a missing cell, a JUnit verdict."""
    root, _ = small_matrix
    edited = tmp_path / 'edited'
    shutil.copytree(root / 'single', edited)
    with open(edited / 'report.json') as f:
        data = json.load(f)
    first, second = data['cells'][0], data['cells'][1]
    first['result']['status'] = 'fail'
    second['result']['probe']['startup_path'] = 'classic-not-really'
    dropped = data['cells'].pop()
    (edited / 'report.json').write_text(json.dumps(data))
    diffs = compare.compare_dirs(str(root / 'single'), str(edited))
    assert f"cells.{first['id']}.status: {root / 'single'} 'pass', {edited} 'fail'" in diffs
    assert any(d.startswith(f"cells.{second['id']}.startup_path:") for d in diffs)
    assert f"cells.{dropped['id']}: only in {root / 'single'}" in diffs
    assert len(diffs) == 3, diffs
    junit = (edited / 'junit.xml').read_text()
    (edited / 'junit.xml').write_text(junit.replace('</testcase>', '<failure message="x"/></testcase>', 1))
    r = matrix_cli('compare', str(root / 'single'), str(edited), cwd=root)
    assert r.returncode == 1, r.stdout + r.stderr
    assert '4 differences' in r.stdout and "['failure']" in r.stdout
    r = matrix_cli('compare', str(root / 'single'), str(tmp_path / 'nothing'), cwd=root)
    assert r.returncode == 2 and 'not a readable matrix report' in r.stderr


def test_merge_skips_fifos_in_shard_reports(small_matrix, tmp_path):
    """Test suites leave FIFOs and sockets in their scratch directories inside
    a report; merging must copy the rest (CI's merge crashed on one)."""
    root, _ = small_matrix
    shards = []
    for k in (1, 2, 3):
        shutil.copytree(root / f's{k}', tmp_path / f's{k}', symlinks=True)
        shards.append(str(tmp_path / f's{k}'))
    os.makedirs(tmp_path / 's1' / 'scratch')
    os.mkfifo(tmp_path / 's1' / 'scratch' / 'fifo')
    (tmp_path / 's1' / 'scratch' / 'kept.log').write_text('kept')
    r = matrix_cli('merge', *shards, '--matrix', str(root / 'matrix.yaml'),
                   '--report-dir', str(tmp_path / 'merged'), cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    copied = tmp_path / 'merged' / 'shards' / '1-of-3' / 'scratch'
    assert (copied / 'kept.log').read_text() == 'kept'
    assert not (copied / 'fifo').exists()
